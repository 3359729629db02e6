#!/usr/bin/env python3
"""Cross-checks a `quarry eval` run directory against pytrec_eval.

Recomputes every metric of every mode from the run's TREC files and the
dataset's qrels with pytrec_eval, and compares them with metrics.json and
per_query.json to 4 decimals. Exits 1 on any mismatch.

usage: crosscheck.py RUN_DIR      (needs `pip install pytrec-eval-terrier`)
"""
import json, re, sys
from pathlib import Path
import pytrec_eval

MEASURES = {"ndcg_cut.10", "recall.10", "recall.100", "map_cut.100", "P.10"}
NAMES = {"ndcg_cut_10": "ndcg@10", "recall_10": "recall@10", "recall_100": "recall@100",
         "map_cut_100": "map@100", "P_10": "p@10"}
TOL = 5e-5

def main(run_dir):
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "metrics.json").read_text())
    per_query = json.loads((run_dir / "per_query.json").read_text())
    chunk_form = re.compile(r".+#\d+$")
    qrels = {}
    for i, line in enumerate(open(summary["dataset"]["qrels"])):
        cols = line.rstrip("\n").split("\t")
        if i == 0 and cols[0] == "query-id":
            continue
        if len(cols) == 4:
            cols = [cols[0], cols[2], cols[3]]
        q, d, g = cols
        if summary.get("chunk_modes") and chunk_form.match(d):
            continue  # chunk-level judgments are scored separately
        qrels.setdefault(q, {})[d] = int(g)
    failures = 0
    for mode, means in summary["modes"].items():
        run = {}
        for line in open(run_dir / f"run.{mode}.trec"):
            q, _, d, _, s, _ = line.split()
            run.setdefault(q, {})[d] = float(s)
        scored = per_query[mode].keys()
        for q in scored:
            run.setdefault(q, {})
        # pytrec_eval skips queries with an empty run; they score 0 everywhere.
        ev = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate({q: r for q, r in run.items() if r})
        top10 = {q: dict(sorted(r.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10]) for q, r in run.items() if r}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
        ref = {}
        for q in scored:
            row = {NAMES[k]: v for k, v in ev.get(q, {}).items() if k in NAMES}
            row["mrr@10"] = rr.get(q, {}).get("recip_rank", 0.0)
            for m in NAMES.values():
                row.setdefault(m, 0.0)
            ref[q] = row
        print(f"{mode}:")
        for m in ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "p@10"]:
            theirs = sum(r[m] for r in ref.values()) / len(ref)
            ours = means[m]
            bad = sum(1 for q in scored if abs(per_query[mode][q][m] - ref[q][m]) > TOL)
            ok = abs(ours - theirs) <= TOL and bad == 0
            failures += 0 if ok else 1
            print(f"  {m:<11} quarry {ours:.4f}  pytrec_eval {theirs:.4f}  "
                  f"per-query mismatches {bad}/{len(ref)}  {'ok' if ok else 'MISMATCH'}")
    print("cross-check:", "passed" if failures == 0 else f"FAILED ({failures} metric(s))")
    sys.exit(1 if failures else 0)

if __name__ == "__main__":
    main(sys.argv[1])
