//! `sync`, `search`, `export` and `collections`: the index commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use quarry_core::Config;
use quarry_core::config::{FsSourceConfig, SourceConfig};
use quarry_engine::{Mode, SearchOptions, Service, SyncReport};
use quarry_store::{Fields, ScrollRequest, VectorStore};

/// Exit status when some documents failed but the rest were indexed.
pub const EXIT_PARTIAL: u8 = 3;

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
    /// Drop hits scoring below this.
    #[arg(long)]
    score_threshold: Option<f32>,
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
    #[arg(long)]
    json: bool,
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
    let sources = chosen_sources(config, &args)?;
    for s in &sources {
        quarry_core::config::check_name("collection", s.collection())?;
    }
    let service = open_service(config)?;
    let mut partial = false;
    for source_config in &sources {
        let (progress, bar) = progress(source_config.name());
        let report = service
            .sync(source_config, Some(progress))
            .await
            .with_context(|| format!("syncing source {:?}", source_config.name()))?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        partial |= report.failed > 0;
        print_report(&report, args.json)?;
    }
    Ok(if partial {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar on a terminal; otherwise a plain line every few seconds.
pub(super) fn progress(
    source: &str,
) -> (quarry_engine::ProgressFn, Option<indicatif::ProgressBar>) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} documents, {msg} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(source.to_string());
        let b = bar.clone();
        let f: quarry_engine::ProgressFn = Arc::new(move |p| {
            b.set_length(p.total as u64);
            b.set_position(p.done as u64);
            b.set_message(format!("{} chunks embedded", p.chunks_embedded));
        });
        (f, Some(bar))
    } else {
        let name = source.to_string();
        let last = std::sync::Mutex::new(std::time::Instant::now());
        let f: quarry_engine::ProgressFn = Arc::new(move |p| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed().as_secs() >= 10 && p.done < p.total {
                *last = std::time::Instant::now();
                eprintln!(
                    "sync {name}: {}/{} documents, {} chunks embedded",
                    p.done, p.total, p.chunks_embedded
                );
            }
        });
        (f, None)
    }
}

fn print_report(r: &SyncReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "synced source {} into collection {} in {:.2}s",
        r.source, r.collection, r.seconds.total
    )?;
    writeln!(
        out,
        "  added {}, updated {}, renamed {}, unchanged {}, deleted {}, skipped {}, failed {}",
        r.added, r.updated, r.renamed, r.unchanged, r.deleted, r.skipped, r.failed
    )?;
    writeln!(
        out,
        "  chunks embedded {} ({} tokens), reused {}; {} documents, {} points",
        r.chunks_embedded, r.tokens_embedded, r.chunks_reused, r.documents, r.points
    )?;
    let s = &r.seconds;
    writeln!(
        out,
        "  seconds: list {:.2}, plan {:.2}, parse+chunk {:.2}, embed {:.2}, write {:.2}",
        s.list, s.plan, s.parse_chunk, s.embed, s.write
    )?;
    for e in &r.errors {
        writeln!(out, "  {:<8} {}: {}", e.kind, e.uri, e.reason)?;
    }
    Ok(())
}

pub async fn search(config: &Config, args: SearchArgs) -> anyhow::Result<ExitCode> {
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
    };
    let hits = service
        .retriever()
        .search(&collection, &args.query, &options)
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "hits": hits }))?;
    } else {
        for (i, h) in hits.iter().enumerate() {
            let preview: String = h
                .text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(160)
                .collect();
            writeln!(
                out,
                "{:>2}. {:.4}  {}  {}",
                i + 1,
                h.score,
                h.doc_id,
                h.headings.join(" › ")
            )?;
            writeln!(out, "    {preview}")?;
        }
        if hits.is_empty() {
            writeln!(out, "no hits")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn context(config: &Config, args: ContextArgs) -> anyhow::Result<ExitCode> {
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
            writeln!(
                out,
                "{}  documents {}  points {}  model {} ({}d)",
                r.name,
                r.documents,
                r.points,
                r.model["model_id"].as_str().unwrap_or("?"),
                r.dimension
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn data_dir_display(p: &Path) -> String {
    p.display().to_string()
}
