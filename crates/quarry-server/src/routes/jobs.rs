//! `POST /v1/sources/{name}/sync` and `GET /v1/jobs/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use quarry_engine::service::{Job, JobStarted};

use super::St;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;

/// Start a sync of a configured source; returns a job id.
#[utoipa::path(post, path = "/v1/sources/{name}/sync",
    params(("name" = String, Path, description = "Configured source")),
    responses((status = 202, body = JobStarted), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn start_sync(
    State(state): St,
    ApiPath(name): ApiPath<String>,
) -> Result<(StatusCode, Json<JobStarted>), ApiError> {
    let started = state.service.start_sync(&name)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// A sync job's progress and final report.
#[utoipa::path(get, path = "/v1/jobs/{id}",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_job(
    State(state): St,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    state
        .service
        .job(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))
}
