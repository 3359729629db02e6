//! `quarry bench search`: how dense search latency, recall, build time and
//! memory grow with the index.
//!
//! The smallest index is the corpus's own chunks: their vectors, read from
//! the evaluation index that `quarry eval` builds (and reuses). Larger ones
//! add copies of those chunks, each moved part of the way towards one of
//! the chunk's nearest neighbours, plus a little noise shaped like the
//! corpus's own spread per dimension: neighbourhoods grow denser where the
//! corpus is dense, on the corpus's own shape, instead of dissolving into
//! uniform noise.
//! Queries are the dataset's own, embedded by the model. Recall@10 is
//! measured against exact search over the same collection, so it measures
//! the index (HNSW and quantization), not the model.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use quarry_core::Config;
use quarry_core::config::{IndexOverride, IndexSettings};
use quarry_core::payload::ChunkPayload;
use quarry_embed::{Embedder, InputKind, Priority};
use quarry_store::{Fields, ScrollRequest, VectorStore};
use serde::Serialize;

mod size;

use quarry_eval::stats::percentile;
use size::SizeRun;

#[derive(Debug, Args)]
pub struct SearchBenchArgs {
    /// A BEIR dataset directory: its corpus's chunks and its queries.
    #[arg(long)]
    dataset: PathBuf,
    /// Index sizes in points, comma-separated (`10000,100000,1000000`).
    /// Past the corpus's own chunks, sizes are filled with perturbed
    /// copies. Default: the corpus's chunks alone.
    #[arg(long, value_delimiter = ',')]
    points: Vec<usize>,
    /// Queries timed at each size: the dataset's first N.
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Index settings to compare, as TOML on top of `[index]`, e.g.
    /// `--index 'quantization = "int8"' --index 'm = 32'`. Default: the
    /// configured `[index]` alone.
    #[arg(long = "index", value_name = "TOML")]
    variants: Vec<String>,
    /// Threads for the throughput figure (beside one at a time).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Length of the noise added to a copy, against unit vectors, after it
    /// has moved towards a neighbour (0.5 alone would put a copy at cosine
    /// 0.9 to its original, scattered in every dimension: the worst case
    /// for graph search).
    #[arg(long, default_value_t = 0.1)]
    noise: f32,
    /// Search-time `ef` values to measure on each built index,
    /// comma-separated (default: the variant's own).
    #[arg(long, value_delimiter = ',')]
    ef: Vec<usize>,
    /// Where bench collections are built (default DATA_DIR/bench). Each is
    /// removed after its size is measured unless --keep.
    #[arg(long)]
    work: Option<PathBuf>,
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

/// One index variant at one size.
#[derive(Debug, Serialize)]
struct SizeReport {
    variant: String,
    settings: IndexSettings,
    points: usize,
    /// Writing the points (upsert and publish), then building the graph
    /// and quantized vectors.
    write_s: f64,
    index_s: f64,
    segments: Option<usize>,
    /// Qdrant's count of vectors in indexed segments.
    indexed_vectors: Option<usize>,
    /// Resident memory the collection added, heap and mapped files.
    rss_anon_mib: f64,
    rss_file_mib: f64,
    /// What the raw vectors alone take (points × dimension × 4 bytes), and
    /// their int8 copies where quantized: the floor the RSS compares with.
    vectors_f32_mib: f64,
    vectors_int8_mib: f64,
    disk_mib: Option<f64>,
    /// One query at a time, with payloads, top 10.
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    exact_p50_ms: f64,
    recall_at_10: f64,
    qps_1: f64,
    qps_n: f64,
    concurrency: usize,
}

/// Where one query's time goes, in process, on the first index measured.
#[derive(Debug, Serialize)]
struct Profile {
    points: usize,
    /// The query lane of the embedding worker, one query at a time.
    embed_p50_ms: f64,
    embed_p99_ms: f64,
    /// The store's nearest-neighbour search alone (ids and scores).
    search_ids_p50_ms: f64,
    search_ids_p99_ms: f64,
    /// The same search reading the 10 hits' payloads.
    search_payload_p50_ms: f64,
    search_payload_p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    corpus_points: usize,
    dimension: usize,
    queries: usize,
    noise: f32,
    profile: Option<Profile>,
    sizes: Vec<SizeReport>,
}

/// The corpus's chunks, which every size starts from.
struct Base {
    vectors: Vec<Vec<f32>>,
    payloads: Vec<ChunkPayload>,
    /// Per-dimension standard deviation, scaled to unit length.
    spread: Vec<f32>,
    /// Each chunk's nearest other chunks (indexes into `vectors`).
    neighbours: Vec<Vec<usize>>,
    model: serde_json::Value,
}

pub async fn run(config: &Config, args: SearchBenchArgs) -> anyhow::Result<ExitCode> {
    if args.queries == 0 || args.concurrency == 0 {
        bail!("--queries and --concurrency must be at least 1");
    }
    if !(args.noise.is_finite() && args.noise >= 0.0) {
        bail!("--noise must be a non-negative number");
    }
    if args.ef.contains(&0) {
        bail!("--ef values must be at least 1");
    }
    let variants = parse_variants(config, &args.variants)?;
    let dataset = quarry_eval::Dataset::load(&args.dataset, None, config.sync.max_file_bytes)
        .context("loading the dataset")?;
    let model = super::load_model(config, None)?;
    let tokenizer = model.layout().dir.join("tokenizer.json");
    let embedder = Embedder::start(model, config.embed.clone())?;
    let (eval_store, collection) =
        super::eval::dataset_index(config, &dataset, &embedder, &tokenizer).await?;
    let base = read_base(eval_store.as_ref(), &collection, &embedder)?;
    drop(eval_store);
    let texts: Vec<&str> = dataset
        .queries
        .iter()
        .take(args.queries)
        .map(|q| q.text.as_str())
        .collect();
    let (queries, embed_ms) = embed_queries(&embedder, &texts).await?;
    eprintln!(
        "bench search: {} corpus chunks of {}, {} queries",
        base.vectors.len(),
        dataset.name,
        queries.len()
    );
    let sizes = if args.points.is_empty() {
        vec![base.vectors.len()]
    } else {
        args.points.clone()
    };
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| config.data_dir.join("bench"));
    let mut reports = Vec::new();
    let mut profile = None;
    for (label, settings) in &variants {
        for &n in &sizes {
            let dir = work.join(format!("{n}-{}", reports.len()));
            let run = SizeRun {
                config,
                base: &base,
                queries: &queries,
                args: &args,
                dir: &dir,
            };
            let (sized, p) = run.measure(label, settings, n, &args.ef, profile.is_none())?;
            if let Some(mut p) = p {
                (p.embed_p50_ms, p.embed_p99_ms) =
                    (percentile(&embed_ms, 0.5), percentile(&embed_ms, 0.99));
                profile = Some(p);
            }
            for report in sized {
                eprintln!("{}", row(&report));
                reports.push(report);
            }
        }
    }
    let report = Report {
        dataset: dataset.name.clone(),
        corpus_points: base.vectors.len(),
        dimension: base.spread.len(),
        queries: queries.len(),
        noise: args.noise,
        profile,
        sizes: reports,
    };
    print(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Each `--index` over `[index]`, with a label naming what it sets.
fn parse_variants(
    config: &Config,
    variants: &[String],
) -> anyhow::Result<Vec<(String, IndexSettings)>> {
    let base = config.index.for_collection("bench");
    if variants.is_empty() {
        return Ok(vec![("[index]".into(), base)]);
    }
    variants
        .iter()
        .map(|v| {
            let o: IndexOverride = toml::from_str(v)
                .with_context(|| format!("--index {v:?}: expected TOML such as m = 32"))?;
            let s = o.apply(base.clone());
            s.validate("--index").map_err(anyhow::Error::msg)?;
            Ok((v.replace('\n', "; "), s))
        })
        .collect()
}

fn read_base(
    store: &dyn VectorStore,
    collection: &str,
    embedder: &Embedder,
) -> anyhow::Result<Base> {
    let mut vectors = Vec::new();
    let mut payloads = Vec::new();
    let mut ids = Vec::new();
    let request = ScrollRequest::fields(Fields::All, 1024).with_vectors(true);
    for page in store.scroll_all(collection, request) {
        for p in page?.points {
            let Some(v) = p.dense else { continue };
            vectors.push(v);
            payloads.push(p.payload);
            ids.push(p.id);
        }
    }
    let Some(dim) = vectors.first().map(Vec::len) else {
        bail!("collection {collection} has no vectors to benchmark with");
    };
    let n = vectors.len() as f64;
    let mut mean = vec![0f64; dim];
    for v in &vectors {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += f64::from(*x) / n;
        }
    }
    let mut var = vec![0f64; dim];
    for v in &vectors {
        for ((s, x), m) in var.iter_mut().zip(v).zip(&mean) {
            *s += (f64::from(*x) - m).powi(2) / n;
        }
    }
    let norm = var.iter().sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    let spread = var.iter().map(|s| (s.sqrt() / norm) as f32).collect();
    let model = serde_json::to_value(embedder.fingerprint())?;
    let neighbours = neighbours_of(store, collection, &vectors, &ids)?;
    Ok(Base {
        vectors,
        payloads,
        spread,
        neighbours,
        model,
    })
}

/// Neighbours each copy may move towards, by exact search of the corpus.
const NEIGHBOURS: usize = 10;

fn neighbours_of(
    store: &dyn VectorStore,
    collection: &str,
    vectors: &[Vec<f32>],
    ids: &[quarry_core::PointId],
) -> anyhow::Result<Vec<Vec<usize>>> {
    let at: std::collections::HashMap<_, _> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    eprintln!(
        "bench search: finding {NEIGHBOURS} neighbours of each of {} chunks",
        vectors.len()
    );
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let hits = store.search_ids(
                collection,
                &quarry_store::SearchRequest {
                    query: quarry_store::Query::Dense(v.clone()),
                    limit: NEIGHBOURS + 1,
                    filter: None,
                    score_threshold: None,
                    exact: true,
                    ef: None,
                },
            )?;
            Ok(hits
                .iter()
                .filter_map(|h| at.get(&h.id).copied())
                .filter(|&j| j != i)
                .take(NEIGHBOURS)
                .collect())
        })
        .collect()
}

async fn embed_queries(
    embedder: &Embedder,
    texts: &[&str],
) -> anyhow::Result<(Vec<Vec<f32>>, Vec<f64>)> {
    // Warm-up: first touch of weights and buffers.
    embedder
        .embed(
            &texts[..texts.len().min(8)],
            InputKind::Query,
            Priority::Interactive,
        )
        .await?;
    let mut vectors = Vec::with_capacity(texts.len());
    let mut ms = Vec::with_capacity(texts.len());
    for t in texts {
        let start = Instant::now();
        let mut e = embedder
            .embed(&[*t], InputKind::Query, Priority::Interactive)
            .await?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        vectors.push(e.remove(0).embedding);
    }
    Ok((vectors, ms))
}

/// One line of the table.
fn row(r: &SizeReport) -> String {
    format!(
        "{:<28} {:>9} {:>8.1} {:>8.1} {:>9} {:>8.0} {:>8.0} {:>8} {:>7.2} {:>7.2} {:>7.2} {:>9.4} {:>7.0} {:>7.0}",
        r.variant,
        r.points,
        r.write_s,
        r.index_s,
        r.indexed_vectors.map_or("-".into(), |v| v.to_string()),
        r.rss_anon_mib,
        r.rss_file_mib,
        r.disk_mib.map_or("-".into(), |d| format!("{d:.0}")),
        r.p50_ms,
        r.p99_ms,
        r.exact_p50_ms,
        r.recall_at_10,
        r.qps_1,
        r.qps_n,
    )
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "bench search: {} ({} corpus chunks, dimension {}), {} queries, top 10, noise {}",
        report.dataset, report.corpus_points, report.dimension, report.queries, report.noise
    );
    if let Some(p) = &report.profile {
        println!(
            "query path at {} points, in process: embed p50 {:.2} ms (p99 {:.2}); search ids p50 {:.2} ms (p99 {:.2}); with payloads p50 {:.2} ms (p99 {:.2})",
            p.points,
            p.embed_p50_ms,
            p.embed_p99_ms,
            p.search_ids_p50_ms,
            p.search_ids_p99_ms,
            p.search_payload_p50_ms,
            p.search_payload_p99_ms
        );
    }
    let c = report.sizes.first().map_or(0, |s| s.concurrency);
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
        "index",
        "points",
        "write s",
        "index s",
        "indexed",
        "anon MiB",
        "file MiB",
        "disk MiB",
        "p50 ms",
        "p99 ms",
        "exact",
        "recall@10",
        "qps c1",
        format!("qps c{c}"),
    );
    for r in &report.sizes {
        println!("{}", row(r));
    }
    Ok(())
}
