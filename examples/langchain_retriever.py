"""A LangChain retriever over Quarry's HTTP API: drop it into any LangChain
(or, through LlamaIndex's LangChain bridge, LlamaIndex) application in place
of a vector store retriever. Needs only `langchain-core`.

    QUARRY_API_KEY=... python examples/langchain_retriever.py guide "how do probes work?"
"""

import json
import os
import sys
import urllib.request
from typing import List, Optional

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever


class QuarryRetriever(BaseRetriever):
    url: str = "http://127.0.0.1:7700"
    collection: str
    api_key: Optional[str] = None
    top_k: int = 5
    mode: str = "hybrid"  # or "dense", "bm25"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> List[Document]:
        body = json.dumps({"query": query, "top_k": self.top_k, "mode": self.mode}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            f"{self.url}/v1/collections/{self.collection}/search", data=body, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            hits = json.load(response)["hits"]
        keep = ("doc_id", "uri", "title", "score", "source", "headings")
        return [Document(page_content=h["text"], metadata={k: h[k] for k in keep}) for h in hits]


if __name__ == "__main__":
    url = os.environ.get("QUARRY_URL", "http://127.0.0.1:7700")
    retriever = QuarryRetriever(url=url, collection=sys.argv[1], api_key=os.environ.get("QUARRY_API_KEY"))
    for doc in retriever.invoke(" ".join(sys.argv[2:])):
        print(f"{doc.metadata['score']:.4f}  {doc.metadata['title']}  {doc.metadata['uri']}")
