//! Ranking metrics with `trec_eval`'s exact semantics.
//!
//! The definitions follow `trec_eval` 9.x (which `pytrec_eval` wraps), so a
//! number here can be checked against either from the TREC run file alone:
//! - a run is ranked by score, highest first, and ties are broken by
//!   document id in *descending* byte order, as `trec_eval` does; the order
//!   the engine returned tied hits in does not matter;
//! - a document is relevant when its judged grade is at least 1;
//! - nDCG uses the grade itself as the gain and `log2(rank + 1)` as the
//!   discount, with the ideal ranking built from every judged document;
//! - a document listed twice in a run counts once, at its best score, so no
//!   metric can exceed 1 however a run repeats itself.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Every metric reported, in display order.
pub const METRICS: [&str; 6] = [
    "ndcg@10",
    "recall@10",
    "recall@100",
    "mrr@10",
    "map@100",
    "p@10",
];

/// Grades of the judged documents of one query.
pub type Judgments = HashMap<String, i32>;

/// One value per metric name.
pub type Scores = BTreeMap<String, f64>;

/// Ranks a run the way `trec_eval` does: duplicates collapse to their best
/// score, then score descending, ties by document id descending.
pub fn canonical_ranking(run: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut best: HashMap<&str, f64> = HashMap::with_capacity(run.len());
    for (doc, score) in run {
        let s = if score.is_nan() {
            f64::NEG_INFINITY
        } else {
            *score
        };
        best.entry(doc.as_str())
            .and_modify(|b| *b = b.max(s))
            .or_insert(s);
    }
    let mut ranked: Vec<(String, f64)> =
        best.into_iter().map(|(d, s)| (d.to_string(), s)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    ranked
}

/// The metrics of one query. `run` may be in any order and may repeat
/// documents; see [`canonical_ranking`].
pub fn evaluate(judged: &Judgments, run: &[(String, f64)]) -> Scores {
    let ranked = canonical_ranking(run);
    let grade = |doc: &str| judged.get(doc).copied().unwrap_or(0);
    let num_rel = judged.values().filter(|g| **g >= 1).count();

    let mut out = Scores::new();
    let rel_in = |k: usize| ranked.iter().take(k).filter(|(d, _)| grade(d) >= 1).count();
    let recall = |k: usize| {
        if num_rel == 0 {
            0.0
        } else {
            rel_in(k) as f64 / num_rel as f64
        }
    };

    let dcg = |gains: &mut dyn Iterator<Item = i32>| -> f64 {
        gains
            .take(10)
            .enumerate()
            .filter(|(_, g)| *g > 0)
            .map(|(i, g)| f64::from(g) / ((i + 2) as f64).log2())
            .sum()
    };
    let actual = dcg(&mut ranked.iter().map(|(d, _)| grade(d)));
    let mut ideal_gains: Vec<i32> = judged.values().copied().filter(|g| *g > 0).collect();
    ideal_gains.sort_unstable_by(|a, b| b.cmp(a));
    let ideal = dcg(&mut ideal_gains.into_iter());
    out.insert(
        "ndcg@10".into(),
        if ideal > 0.0 { actual / ideal } else { 0.0 },
    );
    out.insert("recall@10".into(), recall(10));
    out.insert("recall@100".into(), recall(100));

    let first = ranked.iter().take(10).position(|(d, _)| grade(d) >= 1);
    out.insert("mrr@10".into(), first.map_or(0.0, |i| 1.0 / (i + 1) as f64));

    let mut found = 0usize;
    let mut precision_sum = 0.0;
    for (i, (d, _)) in ranked.iter().take(100).enumerate() {
        if grade(d) >= 1 {
            found += 1;
            precision_sum += found as f64 / (i + 1) as f64;
        }
    }
    out.insert(
        "map@100".into(),
        if num_rel == 0 {
            0.0
        } else {
            precision_sum / num_rel as f64
        },
    );
    out.insert("p@10".into(), rel_in(10) as f64 / 10.0);
    out
}

/// Mean of each metric over the queries given.
pub fn mean<'a>(per_query: impl IntoIterator<Item = &'a Scores>) -> Scores {
    let mut sums = Scores::new();
    let mut n = 0usize;
    for scores in per_query {
        n += 1;
        for (k, v) in scores {
            *sums.entry(k.clone()).or_default() += v;
        }
    }
    if n > 0 {
        for v in sums.values_mut() {
            *v /= n as f64;
        }
    }
    sums
}

/// Documents that appear more than once in a run, for the report.
pub fn duplicates(run: &[(String, f64)]) -> usize {
    let mut seen = HashSet::new();
    run.iter().filter(|(d, _)| !seen.insert(d.as_str())).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(pairs: &[(&str, i32)]) -> Judgments {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    fn r(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(d, s)| (d.to_string(), *s)).collect()
    }

    #[test]
    fn perfect_ranking_scores_one_everywhere_it_can() {
        let m = evaluate(
            &j(&[("a", 2), ("b", 1)]),
            &r(&[("a", 3.0), ("b", 2.0), ("c", 1.0)]),
        );
        assert!((m["ndcg@10"] - 1.0).abs() < 1e-12);
        assert!((m["mrr@10"] - 1.0).abs() < 1e-12);
        assert!((m["map@100"] - 1.0).abs() < 1e-12);
        assert!((m["recall@10"] - 1.0).abs() < 1e-12);
        assert!((m["p@10"] - 0.2).abs() < 1e-12);
    }

    #[test]
    fn duplicates_never_push_a_metric_above_one() {
        // The relevant document repeated 20 times: counting each copy would
        // give recall 20 and nDCG far above 1.
        let run: Vec<(String, f64)> = (0..20)
            .map(|i| ("a".to_string(), 10.0 - i as f64))
            .collect();
        let m = evaluate(&j(&[("a", 1), ("b", 1)]), &run);
        for (k, v) in &m {
            assert!(*v <= 1.0 + 1e-12, "{k} = {v}");
        }
        assert!((m["recall@100"] - 0.5).abs() < 1e-12);
        assert!((m["p@10"] - 0.1).abs() < 1e-12);
        assert_eq!(duplicates(&run), 19);
        // Collapsing keeps the best score, so the dedup is order-independent.
        let dedup = evaluate(&j(&[("a", 1), ("b", 1)]), &r(&[("a", 10.0)]));
        assert_eq!(m, dedup);
    }

    #[test]
    fn ties_break_by_document_id_descending_like_trec_eval() {
        let ranked = canonical_ranking(&r(&[("a", 1.0), ("c", 1.0), ("b", 1.0), ("z", 2.0)]));
        let ids: Vec<&str> = ranked.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(ids, ["z", "c", "b", "a"]);
    }

    #[test]
    fn a_query_without_relevant_documents_scores_zero_not_nan() {
        let m = evaluate(&j(&[("a", 0)]), &r(&[("a", 1.0)]));
        assert!(m.values().all(|v| *v == 0.0));
    }
}
