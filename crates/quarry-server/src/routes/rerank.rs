//! `POST /rerank`, in the shape of text-embeddings-inference's, so a client
//! written for a TEI reranker points at Quarry unchanged: `{"query",
//! "texts", "raw_scores"}` in, `[{"index", "score"}]` out, best first.

use axum::Json;
use axum::extract::State;
use quarry_core::config::MAX_RERANK_TOP_N;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::St;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankBody {
    pub query: String,
    /// The texts to score against the query (at most 1000).
    pub texts: Vec<String>,
    /// The logits instead of scores through the model's activation
    /// (sigmoid for a one-label reranker).
    #[serde(default)]
    pub raw_scores: bool,
    /// Give each result its text back.
    #[serde(default)]
    pub return_text: bool,
    /// Accepted for compatibility: Quarry always truncates a pair that is
    /// too long, longest text first, as sentence-transformers does.
    #[allow(dead_code)]
    pub truncate: Option<bool>,
    /// Accepted for compatibility; truncation is always on the right.
    #[allow(dead_code)]
    pub truncation_direction: Option<String>,
    /// A configured cross-encoder (a Quarry extension); default the one
    /// `[retrieval] rerank` names.
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RerankItem {
    /// The text's position in `texts`.
    pub index: usize,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Scores texts against a query with the configured cross-encoder,
/// compatible with text-embeddings-inference's `POST /rerank`.
#[utoipa::path(post, path = "/rerank", request_body = RerankBody,
    responses((status = 200, body = Vec<RerankItem>, description = "Best first"), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn rerank(
    State(state): St,
    JsonBody(body): JsonBody<RerankBody>,
) -> Result<Json<Vec<RerankItem>>, ApiError> {
    if body.texts.is_empty() {
        return Err(ApiError::BadRequest(
            "texts is empty: give at least one".into(),
        ));
    }
    if body.texts.len() > MAX_RERANK_TOP_N {
        return Err(ApiError::TooLargeBatch(format!(
            "texts has {} items; at most {MAX_RERANK_TOP_N} may be reranked in one request: \
             split it",
            body.texts.len()
        )));
    }
    let (_, scored) = state
        .service
        .retriever()
        .rerank_texts(
            body.model.as_deref(),
            &body.query,
            &body.texts,
            body.raw_scores,
        )
        .await?;
    let mut items: Vec<RerankItem> = scored
        .iter()
        .enumerate()
        .map(|(index, s)| RerankItem {
            index,
            score: s.score,
            text: body.return_text.then(|| body.texts[index].clone()),
        })
        .collect();
    items.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(Json(items))
}
