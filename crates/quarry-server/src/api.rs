//! Request and response bodies: the JSON contract, with OpenAPI schemas.

use quarry_engine::{Filter, Hit, Mode, Passage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A search filter; every given condition must hold.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// Source name, or a list of them.
    #[schema(value_type = Option<Object>)]
    pub source: Option<serde_json::Value>,
    /// Document id, or a list of them.
    #[schema(value_type = Option<Object>)]
    pub doc_id: Option<serde_json::Value>,
    /// Directory prefix of the document path.
    pub path_prefix: Option<String>,
    /// Any of these tags.
    pub tags: Option<Vec<String>>,
    /// Exact matches on metadata fields.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl FilterBody {
    pub fn into_filter(self) -> Result<Filter, String> {
        let v = serde_json::json!({
            "source": self.source, "doc_id": self.doc_id, "path_prefix": self.path_prefix,
            "tags": self.tags, "metadata": self.metadata,
        });
        serde_json::from_value(v).map_err(|e| {
            format!("invalid filter: {e}; source and doc_id take a string or a list of strings")
        })
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModeBody {
    Dense,
    Bm25,
    #[default]
    Hybrid,
}

impl From<ModeBody> for Mode {
    fn from(m: ModeBody) -> Self {
        match m {
            ModeBody::Dense => Mode::Dense,
            ModeBody::Bm25 => Mode::Bm25,
            ModeBody::Hybrid => Mode::Hybrid,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub query: String,
    /// Hits to return (default 10, at most the server's `max_top_k`).
    #[schema(minimum = 1)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub mode: ModeBody,
    #[serde(default)]
    pub filter: FilterBody,
    pub score_threshold: Option<f32>,
    /// At most this many chunks from one document.
    #[schema(minimum = 1)]
    pub per_doc_limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HitBody {
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

impl From<Hit> for HitBody {
    fn from(h: Hit) -> Self {
        Self {
            doc_id: h.doc_id,
            chunk_id: h.chunk_id,
            score: h.score,
            text: h.text,
            uri: h.uri,
            title: h.title,
            source: h.source,
            chunk_index: h.chunk_index,
            start: h.start,
            end: h.end,
            headings: h.headings,
            page: h.page,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<HitBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextBody {
    pub query: String,
    /// The token budget of the whole context.
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_tokens: usize,
    #[serde(default)]
    pub mode: ModeBody,
    #[serde(default)]
    pub filter: FilterBody,
    pub score_threshold: Option<f32>,
    /// At most this many passages from one document.
    #[schema(minimum = 1)]
    pub per_doc_limit: Option<usize>,
    /// Candidate chunks considered (default 50, at most the server's `max_top_k`).
    #[schema(minimum = 1)]
    pub candidates: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PassageBody {
    pub citation: usize,
    pub doc_id: String,
    pub uri: String,
    pub title: Option<String>,
    pub headings: Vec<String>,
    pub page: Option<u32>,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub chunk_ids: Vec<String>,
    pub text: String,
}

impl From<Passage> for PassageBody {
    fn from(p: Passage) -> Self {
        Self {
            citation: p.citation,
            doc_id: p.doc_id,
            uri: p.uri,
            title: p.title,
            headings: p.headings,
            page: p.page,
            start: p.start,
            end: p.end,
            score: p.score,
            chunk_ids: p.chunk_ids,
            text: p.text,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContextResponse {
    /// Passages rendered for a prompt, each behind its `[n]` citation.
    pub text: String,
    pub passages: Vec<PassageBody>,
    pub tokens: usize,
    pub max_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionInfo {
    pub name: String,
    #[schema(value_type = Object)]
    pub model: serde_json::Value,
    pub dimension: usize,
    pub documents: usize,
    pub points: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionsResponse {
    pub collections: Vec<CollectionInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
    pub model_loaded: bool,
    pub store_open: bool,
    pub message: Option<String>,
}
