//! `quarry bench sync`: what a sync costs, full, unchanged and after a
//! small change, against a peer (LangChain's `index()`) in the same run.
//!
//! Each run syncs a private copy of the corpus into a fresh index, so the
//! runs are independent and the peer, run between them, sees the same
//! machine. Only the syncs are timed, not the model load, as the peer
//! times only its `index()` calls (and its split).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use quarry_core::Config;
use quarry_core::config::SourceConfig;
use quarry_engine::{Service, SyncReport};
use serde::Serialize;

use super::bench::{median, run_peer};

#[derive(Debug, Args)]
pub struct SyncBenchArgs {
    /// A BEIR dataset directory (with corpus.jsonl) or a corpus.jsonl file.
    #[arg(long)]
    dataset: PathBuf,
    /// Only the first N documents.
    #[arg(long)]
    limit: Option<usize>,
    /// Timed runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// f32 or bf16 (overrides model.precision).
    #[arg(long)]
    precision: Option<quarry_core::config::Precision>,
    /// The share of documents changed before the last sync of each run.
    #[arg(long, default_value_t = 0.01)]
    change: f64,
    /// A peer to run between Quarry's runs: a shell command printing JSON
    /// with `full_sync_s` and `resync_unchanged_s`, as
    /// `../shared/peers/langchain_sync.py` does. `{corpus}` and
    /// `{model_dir}` are replaced by the corpus file and the model's
    /// directory, e.g. `python ../shared/peers/langchain_sync.py {corpus} {model_dir}`.
    #[arg(long, value_name = "COMMAND")]
    peer: Option<String>,
    #[arg(long)]
    json: bool,
}

/// One Quarry run: the three syncs.
#[derive(Debug, Serialize)]
struct Run {
    full_s: f64,
    full_chunks_embedded: usize,
    unchanged_s: f64,
    unchanged_chunks_embedded: usize,
    changed_s: f64,
    changed_docs: usize,
    changed_chunks_embedded: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    docs: usize,
    precision: String,
    kernels: String,
    runs: Vec<Run>,
    full_s_median: f64,
    unchanged_s_median: f64,
    changed_s_median: f64,
    peer: Option<PeerReport>,
}

#[derive(Debug, Serialize)]
struct PeerReport {
    command: String,
    runs: Vec<serde_json::Value>,
    full_s_median: f64,
    unchanged_s_median: f64,
    /// The peer's time over Quarry's: how many times faster Quarry is.
    full_speedup: f64,
    unchanged_speedup: f64,
}

pub async fn run(config: &Config, args: SyncBenchArgs) -> anyhow::Result<ExitCode> {
    if args.runs == 0 || !(0.0..=1.0).contains(&args.change) {
        bail!("--runs must be at least 1 and --change between 0 and 1");
    }
    let source = if args.dataset.is_dir() {
        args.dataset.join("corpus.jsonl")
    } else {
        args.dataset.clone()
    };
    let lines = read_lines(&source, args.limit)?;
    let work = tempfile::tempdir().context("creating a scratch directory")?;
    let corpus = work.path().join("corpus.jsonl");
    write_lines(&corpus, &lines)?;
    let mut config = config.clone();
    if let Some(p) = args.precision {
        config.model.precision = p;
    }
    // One model load for the kernels' names and the peer's model directory.
    let model = super::load_model(&config, None)?;
    let (precision, kernels) = (model.precision().to_string(), model.kernels().to_string());
    let model_dir = model.layout().dir.clone();
    drop(model);
    let peer_command = args.peer.as_ref().map(|c| {
        c.replace("{corpus}", &corpus.display().to_string())
            .replace("{model_dir}", &model_dir.display().to_string())
    });

    let mut runs = Vec::new();
    let mut peer_runs = Vec::new();
    for i in 0..args.runs {
        if let Some(cmd) = &peer_command {
            peer_runs.push(run_peer(cmd, &["full_sync_s", "resync_unchanged_s"])?);
        }
        write_lines(&corpus, &lines)?;
        let mut run_config = config.clone();
        run_config.data_dir = work.path().join(format!("data{i}"));
        runs.push(one_run(&run_config, &corpus, &lines, args.change).await?);
    }
    let m = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let (full, unchanged, changed) = (m(|r| r.full_s), m(|r| r.unchanged_s), m(|r| r.changed_s));
    let peer = peer_command.map(|command| {
        let pm = |k: &str| {
            median(
                &peer_runs
                    .iter()
                    .filter_map(|v| v[k].as_f64())
                    .collect::<Vec<_>>(),
            )
        };
        let (pf, pu) = (pm("full_sync_s"), pm("resync_unchanged_s"));
        PeerReport {
            command,
            runs: peer_runs,
            full_s_median: pf,
            unchanged_s_median: pu,
            full_speedup: pf / full,
            unchanged_speedup: pu / unchanged,
        }
    });
    let report = Report {
        docs: lines.len(),
        precision,
        kernels,
        runs,
        full_s_median: full,
        unchanged_s_median: unchanged,
        changed_s_median: changed,
        peer,
    };
    print(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Full sync, the same corpus again, then `change` of the documents edited.
async fn one_run(
    config: &Config,
    corpus: &Path,
    lines: &[String],
    change: f64,
) -> anyhow::Result<Run> {
    let service = Service::open(config).context("opening a scratch index")?;
    let source = SourceConfig::beir("bench", corpus);
    let (full_s, full) = timed(&service, &source).await?;
    let (unchanged_s, again) = timed(&service, &source).await?;
    // Every k-th document gets a sentence more.
    let every = if change > 0.0 {
        ((1.0 / change).round() as usize).max(1)
    } else {
        usize::MAX
    };
    let mut edited = lines.to_vec();
    let mut changed_docs = 0;
    for line in edited.iter_mut().step_by(every) {
        let mut doc: serde_json::Value = serde_json::from_str(line)?;
        let text = doc["text"].as_str().unwrap_or_default().to_string();
        doc["text"] = serde_json::Value::String(format!("{text} This passage was revised."));
        *line = doc.to_string();
        changed_docs += 1;
    }
    write_lines(corpus, &edited)?;
    let (changed_s, changed) = timed(&service, &source).await?;
    if again.chunks_embedded > 0 || changed.updated != changed_docs {
        eprintln!(
            "note: the unchanged re-sync embedded {} chunks; the edited one updated {} of {changed_docs} documents",
            again.chunks_embedded, changed.updated
        );
    }
    Ok(Run {
        full_s,
        full_chunks_embedded: full.chunks_embedded,
        unchanged_s,
        unchanged_chunks_embedded: again.chunks_embedded,
        changed_s,
        changed_docs,
        changed_chunks_embedded: changed.chunks_embedded,
    })
}

/// One sync, and its wall time in seconds.
async fn timed(service: &Service, source: &SourceConfig) -> anyhow::Result<(f64, SyncReport)> {
    let start = Instant::now();
    let report = service.sync(source, None).await?;
    Ok((start.elapsed().as_secs_f64(), report))
}

fn read_lines(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(limit.unwrap_or(usize::MAX))
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        bail!("{} has no documents", path.display());
    }
    Ok(lines)
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    for l in lines {
        writeln!(f, "{l}")?;
    }
    f.flush()?;
    Ok(())
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "corpus           {} documents, {} ({} kernels), {} runs",
        report.docs,
        report.precision,
        report.kernels,
        report.runs.len()
    );
    let first = &report.runs[0];
    println!(
        "full sync        {:.1} s median ({} chunks embedded)",
        report.full_s_median, first.full_chunks_embedded
    );
    println!(
        "unchanged        {:.2} s median ({} chunks embedded)",
        report.unchanged_s_median, first.unchanged_chunks_embedded
    );
    println!(
        "{} changed       {:.2} s median ({} chunks embedded)",
        first.changed_docs, report.changed_s_median, first.changed_chunks_embedded
    );
    if let Some(p) = &report.peer {
        println!(
            "peer             full {:.1} s, unchanged {:.2} s (medians); Quarry is {:.2}x and {:.2}x faster",
            p.full_s_median, p.unchanged_s_median, p.full_speedup, p.unchanged_speedup
        );
    }
    Ok(())
}
