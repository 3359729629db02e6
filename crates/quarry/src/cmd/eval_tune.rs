//! `quarry eval --tune`: choose a collection's hybrid fusion on labelled
//! queries, and keep it only when it beats the default on queries it was
//! not chosen on.
//!
//! The queries are split into two halves by a hash of their ids, so the
//! split is the same on every run and does not depend on file order. Each
//! candidate runs every query through the production retriever over one
//! index; the best by nDCG@10 on the tuning half is chosen, then judged
//! against the default on the held-out half with the paired randomisation
//! test. It is written out only when that held-out gain is significant:
//! a setting picked among many on the same queries always looks better
//! there, which is exactly what the held-out half guards against. Both
//! halves are reported, and the file is one `quarry.toml` can `include`.
//!
//! Chunking is not searched here: every chunk size is another index (see
//! `--sweep chunk_tokens=...`, which compares them side by side).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use quarry_core::Config;
use quarry_core::config::{Fusion, FusionMethod};
use quarry_embed::Embedder;
use quarry_engine::{Mode, Retriever, RetrieverSettings};
use quarry_eval::stats::{Paired, randomization_test};
use quarry_eval::{Backend, Dataset, report, run};
use quarry_store::VectorStore;
use serde_json::json;

/// Where and how to tune.
pub struct Tune<'a> {
    pub store: &'a Arc<dyn VectorStore>,
    pub embedder: &'a Embedder,
    /// The dataset's index.
    pub collection: &'a str,
    pub out_dir: &'a Path,
    pub alpha: f64,
    /// The file to write (default `OUT/tuned.toml`).
    pub file: Option<PathBuf>,
    /// The collection the file configures (default the dataset's name).
    pub target: Option<String>,
}

/// The settings tried, the configured default first.
fn candidates(default: Fusion) -> Vec<Fusion> {
    let mut out = vec![default];
    let fusion = |method, k, weights| Fusion { method, k, weights };
    let mut add = |f: Fusion| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    for k in [20, 60] {
        add(fusion(FusionMethod::Rrf, Some(k), None));
    }
    add(fusion(FusionMethod::Dbsf, None, None));
    for w in [[0.3, 0.7], [0.4, 0.6], [0.5, 0.5], [0.6, 0.4], [0.7, 0.3]] {
        add(fusion(FusionMethod::Convex, None, Some(w)));
        add(fusion(FusionMethod::Adaptive, None, Some(w)));
    }
    out
}

fn label(f: &Fusion) -> String {
    let mut s = f.method.as_str().to_string();
    if let Some(k) = f.k {
        let _ = write!(s, " k={k}");
    }
    if let Some([d, b]) = f.weights {
        let _ = write!(s, " w=[{d}, {b}]");
    }
    s
}

/// Which half a query is in: FNV-1a of its id, so the split is stable,
/// then splitmix64's finaliser. FNV alone leaves its top bit badly mixed
/// for short ids: SciFact's numeric ones split 687 / 122.
fn tuning_half(id: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h >> 63 == 0
}

struct Result {
    fusion: Fusion,
    /// nDCG@10 per query id.
    ndcg: BTreeMap<String, f64>,
}

fn values(r: &Result, ids: &[&String]) -> Vec<f64> {
    ids.iter()
        .map(|id| r.ndcg.get(*id).copied().unwrap_or(0.0))
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

pub async fn run(config: &Config, dataset: &Dataset, tune: Tune<'_>) -> anyhow::Result<ExitCode> {
    let mut results = Vec::new();
    let tried = candidates(config.retrieval.fusion);
    for (i, fusion) in tried.iter().enumerate() {
        let retriever = Retriever::with_settings(
            Arc::clone(tune.store),
            tune.embedder.clone(),
            &RetrieverSettings {
                hybrid_prefetch_factor: config.retrieval.hybrid_prefetch_factor,
                rrf_k: config.retrieval.rrf_k,
                fusion: *fusion,
                query_cache: 0,
                ..RetrieverSettings::default()
            },
        );
        let backend = Backend::Local {
            retriever,
            collection: tune.collection.to_string(),
        };
        eprintln!("tune {}/{}: {}", i + 1, tried.len(), label(fusion));
        let r = run::run_mode(&backend, dataset, Mode::Hybrid, &|_, _| {}).await?;
        let eval = report::score(
            dataset,
            &BTreeMap::from([("hybrid".to_string(), r)]),
            json!(null),
            json!(null),
        );
        let ndcg = eval.summary.per_query["hybrid"]
            .iter()
            .filter_map(|(q, s)| Some((q.clone(), *s.get("ndcg@10")?)))
            .collect();
        results.push(Result {
            fusion: *fusion,
            ndcg,
        });
    }
    let scored: Vec<&String> = results[0].ndcg.keys().collect();
    let (tuning, held): (Vec<&String>, Vec<&String>) =
        scored.into_iter().partition(|id| tuning_half(id));
    let default = &results[0];
    let best = results
        .iter()
        .max_by(|a, b| mean(&values(a, &tuning)).total_cmp(&mean(&values(b, &tuning))))
        .unwrap_or(default);
    let test = |ids: &[&String]| randomization_test(&values(default, ids), &values(best, ids));
    let (on_tuning, on_held) = (test(&tuning), test(&held));
    let keep = !std::ptr::eq(best, default) && on_held.delta > 0.0 && on_held.p_value < tune.alpha;

    let mut md = format!(
        "| fusion | nDCG@10 tuning half ({} q) | nDCG@10 held-out half ({} q) |\n|---|---:|---:|\n",
        tuning.len(),
        held.len()
    );
    for r in &results {
        let mark = match (std::ptr::eq(r, default), std::ptr::eq(r, best)) {
            (true, true) => " (default, best)",
            (true, false) => " (default)",
            (false, true) => " (best on the tuning half)",
            _ => "",
        };
        let _ = writeln!(
            md,
            "| {}{mark} | {:.4} | {:.4} |",
            label(&r.fusion),
            mean(&values(r, &tuning)),
            mean(&values(r, &held))
        );
    }
    let line = |name: &str, p: &Paired| {
        format!(
            "{name}: {:.4} → {:.4} ({:+.4}, p = {:.4}, {} queries)",
            p.mean_a, p.mean_b, p.delta, p.p_value, p.n
        )
    };
    let verdict = if keep {
        format!(
            "kept: {} (significant on the held-out half at α = {})",
            label(&best.fusion),
            tune.alpha
        )
    } else {
        format!(
            "the default stays: no setting's gain is significant on the held-out half at α = {}",
            tune.alpha
        )
    };
    let summary = format!(
        "{md}\nbest vs default, {}\n{}\n{}\n\n{verdict}\n",
        label(&best.fusion),
        line("tuning half", &on_tuning),
        line("held-out half", &on_held)
    );

    let target = tune.target.clone().unwrap_or_else(|| dataset.name.clone());
    let file = tune
        .file
        .clone()
        .unwrap_or_else(|| tune.out_dir.join("tuned.toml"));
    let mut toml = format!(
        "# Written by `quarry eval --tune` on {} ({} queries, split {}).\n# Include it from \
         quarry.toml: include = [\"{}\"]\n#\n",
        dataset.name,
        tuning.len() + held.len(),
        dataset.split,
        file.display()
    );
    for l in summary.lines() {
        let _ = writeln!(toml, "# {l}");
    }
    if keep {
        let f = &best.fusion;
        let mut fields = vec![format!("method = \"{}\"", f.method.as_str())];
        if let Some(k) = f.k {
            fields.push(format!("k = {k}"));
        }
        if let Some([d, b]) = f.weights {
            fields.push(format!("weights = [{d}, {b}]"));
        }
        let _ = write!(
            toml,
            "\n[retrieval.collections.{target}]\nfusion = {{ {} }}\n",
            fields.join(", ")
        );
    }
    std::fs::create_dir_all(tune.out_dir)
        .with_context(|| format!("creating {}", tune.out_dir.display()))?;
    std::fs::write(tune.out_dir.join("tune.md"), format!("# Tune\n\n{summary}"))
        .with_context(|| format!("writing {}", tune.out_dir.join("tune.md").display()))?;
    let row = |r: &Result| {
        json!({
            "fusion": r.fusion,
            "tuning_ndcg@10": mean(&values(r, &tuning)),
            "held_out_ndcg@10": mean(&values(r, &held)),
        })
    };
    let paired = |p: &Paired| json!({"default": p.mean_a, "best": p.mean_b, "delta": p.delta, "p_value": p.p_value, "queries": p.n});
    std::fs::write(
        tune.out_dir.join("tune.json"),
        serde_json::to_vec_pretty(&json!({
            "candidates": results.iter().map(row).collect::<Vec<_>>(),
            "best": best.fusion,
            "tuning_half": paired(&on_tuning),
            "held_out_half": paired(&on_held),
            "alpha": tune.alpha,
            "kept": keep,
            "file": file,
        }))?,
    )?;
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&file, toml).with_context(|| format!("writing {}", file.display()))?;
    println!("{summary}\nwrote {}", file.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stable_and_about_even() {
        // Prefixed ids, and bare numbers as SciFact's (which FNV-1a alone
        // split 687 / 122).
        for prefix in ["q", ""] {
            let ids: Vec<String> = (0..1000)
                .map(|i| format!("{prefix}{}", i * 7 + 1))
                .collect();
            let first: Vec<bool> = ids.iter().map(|i| tuning_half(i)).collect();
            let again: Vec<bool> = ids.iter().map(|i| tuning_half(i)).collect();
            assert_eq!(first, again);
            let n = first.iter().filter(|b| **b).count();
            assert!(
                (440..560).contains(&n),
                "{n} of 1000 {prefix:?} ids in the tuning half"
            );
        }
    }

    #[test]
    fn the_default_is_tried_first_and_only_once() {
        let c = candidates(Fusion::default());
        assert_eq!(c[0], Fusion::default());
        for (i, f) in c.iter().enumerate() {
            assert!(!c[i + 1..].contains(f), "{f:?} twice");
        }
    }
}
