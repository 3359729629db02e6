//! `/v1/collections/{name}/documents/{id}`: add or replace, status, delete.

use axum::extract::State;
use axum::{Extension, Json};
use quarry_core::CollectionName;
use quarry_engine::service::{DeleteResponse, DocumentStatus, NewDocument, PutDocumentResponse};

use super::St;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, JsonBody};

/// Add or replace a document, through the same parse, chunk and embed path as a sync.
#[utoipa::path(put, path = "/v1/collections/{name}/documents/{id}", request_body = NewDocument,
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = PutDocumentResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn put_document(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath((name, id)): ApiPath<(CollectionName, String)>,
    JsonBody(body): JsonBody<NewDocument>,
) -> Result<Json<PutDocumentResponse>, ApiError> {
    caller.check(&name)?;
    Ok(Json(state.service.put_document(&name, &id, body).await?))
}

/// A document's status: hash, chunks, source.
#[utoipa::path(get, path = "/v1/collections/{name}/documents/{id}",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = DocumentStatus), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_document(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath((name, id)): ApiPath<(CollectionName, String)>,
) -> Result<Json<DocumentStatus>, ApiError> {
    caller.check(&name)?;
    state
        .service
        .document(&name, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no document {id:?} in collection {name:?}")))
}

/// Delete a document.
#[utoipa::path(delete, path = "/v1/collections/{name}/documents/{id}",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = DeleteResponse), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn delete_document(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath((name, id)): ApiPath<(CollectionName, String)>,
) -> Result<Json<DeleteResponse>, ApiError> {
    caller.check(&name)?;
    Ok(Json(state.service.delete_document(&name, &id).await?))
}
