//! The metric code against `pytrec_eval` on a fixture of our own.
//!
//! `tests/fixtures/pytrec/` was written by `scripts/eval/pytrec_fixture.py`:
//! graded judgments, tied scores, negative scores, zero-graded hits, more
//! than ten relevant documents, runs deeper than 100, and the run file in
//! arbitrary order. `expected.json` holds what `pytrec_eval` computed for
//! it; regenerate all three together with that script.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;

use quarry_eval::metrics::{self, Judgments, METRICS};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytrec")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn qrels() -> HashMap<String, Judgments> {
    let mut out: HashMap<String, Judgments> = HashMap::new();
    for line in fixture("qrels.tsv").lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        out.entry(cols[0].into())
            .or_default()
            .insert(cols[1].into(), cols[2].parse().unwrap());
    }
    out
}

fn run() -> HashMap<String, Vec<(String, f64)>> {
    let mut out: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    for line in fixture("run.trec").lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        out.entry(cols[0].into())
            .or_default()
            .push((cols[2].into(), cols[4].parse().unwrap()));
    }
    out
}

fn expected() -> HashMap<String, HashMap<String, f64>> {
    let v: serde_json::Value = serde_json::from_str(&fixture("expected.json")).unwrap();
    serde_json::from_value(v["queries"].clone()).unwrap()
}

#[test]
fn every_metric_matches_pytrec_eval_to_four_decimals() {
    let (qrels, run, expected) = (qrels(), run(), expected());
    assert!(
        expected.len() >= 15,
        "the fixture has {} queries",
        expected.len()
    );
    let mut ours = Vec::new();
    let mut theirs: HashMap<String, f64> = HashMap::new();
    for (q, want) in &expected {
        let got = metrics::evaluate(&qrels[q], &run[q]);
        for m in METRICS {
            let w = want[m];
            let g = got[m];
            assert!(
                (g - w).abs() < 5e-5,
                "query {q} {m}: quarry {g:.6}, pytrec_eval {w:.6}"
            );
            *theirs.entry(m.to_string()).or_default() += w / expected.len() as f64;
        }
        ours.push(got);
    }
    let means = metrics::mean(ours.iter());
    for m in METRICS {
        assert!((means[m] - theirs[m]).abs() < 5e-5, "mean {m}");
    }
    // The fixture is not trivial: it has both perfect and failed queries.
    assert!(ours.iter().any(|s| s["recall@100"] == 1.0));
    assert!(ours.iter().any(|s| s["ndcg@10"] == 0.0));
}

#[test]
fn a_run_listing_every_document_three_times_scores_as_if_once() {
    let (qrels, run, expected) = (qrels(), run(), expected());
    for (q, want) in &expected {
        let mut tripled = run[q].clone();
        // Copies with lower scores (as a chunk-level run repeats documents)
        // and exact repeats.
        tripled.extend(run[q].iter().map(|(d, s)| (d.clone(), s - 1000.0)));
        tripled.extend(run[q].iter().cloned());
        let got = metrics::evaluate(&qrels[q], &tripled);
        for m in METRICS {
            assert!(got[m] <= 1.0, "query {q} {m} = {}", got[m]);
            assert!((got[m] - want[m]).abs() < 5e-5, "query {q} {m}");
        }
    }
}
