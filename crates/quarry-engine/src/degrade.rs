//! Fallback instead of failure: a search that cannot get its query
//! embedding in time answers from BM25 alone, and says so.
//!
//! A query embedding can be late (the worker is busy with a bulk sync, or
//! the machine is loaded), refused (the interactive queue is full) or
//! impossible (the collection's model cannot be loaded). For a hybrid
//! search the BM25 half is still a good answer; for a dense search only
//! when `retrieval.fallback = "bm25"` says the caller prefers it to a 503.
//! The CLI and the evaluation harness never degrade: they measure the real
//! thing.

use std::time::Duration;

use quarry_embed::{EmbedError, Embedder};
use serde::Serialize;

use crate::retriever::{Mode, Retriever};
use crate::{EngineError, Result};

/// How a degraded answer was served.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Degraded {
    /// `embed_timeout`, `embedder_overloaded` or `model_unavailable`.
    pub reason: String,
    /// What answered instead: `bm25`.
    pub served: Mode,
}

/// When a search may degrade, and how long it waits for its embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DegradePolicy {
    /// The longest wait for a query embedding.
    pub embed_timeout: Duration,
    /// Dense searches fall back too (else they answer 503).
    pub dense: bool,
}

impl Default for DegradePolicy {
    fn default() -> Self {
        Self {
            embed_timeout: Duration::from_millis(250),
            dense: false,
        }
    }
}

/// Why there is no query vector.
pub(crate) enum NoVector {
    /// Worth a BM25 answer instead: the reason's code.
    Degradable(&'static str, EngineError),
    Failed(EngineError),
}

impl Retriever {
    /// The query's vector under `policy`: within its timeout, or why not.
    pub(crate) async fn vector_within(
        &self,
        collection: &str,
        model: &serde_json::Value,
        query: &str,
        policy: Option<&DegradePolicy>,
    ) -> Result<Vec<f32>, NoVector> {
        let embedder: Embedder = match self.embedder_for(collection, model).await {
            Ok(e) => e,
            Err(e @ EngineError::ModelLoad(_)) => {
                return Err(NoVector::Degradable("model_unavailable", e));
            }
            Err(e) => return Err(NoVector::Failed(e)),
        };
        let work = self.query_vector(&embedder, query);
        let result = match policy {
            Some(p) => match tokio::time::timeout(p.embed_timeout, work).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(NoVector::Degradable(
                        "embed_timeout",
                        EngineError::Embed(EmbedError::Overloaded),
                    ));
                }
            },
            None => work.await,
        };
        result.map_err(|e| match e {
            EngineError::Embed(EmbedError::Overloaded) => {
                NoVector::Degradable("embedder_overloaded", e)
            }
            other => NoVector::Failed(other),
        })
    }
}

/// Whether `mode` may fall back under `policy`, or the error to answer.
pub(crate) fn fallback(
    mode: Mode,
    policy: Option<&DegradePolicy>,
    why: NoVector,
) -> Result<Degraded> {
    match why {
        NoVector::Degradable(reason, e) => {
            let allowed = policy.is_some_and(|p| mode == Mode::Hybrid || p.dense);
            if allowed {
                Ok(Degraded {
                    reason: reason.to_string(),
                    served: Mode::Bm25,
                })
            } else {
                Err(e)
            }
        }
        NoVector::Failed(e) => Err(e),
    }
}
