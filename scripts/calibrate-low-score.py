#!/usr/bin/env python3
"""Measures the default of retrieval.low_score (crates/quarry-core/src/config/retrieval.rs).

usage: calibrate-low-score.py [--per-set N] URL COLLECTION QUERIES [URL COLLECTION QUERIES ...]

Each triple is a running `quarry serve`, one of its collections, and a
BEIR queries.jsonl written for that collection's corpus. A collection's own
queries are questions its corpus answers; every other set's queries are
questions it cannot (scientific claims asked of web passages or of a user
guide, and so on). For every mode, each collection is asked up to N
(default 300) queries of each set, and the best hit's `relevance` is kept.
The threshold printed is the one that best tells own from foreign queries:
the mean, over collections and modes, of the balanced accuracy. Then the
share of each kind it flags as low. Only the standard library is needed.

The shared sets' eval collections are served by
`quarry serve --data-dir .quarry/eval` after `quarry eval` on each, the
user guide's by `quarry serve` after `quarry sync`."""
import json, sys, urllib.request

args = sys.argv[1:]
per_set = 300
if args[:1] == ["--per-set"]:
    per_set, args = int(args[1]), args[2:]
if not args or len(args) % 3:
    sys.exit(__doc__)
sets = []
for url, collection, path in zip(args[::3], args[1::3], args[2::3]):
    qs = [json.loads(l)["text"] for l in open(path)]
    step = max(1, len(qs) // per_set)
    sets.append({"url": url, "collection": collection, "queries": qs[::step][:per_set]})

def best(s, query, mode):
    body = json.dumps({"query": query, "mode": mode, "top_k": 10}).encode()
    req = urllib.request.Request(f"{s['url']}/v1/collections/{s['collection']}/search", body,
                                 {"content-type": "application/json", "cache-control": "no-cache"})
    hits = json.load(urllib.request.urlopen(req))["hits"]
    return max((h["relevance"] for h in hits), default=0.0)

# (collection, mode) -> (own best relevances, foreign best relevances)
seen = {}
for s in sets:
    foreign_queries = [q for o in sets if o is not s for q in o["queries"]]
    for mode in ["dense", "bm25", "hybrid"]:
        own = [best(s, q, mode) for q in s["queries"]]
        foreign = [best(s, q, mode) for q in foreign_queries]
        seen[(s["collection"], mode)] = (own, foreign)

def flagged(xs, t):
    return sum(x < t for x in xs) / len(xs)

def score(t):
    return sum((1 - flagged(o, t) + flagged(f, t)) / 2 for o, f in seen.values()) / len(seen)

grid = [i / 100 for i in range(1, 100)]
chosen = max(grid, key=score)
print(f"threshold {chosen:.2f}: mean balanced accuracy {score(chosen):.3f}")
print(f"{'collection':30} mode    own flagged low    foreign flagged low")
for (collection, mode), (own, foreign) in seen.items():
    print(f"{collection:30} {mode:7} {flagged(own, chosen):6.1%} of {len(own):3}"
          f"     {flagged(foreign, chosen):6.1%} of {len(foreign):3}")
for t in [0.02, 0.05, 0.1, 0.2, 0.3]:
    print(f"  at {t:.2f}: mean balanced accuracy {score(t):.3f}")
