//! Scoring runs and writing a run directory.
//!
//! A run directory is the unit everything else reads: `metrics.json` (the
//! means, with the configuration that produced them), `per_query.json`,
//! one TREC run file per mode, `summary.md` and a self-contained
//! `report.html`. `compare` and `--baseline` read the same files, and a
//! baseline is those two JSON files folded into one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::metrics::{self, METRICS, Scores};
use crate::run::{DEPTH, ModeRun};
use crate::stats::percentile;
use crate::{EvalError, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    pub split: String,
    pub qrels: PathBuf,
    pub corpus_documents: usize,
    pub queries_scored: usize,
    #[serde(default)]
    pub issues: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(values: &[f64]) -> Self {
        Self {
            p50: percentile(values, 0.5),
            p95: percentile(values, 0.95),
            p99: percentile(values, 0.99),
            mean: if values.is_empty() {
                0.0
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            },
            max: values.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// Everything `metrics.json` holds, plus (in memory and in baseline files)
/// the per-query values significance tests need.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub dataset: DatasetInfo,
    /// The settings that produced the run (chunking, model, fusion...).
    #[serde(default)]
    pub config: serde_json::Value,
    /// How the index was built or reused.
    #[serde(default)]
    pub index: serde_json::Value,
    /// Mean of each metric per mode, over the scored queries.
    pub modes: BTreeMap<String, Scores>,
    /// Chunk-level means, when the qrels name chunks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chunk_modes: BTreeMap<String, Scores>,
    #[serde(default)]
    pub latency_ms: BTreeMap<String, Latency>,
    /// mode → query → metric → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_query: BTreeMap<String, BTreeMap<String, Scores>>,
}

/// A scored evaluation: the summary plus the rankings behind it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub summary: Summary,
    /// mode → query → canonical ranking (top [`DEPTH`]).
    pub runs: BTreeMap<String, BTreeMap<String, Vec<(String, f64)>>>,
}

/// Scores every mode's run against the dataset's judgments.
pub fn score(
    dataset: &Dataset,
    runs: &BTreeMap<String, ModeRun>,
    config: serde_json::Value,
    index: serde_json::Value,
) -> Evaluation {
    let mut summary = Summary {
        dataset: DatasetInfo {
            name: dataset.name.clone(),
            split: dataset.split.clone(),
            qrels: dataset.qrels_path.clone(),
            corpus_documents: dataset.corpus_size,
            queries_scored: dataset.queries.len(),
            issues: dataset.issues.iter().map(ToString::to_string).collect(),
        },
        config,
        index,
        ..Default::default()
    };
    let mut rankings = BTreeMap::new();
    let empty = metrics::Judgments::new();
    for (mode, run) in runs {
        let mut per_query = BTreeMap::new();
        let mut ranked = BTreeMap::new();
        for q in &dataset.queries {
            let docs = run.docs.get(&q.id).map(Vec::as_slice).unwrap_or(&[]);
            let mut canon = metrics::canonical_ranking(docs);
            canon.truncate(DEPTH);
            ranked.insert(q.id.clone(), canon);
            // Queries judged only at chunk level have no document-level score.
            let judged = dataset.qrels.get(&q.id).unwrap_or(&empty);
            if !judged.values().any(|g| *g >= 1) {
                continue;
            }
            let mut scores = metrics::evaluate(judged, docs);
            if let Some(ms) = run.latency_ms.get(&q.id) {
                scores.insert("latency_ms".into(), *ms);
            }
            per_query.insert(q.id.clone(), scores);
        }
        let means = metrics::mean(per_query.values());
        summary.modes.insert(
            mode.clone(),
            means
                .into_iter()
                .filter(|(k, _)| METRICS.contains(&k.as_str()))
                .collect(),
        );
        let latencies: Vec<f64> = run.latency_ms.values().copied().collect();
        summary
            .latency_ms
            .insert(mode.clone(), Latency::of(&latencies));
        if !dataset.chunk_qrels.is_empty() {
            let chunk_scores: Vec<Scores> = dataset
                .queries
                .iter()
                .filter_map(|q| {
                    let judged = dataset.chunk_qrels.get(&q.id)?;
                    let run = run.chunks.get(&q.id).map(Vec::as_slice).unwrap_or(&[]);
                    Some(metrics::evaluate(judged, run))
                })
                .collect();
            summary
                .chunk_modes
                .insert(mode.clone(), metrics::mean(chunk_scores.iter()));
        }
        summary.per_query.insert(mode.clone(), per_query);
        rankings.insert(mode.clone(), ranked);
    }
    Evaluation {
        summary,
        runs: rankings,
    }
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| EvalError::Report(e.to_string()))
}

/// Writes the run directory (created if needed).
pub fn write_run_dir(dir: &Path, eval: &Evaluation) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut metrics_only = eval.summary.clone();
    metrics_only.per_query.clear();
    write(&dir.join("metrics.json"), &to_json(&metrics_only)?)?;
    write(
        &dir.join("per_query.json"),
        &to_json(&eval.summary.per_query)?,
    )?;
    for (mode, run) in &eval.runs {
        write(
            &dir.join(format!("run.{mode}.trec")),
            trec_run(mode, run).as_bytes(),
        )?;
    }
    write(&dir.join("summary.md"), markdown(&eval.summary).as_bytes())?;
    write(
        &dir.join("report.html"),
        crate::html::render(&eval.summary).as_bytes(),
    )?;
    Ok(())
}

/// A TREC run file: `QID Q0 DOC RANK SCORE TAG`, in `trec_eval`'s order, so
/// ranks and scores agree. Scores keep full precision: rounding would create
/// ties `trec_eval` then breaks differently.
pub fn trec_run(mode: &str, run: &BTreeMap<String, Vec<(String, f64)>>) -> String {
    let mut out = String::new();
    for (q, ranking) in run {
        for (i, (doc, score)) in ranking.iter().enumerate() {
            let _ = writeln!(out, "{q} Q0 {doc} {} {score} quarry-{mode}", i + 1);
        }
    }
    out
}

/// Writes a baseline: `metrics.json` and `per_query.json` in one file.
pub fn write_baseline(path: &Path, summary: &Summary) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| EvalError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mut s = summary.clone();
    // Six decimals is far below any difference a gate could act on, and
    // keeps committed baselines small.
    for per_query in s.per_query.values_mut() {
        for scores in per_query.values_mut() {
            scores.remove("latency_ms");
            for v in scores.values_mut() {
                *v = (*v * 1e6).round() / 1e6;
            }
        }
    }
    write(path, &to_json(&s)?)
}

/// Reads a run directory or a baseline file.
pub fn load_summary(path: &Path) -> Result<Summary> {
    let read = |p: &Path| -> Result<Vec<u8>> {
        std::fs::read(p).map_err(|source| EvalError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let parse = |p: &Path, bytes: &[u8]| -> Result<Summary> {
        serde_json::from_slice(bytes).map_err(|e| EvalError::Dataset {
            path: p.to_path_buf(),
            line: Some(e.line()),
            message: format!("not a Quarry metrics or baseline file: {e}"),
        })
    };
    if path.is_dir() {
        let metrics_path = path.join("metrics.json");
        let mut summary = parse(&metrics_path, &read(&metrics_path)?)?;
        let pq_path = path.join("per_query.json");
        if pq_path.exists() {
            summary.per_query =
                serde_json::from_slice(&read(&pq_path)?).map_err(|e| EvalError::Dataset {
                    path: pq_path.clone(),
                    line: Some(e.line()),
                    message: e.to_string(),
                })?;
        }
        Ok(summary)
    } else {
        parse(path, &read(path)?)
    }
}

/// The Markdown summary: metrics per mode, latency, index, issues.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let d = &s.dataset;
    let _ = writeln!(out, "# Evaluation: {} ({})\n", d.name, d.split);
    let _ = writeln!(
        out,
        "{} queries scored over {} documents.\n",
        d.queries_scored, d.corpus_documents
    );
    out.push_str(&metrics_table(&s.modes));
    if !s.chunk_modes.is_empty() {
        out.push_str("\nChunk-level (qrels naming `DOC#CHUNK`):\n\n");
        out.push_str(&metrics_table(&s.chunk_modes));
    }
    out.push_str("\n| mode | p50 ms | p95 ms | p99 ms | mean ms |\n|---|---:|---:|---:|---:|\n");
    for (mode, l) in &s.latency_ms {
        let _ = writeln!(
            out,
            "| {mode} | {:.2} | {:.2} | {:.2} | {:.2} |",
            l.p50, l.p95, l.p99, l.mean
        );
    }
    let _ = writeln!(
        out,
        "\nConfiguration: `{}`\n\nIndex: `{}`",
        s.config, s.index
    );
    if !d.issues.is_empty() {
        let _ = writeln!(out, "\n## Dataset issues ({})\n", d.issues.len());
        for i in &d.issues {
            let _ = writeln!(out, "- {i}");
        }
    }
    out
}

/// A Markdown table of means, one row per mode.
pub fn metrics_table(modes: &BTreeMap<String, Scores>) -> String {
    let mut out = String::from("| mode |");
    for m in METRICS {
        let _ = write!(out, " {m} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(METRICS.len()));
    out.push('\n');
    for (mode, scores) in modes {
        let _ = write!(out, "| {mode} |");
        for m in METRICS {
            let _ = write!(out, " {:.4} |", scores.get(m).copied().unwrap_or(f64::NAN));
        }
        out.push('\n');
    }
    out
}
