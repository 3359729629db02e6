//! The one place errors become HTTP responses.
//!
//! Every handler returns [`ApiError`]; its `IntoResponse` decides the status
//! code and renders the one JSON shape, `{"error": {"code", "message"}}`.
//! Nothing else in the server builds an error response.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quarry_embed::EmbedError;
use quarry_engine::EngineError;
use quarry_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("missing or invalid API key: send `Authorization: Bearer KEY`")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    RateLimited(String),
    #[error("the request body is larger than the server accepts (server.max_body_bytes)")]
    TooLarge,
    /// A request with more items than one request may carry.
    #[error("{0}")]
    TooLargeBatch(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the server is busy; retry shortly")]
    Overloaded,
    #[error("{0}")]
    Unavailable(String),
    #[error("the request took too long")]
    Timeout,
    #[error("the request's deadline of {0} ms passed; the work was abandoned")]
    Deadline(u64),
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

/// The error body every failing route returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `bad_request`, `not_found`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::TooLargeBatch(_) => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
            Self::Unsupported(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Self::Deadline(_) => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
            Self::InsufficientStorage(_) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ApiError {
    /// The body a client sees, on every front end. An internal error's
    /// text may name files on the server; the log has it, the client gets
    /// no more than that something broke.
    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        let message = match self {
            Self::Internal(_) => {
                "internal server error; the server's log has the details".to_string()
            }
            other => other.to_string(),
        };
        ErrorBody {
            error: ErrorDetail { code, message },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(%status, error = %self, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Load shedding clears in well under a second; a store outage
            // takes longer, so clients back off more.
            let secs = if matches!(self, Self::Overloaded) {
                "1"
            } else {
                "5"
            };
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(secs),
            );
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => Self::BadRequest(m),
            EngineError::NotFound(m) => Self::NotFound(m),
            EngineError::Conflict(m) => Self::Conflict(m),
            EngineError::Source(e) => Self::BadRequest(e.to_string()),
            EngineError::Embed(EmbedError::Overloaded) => Self::Overloaded,
            // Asking a model for what it cannot do (rerank with an
            // embedding model): the request, or the configuration it names.
            EngineError::Embed(EmbedError::Unsupported(m)) => Self::BadRequest(m),
            EngineError::Embed(other) => Self::Internal(other.to_string()),
            EngineError::Store(StoreError::NoCollection(c)) => no_collection(&c),
            EngineError::Store(StoreError::Invalid(m)) => Self::BadRequest(m),
            EngineError::Store(StoreError::Name(e)) => Self::BadRequest(e.to_string()),
            EngineError::Store(e @ StoreError::DiskFull { .. }) => {
                Self::InsufficientStorage(e.to_string())
            }
            EngineError::Store(e @ StoreError::Mismatch { .. }) => Self::Conflict(e.to_string()),
            EngineError::Store(e @ StoreError::Unavailable { .. }) => {
                Self::Unavailable(e.to_string())
            }
            EngineError::Ingest(e) => Self::BadRequest(e.to_string()),
            EngineError::Io { source, .. } | EngineError::Store(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                Self::InsufficientStorage(
                    "the server's disk is full; free space on its data directory and retry".into(),
                )
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::Unsupported(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::TooLarge
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

/// The 404 for a collection that does not exist, and for one the caller's
/// key may not see: the same words, so names do not leak.
pub(crate) fn no_collection(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "collection {name:?} does not exist; create it with POST /v1/collections, or sync a source into it"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_responses_say_when_to_retry_and_internal_ones_hide_paths() {
        let shed = ApiError::Overloaded.into_response();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[axum::http::header::RETRY_AFTER], "1");
        let outage = ApiError::Unavailable("store down".into()).into_response();
        assert_eq!(outage.headers()[axum::http::header::RETRY_AFTER], "5");
        let ok = ApiError::BadRequest("x".into()).into_response();
        assert!(ok.headers().get(axum::http::header::RETRY_AFTER).is_none());

        let internal = ApiError::Internal("/var/lib/quarry/collections/x: EIO".into());
        let body = internal.into_response().into_body();
        let bytes = futures_body(body);
        assert!(!bytes.contains("/var/lib"), "{bytes}");
        let full = ApiError::from(EngineError::Io {
            path: "/srv/data/journal".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        assert!(matches!(full, ApiError::InsufficientStorage(ref m) if !m.contains("/srv")));
    }

    #[test]
    fn a_model_that_cannot_load_is_the_servers_fault_not_the_clients() {
        let e = ApiError::from(EngineError::ModelLoad(
            "loading the model of \"docs\": model.safetensors: truncated".into(),
        ));
        assert_eq!(
            e.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let bad = ApiError::from(EngineError::Invalid("top_k must be at least 1".into()));
        assert_eq!(bad.into_response().status(), StatusCode::BAD_REQUEST);
    }

    fn futures_body(body: axum::body::Body) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(axum::body::to_bytes(body, 1 << 20)).unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
