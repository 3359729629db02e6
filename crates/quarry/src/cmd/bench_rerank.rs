//! `quarry bench rerank`: what a rerank stage adds to a search.
//!
//! Each query is scored against `top_n` passages of the corpus, one query
//! at a time at interactive priority, as a search's rerank stage runs: the
//! time of that call is the latency the stage adds, and pairs over that
//! time the throughput. Passages rotate through the corpus so queries do
//! not share candidates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use quarry_core::Config;
use quarry_embed::Priority;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct RerankBenchArgs {
    /// A BEIR dataset directory (corpus.jsonl and queries.jsonl).
    #[arg(long)]
    dataset: PathBuf,
    /// A cross-encoder: Hub id or directory (default: `retrieval.rerank.model`).
    #[arg(long)]
    model: Option<String>,
    /// Candidate counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "20,50,100")]
    top_n: Vec<usize>,
    /// Queries per candidate count.
    #[arg(long, default_value_t = 20)]
    queries: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    top_n: usize,
    queries: usize,
    /// The stage's added latency per search.
    p50_ms: f64,
    p95_ms: f64,
    pairs_per_s: f64,
    mean_pair_tokens: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    engine: String,
    precision: String,
    max_length: usize,
    rows: Vec<Row>,
}

fn read_queries(dataset: &std::path::Path, limit: usize) -> anyhow::Result<Vec<String>> {
    let path = dataset.join("queries.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: invalid JSON", path.display(), i + 1))?;
        match v["text"].as_str() {
            Some(t) => out.push(t.to_string()),
            None => bail!("{} line {}: no \"text\" string", path.display(), i + 1),
        }
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

pub async fn run(config: &Config, args: RerankBenchArgs) -> anyhow::Result<ExitCode> {
    if args.queries == 0 || args.top_n.contains(&0) {
        bail!("--queries and every --top-n must be at least 1");
    }
    let most = args.top_n.iter().copied().max().unwrap_or(1);
    let passages = super::bench::read_corpus(&args.dataset, most * 4)?;
    let queries = read_queries(&args.dataset, args.queries)?;
    if passages.len() < most || queries.is_empty() {
        bail!(
            "{} has {} passages and {} queries; the bench needs {most} and 1",
            args.dataset.display(),
            passages.len(),
            queries.len()
        );
    }
    let model_arg = args.model.as_deref();
    let model = super::load_model(
        config,
        model_arg.or(config
            .retrieval
            .rerank
            .as_ref()
            .and_then(|r| r.model.as_deref())),
    )?;
    let Some(cross) = model.cross_encoder().cloned() else {
        bail!("{} is not a cross-encoder", model.fingerprint().model_id);
    };
    let (engine, precision) = (model.engine().to_string(), model.precision().to_string());
    let id = model.fingerprint().model_id.clone();
    let reranker = quarry_embed::Embedder::start(model, config.embed.clone())?;
    // Warm-up: first touch of weights and buffers.
    reranker
        .rerank(
            &queries[0],
            &passages[..most.min(8)],
            false,
            Priority::Interactive,
        )
        .await?;
    let mut rows = Vec::new();
    for &top_n in &args.top_n {
        let mut ms = Vec::new();
        let (mut pairs, mut tokens, mut seconds) = (0usize, 0usize, 0f64);
        for (q, query) in queries.iter().enumerate() {
            let start = (q * 7) % (passages.len() - top_n + 1);
            let candidates = &passages[start..start + top_n];
            let t = Instant::now();
            let scored = reranker
                .rerank(query, candidates, false, Priority::Interactive)
                .await?;
            let s = t.elapsed().as_secs_f64();
            ms.push(s * 1e3);
            seconds += s;
            pairs += scored.len();
            tokens += scored.iter().map(|x| x.tokens).sum::<usize>();
        }
        rows.push(Row {
            top_n,
            queries: queries.len(),
            p50_ms: quarry_eval::stats::percentile(&ms, 0.5),
            p95_ms: quarry_eval::stats::percentile(&ms, 0.95),
            pairs_per_s: pairs as f64 / seconds,
            mean_pair_tokens: tokens as f64 / pairs as f64,
        });
    }
    let report = Report {
        model: id,
        engine,
        precision,
        max_length: cross.max_length,
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} ({} {}, pairs cut at {} tokens)",
            report.model, report.engine, report.precision, report.max_length
        );
        println!("top_n  queries  added p50 ms  added p95 ms  pairs/s  tokens/pair");
        for r in &report.rows {
            println!(
                "{:>5}  {:>7}  {:>12.1}  {:>12.1}  {:>7.0}  {:>11.1}",
                r.top_n, r.queries, r.p50_ms, r.p95_ms, r.pairs_per_s, r.mean_pair_tokens
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
