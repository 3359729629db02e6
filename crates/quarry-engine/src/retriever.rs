//! The query path: text in, hits out, for the CLI, the server and eval alike.

use std::sync::Arc;

use quarry_embed::Embedder;
use quarry_store::{Query, SearchRequest, VectorStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{EngineError, Result, blocking};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dense,
    Bm25,
    #[default]
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(Self::Dense),
            "bm25" => Ok(Self::Bm25),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!("unknown mode {other:?}; use dense, bm25 or hybrid")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub mode: Mode,
    pub top_k: usize,
    /// Qdrant JSON filter.
    pub filter: Option<Value>,
    pub score_threshold: Option<f32>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Hybrid,
            top_k: 10,
            filter: None,
            score_threshold: None,
        }
    }
}

/// One search result: a chunk with what a citation needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub doc_id: String,
    pub chunk_id: String,
    pub score: f32,
    pub text: String,
    pub uri: String,
    pub title: Option<String>,
    pub source: String,
    pub chunk_index: usize,
    pub start: usize,
    pub end: usize,
    pub headings: Vec<String>,
    pub page: Option<u32>,
}

#[derive(Clone)]
pub struct Retriever {
    store: Arc<dyn VectorStore>,
    embedder: Embedder,
    /// Candidates each side of a hybrid query fetches, per requested hit.
    pub hybrid_prefetch_factor: usize,
    pub rrf_k: usize,
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retriever")
            .field("rrf_k", &self.rrf_k)
            .finish()
    }
}

impl Retriever {
    pub fn new(store: Arc<dyn VectorStore>, embedder: Embedder) -> Self {
        Self {
            store,
            embedder,
            hybrid_prefetch_factor: 4,
            rrf_k: 60,
        }
    }

    pub async fn search(
        &self,
        collection: &str,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        if query.trim().is_empty() {
            return Err(EngineError::Invalid("the query is empty".into()));
        }
        if options.top_k == 0 {
            return Err(EngineError::Invalid("top_k must be at least 1".into()));
        }
        let query = match options.mode {
            Mode::Bm25 => Query::Bm25(query.to_string()),
            Mode::Dense => Query::Dense(self.embedder.embed_query(query).await?.embedding),
            Mode::Hybrid => Query::Hybrid {
                dense: self.embedder.embed_query(query).await?.embedding,
                text: query.to_string(),
                prefetch: (options.top_k * self.hybrid_prefetch_factor).max(50),
                rrf_k: self.rrf_k,
            },
        };
        let request = SearchRequest {
            query,
            limit: options.top_k,
            filter: options.filter.clone(),
            score_threshold: options.score_threshold,
        };
        let name = collection.to_string();
        let points = blocking(&self.store, move |s| s.search(&name, &request)).await?;
        Ok(points
            .into_iter()
            .map(|p| {
                let s = |k: &str| {
                    p.payload
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let n = |k: &str| p.payload.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
                Hit {
                    doc_id: s("doc_id"),
                    chunk_id: p.id.to_string(),
                    score: p.score,
                    text: s("text"),
                    uri: s("uri"),
                    title: p
                        .payload
                        .get("title")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    source: s("source"),
                    chunk_index: n("chunk_index"),
                    start: n("start"),
                    end: n("end"),
                    headings: p
                        .payload
                        .get("headings")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|h| h.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    page: p
                        .payload
                        .get("page")
                        .and_then(Value::as_u64)
                        .map(|v| v as u32),
                }
            })
            .collect())
    }
}
