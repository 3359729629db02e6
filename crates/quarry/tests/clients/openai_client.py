"""Quarry's /v1/embeddings through the official `openai` client.

$EXPECTED holds `quarry embed`'s vectors and token counts for some texts,
and the path of the model's tokenizer.json. The client asks for base64 by
default; float is checked too, and token-id input against the text's own
vector. Prints one JSON summary last.
"""

import json
import math
import os

import openai
from openai import OpenAI
from tokenizers import Tokenizer

URL = os.environ["QUARRY_URL"]
expected = json.load(open(os.environ["EXPECTED"]))
texts = expected["texts"]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


client = OpenAI(base_url=f"{URL}/v1", api_key=os.environ["READER_KEY"], max_retries=0)
report = {}

models = [m.id for m in client.models.list().data]
default = models[0]
assert default == "sentence-transformers/all-MiniLM-L6-v2", models

# The client's default: base64, decoded by the client itself.
resp = client.embeddings.create(model=default, input=texts)
assert [d.index for d in resp.data] == list(range(len(texts)))
cosines = [cosine(d.embedding, e) for d, e in zip(resp.data, expected["embeddings"])]
report["min_cosine"] = min(cosines)
report["prompt_tokens"] = resp.usage.prompt_tokens
assert resp.usage.total_tokens == resp.usage.prompt_tokens
assert resp.model == default, resp.model

# Float, a single string, and the model left to the server's default.
one = client.embeddings.create(model=default, input=texts[0], encoding_format="float", dimensions=384)
assert cosine(one.data[0].embedding, expected["embeddings"][0]) >= 0.99999
assert one.usage.prompt_tokens == expected["tokens"][0]

# Token ids (without special tokens), as the caller's own tokenizer gives them.
tokenizer = Tokenizer.from_file(expected["tokenizer"])
# The file pads to 128 and truncates; a client's own tokenizer gives the plain ids.
tokenizer.no_padding()
tokenizer.no_truncation()
ids = [tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
by_ids = client.embeddings.create(model=default, input=ids)
id_cosines = [cosine(d.embedding, e) for d, e in zip(by_ids.data, expected["embeddings"])]
assert min(id_cosines) >= 0.99999, id_cosines
assert by_ids.usage.prompt_tokens == sum(expected["tokens"]), by_ids.usage
single_ids = client.embeddings.create(model=default, input=ids[0])
assert len(single_ids.data) == 1

try:
    client.embeddings.create(model=default, input=texts[0], dimensions=100)
    raise AssertionError("dimensions=100 was accepted")
except openai.BadRequestError as e:
    assert "384" in str(e) and "dimensions" in str(e), str(e)
    report["dimensions_error"] = e.status_code

try:
    client.embeddings.create(model=default, input=["x"] * 2049)
    raise AssertionError("2049 inputs were accepted")
except openai.APIStatusError as e:
    assert "2048" in str(e), str(e)
    report["too_many_inputs"] = e.status_code

try:
    client.embeddings.create(model="no-such/model", input="x")
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as e:
    assert "no-such/model" in str(e) and "/v1/models" in str(e), str(e)
    report["unknown_model"] = e.status_code

try:
    OpenAI(base_url=f"{URL}/v1", api_key="wrong", max_retries=0).embeddings.create(model=default, input="x")
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as e:
    report["wrong_key"] = e.status_code

print(json.dumps(report))
