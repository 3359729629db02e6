use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use quarry_core::Config;
use quarry_embed::{InputKind, Priority};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Embedding throughput on the first N documents of a BEIR corpus.
    Embed(EmbedBenchArgs),
}

#[derive(Debug, Args)]
pub struct EmbedBenchArgs {
    /// A BEIR dataset directory (with corpus.jsonl) or a corpus.jsonl file.
    #[arg(long)]
    dataset: PathBuf,
    #[arg(long, default_value_t = 512)]
    limit: usize,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    docs: usize,
    tokens: u64,
    runs: usize,
    seconds_median: f64,
    docs_per_s: f64,
    tokens_per_s: f64,
    tokens_per_s_runs: Vec<f64>,
    batches_per_run: f64,
    mean_batch_size: f64,
    /// Padded tokens computed per real token (1.0 is no padding).
    padding_overhead: f64,
    largest_batch: u64,
    max_batch_tokens: usize,
    peak_rss_mib: f64,
}

pub async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<ExitCode> {
    let BenchCommand::Embed(args) = command;
    if args.runs == 0 || args.limit == 0 {
        bail!("--runs and --limit must be at least 1");
    }
    let texts = read_corpus(&args.dataset, args.limit)?;
    let embedder = super::start_embedder(config, args.model.as_deref())?;
    // Warm-up, as the peer script does: first-touch of weights and buffers.
    embedder
        .embed(
            &texts[..texts.len().min(32)],
            InputKind::Raw,
            Priority::Bulk,
        )
        .await?;

    let mut seconds = Vec::new();
    let mut tokens = 0;
    let before = embedder.stats();
    for _ in 0..args.runs {
        let start = Instant::now();
        let out = embedder
            .embed(&texts, InputKind::Raw, Priority::Bulk)
            .await?;
        seconds.push(start.elapsed().as_secs_f64());
        tokens = out.iter().map(|e| e.tokens as u64).sum();
    }
    let after = embedder.stats();
    let batches = (after.batches - before.batches) as f64;
    let inputs = (after.inputs - before.inputs) as f64;
    let per_run: Vec<f64> = seconds.iter().map(|s| tokens as f64 / s).collect();
    let median = median(&seconds);
    let report = Report {
        model: embedder.fingerprint().model_id.clone(),
        docs: texts.len(),
        tokens,
        runs: args.runs,
        seconds_median: median,
        docs_per_s: texts.len() as f64 / median,
        tokens_per_s: tokens as f64 / median,
        tokens_per_s_runs: per_run,
        batches_per_run: batches / args.runs as f64,
        mean_batch_size: inputs / batches.max(1.0),
        padding_overhead: (after.padded_tokens - before.padded_tokens) as f64
            / (after.tokens - before.tokens).max(1) as f64,
        largest_batch: after.largest_batch,
        max_batch_tokens: config.embed.max_batch_tokens,
        peak_rss_mib: peak_rss_kib() as f64 / 1024.0,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("model            {}", report.model);
        println!(
            "documents        {} ({} tokens)",
            report.docs, report.tokens
        );
        println!(
            "median of {}     {:.2} s",
            report.runs, report.seconds_median
        );
        println!(
            "throughput       {:.1} docs/s, {:.0} tokens/s",
            report.docs_per_s, report.tokens_per_s
        );
        println!(
            "batches          {:.0} per run, {:.1} inputs each, largest {}, padding overhead {:.2}x",
            report.batches_per_run,
            report.mean_batch_size,
            report.largest_batch,
            report.padding_overhead
        );
        println!("peak RSS         {:.0} MiB", report.peak_rss_mib);
    }
    Ok(ExitCode::SUCCESS)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `title + " " + text` of the first `limit` documents, as the
/// sentence-transformers peer builds them.
fn read_corpus(dataset: &Path, limit: usize) -> anyhow::Result<Vec<String>> {
    let path = if dataset.is_dir() {
        dataset.join("corpus.jsonl")
    } else {
        dataset.to_path_buf()
    };
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut texts = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        if texts.len() == limit {
            break;
        }
        let line = line.with_context(|| format!("{} line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let doc: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: invalid JSON", path.display(), i + 1))?;
        let field = |k: &str| {
            doc.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        texts.push(format!("{} {}", field("title"), field("text")));
    }
    if texts.is_empty() {
        bail!("{} has no documents", path.display());
    }
    Ok(texts)
}

/// Peak resident memory (VmHWM) in KiB; 0 where /proc is unavailable.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
