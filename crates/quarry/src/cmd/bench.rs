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
    /// The latency a cross-encoder rerank stage adds, and its pairs/s.
    Rerank(super::bench_rerank::RerankBenchArgs),
    /// Sync cost, full, unchanged and after a small change, against a peer.
    Sync(super::bench_sync::SyncBenchArgs),
    /// Dense search latency, recall@10, build time and memory as the index
    /// grows (`--points 10000,100000,1000000`).
    Search(super::bench_search::SearchBenchArgs),
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
    /// f32 or bf16 (overrides model.precision).
    #[arg(long)]
    precision: Option<quarry_core::config::Precision>,
    /// A peer to measure in the same run, alternating with Quarry's runs: a
    /// shell command printing JSON with `tokens_per_s` (for example
    /// `python ../shared/peers/st_bench.py MODEL_DIR CORPUS 512 32`).
    #[arg(long, value_name = "COMMAND")]
    peer: Option<String>,
    /// Single-query latency samples (short queries, one at a time).
    #[arg(long, default_value_t = 200)]
    queries: usize,
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
    /// The encoder that ran: "fast" or "candle".
    engine: String,
    /// The precision that ran: "f32", or "bf16" where asked and supported.
    precision: String,
    /// The kernels the dense layers ran on: "amx", "avx512-bf16",
    /// "avx512", "avx2", "gemm" or "candle".
    kernels: String,
    /// Encoder GFLOP/s achieved, and as a fraction of the matmul peak
    /// measured on this machine with the same kernels.
    gflops: f64,
    matmul_peak_gflops: f64,
    peak_fraction: f64,
    /// One short query (at most 16 tokens) at a time: p50 and p95.
    query_tokens_max: usize,
    query_p50_ms: f64,
    query_p95_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<PeerReport>,
}

#[derive(Debug, Serialize)]
struct PeerReport {
    command: String,
    tokens_per_s_runs: Vec<f64>,
    tokens_per_s: f64,
    /// Quarry's median over the peer's median.
    ratio: f64,
    /// The peer's last JSON line, as printed.
    last: serde_json::Value,
}

/// Runs the peer command once and reads its `tokens_per_s`.
/// Runs a peer's command and returns the JSON it printed last, which must
/// hold a number under each of `keys`.
pub(crate) fn run_peer(command: &str, keys: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running the peer: {command}"))?;
    if !out.status.success() {
        bail!("the peer exited with {}: {command}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let v: serde_json::Value = last
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("the peer printed no JSON line: {text}"))?;
    if let Some(k) = keys.iter().find(|k| v[**k].as_f64().is_none()) {
        bail!("the peer's JSON has no number {k}: {v}");
    }
    Ok(v)
}

pub async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        BenchCommand::Embed(args) => args,
        BenchCommand::Rerank(args) => return super::bench_rerank::run(config, args).await,
        BenchCommand::Sync(args) => return super::bench_sync::run(config, args).await,
        BenchCommand::Search(args) => return super::bench_search::run(config, args).await,
    };
    if args.runs == 0 || args.limit == 0 {
        bail!("--runs and --limit must be at least 1");
    }
    let texts = read_corpus(&args.dataset, args.limit)?;
    let mut config = config.clone();
    if let Some(p) = args.precision {
        config.model.precision = p;
    }
    let config = &config;
    let model = super::load_model(config, args.model.as_deref())?;
    let precision = model.precision().to_string();
    let kernels = model.kernels().to_string();
    let bert = model.layout().architecture.bert().clone();
    let engine = model.engine().to_string();
    let embedder = quarry_embed::Embedder::start(model, config.embed.clone())?;
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
    let mut lengths = Vec::new();
    let mut peer_runs = Vec::new();
    let mut before = embedder.stats();
    let mut after = before.clone();
    for _ in 0..args.runs {
        // Alternate with the peer so both see the same machine state.
        if let Some(cmd) = &args.peer {
            peer_runs.push(run_peer(cmd, &["tokens_per_s"])?);
        }
        let start = Instant::now();
        let s0 = embedder.stats();
        let out = embedder
            .embed(&texts, InputKind::Raw, Priority::Bulk)
            .await?;
        seconds.push(start.elapsed().as_secs_f64());
        let s1 = embedder.stats();
        if seconds.len() == 1 {
            before = s0;
        }
        after = s1;
        tokens = out.iter().map(|e| e.tokens as u64).sum();
        lengths = out.iter().map(|e| e.tokens).collect();
    }

    // Single short queries, one at a time, as a search sends them.
    let queries: Vec<String> = texts
        .iter()
        .map(|t| t.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
        .cycle()
        .take(args.queries.max(1))
        .collect();
    let mut query_ms = Vec::new();
    let mut query_tokens_max = 0;
    for q in &queries {
        let start = Instant::now();
        let e = embedder.embed_query(q).await?;
        query_ms.push(start.elapsed().as_secs_f64() * 1e3);
        query_tokens_max = query_tokens_max.max(e.tokens);
    }
    // The peak of the kernels that actually ran.
    let peak = match precision.as_str() {
        "bf16" => quarry_embed::matmul_peak_gflops_bf16().unwrap_or(f64::NAN),
        _ => quarry_embed::matmul_peak_gflops(),
    };
    let batches = (after.batches - before.batches) as f64;
    let inputs = (after.inputs - before.inputs) as f64;
    let per_run: Vec<f64> = seconds.iter().map(|s| tokens as f64 / s).collect();
    let median = median(&seconds);
    let gflops = quarry_embed::encoder_flops(&bert, &lengths) / median / 1e9;
    let peer = match &args.peer {
        Some(command) => {
            let runs: Vec<f64> = peer_runs
                .iter()
                .filter_map(|v| v["tokens_per_s"].as_f64())
                .collect();
            let m = self::median(&runs);
            Some(PeerReport {
                command: command.clone(),
                tokens_per_s_runs: runs,
                tokens_per_s: m,
                ratio: (tokens as f64 / median) / m,
                last: peer_runs.last().cloned().unwrap_or_default(),
            })
        }
        None => None,
    };
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
        engine,
        precision,
        kernels,
        gflops,
        matmul_peak_gflops: peak,
        peak_fraction: gflops / peak,
        query_tokens_max,
        query_p50_ms: quarry_eval::stats::percentile(&query_ms, 0.5),
        query_p95_ms: quarry_eval::stats::percentile(&query_ms, 0.95),
        peer,
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
        println!(
            "compute          {} encoder ({}, {} kernels), {:.1} GFLOP/s = {:.0}% of the {:.1} GFLOP/s matmul peak measured here with the same kernels",
            report.engine,
            report.precision,
            report.kernels,
            report.gflops,
            report.peak_fraction * 100.0,
            report.matmul_peak_gflops
        );
        println!(
            "single query     p50 {:.2} ms, p95 {:.2} ms (up to {} tokens)",
            report.query_p50_ms, report.query_p95_ms, report.query_tokens_max
        );
        if let Some(p) = &report.peer {
            println!(
                "peer             {:.0} tokens/s median of {:?}; Quarry / peer = {:.2}x",
                p.tokens_per_s, p.tokens_per_s_runs, p.ratio
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn median(values: &[f64]) -> f64 {
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
pub(crate) fn read_corpus(dataset: &Path, limit: usize) -> anyhow::Result<Vec<String>> {
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
