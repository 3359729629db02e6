//! Collections, health, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use quarry_engine::CollectionInfo;
use quarry_engine::service::{Readiness, SourceStatus};
use serde::Serialize;
use utoipa::ToSchema;

use super::St;
use crate::auth::Caller;
use crate::coverage::CollectionStats;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::metrics;

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionsResponse {
    pub collections: Vec<CollectionInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: &'static str,
}

/// Collections with their model, dimension, documents and points.
#[utoipa::path(get, path = "/v1/collections", responses((status = 200, body = CollectionsResponse), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn collections(
    State(state): St,
    Extension(caller): Extension<Caller>,
) -> Result<Json<CollectionsResponse>, ApiError> {
    let mut collections = state.service.collections().await?;
    collections.retain(|c| caller.sees(&c.name));
    Ok(Json(CollectionsResponse { collections }))
}

/// How well the collection answers what is asked: each query's best score
/// by mode, the share under `retrieval.low_score`, and (with
/// `server.query_log = true`) the recent low-score queries.
#[utoipa::path(get, path = "/v1/collections/{name}/stats",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = CollectionStats), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn collection_stats(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<quarry_core::CollectionName>,
) -> Result<Json<CollectionStats>, ApiError> {
    caller.check(&name)?;
    // A collection that does not exist has no stats, as it has no search.
    state.service.pick_collection(Some(&name)).await?;
    Ok(Json(state.coverage.stats(&name)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourcesResponse {
    pub sources: Vec<SourceStatus>,
}

/// Each source: kind, collection, schedule, last run, last success, next
/// run, the error if any, and how far behind it may be.
#[utoipa::path(get, path = "/v1/sources", responses((status = 200, body = SourcesResponse), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn sources(
    State(state): St,
    Extension(caller): Extension<Caller>,
) -> Json<SourcesResponse> {
    let mut sources = state.service.source_status();
    sources.retain(|s| caller.sees(&s.collection));
    Json(SourcesResponse { sources })
}

/// Liveness: the process answers. No key needed.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = HealthResponse)))]
pub(crate) async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Liveness, by the Kubernetes name. No key needed.
#[utoipa::path(get, path = "/livez", security(()), responses((status = 200, body = HealthResponse)))]
pub(crate) async fn livez() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Readiness: the model answers and the store opens. No key needed, so the
/// answer says only which part is not ready; the log has the details.
#[utoipa::path(get, path = "/readyz", security(()), responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub(crate) async fn readyz(State(state): St) -> Response {
    let mut readiness = state.service.readiness().await;
    if let Some(detail) = readiness.message.take() {
        tracing::warn!(%detail, "not ready");
        readiness.message = Some(
            match (readiness.model_loaded, readiness.store_open) {
                (false, false) => "the model is not loaded and the store is not open",
                (false, true) => "the model is not loaded",
                (true, false) => "the store is not open",
                (true, true) => "not ready",
            }
            .to_string(),
        );
    }
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "OpenMetrics text format", content_type = "application/openmetrics-text"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn metrics_route(State(state): St) -> Result<Response, ApiError> {
    let stats = state.service.embedder().stats();
    // A store that cannot list still gets its other metrics rendered.
    let collections = state.service.collections().await.unwrap_or_default();
    let mut body = state.metrics.render(&stats, &collections);
    metrics::render_sync(&mut body, &state.service.source_status());
    metrics::render_cache(&mut body, &state.cache.stats());
    metrics::render_coverage(&mut body, &state.coverage.all());
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
