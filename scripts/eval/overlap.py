#!/usr/bin/env python3
"""Top-k overlap between two `quarry eval` runs, per mode.

    scripts/eval/overlap.py RUN_A RUN_B [--k 10] [--min 0.9]

For each mode present in both runs (run.MODE.trec), prints the mean
fraction of each query's top-k documents that the other run also has in
its top-k, and the worst query. Exits 1 if a mean falls below --min. Used
to compare stores (edge vs server), where HNSW may reorder near ties.
"""
import argparse
import pathlib
import sys
from collections import defaultdict


def load(path):
    runs = defaultdict(list)
    for line in open(path):
        qid, _, doc, rank, score, _ = line.split()
        runs[qid].append((int(rank), doc))
    return {q: [d for _, d in sorted(v)] for q, v in runs.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--min", type=float, default=0.9)
    args = ap.parse_args()
    ok = True
    for trec in sorted(pathlib.Path(args.a).glob("run.*.trec")):
        other = pathlib.Path(args.b) / trec.name
        if not other.exists():
            continue
        ra, rb = load(trec), load(other)
        fractions = []
        for q in ra.keys() & rb.keys():
            ta, tb = set(ra[q][: args.k]), set(rb[q][: args.k])
            n = max(1, min(args.k, len(ra[q]), len(rb[q])))
            fractions.append((len(ta & tb) / n, q))
        mean = sum(f for f, _ in fractions) / max(1, len(fractions))
        worst = min(fractions)
        mode = trec.name.split(".")[1]
        print(f"{mode}: top-{args.k} overlap mean {mean:.4f} over {len(fractions)} queries; "
              f"worst {worst[0]:.2f} (query {worst[1]})")
        ok &= mean >= args.min
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
