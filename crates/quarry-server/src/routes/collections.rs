//! Collections managed over HTTP: create, delete, list documents, write a
//! batch of documents. Creating and deleting need the write (or admin)
//! scope, and a key confined to some collections can only name those.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use quarry_core::CollectionName;
use quarry_engine::CollectionInfo;
use quarry_engine::service::{
    BatchDocument, BatchResult, DocumentPage, NewCollection, PageRequest,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::St;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, JsonBody};

/// Create an empty collection for the server's model and chunking.
#[utoipa::path(post, path = "/v1/collections", request_body = NewCollection,
    responses((status = 201, body = CollectionInfo), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn create_collection(
    State(state): St,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<NewCollection>,
) -> Result<(StatusCode, Json<CollectionInfo>), ApiError> {
    caller.check(&body.name)?;
    let info = state.service.create_collection(body).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// One collection's model, dimension, documents and points.
#[utoipa::path(get, path = "/v1/collections/{name}",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = CollectionInfo), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_collection(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<CollectionName>,
) -> Result<Json<CollectionInfo>, ApiError> {
    caller.check(&name)?;
    Ok(Json(state.service.collection_info(&name).await?))
}

/// Delete a collection and all its documents.
#[utoipa::path(delete, path = "/v1/collections/{name}",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = CollectionInfo), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn delete_collection(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<CollectionName>,
) -> Result<Json<CollectionInfo>, ApiError> {
    caller.check(&name)?;
    Ok(Json(state.service.delete_collection(&name).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Start after this document id (the previous page's `next`).
    pub after: Option<String>,
    /// Documents per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A collection's documents, a page at a time, in id order.
#[utoipa::path(get, path = "/v1/collections/{name}/documents",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"), PageParams),
    responses((status = 200, body = DocumentPage), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn list_documents(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<CollectionName>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<DocumentPage>, ApiError> {
    caller.check(&name)?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let request = PageRequest {
        after: page.after,
        limit,
    };
    Ok(Json(state.service.list_documents(&name, request).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// At most `server.max_batch` documents, each written on its own.
    pub documents: Vec<BatchDocument>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One result per document, in the request's order.
    pub results: Vec<BatchResult>,
}

/// Add or replace a batch of documents; each is atomic on its own, and one
/// that cannot be indexed fails alone.
#[utoipa::path(post, path = "/v1/collections/{name}/documents", request_body = BatchBody,
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = BatchResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn post_documents(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<CollectionName>,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Json<BatchResponse>, ApiError> {
    caller.check(&name)?;
    let max = state.settings.max_batch;
    if body.documents.is_empty() || body.documents.len() > max {
        return Err(ApiError::BadRequest(format!(
            "a batch carries 1 to {max} documents (server.max_batch), not {}",
            body.documents.len()
        )));
    }
    // Writing into a collection that does not exist is a 404, as a PUT.
    state.service.pick_collection(Some(&name)).await?;
    let results = state.service.put_documents(&name, body.documents).await?;
    Ok(Json(BatchResponse { results }))
}
