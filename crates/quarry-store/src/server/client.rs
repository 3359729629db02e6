//! The gRPC client: requests run on the store's own runtime, with retries
//! for idempotent writes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use qdrant_client::{Qdrant, QdrantError};
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use quarry_core::config::ServerStoreConfig;

use super::ServerStore;
use crate::{Result, StoreError};

#[derive(Clone, Copy)]
pub(super) enum Retry {
    /// Reads: one attempt, so outages surface as 503 immediately.
    No,
    /// Idempotent writes: retry through an outage for `retry_secs`.
    Write,
}

fn is_transient(e: &QdrantError) -> bool {
    use tonic::Code;
    match e {
        // The client reports a refused connection as Internal.
        QdrantError::ResponseError { status } => {
            matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
            ) || (status.code() == Code::Internal
                && status.message().starts_with("Failed to connect"))
        }
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => true,
        _ => false,
    }
}

fn is_not_found(e: &QdrantError) -> bool {
    matches!(e, QdrantError::ResponseError { status } if status.code() == tonic::Code::NotFound)
}

impl ServerStore {
    /// Prepares a client. Nothing is sent yet: an unreachable server shows up
    /// on the first call (and in `readyz`), not as a startup crash.
    pub fn connect(config: &ServerStoreConfig) -> Result<Self> {
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key.clone())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .skip_compatibility_check()
            .build()
            .map_err(|e| StoreError::Invalid(format!("store url {:?}: {e}", config.url)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("quarry-qdrant")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Invalid(format!("starting the Qdrant client: {e}")))?;
        let bm25 = EdgeBm25::new(EdgeBm25Config::default())
            .map_err(|e| StoreError::Invalid(format!("BM25 configuration: {e}")))?;
        Ok(Self {
            client: Arc::new(client),
            runtime: Some(runtime),
            config: config.clone(),
            bm25,
            params: std::sync::Mutex::default(),
        })
    }

    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Runs one request on the store's runtime, retrying transient failures
    /// of idempotent writes with exponential backoff.
    pub(super) fn call<T, F, Fut>(
        &self,
        what: &str,
        collection: &str,
        retry: Retry,
        op: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Arc<Qdrant>) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>> + Send + 'static,
    {
        let deadline = std::time::Instant::now()
            + match retry {
                Retry::No => Duration::ZERO,
                Retry::Write => Duration::from_secs(self.config.retry_secs),
            };
        let mut backoff = Duration::from_millis(200);
        loop {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let fut = op(Arc::clone(&self.client));
            let Some(runtime) = &self.runtime else {
                return Err(StoreError::Invalid("the store is closed".into()));
            };
            runtime.spawn(async move {
                let _ = tx.send(fut.await);
            });
            let outcome = rx.recv().map_err(|_| StoreError::Qdrant {
                collection: collection.into(),
                message: format!("{what}: the client task stopped"),
            })?;
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) => {
                    if std::time::Instant::now() + backoff > deadline {
                        return Err(StoreError::Unavailable {
                            url: self.config.url.clone(),
                            message: format!("{what}: {e}"),
                        });
                    }
                    tracing::warn!(url = %self.config.url, "{what} failed ({e}); retrying in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) if is_not_found(&e) => {
                    return Err(StoreError::NoCollection(collection.into()));
                }
                Err(e) => {
                    return Err(StoreError::Qdrant {
                        collection: collection.into(),
                        message: format!("{what}: {e}"),
                    });
                }
            }
        }
    }
}
