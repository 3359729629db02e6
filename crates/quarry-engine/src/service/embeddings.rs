//! Embeddings on request, for the OpenAI-compatible route: any model in
//! the model cache, or the one the server runs.
//!
//! The default model's embedder is the one searches use, so a request for
//! it shares the batching worker (and its priority lanes) with queries;
//! another cached model is loaded on its first request and kept, as
//! collections reindexed with another model are.

use quarry_embed::{Embedder, Embedding, InputKind, Priority, fetch};
use serde::Serialize;

use super::Service;
use crate::{EngineError, Result};

/// The most inputs one request may carry (OpenAI's own limit).
pub const MAX_EMBED_INPUTS: usize = 2048;

/// Requests with at most this many inputs embed at interactive priority,
/// beside queries; larger ones are batch work and wait behind them.
const INTERACTIVE_INPUTS: usize = 16;

/// A model a request may name.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelEntry {
    pub id: String,
    /// When it was put into the cache (Unix seconds); 0 for a model
    /// loaded from a directory.
    pub created: u64,
    /// The model the server searches with.
    pub default: bool,
}

/// What to embed: texts, or token ids the caller tokenized itself.
#[derive(Debug, Clone)]
pub enum EmbedInput {
    Texts(Vec<String>),
    TokenIds(Vec<Vec<u32>>),
}

impl EmbedInput {
    pub fn len(&self) -> usize {
        match self {
            Self::Texts(t) => t.len(),
            Self::TokenIds(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One request's vectors, in input order, and the model that made them.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub model: String,
    pub embeddings: Vec<Embedding>,
}

impl Service {
    /// The default model first, then every other model in the cache.
    pub fn models(&self) -> Vec<ModelEntry> {
        let default = self.embedder().fingerprint().model_id.clone();
        let cached = quarry_core::paths::models_dir()
            .map(|dir| fetch::installed(&dir))
            .unwrap_or_default();
        let created = |id: &str| {
            cached
                .iter()
                .find(|m| m.model_id == id)
                .map_or(0, |m| m.fetched_at_unix)
        };
        let mut out = vec![ModelEntry {
            created: created(&default),
            id: default.clone(),
            default: true,
        }];
        out.extend(
            cached
                .iter()
                .filter(|m| m.model_id != default)
                .map(|m| ModelEntry {
                    id: m.model_id.clone(),
                    created: m.fetched_at_unix,
                    default: false,
                }),
        );
        out
    }

    /// The embedder for `model` (the default when `None`): a model that is
    /// not in the cache is a not-found error naming the fix.
    async fn embedder_named(&self, model: Option<&str>) -> Result<(String, Embedder)> {
        let default = self.embedder().fingerprint().model_id.clone();
        let Some(id) = model.filter(|m| *m != default) else {
            return Ok((default, self.embedder().clone()));
        };
        if !self.models().iter().any(|m| m.id == id) {
            return Err(EngineError::NotFound(format!(
                "model {id:?} is not in the model cache; GET /v1/models lists the models \
                 there, and `quarry model fetch --model {id}` adds one"
            )));
        }
        let fingerprint = serde_json::json!({ "model_id": id });
        let embedder = self
            .retriever
            .embedder_for(&format!("model {id}"), &fingerprint)
            .await?;
        Ok((id.to_string(), embedder))
    }

    /// Embeds `input` with `model`, without any prompt (as `quarry embed`
    /// and sentence-transformers' plain `encode`).
    pub async fn embed(&self, model: Option<&str>, input: &EmbedInput) -> Result<Embedded> {
        if input.is_empty() {
            return Err(EngineError::Invalid(
                "input is empty: give a string, an array of strings, or arrays of token ids".into(),
            ));
        }
        if input.len() > MAX_EMBED_INPUTS {
            return Err(EngineError::Invalid(format!(
                "input has {} items; at most {MAX_EMBED_INPUTS} may be embedded in one request",
                input.len()
            )));
        }
        let (model, embedder) = self.embedder_named(model).await?;
        let priority = match input.len() <= INTERACTIVE_INPUTS {
            true => Priority::Interactive,
            false => Priority::Bulk,
        };
        let embeddings = match input {
            EmbedInput::Texts(texts) => embedder.embed(texts, InputKind::Raw, priority).await,
            EmbedInput::TokenIds(ids) => embedder.embed_token_ids(ids, priority).await,
        }
        .map_err(|e| match e {
            quarry_embed::EmbedError::Tokenizer(m) => EngineError::Invalid(m),
            other => other.into(),
        })?;
        Ok(Embedded { model, embeddings })
    }
}
