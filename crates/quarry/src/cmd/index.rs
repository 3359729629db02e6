//! `sync`, `search`, `export` and `collections`: the index commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use quarry_core::Config;
use quarry_core::config::{FsSourceConfig, SourceConfig};
use quarry_engine::{Mode, SearchOptions, Service};
use quarry_store::{Fields, ScrollRequest, VectorStore};

/// Exit status when some documents failed but the rest were indexed.
pub const EXIT_PARTIAL: u8 = 3;

/// Where a command runs: in this process, or through a running server.
#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// Send the request to a running `quarry serve` (e.g.
    /// http://127.0.0.1:7700) instead of opening the index here: the way to
    /// use an index while a server holds it.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// API key for --endpoint.
    #[arg(
        long,
        env = "QUARRY_API_KEY",
        hide_env_values = true,
        requires = "endpoint"
    )]
    api_key: Option<String>,
}

impl EndpointArgs {
    fn remote(&self) -> Option<super::remote::Remote> {
        let url = self.endpoint.as_deref()?;
        Some(super::remote::Remote::new(url, self.api_key.clone()))
    }
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Sync only this configured source (default: all configured sources).
    #[arg(long, conflicts_with_all = ["path", "beir"])]
    source: Option<String>,
    /// Ad hoc: sync this directory (needs --collection).
    #[arg(long, value_name = "DIR", conflicts_with = "beir")]
    path: Option<PathBuf>,
    /// Ad hoc: sync a BEIR corpus.jsonl or dataset directory (needs --collection).
    #[arg(long, value_name = "CORPUS")]
    beir: Option<PathBuf>,
    /// Target collection for --path or --beir.
    #[arg(long, short = 'c')]
    collection: Option<String>,
    /// Glob of files to include (with --path; repeatable).
    #[arg(long)]
    include: Vec<String>,
    /// Glob of files to exclude (with --path; repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Print the report as one JSON object per source.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    at: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    query: String,
    #[arg(long, short = 'c')]
    collection: Option<String>,
    #[arg(short = 'k', long = "top-k", default_value_t = 10)]
    top_k: usize,
    #[arg(long, default_value = "hybrid")]
    mode: Mode,
    /// A filter as JSON: {"source", "doc_id", "path_prefix", "tags", "metadata"}.
    #[arg(long)]
    filter: Option<String>,
    /// Drop hits scoring below this (the mode's own scale).
    #[arg(long)]
    score_threshold: Option<f32>,
    /// Drop hits whose relevance (0 to 1, one scale for every mode) is
    /// below this.
    #[arg(long)]
    min_relevance: Option<f32>,
    /// At most this many chunks per document.
    #[arg(long)]
    per_doc_limit: Option<usize>,
    /// Hybrid's fusion: rrf, dbsf, convex or adaptive (default: the
    /// collection's, then `retrieval.fusion`).
    #[arg(long)]
    fusion: Option<quarry_core::config::FusionMethod>,
    /// Rescore the best N hits with a cross-encoder (default: the
    /// collection's, then `retrieval.rerank`; 0 turns it off).
    #[arg(long, value_name = "N")]
    rerank: Option<usize>,
    /// The cross-encoder for --rerank (one the configuration names).
    #[arg(long, value_name = "ID", requires = "rerank")]
    rerank_model: Option<String>,
    /// Keep near-identical passages of different documents as separate
    /// hits (by default they fold into one that names the others).
    #[arg(long)]
    no_dedupe: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    at: EndpointArgs,
}

#[derive(Debug, Args)]
pub struct ContextArgs {
    query: String,
    #[arg(long, short = 'c')]
    collection: Option<String>,
    /// The token budget of the returned context.
    #[arg(long)]
    max_tokens: usize,
    #[arg(long, default_value = "hybrid")]
    mode: Mode,
    #[arg(long)]
    filter: Option<String>,
    /// At most this many passages per document.
    #[arg(long)]
    per_doc_limit: Option<usize>,
    /// Candidate chunks considered.
    #[arg(long, default_value_t = 50)]
    candidates: usize,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    at: EndpointArgs,
}

fn parse_filter(json: Option<&str>) -> anyhow::Result<quarry_engine::Filter> {
    match json {
        None => Ok(quarry_engine::Filter::default()),
        Some(s) => serde_json::from_str(s).with_context(|| {
            "--filter must be a JSON object with fields source, doc_id, path_prefix, tags, metadata".to_string()
        }),
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, short = 'c')]
    collection: String,
    #[arg(long)]
    with_vectors: bool,
}

#[derive(Debug, Args)]
pub struct CollectionsArgs {
    #[arg(long)]
    json: bool,
}

pub(super) fn open_store(config: &Config) -> anyhow::Result<Arc<dyn VectorStore>> {
    quarry_store::open(&config.store, &config.data_dir, config.sync.min_free_bytes)
        .with_context(|| format!("opening the index ({})", store_name(config)))
}

/// The service over the configured store and model.
pub(super) fn open_service(config: &Config) -> anyhow::Result<Service> {
    Service::open(config)
        .with_context(|| format!("opening the index ({}) and its model", store_name(config)))
}

/// Where the index lives, for messages.
pub(super) fn store_name(config: &Config) -> String {
    match &config.store {
        quarry_core::config::StoreConfig::Edge => config.data_dir.display().to_string(),
        quarry_core::config::StoreConfig::Server(s) => s.url.clone(),
    }
}

/// The sources `quarry sync` was asked for: an ad hoc directory or corpus,
/// one configured source, or all of them.
fn chosen_sources(config: &Config, args: &SyncArgs) -> anyhow::Result<Vec<SourceConfig>> {
    if let (Some(path), None) | (None, Some(path)) = (&args.path, &args.beir) {
        let Some(collection) = args.collection.clone() else {
            bail!("--path and --beir need --collection NAME");
        };
        if args.path.is_none() {
            if !args.include.is_empty() || !args.exclude.is_empty() {
                bail!("--include and --exclude apply to --path only");
            }
            return Ok(vec![SourceConfig::beir(&collection, path.clone())]);
        }
        return Ok(vec![SourceConfig::Fs(FsSourceConfig {
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            ..FsSourceConfig::new(&collection, path.clone())
        })]);
    }
    let all = config.sources.clone();
    if all.is_empty() {
        bail!(
            "no sources configured: add [[sources]] to quarry.toml, or use --path DIR --collection NAME"
        );
    }
    let Some(name) = &args.source else {
        return Ok(all);
    };
    let found: Vec<_> = all.into_iter().filter(|s| s.name() == name).collect();
    if found.is_empty() {
        bail!("no source named {name:?} in the configuration");
    }
    Ok(found)
}

pub async fn sync(config: &Config, args: SyncArgs) -> anyhow::Result<ExitCode> {
    if let Some(remote) = args.at.remote() {
        return sync_remote(remote, args).await;
    }
    let sources = chosen_sources(config, &args)?;
    for s in &sources {
        quarry_core::config::check_name("collection", s.collection())?;
    }
    let service = open_service(config)?;
    let mut partial = false;
    for source_config in &sources {
        let (progress, bar) = super::progress::progress(source_config.name());
        let report = service
            .sync(source_config, Some(progress))
            .await
            .with_context(|| format!("syncing source {:?}", source_config.name()))?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        partial |= report.failed > 0;
        super::progress::print_report(&report, args.json)?;
    }
    Ok(if partial {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}
/// `quarry sync --endpoint`: the server syncs its configured sources.
async fn sync_remote(remote: super::remote::Remote, args: SyncArgs) -> anyhow::Result<ExitCode> {
    if args.path.is_some() || args.beir.is_some() {
        bail!(
            "--path and --beir sync into this process's index; with --endpoint, name a source the server's configuration has (--source NAME)"
        );
    }
    let json = args.json;
    let reports = tokio::task::spawn_blocking(move || {
        let (progress, bar) = super::progress::progress("server");
        let show = |_: &str, p: &quarry_engine::SyncProgress| progress(p);
        let reports = remote.sync(args.source.as_deref(), &show);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        reports
    })
    .await??;
    let mut partial = false;
    for report in &reports {
        partial |= report.failed > 0;
        super::progress::print_report(report, json)?;
    }
    Ok(if partial {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn search(config: &Config, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let hits = match args.at.remote() {
        Some(remote) => search_remote(remote, &args).await?,
        None => search_local(config, &args).await?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "hits": hits }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for (i, h) in hits.iter().enumerate() {
        let preview: String = h["text"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(160)
            .collect();
        let headings: Vec<&str> = h["headings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        writeln!(
            out,
            "{:>2}. {:.4} (relevance {:.2})  {}  {}",
            i + 1,
            h["score"].as_f64().unwrap_or_default(),
            h["relevance"].as_f64().unwrap_or_default(),
            h["doc_id"].as_str().unwrap_or_default(),
            headings.join(" › ")
        )?;
        writeln!(out, "    {preview}")?;
    }
    if hits.is_empty() {
        writeln!(out, "no hits")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The filter argument as the JSON the server takes.
fn filter_json(json: Option<&str>) -> anyhow::Result<serde_json::Value> {
    parse_filter(json)?;
    Ok(match json {
        Some(s) => serde_json::from_str(s)?,
        None => serde_json::json!({}),
    })
}

async fn search_remote(
    remote: super::remote::Remote,
    args: &SearchArgs,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut body = serde_json::json!({
        "query": args.query,
        "top_k": args.top_k,
        "mode": args.mode,
        "filter": filter_json(args.filter.as_deref())?,
        "score_threshold": args.score_threshold,
        "per_doc_limit": args.per_doc_limit,
        "dedupe": args.no_dedupe.then_some(false),
        "min_relevance": args.min_relevance,
    });
    if let Some(method) = args.fusion {
        body["fusion"] = serde_json::json!({ "method": method });
    }
    if let Some(n) = args.rerank {
        body["rerank"] = serde_json::json!({ "top_n": n, "model": args.rerank_model });
    }
    let collection = args.collection.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let collection = remote.pick_collection(collection.as_deref())?;
        remote.post(&format!("/v1/collections/{collection}/search"), &body)
    })
    .await??;
    Ok(answer["hits"].as_array().cloned().unwrap_or_default())
}

async fn search_local(
    config: &Config,
    args: &SearchArgs,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let service = open_service(config)?;
    let collection = service.pick_collection(args.collection.as_deref()).await?;
    let options = SearchOptions {
        mode: args.mode,
        top_k: args.top_k,
        filter: parse_filter(args.filter.as_deref())?,
        score_threshold: args.score_threshold,
        per_doc_limit: args.per_doc_limit,
        degrade: None,
        fusion: args.fusion.map(|method| quarry_core::config::Fusion {
            method,
            ..Default::default()
        }),
        rerank: args.rerank.map(|n| quarry_core::config::Rerank {
            model: args.rerank_model.clone(),
            top_n: Some(n),
        }),
        dedupe: args.no_dedupe.then_some(false),
        min_relevance: args.min_relevance,
    };
    let hits = service
        .retriever()
        .search(&collection, &args.query, &options)
        .await?;
    Ok(hits
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?)
}

pub async fn context(config: &Config, args: ContextArgs) -> anyhow::Result<ExitCode> {
    if let Some(remote) = args.at.remote() {
        let body = serde_json::json!({
            "query": args.query,
            "max_tokens": args.max_tokens,
            "mode": args.mode,
            "filter": filter_json(args.filter.as_deref())?,
            "per_doc_limit": args.per_doc_limit,
            "candidates": args.candidates,
        });
        let collection = args.collection.clone();
        let ctx = tokio::task::spawn_blocking(move || {
            let collection = remote.pick_collection(collection.as_deref())?;
            remote.post(&format!("/v1/collections/{collection}/context"), &body)
        })
        .await??;
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{ctx}")?;
        } else {
            writeln!(out, "{}", ctx["text"].as_str().unwrap_or_default())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let service = open_service(config)?;
    let collection = service.pick_collection(args.collection.as_deref()).await?;
    let options = quarry_engine::ContextOptions {
        search: SearchOptions {
            mode: args.mode,
            top_k: args.candidates,
            filter: parse_filter(args.filter.as_deref())?,
            ..Default::default()
        },
        max_tokens: args.max_tokens,
        per_doc_limit: args.per_doc_limit,
    };
    let ctx = service.context(&collection, &args.query, &options).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&ctx)?)?;
    } else {
        writeln!(out, "{}", ctx.text)?;
        writeln!(
            out,
            "\n({} passages, {} of {} tokens)",
            ctx.passages.len(),
            ctx.tokens,
            ctx.max_tokens
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Every point as JSON Lines, sorted by id.
pub fn export(config: &Config, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config)?;
    if store.collection_spec(&args.collection)?.is_none() {
        bail!(
            "collection {:?} does not exist under {}",
            args.collection,
            config.data_dir.display()
        );
    }
    let request = ScrollRequest::fields(Fields::All, 2048).with_vectors(args.with_vectors);
    let mut points = store.scroll_all(&args.collection, request).points()?;
    points.sort_by_key(|p| p.id);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for p in points {
        let mut line = serde_json::json!({ "id": p.id.to_string(), "payload": p.payload });
        if let Some(v) = p.dense {
            line["vector"] = serde_json::json!(v);
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn collections(config: &Config, args: CollectionsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config)?;
    let rows = quarry_engine::service::collections(store.as_ref())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "collections": rows }))?;
    } else if rows.is_empty() {
        writeln!(
            out,
            "no collections under {}",
            data_dir_display(&config.data_dir)
        )?;
    } else {
        for r in rows {
            let quantized = match r.index.quantization {
                quarry_core::config::Quantization::None => "",
                quarry_core::config::Quantization::Int8 => ", int8",
            };
            let graph = match r.indexed_vectors {
                Some(0) => ", not indexed yet".to_string(),
                Some(n) => format!(", {n} vectors indexed"),
                None => String::new(),
            };
            writeln!(
                out,
                "{}  documents {}  points {}  model {} ({}d)  index HNSW m={}{quantized}{graph}",
                r.name,
                r.documents,
                r.points,
                r.model["model_id"].as_str().unwrap_or("?"),
                r.dimension,
                r.index.m,
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn data_dir_display(p: &Path) -> String {
    p.display().to_string()
}
