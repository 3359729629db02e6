#!/usr/bin/env python3
"""Fits the relevance curves of crates/quarry-engine/src/relevance.rs.

usage: calibrate-relevance.py SHARED_DIR SCIFACT_SWEEP MSMARCO_SWEEP

SHARED_DIR holds datasets/scifact-train and datasets/msmarco-5k; each SWEEP
is the run directory of
  quarry eval --dataset DATASET --sweep fusion=rrf,dbsf,convex,adaptive --out SWEEP
For each mode (and hybrid's fusion method) it fits a logistic curve of the
raw score (BM25: per content word of the query, by the same word rule as
the Rust code) to the qrels over every query's top 10 hits, the two sets
weighted equally, and prints the curve with each set's calibration:
[mean predicted, observed rate, hits] per predicted-probability bin.
Needs numpy."""
import json, re, sys, numpy as np
# The stop words of relevance.rs's STOP.
STOP = set("a an and are as at be but by for from has have how in is it its of on or that the this to was were what when where which who why will with does do did can".split())
def terms(q):
    ws = set(w for w in re.findall(r"[^\W_]+", q.lower()) if w not in STOP)
    return max(1, len(ws))
shared, sweeps = sys.argv[1], {"scifact": sys.argv[2], "msmarco": sys.argv[3]}
sets = {"scifact": (f"{shared}/datasets/scifact-train", "train"), "msmarco": (f"{shared}/datasets/msmarco-5k", "test")}
def qrels(d, split):
    r = {}
    for l in open(f"{d}/qrels/{split}.tsv"):
        p = l.split()
        if p[0] in ("query-id", "query_id"): continue
        if int(p[2]) > 0: r.setdefault(p[0], set()).add(p[1])
    return r
def run(path, k=10):
    r = {}
    for l in open(path):
        q, _, d, rank, s, _ = l.split()
        if int(rank) <= k: r.setdefault(q, []).append((d, float(s)))
    return r
def fit(x, y, w):
    X = np.concatenate([x, np.ones((len(x), 1))], 1); b = np.zeros(X.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-X @ b)); g = X.T @ (w * (y - p)); H = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(len(b))
        b += np.linalg.solve(H, g)
    return b
def sides(name, method):
    """Each query's dense cosine and BM25-per-word of the documents in the
    top 100 of either side (0 where a side did not return the document)."""
    d = run(f"{sweeps[name]}/t256-o32-{method}-k60-p4/run.dense.trec", 100)
    b = run(f"{sweeps[name]}/t256-o32-{method}-k60-p4/run.bm25.trec", 100)
    return {q: (dict(d.get(q, [])), dict(b.get(q, []))) for q in set(d) | set(b)}
out = {}
for kind in ["dense", "bm25", "hybrid"]:
    xs, ys, ws, per = [], [], [], {}
    for name, (d, split) in sets.items():
        qs = {json.loads(l)["_id"]: json.loads(l)["text"] for l in open(f"{d}/queries.jsonl")}
        rel = qrels(d, split)
        r = run(f"{sweeps[name]}/t256-o32-adaptive-k60-p4/run.{kind}.trec")
        side = sides(name, "adaptive")
        x = []; y = []
        for q, hits in r.items():
            if q not in rel: continue
            nt = terms(qs[q])
            for dd, s in hits:
                if kind == "dense": f = [s]
                elif kind == "bm25": f = [s / nt]
                # A fused score is relative to its own query's lists (an
                # off-topic query's best hit still fuses near 1), so hybrid
                # reads both sides' own scores instead.
                else: f = [side[q][0].get(dd, 0.0), side[q][1].get(dd, 0.0) / nt]
                x.append(f); y.append(1.0 if dd in rel[q] else 0.0)
        x, y = np.array(x), np.array(y)
        per[name] = (x, y)
        xs.append(x); ys.append(y); ws.append(np.full(len(x), 1.0 / len(x)))
    b = fit(np.concatenate(xs), np.concatenate(ys), np.concatenate(ws) * 1000)
    report = {"weights": [round(float(v), 4) for v in b[:-1]], "bias": round(float(b[-1]), 4)}
    for name, (x, y) in per.items():
        p = 1 / (1 + np.exp(-(x @ b[:-1] + b[-1])))
        bins = np.digitize(p, [0.2, 0.4, 0.6, 0.8])
        report[name] = [(round(float(p[bins == i].mean()), 2), round(float(y[bins == i].mean()), 2), int((bins == i).sum())) for i in range(5) if (bins == i).any()]
    out[kind] = report
    print(kind, json.dumps(report))
