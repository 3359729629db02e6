//! What a search asks for and what it answers: the mode, the options, the
//! hits, and the retriever's settings.

use quarry_core::config::Rerank;
use quarry_core::payload::ChunkPayload;
use serde::{Deserialize, Serialize};

use crate::degrade::{DegradePolicy, Degraded};
use crate::filter::Filter;
use crate::fusion::Fusion;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dense,
    Bm25,
    #[default]
    Hybrid,
}

impl Mode {
    /// The name `FromStr` and serde use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Bm25 => "bm25",
            Self::Hybrid => "hybrid",
        }
    }
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
    pub filter: Filter,
    pub score_threshold: Option<f32>,
    /// At most this many chunks from one document.
    pub per_doc_limit: Option<usize>,
    /// Fall back to BM25 rather than fail when the query embedding is late
    /// or impossible (the server sets it; the CLI and eval do not).
    pub degrade: Option<DegradePolicy>,
    /// Hybrid's fusion for this request; default the collection's, then
    /// `retrieval.fusion`.
    pub fusion: Option<Fusion>,
    /// A cross-encoder stage for this request (see [`crate::rerank`]);
    /// default the collection's, then `retrieval.rerank`.
    pub rerank: Option<Rerank>,
    /// Fold near-identical passages of different documents into one hit
    /// (see [`crate::dedupe`]); default `retrieval.dedupe`.
    pub dedupe: Option<bool>,
    /// Drop hits whose `relevance` (0 to 1, one scale for every mode) is
    /// under this.
    pub min_relevance: Option<f32>,
}

/// Hits, and how they were served if not as asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Searched {
    pub hits: Vec<Hit>,
    pub degraded: Option<Degraded>,
    pub timing: StageTimes,
}

/// Where one search's time went, in milliseconds: what `quarry serve`
/// reports in its `Server-Timing` header.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Waiting for and running the query's embedding (0 from the cache).
    pub embed_ms: f64,
    /// The store's search, and reading the hits' payloads.
    pub store_ms: f64,
    /// The cross-encoder, when one reranks.
    pub rerank_ms: f64,
}

impl SearchOptions {
    /// Checks the options a caller chose; `max_top_k` is the server's cap
    /// (`usize::MAX` where there is none).
    pub fn validate(&self, max_top_k: usize) -> Result<()> {
        if let Some(f) = &self.fusion {
            f.validate("fusion").map_err(EngineError::Invalid)?;
        }
        if self.top_k == 0 || self.top_k > max_top_k {
            return Err(EngineError::Invalid(if max_top_k == usize::MAX {
                "top_k must be at least 1".into()
            } else {
                format!("top_k must be between 1 and {max_top_k}")
            }));
        }
        if self.per_doc_limit == Some(0) {
            return Err(EngineError::Invalid(
                "per_doc_limit must be at least 1".into(),
            ));
        }
        if self
            .min_relevance
            .is_some_and(|r| !(0.0..=1.0).contains(&r))
        {
            return Err(EngineError::Invalid(
                "min_relevance must be between 0 and 1".into(),
            ));
        }
        if self.score_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(EngineError::Invalid(
                "score_threshold must be a finite number".into(),
            ));
        }
        Ok(())
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Hybrid,
            top_k: 10,
            filter: Filter::default(),
            score_threshold: None,
            per_doc_limit: None,
            degrade: None,
            fusion: None,
            rerank: None,
            dedupe: None,
            min_relevance: None,
        }
    }
}

/// One search result: a chunk with what a citation needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hit {
    pub doc_id: String,
    pub chunk_id: String,
    /// The mode's own score (cosine, BM25, fused, or the cross-encoder's).
    pub score: f32,
    /// 0 to 1 on one scale for every mode: an estimate of the chance the
    /// hit is relevant (see `crate::relevance`).
    pub relevance: f32,
    pub text: String,
    pub uri: String,
    pub title: Option<String>,
    pub source: String,
    pub chunk_index: usize,
    pub start: usize,
    pub end: usize,
    pub headings: Vec<String>,
    pub page: Option<u32>,
    /// The first stage's score, when a cross-encoder reranked the hit
    /// (`score` is then the cross-encoder's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval_score: Option<f32>,
    /// Other documents with a near-identical passage, folded into this hit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
    /// Whitespace between the previous chunk and this one (for merging).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub gap_before: String,
}

impl Hit {
    pub(crate) fn new(id: quarry_core::PointId, score: f32, p: ChunkPayload) -> Self {
        Self {
            doc_id: p.doc_id,
            chunk_id: id.to_string(),
            score,
            relevance: 0.0,
            text: p.text,
            uri: p.uri,
            title: p.title,
            source: p.source,
            chunk_index: p.chunk_index,
            start: p.start,
            end: p.end,
            headings: p.headings,
            page: p.page,
            retrieval_score: None,
            duplicates: Vec::new(),
            gap_before: p.gap_before,
        }
    }
}

/// Fusion and caching settings of a retriever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrieverSettings {
    /// Candidates each side of a hybrid query fetches, per requested hit
    /// (at least 50).
    pub hybrid_prefetch_factor: usize,
    /// Reciprocal rank fusion's k.
    pub rrf_k: usize,
    /// Query embeddings kept in an LRU cache (0 disables it).
    pub query_cache: usize,
    /// The largest `top_k` a search may ask for.
    pub max_top_k: usize,
    /// How the server's searches degrade (`SearchOptions::degrade`).
    #[serde(skip)]
    pub degrade: DegradePolicy,
    /// Hybrid's fusion, unless a request or the collection says otherwise.
    pub fusion: Fusion,
    /// Collections' own fusion (`[retrieval.collections.NAME]`).
    #[serde(skip)]
    pub collection_fusion: std::collections::BTreeMap<String, Fusion>,
    /// The rerank stage, unless a request or the collection says otherwise.
    #[serde(skip)]
    pub rerank: Option<Rerank>,
    /// Collections' own rerank stage.
    #[serde(skip)]
    pub collection_rerank: std::collections::BTreeMap<String, Rerank>,
    /// Fold near-duplicate hits, unless a request says otherwise.
    #[serde(default = "folds")]
    pub dedupe: bool,
}

impl Default for RetrieverSettings {
    fn default() -> Self {
        Self {
            hybrid_prefetch_factor: 4,
            rrf_k: 60,
            query_cache: 1024,
            max_top_k: usize::MAX,
            degrade: DegradePolicy::default(),
            fusion: Fusion::default(),
            collection_fusion: std::collections::BTreeMap::new(),
            rerank: None,
            collection_rerank: std::collections::BTreeMap::new(),
            dedupe: true,
        }
    }
}

fn folds() -> bool {
    true
}
