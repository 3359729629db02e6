//! The service every front end calls: HTTP, the CLI, and next MCP and the
//! OpenAI-compatible routes.
//!
//! It is built once from the configuration and owns the store, the
//! retriever (which checks search options against `server.max_top_k`), the
//! indexer and the context token counter, so that every
//! front end validates a request the same way, lists collections the same
//! way and starts syncs the same way. Front ends only translate: arguments
//! or JSON in, the types here out, [`EngineError`] to their own errors.

mod collections;
mod documents;
mod embeddings;
mod jobs;
mod schedule;

pub use collections::{
    BatchDocument, BatchResult, ChunkingRequest, DocumentPage, DocumentSummary, NewCollection,
    PageRequest,
};
pub use documents::{
    API_SOURCE, DeleteResponse, DocumentStatus, DocumentText, NewDocument, PutDocumentResponse,
    WriteResult,
};
pub use embeddings::{EmbedInput, Embedded, MAX_EMBED_INPUTS, ModelEntry};
pub use jobs::{Job, JobStarted, JobState, RunOutcome, SourceRun, SourceStatus, SyncTotals};
pub use schedule::Schedule;

use std::path::Path;
use std::sync::Arc;

use quarry_core::Config;
use quarry_core::config::SourceConfig;
use quarry_embed::{Embedder, InputKind};
use quarry_store::VectorStore;
use serde::Serialize;

use crate::context::{Context, ContextOptions, TokenCounter};
use crate::report::SyncReport;
use crate::retriever::{Retriever, RetrieverSettings};
use crate::sync::{Indexer, IndexerSettings, ProgressFn};
use crate::{EngineError, Result, blocking, models};

/// The largest context budget a request may ask for.
pub const MAX_CONTEXT_TOKENS: usize = 1_000_000;

/// A collection with what it holds.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionInfo {
    pub name: String,
    /// The model fingerprint its vectors come from.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub model: serde_json::Value,
    pub dimension: usize,
    pub documents: usize,
    pub points: usize,
    /// How its dense vectors are indexed (fixed when it was created).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub index: quarry_core::config::IndexSettings,
    /// Vectors, dense and BM25, in indexed segments (Qdrant's
    /// `indexed_vectors_count`): 0 until the collection is first indexed,
    /// up to twice `points` once every point is.
    pub indexed_vectors: Option<usize>,
}

/// Whether the service can answer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ReadyResponse))]
pub struct Readiness {
    pub ready: bool,
    pub model_loaded: bool,
    pub store_open: bool,
    pub message: Option<String>,
}

/// Every collection in `store` with what it holds, by one scan each: for
/// callers that need no model (`quarry collections`).
pub fn collections(store: &dyn VectorStore) -> quarry_store::Result<Vec<CollectionInfo>> {
    let mut out = Vec::new();
    for name in store.list_collections()? {
        let Some(spec) = store.collection_spec(&name)? else {
            continue;
        };
        let counts = quarry_store::count_documents(store, &name)?;
        let indexed_vectors = store.index_info(&name)?.map(|i| i.indexed_vectors);
        out.push(CollectionInfo {
            index: spec.index_settings(),
            name,
            model: spec.model,
            dimension: spec.dimension,
            documents: counts.documents,
            points: counts.points,
            indexed_vectors,
        });
    }
    Ok(out)
}

pub struct Service {
    store: Arc<dyn VectorStore>,
    retriever: Retriever,
    indexer: Indexer,
    counter: TokenCounter,
    sources: Vec<SourceConfig>,
    max_file_bytes: u64,
    /// Kept out of folder watches: syncs write there.
    data_dir: std::path::PathBuf,
    jobs: jobs::JobRegistry,
    /// This process among replicas that share a server store: the holder
    /// name of its source leases.
    replica: String,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Service({} sources)", self.sources.len())
    }
}

impl RetrieverSettings {
    /// `[retrieval]` of `quarry.toml`.
    pub fn from_config(config: &Config) -> Self {
        let r = &config.retrieval;
        Self {
            hybrid_prefetch_factor: r.hybrid_prefetch_factor,
            rrf_k: r.rrf_k,
            query_cache: r.query_cache,
            max_top_k: config.server.max_top_k,
            degrade: crate::DegradePolicy {
                embed_timeout: std::time::Duration::from_millis(r.embed_timeout_ms.max(1)),
                dense: r.fallback == quarry_core::config::DenseFallback::Bm25,
            },
            fusion: r.fusion,
            collection_fusion: r
                .collections
                .iter()
                .filter_map(|(name, c)| Some((name.clone(), c.fusion?)))
                .collect(),
            rerank: r.rerank.clone(),
            dedupe: r.dedupe,
            collection_rerank: r
                .collections
                .iter()
                .filter_map(|(name, c)| Some((name.clone(), c.rerank.clone()?)))
                .collect(),
        }
    }
}

impl Service {
    /// Opens the configured store and loads the configured model (fetching
    /// it when the cache lacks it).
    pub fn open(config: &Config) -> Result<Self> {
        let store =
            quarry_store::open(&config.store, &config.data_dir, config.sync.min_free_bytes)?;
        let model = models::load(config, None)?;
        let tokenizer = model.layout().dir.join("tokenizer.json");
        let embedder = Embedder::start(model, config.embed.clone())?;
        Self::from_parts(config, store, embedder, &tokenizer)
    }

    /// A service over a store and embedder already made; `tokenizer_json`
    /// is the embedding model's tokenizer.
    pub fn from_parts(
        config: &Config,
        store: Arc<dyn VectorStore>,
        embedder: Embedder,
        tokenizer_json: &Path,
    ) -> Result<Self> {
        let counter = TokenCounter::from_file(
            config
                .server
                .context_tokenizer
                .as_deref()
                .unwrap_or(tokenizer_json),
        )?;
        let indexer = Indexer::new(
            Arc::clone(&store),
            embedder.clone(),
            tokenizer_json,
            &IndexerSettings::from_config(config),
        )?;
        // Collections reindexed with another model are searched with that
        // model: it is loaded on their first search.
        let retriever = Retriever::with_settings(
            Arc::clone(&store),
            embedder,
            &RetrieverSettings::from_config(config),
        )
        .with_model_loader(models::loader(config))
        .with_reranker_loader(models::reranker_loader(config));
        Ok(Self {
            store,
            retriever,
            indexer,
            counter,
            sources: config.sources.clone(),
            max_file_bytes: config.sync.max_file_bytes,
            data_dir: config.data_dir.clone(),
            jobs: {
                let jobs = jobs::JobRegistry::default();
                jobs.register(&config.sources);
                jobs
            },
            replica: schedule::replica_name(),
        })
    }

    /// A token that changes whenever what a search of `collection` sees may
    /// change; `None` when the store has no cheap one, and then nothing may
    /// be cached. A collection that does not exist has none either.
    pub async fn generation(&self, collection: &str) -> Option<String> {
        let name = collection.to_string();
        crate::blocking(&self.store, move |s| s.generation(&name))
            .await
            .ok()
            .flatten()
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    pub fn retriever(&self) -> &Retriever {
        &self.retriever
    }

    pub fn indexer(&self) -> &Indexer {
        &self.indexer
    }

    pub fn embedder(&self) -> &Embedder {
        self.retriever.embedder()
    }

    /// The configured sources.
    pub fn sources(&self) -> &[SourceConfig] {
        &self.sources
    }

    /// Token-budgeted context for `query`, with citations.
    pub async fn context(
        &self,
        collection: &str,
        query: &str,
        options: &ContextOptions,
    ) -> Result<Context> {
        if options.max_tokens == 0 || options.max_tokens > MAX_CONTEXT_TOKENS {
            return Err(EngineError::Invalid(format!(
                "max_tokens must be between 1 and {MAX_CONTEXT_TOKENS}"
            )));
        }
        if options.per_doc_limit == Some(0) {
            return Err(EngineError::Invalid(
                "per_doc_limit must be at least 1".into(),
            ));
        }
        crate::context::build(&self.retriever, &self.counter, collection, query, options).await
    }

    /// Every collection with its model, dimension, documents and points.
    pub async fn collections(&self) -> Result<Vec<CollectionInfo>> {
        blocking(&self.store, collections).await
    }

    /// `given`, or the only collection there is.
    pub async fn pick_collection(&self, given: Option<&str>) -> Result<String> {
        if let Some(c) = given {
            let name = c.to_string();
            let spec = blocking(&self.store, move |s| s.collection_spec(&name)).await?;
            return match spec {
                Some(_) => Ok(c.to_string()),
                None => Err(quarry_store::StoreError::NoCollection(c.to_string()).into()),
            };
        }
        let all = blocking(&self.store, |s| s.list_collections()).await?;
        match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(EngineError::NotFound(
                "there are no collections yet; run `quarry sync` first".into(),
            )),
            many => Err(EngineError::Invalid(format!(
                "several collections exist ({}); choose one with -c NAME",
                many.join(", ")
            ))),
        }
    }

    /// Whether the model answers and the store opens.
    pub async fn readiness(&self) -> Readiness {
        let model_loaded = self
            .embedder()
            .count_tokens("ready", InputKind::Query)
            .is_ok();
        let store = blocking(&self.store, |s| s.list_collections()).await;
        let (store_open, message) = match store {
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        Readiness {
            ready: model_loaded && store_open,
            model_loaded,
            store_open,
            message,
        }
    }

    /// Syncs `source` into its collection, reporting progress to `progress`.
    /// The run, and its outcome, show in [`Self::source_status`].
    pub async fn sync(
        &self,
        source: &SourceConfig,
        progress: Option<ProgressFn>,
    ) -> Result<SyncReport> {
        self.sync_with(source, None, progress).await
    }

    /// [`Self::sync`], with the source already `opened` when the caller had
    /// to open it first (to refuse a request early).
    async fn sync_with(
        &self,
        source: &SourceConfig,
        opened: Option<Box<dyn quarry_ingest::Source>>,
        progress: Option<ProgressFn>,
    ) -> Result<SyncReport> {
        quarry_core::config::check_name("collection", source.collection())
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let started = jobs::now_unix();
        self.jobs.set_running(source, true);
        let opened = match opened {
            Some(o) => Ok(o),
            None => self.open_source(source),
        };
        let result = match opened {
            Ok(opened) => {
                let indexer = match progress {
                    Some(f) => self.indexer.clone().with_progress(f),
                    None => self.indexer.clone(),
                };
                indexer
                    .sync_tagged(Arc::from(opened), source.collection(), source.tags())
                    .await
            }
            Err(e) => Err(e),
        };
        self.jobs
            .record(source, started, result.as_ref().map_err(|e| e.to_string()));
        result
    }

    /// Sources keep their state (a git mirror) under `DATA_DIR/sources`.
    fn open_source(&self, source: &SourceConfig) -> Result<Box<dyn quarry_ingest::Source>> {
        let state = self.data_dir.join("sources");
        Ok(quarry_ingest::open_source_in(
            source,
            self.max_file_bytes,
            Some(&state),
        )?)
    }

    fn configured(&self, name: &str) -> Result<SourceConfig> {
        self.sources
            .iter()
            .find(|s| s.name() == name)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("no configured source {name:?}")))
    }

    /// Registers a job for `config`, unless one is running already.
    fn claim(&self, config: &SourceConfig) -> Result<String> {
        let name = config.name();
        self.jobs.start(name).map_err(|running| {
            EngineError::Conflict(format!(
                "source {name:?} is already syncing as job {running}"
            ))
        })
    }

    /// Runs a claimed job to its end.
    async fn run_job(
        self: &Arc<Self>,
        config: &SourceConfig,
        id: &str,
        opened: Option<Box<dyn quarry_ingest::Source>>,
    ) -> Result<SyncReport> {
        let (service, job) = (Arc::clone(self), id.to_string());
        let progress: ProgressFn =
            Arc::new(move |p: &crate::SyncProgress| service.jobs.progress(&job, p));
        let result = self.sync_with(config, opened, Some(progress)).await;
        self.jobs.finish(
            id,
            result.as_ref().map(Clone::clone).map_err(|e| e.to_string()),
        );
        result
    }

    /// Starts a sync of configured source `name` in the background.
    pub fn start_sync(self: &Arc<Self>, name: &str) -> Result<JobStarted> {
        let config = self.configured(name)?;
        // Opened here, so a source that cannot be opened fails the request;
        // the job syncs what was opened (a BEIR corpus is read once).
        let opened = self.open_source(&config)?;
        let job_id = self.claim(&config)?;
        let (service, id) = (Arc::clone(self), job_id.clone());
        tokio::spawn(async move {
            let _ = service.run_job(&config, &id, Some(opened)).await;
        });
        Ok(JobStarted {
            job_id,
            source: name.to_string(),
        })
    }

    pub fn job(&self, id: &str) -> Option<Job> {
        self.jobs.job(id)
    }

    /// Every source the service knows: the configured ones, and any other
    /// it has synced (the API's documents).
    pub fn source_status(&self) -> Vec<SourceStatus> {
        self.jobs.sources()
    }
}
