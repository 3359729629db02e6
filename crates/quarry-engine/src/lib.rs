//! The indexer and the retriever: the one path from sources into the store,
//! and the one path from a query to hits, shared by the CLI, the HTTP server
//! and the evaluation harness so that what is measured is what is served.

pub mod context;
pub mod filter;
pub mod migrate;
pub mod models;
pub mod reindex;
pub mod report;
pub mod retriever;
pub mod service;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;

pub use context::{Context, ContextOptions, Passage, TokenCounter};
pub use filter::{Filter, OneOrMany};
pub use report::{ReportError, SyncReport};
pub use retriever::{Hit, Mode, ModelLoader, Retriever, RetrieverSettings, SearchOptions};
pub use service::{CollectionInfo, Service};
pub use sync::{Indexer, IndexerSettings, ProgressFn, SyncProgress};

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
