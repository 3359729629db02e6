#!/usr/bin/env python3
"""Measures the default of retrieval.low_score (crates/quarry-core/src/config/retrieval.rs).

usage: calibrate-low-score.py URL SHARED_DIR SCIFACT_COLLECTION MSMARCO_COLLECTION [PER_SET]

URL is a running `quarry serve` that holds both shared sets' corpora (for
example `quarry serve --data-dir .quarry/eval` after `quarry eval` on each).
A collection's own queries are questions its corpus answers; the other
set's queries (scientific claims against web passages, and the reverse) are
questions it cannot. For every mode, each collection is asked up to PER_SET
(default 300) of each kind, and the best hit's `relevance` is kept. The
threshold printed is the one that best tells the two kinds apart (the mean,
over collections and modes, of the balanced accuracy), with the share of
each kind it flags as low. Only the standard library is needed."""
import json, sys, urllib.request

url, shared, names = sys.argv[1], sys.argv[2], {"scifact": sys.argv[3], "msmarco": sys.argv[4]}
per_set = int(sys.argv[5]) if len(sys.argv) > 5 else 300
sets = {"scifact": f"{shared}/datasets/scifact-train", "msmarco": f"{shared}/datasets/msmarco-5k"}
queries = {}
for name, d in sets.items():
    qs = [json.loads(l)["text"] for l in open(f"{d}/queries.jsonl")]
    step = max(1, len(qs) // per_set)
    queries[name] = qs[::step][:per_set]

def best(collection, query, mode):
    body = json.dumps({"query": query, "mode": mode, "top_k": 10}).encode()
    req = urllib.request.Request(f"{url}/v1/collections/{collection}/search", body,
                                 {"content-type": "application/json", "cache-control": "no-cache"})
    hits = json.load(urllib.request.urlopen(req))["hits"]
    return max((h["relevance"] for h in hits), default=0.0)

# (collection, mode) -> (own best relevances, foreign best relevances)
seen = {}
for name, collection in names.items():
    other = "msmarco" if name == "scifact" else "scifact"
    for mode in ["dense", "bm25", "hybrid"]:
        own = [best(collection, q, mode) for q in queries[name]]
        foreign = [best(collection, q, mode) for q in queries[other]]
        seen[(name, mode)] = (own, foreign)

def flagged(xs, t):
    return sum(x < t for x in xs) / len(xs)

def score(t):
    return sum((1 - flagged(o, t) + flagged(f, t)) / 2 for o, f in seen.values()) / len(seen)

grid = [i / 100 for i in range(1, 100)]
chosen = max(grid, key=score)
print(f"threshold {chosen:.2f}: mean balanced accuracy {score(chosen):.3f}")
print("corpus   mode    own queries flagged low   foreign queries flagged low")
for (name, mode), (own, foreign) in seen.items():
    print(f"{name:8} {mode:7} {flagged(own, chosen):6.1%} of {len(own):3}"
          f"            {flagged(foreign, chosen):6.1%} of {len(foreign):3}")
for t in [0.05, 0.1, 0.2, 0.3, 0.5]:
    print(f"  at {t:.2f}: mean balanced accuracy {score(t):.3f}")
