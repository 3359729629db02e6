"""Runs examples/langchain_retriever.py's retriever against a live server,
alone and inside an LCEL chain, as an application would. Prints one JSON
summary last."""

import importlib.util
import json
import os

from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

spec = importlib.util.spec_from_file_location("example", os.environ["EXAMPLE"])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)

retriever = example.QuarryRetriever(
    url=os.environ["QUARRY_URL"], collection="guide", api_key=os.environ["QUARRY_API_KEY"], top_k=3
)
docs = retriever.invoke("liveness and readiness probes for the load balancer")
assert docs and all(isinstance(d, Document) for d in docs), docs
assert docs[0].metadata["uri"] and docs[0].page_content.strip(), docs[0]
assert docs[0].metadata["score"] >= docs[-1].metadata["score"]

# In a chain, as the retriever of a RAG prompt.
chain = retriever | RunnableLambda(lambda ds: "\n\n".join(d.page_content for d in ds))
text = chain.invoke("how do I check the server is ready?")
assert "ready" in text.lower(), text[:300]

print(json.dumps({"top_doc_id": docs[0].metadata["doc_id"], "documents": len(docs)}))
