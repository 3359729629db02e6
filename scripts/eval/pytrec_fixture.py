#!/usr/bin/env python3
"""Writes the metric fixture and pytrec_eval's values for it.

The fixture is ours (generated here with a fixed seed, not taken from any
dataset); the expected values come from pytrec_eval, so the Rust metric code
is checked against the reference implementation, not against itself.

usage: pytrec_fixture.py OUT_DIR   (needs `pip install pytrec-eval-terrier`)
"""
import json, random, sys, os
import pytrec_eval

MEASURES = {"ndcg_cut.10", "recall.10", "recall.100", "map_cut.100", "P.10"}
NAMES = {"ndcg_cut_10": "ndcg@10", "recall_10": "recall@10", "recall_100": "recall@100",
         "map_cut_100": "map@100", "P_10": "p@10"}

def trec_order(run):
    # trec_eval: score descending, ties by document id descending
    return sorted(run.items(), key=lambda x: (x[1], x[0]), reverse=True)

def main(out):
    rng = random.Random(20261124)
    qrels, run = {}, {}
    docs = [f"d{i:03d}" for i in range(300)]
    # Hand-made cases first: each exercises one rule.
    qrels["graded"] = {"d001": 3, "d002": 2, "d003": 1, "d004": 0}
    run["graded"] = {"d009": 9.0, "d002": 8.0, "d004": 7.0, "d001": 6.0, "d010": 5.0, "d003": 1.5}
    qrels["ties"] = {"d020": 1, "d025": 2}
    run["ties"] = {d: 1.0 for d in ["d020", "d021", "d022", "d023", "d024", "d025", "d026",
                                     "d027", "d028", "d029", "d030", "d031"]}
    qrels["many_relevant"] = {f"d{i:03d}": 1 + i % 3 for i in range(100, 130)}
    run["many_relevant"] = {d: 200.0 - i for i, d in enumerate(rng.sample(docs, 150))}
    qrels["none_retrieved"] = {"d299": 1}
    run["none_retrieved"] = {f"d{i:03d}": 1.0 / (i + 1) for i in range(20)}
    qrels["rank_eleven"] = {"d050": 1, "d051": 1}
    run["rank_eleven"] = {**{f"d{i:03d}": 100.0 - i for i in range(10)}, "d050": 50.0, "d051": 0.5}
    qrels["zero_grade_first"] = {"d060": 0, "d061": 1}
    run["zero_grade_first"] = {"d060": 3.0, "d062": 2.0, "d061": 1.0}
    qrels["negative_scores"] = {"d070": 2, "d071": 1}
    run["negative_scores"] = {"d072": -0.5, "d070": -1.25, "d073": -1.25, "d071": -3.0}
    # Random cases: graded judgments, runs of varying depth with some ties.
    for q in range(12):
        qid = f"r{q:02d}"
        judged = rng.sample(docs, rng.randint(1, 25))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if all(g == 0 for g in qrels[qid].values()):
            qrels[qid][judged[0]] = 1
        depth = rng.randint(5, 140)
        run[qid] = {d: round(rng.random(), 2) for d in rng.sample(docs, depth)}
    ev = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)
    top10 = {q: dict(trec_order(r)[:10]) for q, r in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    expected = {}
    for q in run:
        row = {NAMES[k]: v for k, v in ev[q].items() if k in NAMES}
        row["mrr@10"] = rr[q]["recip_rank"]
        expected[q] = row
    os.makedirs(out, exist_ok=True)
    with open(f"{out}/qrels.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, j in qrels.items():
            for d, g in j.items():
                f.write(f"{q}\t{d}\t{g}\n")
    with open(f"{out}/run.trec", "w") as f:
        for q, r in run.items():
            for i, (d, s) in enumerate(r.items(), 1):  # file order, not rank order
                f.write(f"{q} Q0 {d} {i} {s!r} fixture\n")
    with open(f"{out}/expected.json", "w") as f:
        json.dump({"pytrec_eval": pytrec_eval.__version__ if hasattr(pytrec_eval, "__version__") else "terrier",
                   "queries": expected}, f, indent=1, sort_keys=True)

if __name__ == "__main__":
    main(sys.argv[1])
