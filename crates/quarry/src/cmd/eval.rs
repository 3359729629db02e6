//! `quarry eval`: index a dataset through the sync path, run its queries
//! through the retriever (or a server), score, report, compare and gate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use quarry_core::Config;
use quarry_embed::Embedder;
use quarry_engine::{Indexer, IndexerSettings, Mode, Retriever, RetrieverSettings};
use quarry_eval::report;
use quarry_eval::{Backend, Dataset, run};
use quarry_store::VectorStore;
use serde_json::json;

use super::eval_sweep::{Combo, Sweep};

/// Exit status when the baseline gate finds a significant regression.
pub const EXIT_REGRESSION: u8 = 4;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Per-metric deltas B - A with a paired randomisation test.
    Compare {
        /// A run directory or baseline file.
        a: PathBuf,
        /// A run directory or baseline file.
        b: PathBuf,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// BEIR dataset directory: queries.jsonl, qrels/SPLIT.tsv and corpus.jsonl
    /// (or a dataset.toml naming a corpus folder).
    #[arg(long, value_name = "DIR")]
    dataset: Option<PathBuf>,
    /// Qrels split (default: dataset.toml's, then "test", then the only one).
    #[arg(long)]
    split: Option<String>,
    #[arg(long, value_delimiter = ',', default_value = "dense,bm25,hybrid")]
    modes: Vec<Mode>,
    /// none (whole documents, truncated by the model), default (the
    /// configuration's chunking) or a chunk size in tokens.
    #[arg(long, default_value = "default")]
    chunking: String,
    /// Output directory (default: evals/runs/<timestamp>-<dataset>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print metrics.json to stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Evaluate a running server instead (e.g. http://127.0.0.1:7700).
    #[arg(long, value_name = "URL", requires = "collection")]
    endpoint: Option<String>,
    /// Evaluate this existing collection as it is: the server's (with
    /// --endpoint) or one in the data directory (no indexing).
    #[arg(long, short = 'c')]
    collection: Option<String>,
    /// API key for --endpoint.
    #[arg(long, env = "QUARRY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Gate against this baseline file or run directory.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Largest allowed drop of a gated metric (absolute).
    #[arg(long, default_value_t = 0.01)]
    max_drop: f64,
    /// Metrics the gate checks.
    #[arg(long, value_delimiter = ',', default_value = "ndcg@10,recall@100")]
    gate_metrics: Vec<String>,
    /// Significance level of the gate's test.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Also write the result as a baseline file.
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Settings to sweep, e.g. `--sweep chunk_tokens=128,256 overlap=0,32`.
    /// Keys: chunk_tokens (a number or none), overlap, rrf_k, prefetch, fusion (rrf, dbsf, convex, adaptive).
    #[arg(long, num_args = 1.., value_name = "KEY=V1,V2")]
    sweep: Vec<String>,
    /// Treat dataset issues (unknown documents, unjudged queries) as errors.
    #[arg(long)]
    strict: bool,
    /// Choose the hybrid fusion on half the queries and keep it only when
    /// it beats the default significantly on the other half; writes a file
    /// quarry.toml can `include`.
    #[arg(long, conflicts_with_all = ["sweep", "endpoint", "baseline"])]
    tune: bool,
    /// The file --tune writes (default OUT/tuned.toml).
    #[arg(long, value_name = "FILE", requires = "tune")]
    tune_file: Option<PathBuf>,
    /// The collection the tuned file configures (default the dataset's name).
    #[arg(long, value_name = "NAME", requires = "tune")]
    tune_collection: Option<String>,
}

pub async fn run(config: &Config, args: EvalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(EvalCommand::Compare { a, b, alpha, json }) => {
            super::eval_gate::compare_runs(&a, &b, alpha, json)
        }
        None => evaluate(config, args.run).await,
    }
}

async fn evaluate(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(dataset_dir) = args.dataset.clone() else {
        bail!("--dataset DIR is required (or use `quarry eval compare A B`)");
    };
    let dataset = Dataset::load(
        &dataset_dir,
        args.split.as_deref(),
        config.sync.max_file_bytes,
    )
    .context("loading the dataset")?;
    for issue in &dataset.issues {
        eprintln!("dataset issue: {issue}");
    }
    if args.strict && !dataset.issues.is_empty() {
        bail!(
            "{} dataset issue(s) and --strict was given",
            dataset.issues.len()
        );
    }
    let sweep = Sweep::parse(&args.sweep, &args.chunking, config)?;
    let out_dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("evals/runs").join(format!("{}-{}", utc_stamp(), dataset.name))
    });
    // With --endpoint the run describes the server's collection, not this
    // machine's configuration.
    let served = match &args.endpoint {
        Some(endpoint) => {
            let remote = super::remote::Remote::new(endpoint, args.api_key.clone());
            let wanted = args.collection.clone();
            let served = tokio::task::spawn_blocking(move || {
                let name = remote.pick_collection(wanted.as_deref())?;
                let listing = remote.get("/v1/collections")?;
                let info = listing["collections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["name"] == name.as_str())
                    .cloned()
                    .unwrap_or_default();
                anyhow::Ok((name, info))
            })
            .await??;
            Some(served)
        }
        None => None,
    };
    let backend_http = match (&args.endpoint, &served) {
        (Some(endpoint), Some((collection, _))) => Some(Backend::Http {
            endpoint: endpoint.clone(),
            collection: collection.clone(),
            api_key: args.api_key.clone(),
        }),
        _ => None,
    };
    if backend_http.is_some() && sweep.combos.len() > 1 {
        bail!("--sweep rebuilds indexes, so it cannot run against --endpoint");
    }
    // One model, one store, for every combination. With -c and no
    // endpoint, an existing collection of the user's index is evaluated as
    // it is, with no indexing.
    let existing = match (&backend_http, &args.collection) {
        (None, Some(c)) => {
            let chunk_settings: Vec<_> = sweep
                .combos
                .iter()
                .map(|c| (c.chunk_tokens, c.overlap))
                .collect();
            if chunk_settings.windows(2).any(|w| w[0] != w[1]) {
                bail!(
                    "-c evaluates an existing collection as it is; sweep only rrf_k, prefetch or fusion"
                );
            }
            Some(c.clone())
        }
        _ => None,
    };
    let local = match backend_http {
        Some(_) => None,
        None => {
            let model = super::load_model(config, None)?;
            let tokenizer = model.layout().dir.join("tokenizer.json");
            let embedder = Embedder::start(model, config.embed.clone())?;
            let store = match &existing {
                Some(c) => {
                    let store = super::index::open_store(config)?;
                    if store.collection_spec(c)?.is_none() {
                        bail!(
                            "collection {c:?} does not exist under {}",
                            config.data_dir.display()
                        );
                    }
                    store
                }
                None => open_eval_store(config)?,
            };
            Some((embedder, tokenizer, store))
        }
    };

    if args.tune {
        let Some((embedder, tokenizer, store)) = &local else {
            bail!("--tune runs locally; it cannot run against --endpoint");
        };
        let base = &sweep.combos[0];
        let collection = match &existing {
            Some(c) => c.clone(),
            None => {
                let indexer = indexer_for(config, embedder, tokenizer, store, base)?;
                ensure_index(&indexer, config, &dataset, base).await?.0
            }
        };
        let tune = super::eval_tune::Tune {
            store,
            embedder,
            collection: &collection,
            out_dir: &out_dir,
            alpha: args.alpha,
            file: args.tune_file.clone(),
            target: args.tune_collection.clone(),
        };
        return super::eval_tune::run(config, &dataset, tune).await;
    }
    let mut rows = Vec::new();
    let mut last = None;
    for combo in &sweep.combos {
        let dir = if sweep.combos.len() > 1 {
            out_dir.join(combo.label())
        } else {
            out_dir.clone()
        };
        let (backend, index, model, chunking) = match (&backend_http, &local) {
            (Some(b), _) => {
                let (collection, info) = served.clone().unwrap_or_default();
                (
                    b.clone(),
                    json!({
                        "endpoint": args.endpoint,
                        "collection": collection,
                        "existing": true,
                        "documents": info["documents"],
                        "points": info["points"],
                    }),
                    info["model"].clone(),
                    json!(null),
                )
            }
            (None, Some((embedder, tokenizer, store))) => {
                let (collection, index, chunking) = match &existing {
                    Some(c) => {
                        let chunking = stored_chunking(store.as_ref(), c)?;
                        (
                            c.clone(),
                            json!({"collection": c, "existing": true}),
                            chunking,
                        )
                    }
                    None => {
                        let indexer = indexer_for(config, embedder, tokenizer, store, combo)?;
                        let (c, index) = ensure_index(&indexer, config, &dataset, combo).await?;
                        (c, index, indexer.chunking().clone())
                    }
                };
                let retriever = Retriever::with_settings(
                    Arc::clone(store),
                    embedder.clone(),
                    &RetrieverSettings {
                        hybrid_prefetch_factor: combo.prefetch,
                        rrf_k: combo.rrf_k,
                        fusion: quarry_core::config::Fusion {
                            method: combo.fusion,
                            ..config.retrieval.fusion
                        },
                        // Every query once per mode; a cache would only hide
                        // the embedding cost from the latency figures.
                        query_cache: 0,
                        ..RetrieverSettings::default()
                    },
                );
                let backend = Backend::Local {
                    retriever,
                    collection,
                };
                (backend, index, json!(embedder.fingerprint()), chunking)
            }
            (None, None) => unreachable!("an embedder is started whenever there is no endpoint"),
        };
        let mut runs = BTreeMap::new();
        for mode in &args.modes {
            let name = mode.as_str();
            let progress = |done: usize, total: usize| {
                if done.is_multiple_of(100) || done == total {
                    eprintln!("eval {}: {name} {done}/{total} queries", combo.label());
                }
            };
            let r = run::run_mode(&backend, &dataset, *mode, &progress).await?;
            runs.insert(name.to_string(), r);
        }
        let settings = match &args.endpoint {
            // Fusion and chunking are the server's own, which it does not
            // publish: the run says so rather than repeat this machine's.
            Some(endpoint) => json!({
                "endpoint": endpoint,
                "model": model,
                "retrieval": "the server's configuration",
                "depth": run::DEPTH,
            }),
            None => json!({
                "model": model,
                "chunking": chunking,
                "rrf_k": combo.rrf_k,
                "hybrid_prefetch_factor": combo.prefetch,
                "fusion": combo.fusion.as_str(),
                "depth": run::DEPTH,
            }),
        };
        let eval = report::score(&dataset, &runs, settings, index);
        report::write_run_dir(&dir, &eval)
            .with_context(|| format!("writing the run directory {}", dir.display()))?;
        rows.push((combo.clone(), eval.summary.clone()));
        last = Some(eval);
    }
    let Some(eval) = last else {
        bail!("nothing was evaluated");
    };
    if sweep.combos.len() > 1 {
        let table = super::eval_sweep::write_report(&out_dir, &rows)?;
        println!("{table}");
    } else if args.json {
        let mut s = eval.summary.clone();
        s.per_query.clear();
        println!("{}", serde_json::to_string(&s)?);
    } else {
        print!("{}", report::metrics_table(&eval.summary.modes));
        for (mode, l) in &eval.summary.latency_ms {
            println!("{mode:<7} latency p50 {:.2} ms  p95 {:.2} ms", l.p50, l.p95);
        }
    }
    eprintln!("run written to {}", out_dir.display());
    if let Some(path) = &args.write_baseline {
        report::write_baseline(path, &eval.summary)?;
        eprintln!("baseline written to {}", path.display());
    }
    match &args.baseline {
        Some(path) => super::eval_gate::gate(
            path,
            &eval.summary,
            &args.gate_metrics,
            args.max_drop,
            args.alpha,
        ),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The chunking an existing collection was built with, from a stored point.
fn stored_chunking(store: &dyn VectorStore, collection: &str) -> anyhow::Result<serde_json::Value> {
    let request = quarry_store::ScrollRequest::fields(
        quarry_store::Fields::Only(vec![quarry_core::ChunkPayload::CHUNKING]),
        1,
    );
    let page = store.scroll(collection, &request)?;
    Ok(page
        .points
        .into_iter()
        .next()
        .map(|p| p.payload.chunking)
        .unwrap_or(serde_json::Value::Null))
}

/// Evaluation indexes live beside, not among, the user's collections.
fn eval_data_dir(config: &Config) -> PathBuf {
    config.data_dir.join("eval")
}

fn open_eval_store(config: &Config) -> anyhow::Result<Arc<dyn VectorStore>> {
    let dir = eval_data_dir(config);
    quarry_store::open(&config.store, &dir, config.sync.min_free_bytes).with_context(|| {
        format!(
            "opening the evaluation index ({})",
            super::index::store_name(config)
        )
    })
}

/// The dataset's collection at the configured chunking, built or reused
/// exactly as `quarry eval` does, in the evaluation store.
pub(crate) async fn dataset_index(
    config: &Config,
    dataset: &Dataset,
    embedder: &Embedder,
    tokenizer: &Path,
) -> anyhow::Result<(Arc<dyn VectorStore>, String)> {
    let store = open_eval_store(config)?;
    let combo = Combo {
        chunk_tokens: Some(config.chunking.max_tokens),
        overlap: config.chunking.overlap,
        rrf_k: config.retrieval.rrf_k,
        prefetch: config.retrieval.hybrid_prefetch_factor,
        fusion: config.retrieval.fusion.method,
    };
    let indexer = indexer_for(config, embedder, tokenizer, &store, &combo)?;
    let collection = ensure_index(&indexer, config, dataset, &combo).await?.0;
    Ok((store, collection))
}

/// Builds (or reuses) the dataset's collection for `combo`'s chunking. The
/// collection is reused untouched when the corpus, model and chunking match
/// what built it; otherwise a normal incremental sync brings it in step.
fn indexer_for(
    config: &Config,
    embedder: &Embedder,
    tokenizer: &Path,
    store: &Arc<dyn VectorStore>,
    combo: &Combo,
) -> anyhow::Result<Indexer> {
    let settings = IndexerSettings {
        data_dir: eval_data_dir(config),
        chunk_max_tokens: combo.chunk_tokens.unwrap_or(config.chunking.max_tokens),
        chunk_overlap: combo.overlap,
        whole_documents: combo.chunk_tokens.is_none(),
        ..IndexerSettings::from_config(config)
    };
    Ok(Indexer::new(
        Arc::clone(store),
        embedder.clone(),
        tokenizer,
        &settings,
    )?)
}

async fn ensure_index(
    indexer: &Indexer,
    config: &Config,
    dataset: &Dataset,
    combo: &Combo,
) -> anyhow::Result<(String, serde_json::Value)> {
    let collection = combo.collection(&dataset.name);
    quarry_core::config::check_name("collection", &collection)?;
    let data_dir = eval_data_dir(config);
    let key = json!({
        "corpus": dataset.corpus_hash,
        "model": indexer.embedder().fingerprint(),
        "chunking": indexer.chunking(),
    });
    let marker_path = data_dir.join("markers").join(format!("{collection}.json"));
    let marker: Option<serde_json::Value> = std::fs::read(&marker_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let exists = indexer.store().collection_spec(&collection)?.is_some();
    if let Some(m) = marker.filter(|m| exists && m["key"] == key) {
        let mut index = m["index"].clone();
        index["reused"] = json!(true);
        eprintln!("eval: reusing collection {collection} (corpus, model and chunking unchanged)");
        return Ok((collection, index));
    }
    eprintln!(
        "eval: indexing {} into {collection}",
        dataset.corpus_path.display()
    );
    let started = Instant::now();
    let (progress, bar) = super::progress::progress(&collection);
    let report = indexer
        .clone()
        .with_progress(progress)
        .sync(Arc::clone(&dataset.source), &collection)
        .await
        .with_context(|| format!("indexing the corpus into {collection}"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    if report.failed > 0 {
        for e in &report.errors {
            eprintln!("eval: corpus {} {}: {}", e.kind, e.uri, e.reason);
        }
    }
    let index = json!({
        "collection": collection,
        "reused": false,
        "seconds": (seconds * 100.0).round() / 100.0,
        "documents": report.documents,
        "points": report.points,
        "chunks_embedded": report.chunks_embedded,
        "tokens_embedded": report.tokens_embedded,
        "failed": report.failed,
        "skipped": report.skipped,
    });
    if let Some(parent) = marker_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(
        &marker_path,
        serde_json::to_vec_pretty(&json!({"key": key, "index": index}))?,
    )
    .with_context(|| format!("writing {}", marker_path.display()))?;
    Ok((collection, index))
}

/// `YYYYMMDDTHHMMSSZ` in UTC, without a date library.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
