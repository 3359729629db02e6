//! `POST /v1/collections/{name}/search` and `.../context`.

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use quarry_core::CollectionName;
use quarry_core::config::Rerank;
use quarry_engine::context::{Context, ContextOptions};
use quarry_engine::fusion::Fusion;
use quarry_engine::{Degraded, Filter, Hit, Mode, SearchOptions};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::St;
use crate::AppState;
use crate::auth::Caller;
use crate::cache::{Answer, Asked, Served, bypassed, serve_cached};
use crate::coverage::Best;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, JsonBody};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub query: String,
    /// Hits to return (default 10, at most the server's `max_top_k`).
    #[schema(minimum = 1)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub filter: Filter,
    pub score_threshold: Option<f32>,
    /// At most this many chunks from one document.
    #[schema(minimum = 1)]
    pub per_doc_limit: Option<usize>,
    /// Give up after this long: 504 `deadline_exceeded` (also the
    /// `Request-Timeout` header, in milliseconds).
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// How hybrid mode fuses its two rankings (default: the collection's,
    /// then `retrieval.fusion`).
    pub fusion: Option<Fusion>,
    /// Rescore the best `top_n` hits with a cross-encoder and return its
    /// best `top_k` (default: the collection's, then `retrieval.rerank`;
    /// `{"top_n": 0}` turns it off). A reranked hit's `score` is the
    /// cross-encoder's, 0 to 1, and `retrieval_score` the first stage's.
    pub rerank: Option<Rerank>,
    /// Fold near-identical passages of different documents into one hit,
    /// which names the others in `duplicates` (default
    /// `retrieval.dedupe`, true).
    pub dedupe: Option<bool>,
    /// Drop hits whose `relevance` (0 to 1, the same scale in every mode)
    /// is under this.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_relevance: Option<f32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    /// Set when the hits came from BM25 alone because the query embedding
    /// was late or impossible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<Degraded>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextBody {
    pub query: String,
    /// The token budget of the whole context.
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_tokens: usize,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub filter: Filter,
    pub score_threshold: Option<f32>,
    /// At most this many passages from one document.
    #[schema(minimum = 1)]
    pub per_doc_limit: Option<usize>,
    /// Candidate chunks considered (default 50, at most the server's `max_top_k`).
    #[schema(minimum = 1)]
    pub candidates: Option<usize>,
    /// Give up after this long: 504 `deadline_exceeded` (also the
    /// `Request-Timeout` header, in milliseconds).
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// How hybrid mode fuses its two rankings.
    pub fusion: Option<Fusion>,
    /// Rerank the candidates with a cross-encoder before packing them.
    pub rerank: Option<Rerank>,
    /// Fold near-identical passages of different documents (default
    /// `retrieval.dedupe`, true).
    pub dedupe: Option<bool>,
    /// Leave out candidates whose `relevance` is under this.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_relevance: Option<f32>,
}

/// A deadline of 0 ms could never be met.
fn check_timeout(timeout_ms: Option<u64>) -> Result<(), ApiError> {
    match timeout_ms {
        Some(0) => Err(ApiError::BadRequest(
            "timeout_ms must be at least 1 (milliseconds)".into(),
        )),
        _ => Ok(()),
    }
}

/// Runs `work` within the request's deadline, if it set one: past it the
/// work is dropped (abandoned) and the answer is a 504.
async fn within<T>(
    timeout_ms: Option<u64>,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match timeout_ms {
        Some(ms) => tokio::time::timeout(std::time::Duration::from_millis(ms), work)
            .await
            .map_err(|_| ApiError::Deadline(ms))?,
        None => work.await,
    }
}

/// How both routes find candidate chunks.
fn candidates(
    state: &AppState,
    mode: Mode,
    filter: Filter,
    score_threshold: Option<f32>,
    fusion: Option<Fusion>,
    rerank: Option<Rerank>,
) -> SearchOptions {
    SearchOptions {
        mode,
        filter,
        score_threshold,
        fusion,
        rerank,
        degrade: Some(state.service.retriever().degrade_policy()),
        ..SearchOptions::default()
    }
}

/// Search a collection.
#[utoipa::path(post, path = "/v1/collections/{name}/search", request_body = SearchBody,
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = SearchResponse, headers(("Quarry-Degraded" = String, description = "Set when the answer came from BM25 alone: the reason"), ("Quarry-Cache" = String, description = "`hit` or `miss` when the answer is cacheable; `stale` (and `\"stale\": true` in the body) when the store was unreachable and an earlier answer stood in"))), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub(crate) async fn search(
    State(state): St,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<CollectionName>,
    JsonBody(body): JsonBody<SearchBody>,
) -> Result<Response, ApiError> {
    let served = run_search(&state, &caller, &name, &body, bypassed(&headers)).await?;
    Ok(served.into_response())
}

/// A search as every front end runs it: the caller's tenants, the
/// request's deadline, the cache and coverage monitoring.
pub(crate) async fn run_search(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: &SearchBody,
    bypass: bool,
) -> Result<Served, ApiError> {
    caller.check(name)?;
    check_timeout(body.timeout_ms)?;
    let options = SearchOptions {
        top_k: body.top_k.unwrap_or(10),
        per_doc_limit: body.per_doc_limit,
        dedupe: body.dedupe,
        min_relevance: body.min_relevance,
        ..candidates(
            state,
            body.mode,
            body.filter.clone(),
            body.score_threshold,
            body.fusion,
            body.rerank.clone(),
        )
    };
    let retriever = state.service.retriever();
    let work = async {
        let searched = within(body.timeout_ms, async {
            Ok(retriever.search_full(name, &body.query, &options).await?)
        })
        .await?;
        Ok(Answer {
            timing: Some(searched.timing),
            degraded: searched.degraded.clone(),
            // A raw score on the first stage's scale.
            best: Best::of(
                searched
                    .hits
                    .iter()
                    .map(|h| (h.retrieval_score.unwrap_or(h.score), h.relevance)),
            ),
            body: SearchResponse {
                hits: searched.hits,
                degraded: searched.degraded,
            },
        })
    };
    let asked = Asked {
        route: "search",
        collection: name,
        query: &body.query,
        mode: body.mode,
        request: body,
    };
    serve_cached(state, asked, bypass, work).await
}

/// Token-budgeted grounding context with citations.
#[utoipa::path(post, path = "/v1/collections/{name}/context", request_body = ContextBody,
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = Context, headers(("Quarry-Degraded" = String, description = "Set when the candidates came from BM25 alone: the reason"), ("Quarry-Cache" = String, description = "`hit` or `miss` when the answer is cacheable; `stale` (and `\"stale\": true` in the body) when the store was unreachable and an earlier answer stood in"))), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub(crate) async fn context(
    State(state): St,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<CollectionName>,
    JsonBody(body): JsonBody<ContextBody>,
) -> Result<Response, ApiError> {
    let served = run_context(&state, &caller, &name, &body, bypassed(&headers)).await?;
    Ok(served.into_response())
}

/// Context as every front end builds it (see [`run_search`]).
pub(crate) async fn run_context(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: &ContextBody,
    bypass: bool,
) -> Result<Served, ApiError> {
    caller.check(name)?;
    check_timeout(body.timeout_ms)?;
    let options = ContextOptions {
        search: SearchOptions {
            top_k: body.candidates.unwrap_or(50),
            dedupe: body.dedupe,
            min_relevance: body.min_relevance,
            ..candidates(
                state,
                body.mode,
                body.filter.clone(),
                body.score_threshold,
                body.fusion,
                body.rerank.clone(),
            )
        },
        max_tokens: body.max_tokens,
        per_doc_limit: body.per_doc_limit,
    };
    let work = async {
        let context = within(body.timeout_ms, async {
            Ok(state.service.context(name, &body.query, &options).await?)
        })
        .await?;
        Ok(Answer {
            degraded: context.degraded.clone(),
            best: Best::of(context.passages.iter().map(|p| (p.score, p.relevance))),
            body: context,
            timing: None,
        })
    };
    let asked = Asked {
        route: "context",
        collection: name,
        query: &body.query,
        mode: body.mode,
        request: body,
    };
    serve_cached(state, asked, bypass, work).await
}
