//! `quarry eval --sweep`: every combination of the listed settings, side by
//! side.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use quarry_core::Config;
use quarry_eval::Summary;

/// One point of a sweep. `chunk_tokens: None` keeps documents whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Combo {
    pub chunk_tokens: Option<usize>,
    pub overlap: usize,
    pub rrf_k: usize,
    pub prefetch: usize,
    pub fusion: quarry_core::config::FusionMethod,
}

impl Combo {
    fn chunk_label(&self) -> String {
        match self.chunk_tokens {
            None => "whole".into(),
            Some(t) => format!("t{t}-o{}", self.overlap),
        }
    }

    /// A directory-safe name of every setting.
    pub fn label(&self) -> String {
        format!(
            "{}-{}-k{}-p{}",
            self.chunk_label(),
            self.fusion.as_str(),
            self.rrf_k,
            self.prefetch
        )
    }

    /// Fusion settings do not change the index, so combinations that differ
    /// only in them share a collection.
    pub fn collection(&self, dataset: &str) -> String {
        let clean: String = dataset
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let tail = format!("-{}", self.chunk_label());
        let room = 64 - "eval-".len() - tail.len();
        format!("eval-{}{tail}", &clean[..clean.len().min(room)])
    }
}

#[derive(Debug, Clone)]
pub struct Sweep {
    pub combos: Vec<Combo>,
}

fn parse_list(key: &str, values: &str) -> anyhow::Result<Vec<Option<usize>>> {
    values
        .split(',')
        .map(|v| {
            let v = v.trim();
            if key == "chunk_tokens" && v == "none" {
                return Ok(None);
            }
            let n: usize = v
                .parse()
                .with_context(|| format!("--sweep {key}: {v:?} is not a whole number"))?;
            if key != "overlap" && n == 0 {
                bail!("--sweep {key}: values must be at least 1");
            }
            Ok(Some(n))
        })
        .collect()
}

impl Sweep {
    /// The combinations of `--sweep KEY=V1,V2 ...` over the base settings
    /// (`--chunking` and the configuration).
    pub fn parse(specs: &[String], chunking: &str, config: &Config) -> anyhow::Result<Self> {
        let chunk_tokens = match chunking {
            "none" => None,
            "default" => Some(config.chunking.max_tokens),
            n => Some(
                n.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| {
                        format!("--chunking {n:?}: use none, default or a chunk size in tokens")
                    })?,
            ),
        };
        let base = Combo {
            chunk_tokens,
            overlap: config.chunking.overlap,
            rrf_k: config.retrieval.rrf_k,
            prefetch: config.retrieval.hybrid_prefetch_factor,
            fusion: config.retrieval.fusion.method,
        };
        let mut combos = vec![Combo {
            overlap: if chunk_tokens.is_none() {
                0
            } else {
                base.overlap
            },
            ..base
        }];
        for spec in specs {
            let Some((key, values)) = spec.split_once('=') else {
                bail!(
                    "--sweep {spec:?}: write KEY=V1,V2 (keys: chunk_tokens, overlap, rrf_k, prefetch, fusion)"
                );
            };
            if key == "fusion" {
                let methods = values
                    .split(',')
                    .map(|v| v.trim().parse().map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<Vec<quarry_core::config::FusionMethod>>>()?;
                combos = combos
                    .iter()
                    .flat_map(|c| {
                        methods.iter().map(|m| Combo {
                            fusion: *m,
                            ..c.clone()
                        })
                    })
                    .collect();
                continue;
            }
            let values = parse_list(key, values)?;
            let mut next = Vec::new();
            for c in &combos {
                for v in &values {
                    let mut c = c.clone();
                    match (key, v) {
                        ("chunk_tokens", v) => c.chunk_tokens = *v,
                        ("overlap", Some(v)) => c.overlap = *v,
                        ("rrf_k", Some(v)) => c.rrf_k = *v,
                        ("prefetch", Some(v)) => c.prefetch = *v,
                        _ => bail!(
                            "--sweep: unknown key {key:?}; use chunk_tokens, overlap, rrf_k, prefetch or fusion"
                        ),
                    }
                    // Overlap means nothing for whole documents.
                    if c.chunk_tokens.is_none() {
                        c.overlap = 0;
                    }
                    if !next.contains(&c) {
                        next.push(c);
                    }
                }
            }
            combos = next;
        }
        if combos.len() > 64 {
            bail!("--sweep: {} combinations; at most 64", combos.len());
        }
        Ok(Self { combos })
    }
}

/// Writes `sweep.md` and `sweep.json` in `dir` and returns the table.
pub fn write_report(dir: &Path, rows: &[(Combo, Summary)]) -> anyhow::Result<String> {
    let modes: Vec<String> = rows
        .first()
        .map(|(_, s)| s.modes.keys().cloned().collect())
        .unwrap_or_default();
    let mut md = String::from("| setting | index s |");
    for m in &modes {
        let _ = write!(md, " {m} nDCG@10 | {m} R@100 | {m} MRR@10 | {m} p50 ms |");
    }
    md.push_str("\n|---|---:|");
    md.push_str(&"---:|".repeat(modes.len() * 4));
    md.push('\n');
    let mut json_rows = Vec::new();
    for (combo, s) in rows {
        let _ = write!(
            md,
            "| {} | {:.1} |",
            combo.label(),
            s.index["seconds"].as_f64().unwrap_or(f64::NAN)
        );
        for m in &modes {
            let get = |k: &str| {
                s.modes
                    .get(m)
                    .and_then(|x| x.get(k))
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let p50 = s.latency_ms.get(m).map_or(f64::NAN, |l| l.p50);
            let _ = write!(
                md,
                " {:.4} | {:.4} | {:.4} | {p50:.2} |",
                get("ndcg@10"),
                get("recall@100"),
                get("mrr@10")
            );
        }
        md.push('\n');
        json_rows.push(serde_json::json!({
            "setting": combo.label(),
            "chunk_tokens": combo.chunk_tokens,
            "overlap": combo.overlap,
            "rrf_k": combo.rrf_k,
            "prefetch": combo.prefetch,
            "fusion": combo.fusion.as_str(),
            "index": s.index,
            "modes": s.modes,
            "latency_ms": s.latency_ms,
        }));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("sweep.md"), format!("# Sweep\n\n{md}"))
        .with_context(|| format!("writing {}", dir.join("sweep.md").display()))?;
    std::fs::write(
        dir.join("sweep.json"),
        serde_json::to_vec_pretty(&serde_json::json!({ "rows": json_rows }))?,
    )
    .with_context(|| format!("writing {}", dir.join("sweep.json").display()))?;
    Ok(md)
}
