//! `POST /v1/sources/{name}/sync` and `GET /v1/jobs/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use quarry_engine::service::{Job, JobStarted};

use super::St;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};

/// A source whose collection the caller may not see does not exist for it.
pub(crate) fn check_source(
    state: &crate::AppState,
    caller: &Caller,
    source: &str,
) -> Result<(), ApiError> {
    let visible = state
        .service
        .source_status()
        .iter()
        .any(|s| s.source == source && caller.sees(&s.collection));
    if visible {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "no configured source {source:?}"
        )))
    }
}
use crate::extract::ApiPath;

/// Start a sync of a configured source; returns a job id.
#[utoipa::path(post, path = "/v1/sources/{name}/sync",
    params(("name" = String, Path, description = "Configured source")),
    responses((status = 202, body = JobStarted), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn start_sync(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<(StatusCode, Json<JobStarted>), ApiError> {
    check_source(&state, &caller, &name)?;
    let started = state.service.start_sync(&name)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// A sync job's progress and final report.
#[utoipa::path(get, path = "/v1/jobs/{id}",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_job(
    State(state): St,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    let missing = || ApiError::NotFound(format!("no job {id:?}"));
    let job = state.service.job(&id).ok_or_else(missing)?;
    check_source(&state, &caller, &job.source).map_err(|_| missing())?;
    Ok(Json(job))
}
