//! Document writes and sync jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use quarry_core::CollectionName;
use quarry_core::config::SourceConfig;
use quarry_engine::{Indexer, SyncProgress, SyncReport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::{ApiPath, AppState, JsonBody};

/// Source name of documents written through the API.
pub const API_SOURCE: &str = "api";

/// Everything the write routes need.
#[derive(Debug)]
pub struct Writer {
    pub indexer: Indexer,
    pub sources: Vec<SourceConfig>,
    pub max_file_bytes: u64,
    pub(crate) jobs: Mutex<HashMap<String, Job>>,
    pub(crate) last_success: Mutex<HashMap<String, SystemTime>>,
    pub(crate) totals: Mutex<HashMap<String, [u64; 6]>>,
}

impl Writer {
    pub fn new(indexer: Indexer, sources: Vec<SourceConfig>, max_file_bytes: u64) -> Self {
        Self {
            indexer,
            sources,
            max_file_bytes,
            jobs: Mutex::default(),
            last_success: Mutex::default(),
            totals: Mutex::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    pub id: String,
    pub source: String,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    pub total: usize,
    pub done: usize,
    pub chunks_embedded: usize,
    pub started_at_unix: u64,
    pub finished_at_unix: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub report: Option<SyncReport>,
    pub error: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn writer(state: &AppState) -> Result<&Writer, ApiError> {
    state.writer.as_ref().ok_or_else(|| {
        ApiError::Unavailable("this server was started without write support".into())
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDocumentBody {
    /// The document's text; not empty or only whitespace.
    #[schema(min_length = 1, pattern = r"\S")]
    pub text: String,
    /// `text/plain` (default), `text/markdown` or `text/html`.
    pub content_type: Option<String>,
    pub title: Option<String>,
    pub uri: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentStatus {
    pub doc_id: String,
    pub collection: String,
    pub source: String,
    /// The stored version hash.
    pub hash: String,
    pub chunks: usize,
    pub uri: String,
    pub title: Option<String>,
    /// When the document was last written through the API (absent for
    /// documents written by a sync, whose payloads hold no times).
    pub updated_at_unix: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PutDocumentResponse {
    /// `added`, `updated` or `unchanged`.
    pub result: &'static str,
    pub chunks_embedded: usize,
    pub chunks_reused: usize,
    pub status: DocumentStatus,
}

fn check_doc_id(id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() || id.len() > 1024 {
        return Err(ApiError::BadRequest(
            "document id must be 1 to 1024 characters".into(),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "document id must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// Schemes a citation may link to. A `javascript:` or `data:` URI would run
/// or render in whatever page shows the citation.
const URI_SCHEMES: &[&str] = &[
    "http", "https", "file", "s3", "gs", "git", "ssh", "ftp", "quarry",
];

fn check_uri(uri: &str) -> Result<(), ApiError> {
    let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let ok = uri.len() <= 4096
        && !uri.chars().any(char::is_control)
        && scheme.is_some_and(|s| URI_SCHEMES.contains(&s.as_str()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "uri must be an absolute URI of at most 4096 bytes with one of the schemes {}",
            URI_SCHEMES.join(", ")
        )))
    }
}

async fn status_of(
    w: &Writer,
    collection: &str,
    id: &str,
) -> Result<Option<DocumentStatus>, ApiError> {
    let points = w.indexer.document_points(collection, id).await?;
    let Some(first) = points.first() else {
        return Ok(None);
    };
    let p = &first.payload;
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    Ok(Some(DocumentStatus {
        doc_id: id.to_string(),
        collection: collection.to_string(),
        source: s("source"),
        hash: s("doc_hash"),
        chunks: points.len(),
        uri: s("uri"),
        title: p.get("title").and_then(|v| v.as_str()).map(str::to_string),
        updated_at_unix: p
            .get("metadata")
            .and_then(|m| m.get("updated_at_unix"))
            .and_then(|v| v.as_u64()),
    }))
}

/// Add or replace a document, through the same parse, chunk and embed path as a sync.
#[utoipa::path(put, path = "/v1/collections/{name}/documents/{id}", request_body = PutDocumentBody,
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = PutDocumentResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn put_document(
    State(state): State<Arc<AppState>>,
    ApiPath((name, id)): ApiPath<(CollectionName, String)>,
    JsonBody(body): JsonBody<PutDocumentBody>,
) -> Result<Json<PutDocumentResponse>, ApiError> {
    let w = writer(&state)?;
    check_doc_id(&id)?;
    let content_type = body.content_type.unwrap_or_else(|| "text/plain".into());
    if !matches!(
        content_type.as_str(),
        "text/plain" | "text/markdown" | "text/html"
    ) {
        return Err(ApiError::BadRequest(format!(
            "content_type {content_type:?} is not supported; use text/plain, text/markdown or text/html"
        )));
    }
    if let Some(uri) = &body.uri {
        check_uri(uri)?;
    }
    if body.text.trim().is_empty() {
        return Err(ApiError::BadRequest("text must not be empty".into()));
    }
    if let Some(existing) = status_of(w, &name, &id).await?
        && existing.source != API_SOURCE
    {
        return Err(ApiError::Conflict(format!(
            "document {id:?} belongs to source {:?}; change it there, or use another id",
            existing.source
        )));
    }
    let metadata = body.metadata.unwrap_or_default();
    if metadata.contains_key("updated_at_unix") {
        return Err(ApiError::BadRequest(
            "metadata.updated_at_unix is set by the server".into(),
        ));
    }
    let source = quarry_ingest::MemorySource::single(
        API_SOURCE,
        &id,
        body.text,
        &content_type,
        body.title,
        body.uri,
        metadata,
        Some(now()),
    );
    let report = w.indexer.put_document(&name, source, &id).await?;
    if let Some(e) = report.errors.first() {
        return Err(ApiError::BadRequest(format!(
            "the document was not indexed: {}",
            e.reason
        )));
    }
    let status = status_of(w, &name, &id)
        .await?
        .ok_or_else(|| ApiError::Internal("document missing after write".into()))?;
    let result = if report.added > 0 {
        "added"
    } else if report.updated > 0 {
        "updated"
    } else {
        "unchanged"
    };
    Ok(Json(PutDocumentResponse {
        result,
        chunks_embedded: report.chunks_embedded,
        chunks_reused: report.chunks_reused,
        status,
    }))
}

/// A document's status: hash, chunks, source.
#[utoipa::path(get, path = "/v1/collections/{name}/documents/{id}",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = DocumentStatus), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_document(
    State(state): State<Arc<AppState>>,
    ApiPath((name, id)): ApiPath<(CollectionName, String)>,
) -> Result<Json<DocumentStatus>, ApiError> {
    let w = writer(&state)?;
    status_of(w, &name, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no document {id:?} in collection {name:?}")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    pub doc_id: String,
    pub deleted_points: usize,
}

/// Delete a document.
#[utoipa::path(delete, path = "/v1/collections/{name}/documents/{id}",
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"), ("id" = String, Path, description = "Document id")),
    responses((status = 200, body = DeleteResponse), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn delete_document(
    State(state): State<Arc<AppState>>,
    ApiPath((name, id)): ApiPath<(CollectionName, String)>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let w = writer(&state)?;
    let n = w.indexer.delete_document(&name, &id).await?;
    if n == 0 {
        return Err(ApiError::NotFound(format!(
            "no document {id:?} in collection {name:?}"
        )));
    }
    Ok(Json(DeleteResponse {
        doc_id: id,
        deleted_points: n,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobStarted {
    pub job_id: String,
    pub source: String,
}

/// Start a sync of a configured source; returns a job id.
#[utoipa::path(post, path = "/v1/sources/{name}/sync",
    params(("name" = String, Path, description = "Configured source")),
    responses((status = 202, body = JobStarted), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn start_sync(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<(StatusCode, Json<JobStarted>), ApiError> {
    let w = writer(&state)?;
    let Some(config) = w.sources.iter().find(|s| s.name == name).cloned() else {
        return Err(ApiError::NotFound(format!("no configured source {name:?}")));
    };
    {
        let jobs = lock(&w.jobs);
        if let Some(running) = jobs
            .values()
            .find(|j| j.source == name && j.state == "running")
        {
            return Err(ApiError::Conflict(format!(
                "source {name:?} is already syncing as job {}",
                running.id
            )));
        }
    }
    let source = quarry_ingest::open_source(&config, w.max_file_bytes)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let id = uuid::Uuid::new_v4().to_string();
    let job = Job {
        id: id.clone(),
        source: name.clone(),
        state: "running",
        total: 0,
        done: 0,
        chunks_embedded: 0,
        started_at_unix: now(),
        finished_at_unix: None,
        report: None,
        error: None,
    };
    lock(&w.jobs).insert(id.clone(), job);
    let st = Arc::clone(&state);
    let job_id = id.clone();
    let progress: quarry_engine::ProgressFn = {
        let st = Arc::clone(&state);
        let job_id = job_id.clone();
        Arc::new(move |p: SyncProgress| {
            if let Some(w) = &st.writer
                && let Some(j) = lock(&w.jobs).get_mut(&job_id)
            {
                (j.total, j.done, j.chunks_embedded) = (p.total, p.done, p.chunks_embedded);
            }
        })
    };
    tokio::spawn(async move {
        let Some(w) = &st.writer else { return };
        let indexer = w.indexer.clone().with_progress(progress);
        let result = indexer
            .sync_tagged(Arc::from(source), config.collection(), &config.tags)
            .await;
        let mut jobs = lock(&w.jobs);
        let Some(j) = jobs.get_mut(&job_id) else {
            return;
        };
        j.finished_at_unix = Some(now());
        match result {
            Ok(report) => {
                j.state = "succeeded";
                let mut totals = lock(&w.totals);
                let t = totals.entry(config.name.clone()).or_default();
                for (i, n) in [
                    report.added,
                    report.updated,
                    report.deleted,
                    report.skipped,
                    report.failed,
                    report.chunks_embedded,
                ]
                .iter()
                .enumerate()
                {
                    t[i] += *n as u64;
                }
                lock(&w.last_success).insert(config.name.clone(), SystemTime::now());
                j.report = Some(report);
            }
            Err(e) => {
                j.state = "failed";
                j.error = Some(e.to_string());
            }
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(JobStarted {
            job_id: id,
            source: name,
        }),
    ))
}

/// A sync job's progress and final report.
#[utoipa::path(get, path = "/v1/jobs/{id}",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_job(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    let w = writer(&state)?;
    lock(&w.jobs)
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?}")))
}
