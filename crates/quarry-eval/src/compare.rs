//! Comparing two runs, and gating one against a baseline.
//!
//! A drop only fails the gate when it is both larger than the allowed
//! amount and significant under the paired randomisation test: on a few
//! dozen queries a single query flipping can move nDCG by a point, and a
//! gate that fires on noise gets switched off.

use std::fmt::Write as _;

use serde::Serialize;

use crate::metrics::METRICS;
use crate::report::Summary;
use crate::stats::randomization_test;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    pub mode: String,
    pub metric: String,
    /// Means over the queries both runs scored.
    pub a: f64,
    pub b: f64,
    pub delta: f64,
    /// `None` when a side has no per-query values to pair.
    pub p_value: Option<f64>,
    pub queries: usize,
}

/// Per-metric deltas `b - a` for every mode both runs have.
pub fn compare(a: &Summary, b: &Summary) -> Vec<Delta> {
    let mut out = Vec::new();
    for (mode, means_b) in &b.modes {
        let Some(means_a) = a.modes.get(mode) else {
            continue;
        };
        let (pa, pb) = (a.per_query.get(mode), b.per_query.get(mode));
        for metric in METRICS {
            let paired: Option<(Vec<f64>, Vec<f64>)> = match (pa, pb) {
                (Some(pa), Some(pb)) => {
                    let mut xs = Vec::new();
                    let mut ys = Vec::new();
                    for (q, sa) in pa {
                        if let (Some(x), Some(y)) =
                            (sa.get(metric), pb.get(q).and_then(|sb| sb.get(metric)))
                        {
                            // Baselines keep six decimals; compare at that
                            // precision, or rounding noise looks like a
                            // consistent (and "significant") change.
                            xs.push(quantize(*x));
                            ys.push(quantize(*y));
                        }
                    }
                    (!xs.is_empty()).then_some((xs, ys))
                }
                _ => None,
            };
            let row = match paired {
                Some((xs, ys)) => {
                    let t = randomization_test(&xs, &ys);
                    Delta {
                        mode: mode.clone(),
                        metric: metric.to_string(),
                        a: t.mean_a,
                        b: t.mean_b,
                        delta: t.delta,
                        p_value: Some(t.p_value),
                        queries: t.n,
                    }
                }
                None => {
                    let (Some(x), Some(y)) = (means_a.get(metric), means_b.get(metric)) else {
                        continue;
                    };
                    Delta {
                        mode: mode.clone(),
                        metric: metric.to_string(),
                        a: *x,
                        b: *y,
                        delta: y - x,
                        p_value: None,
                        queries: 0,
                    }
                }
            };
            out.push(row);
        }
    }
    out
}

fn quantize(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The gate's rule for one row.
pub fn is_regression(d: &Delta, max_drop: f64, alpha: f64) -> bool {
    -d.delta > max_drop && d.p_value.is_some_and(|p| p < alpha)
}

/// Rows of gated metrics that regressed; empty means the gate passes.
pub fn gate<'a>(
    deltas: &'a [Delta],
    metrics: &[String],
    max_drop: f64,
    alpha: f64,
) -> Vec<&'a Delta> {
    deltas
        .iter()
        .filter(|d| metrics.iter().any(|m| m == &d.metric))
        .filter(|d| is_regression(d, max_drop, alpha))
        .collect()
}

/// A plain-text table of the deltas.
pub fn table(deltas: &[Delta], alpha: f64) -> String {
    let mut out = format!(
        "{:<8} {:<11} {:>8} {:>8} {:>9} {:>8}  queries\n",
        "mode", "metric", "A", "B", "B - A", "p"
    );
    for d in deltas {
        let p = d.p_value.map_or("n/a".to_string(), |p| format!("{p:.4}"));
        let mark = match d.p_value {
            Some(p) if p < alpha && d.delta > 0.0 => " better",
            Some(p) if p < alpha && d.delta < 0.0 => " worse",
            _ => "",
        };
        let _ = writeln!(
            out,
            "{:<8} {:<11} {:>8.4} {:>8.4} {:>+9.4} {:>8}  {}{mark}",
            d.mode, d.metric, d.a, d.b, d.delta, p, d.queries
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn summary(values: &[f64]) -> Summary {
        let mut per_query = BTreeMap::new();
        for (i, v) in values.iter().enumerate() {
            let scores = METRICS.iter().map(|m| (m.to_string(), *v)).collect();
            per_query.insert(format!("q{i}"), scores);
        }
        let means = crate::metrics::mean(per_query.values());
        Summary {
            modes: BTreeMap::from([("dense".to_string(), means)]),
            per_query: BTreeMap::from([("dense".to_string(), per_query)]),
            ..Default::default()
        }
    }

    #[test]
    fn a_large_consistent_drop_fails_the_gate_and_a_small_one_passes() {
        let base: Vec<f64> = (0..40).map(|i| 0.5 + (i % 5) as f64 / 10.0).collect();
        let worse: Vec<f64> = base.iter().map(|v| v - 0.2).collect();
        let slightly: Vec<f64> = base.iter().map(|v| v - 0.005).collect();
        let gated = ["ndcg@10".to_string()];
        let d = compare(&summary(&base), &summary(&worse));
        assert_eq!(gate(&d, &gated, 0.01, 0.05).len(), 1);
        let d = compare(&summary(&base), &summary(&slightly));
        assert!(gate(&d, &gated, 0.01, 0.05).is_empty());
        let d = compare(&summary(&base), &summary(&base));
        assert!(gate(&d, &gated, 0.0, 0.05).is_empty());
    }

    #[test]
    fn rounding_noise_against_a_six_decimal_baseline_is_no_change() {
        let base: Vec<f64> = (0..50).map(|i| 0.123_456 + i as f64 / 100.0).collect();
        let noisy: Vec<f64> = base.iter().map(|v| v - 4e-7).collect();
        let d = compare(&summary(&base), &summary(&noisy));
        assert!(
            d.iter().all(|r| r.delta == 0.0 && r.p_value == Some(1.0)),
            "{d:?}"
        );
    }

    #[test]
    fn a_drop_carried_by_one_query_is_not_significant() {
        let base: Vec<f64> = vec![0.6; 40];
        let mut one = base.clone();
        one[0] = 0.0;
        let d = compare(&summary(&base), &summary(&one));
        let row = d.iter().find(|r| r.metric == "ndcg@10").unwrap();
        assert!(row.delta < -0.01);
        assert!(!is_regression(row, 0.01, 0.05), "{row:?}");
    }
}
