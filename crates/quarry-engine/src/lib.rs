//! The one path from sources into the store, the one path from a query to
//! hits, and the service every front end calls, so that what the CLI, the
//! HTTP server and the evaluation harness do is the same thing.
//!
//! # Design
//!
//! - [`sync`] keeps a collection exactly in step with a source. Its stages
//!   live apart: planning compares the source's listing with a manifest read
//!   from the points themselves; a parser thread prepares documents
//!   (`quarry_ingest::prepare`); the embedding stage reuses the stored
//!   vectors of unchanged chunks; a writer stores each group staged, then
//!   publishes it, behind a journal that a crash cannot defeat.
//! - [`retriever`] turns a query into hits: dense, BM25 or both fused, from
//!   the model each collection was built with, with filters typed all the
//!   way down to the store.
//! - [`rerank`] optionally rescores the best hits with a cross-encoder.
//! - [`context`] packs the best hits into a token budget with citations.
//! - [`service`] owns one of each, built from the configuration, plus what
//!   a front end must not decide for itself: request validation, sync jobs,
//!   collection listing and single-document writes. Front ends are adapters
//!   over it; the types they return (`Hit`, `Passage`, `Job`, ...) are
//!   these, with OpenAPI schemas behind the `openapi` feature.
//!
//! Stores are synchronous (qdrant-edge is), so every store call from async
//! code goes through the blocking pool.

pub mod context;
mod dedupe;
pub mod degrade;
pub mod filter;
pub mod fusion;
pub mod migrate;
pub mod models;
pub mod reindex;
mod relevance;
pub mod report;
pub mod rerank;
pub mod retriever;
pub mod service;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;

pub use context::{Context, ContextOptions, Passage, TokenCounter};
pub use degrade::{DegradePolicy, Degraded};
pub use filter::{Filter, OneOrMany};
pub use report::{ChangedDocuments, DuplicateDocuments, ReasonCount, ReportError, SyncReport};
pub use rerank::RerankerLoader;
pub use retriever::{
    Hit, Mode, ModelLoader, Retriever, RetrieverSettings, SearchOptions, Searched, StageTimes,
};
pub use service::{CollectionInfo, Service};
pub use sync::{Indexer, IndexerSettings, ProgressFn, SyncProgress, SyncStage};

use std::sync::Arc;

use quarry_store::VectorStore;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] quarry_store::StoreError),
    #[error(transparent)]
    Embed(#[from] quarry_embed::EmbedError),
    #[error(transparent)]
    Ingest(#[from] quarry_ingest::IngestError),
    /// A source could not be listed: the sync stops before deleting anything.
    #[error(transparent)]
    Source(#[from] quarry_ingest::SourceError),
    /// A collection's model could not be loaded: a fault of this server, not
    /// of the request.
    #[error("{0}")]
    ModelLoad(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (a document owned by another
    /// source, a sync already running).
    #[error("{0}")]
    Conflict(String),
    #[error("internal task failed: {0}")]
    Task(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Runs a store call on the blocking pool: qdrant-edge is synchronous and
/// must not stall the async runtime.
pub(crate) async fn blocking<T, F>(store: &Arc<dyn VectorStore>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn VectorStore) -> quarry_store::Result<T> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
        .map_err(EngineError::from)
}
