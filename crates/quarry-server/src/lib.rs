//! Quarry's HTTP API.
//!
//! Handlers are thin: they turn a request into the types of the engine's
//! [`Service`], call it, and return its answer as JSON; validation, sync
//! jobs and collection listing live in the service, where the CLI and
//! every other front end share them. Errors become responses in one place
//! ([`error`]); authentication, body limits, timeouts and load shedding are
//! layers around the whole router, so no route can forget them. The OpenAPI
//! document is generated from the same route declarations that build the
//! router, and from the engine's own types, so the two cannot disagree.

mod auth;
mod cache;
mod coverage;
pub mod error;
mod extract;
mod limit;
pub mod mcp;
mod metrics;
mod routes;
mod ui;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Json};
use quarry_core::config::ServerConfig;
use quarry_engine::Service;
use tower::ServiceBuilder;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use auth::SecurityAddon;
pub use auth::{Caller, Keys};
use error::{ApiError, ErrorBody};
pub use extract::{ApiPath, JsonBody};
use routes::{collections, documents, jobs, openai, rerank, search, status};

/// Limits of the server itself; what a request may ask for is the
/// service's to check.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_concurrency: usize,
    /// `/metrics` without a key.
    pub public_metrics: bool,
    /// A token bucket per client address while the API is open.
    pub rate: Option<quarry_core::config::RateConfig>,
    /// The result cache's size; 0 turns it off.
    pub cache_bytes: usize,
    /// Coverage monitoring's thresholds, and whether low-score queries are kept.
    pub low_score: quarry_core::config::LowScore,
    pub query_log: bool,
    /// Hosts `/mcp` answers for on an open server, besides loopback.
    pub allowed_hosts: Vec<String>,
    /// Documents one batch write may carry.
    pub max_batch: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 64,
            public_metrics: false,
            rate: None,
            cache_bytes: 64 << 20,
            low_score: quarry_core::config::LowScore::default(),
            query_log: false,
            allowed_hosts: Vec::new(),
            max_batch: 100,
        }
    }
}

impl ServerSettings {
    /// `[server]` of `quarry.toml`.
    pub fn from_config(s: &ServerConfig, retrieval: &quarry_core::config::RetrievalConfig) -> Self {
        Self {
            max_body_bytes: s.max_body_bytes,
            request_timeout: Duration::from_secs(s.request_timeout_secs.max(1)),
            max_concurrency: s.max_concurrency.max(1),
            public_metrics: s.public_metrics,
            rate: s.rate,
            cache_bytes: s.cache_bytes,
            low_score: retrieval.low_score,
            query_log: s.query_log,
            allowed_hosts: s.allowed_hosts.clone(),
            max_batch: s.max_batch.max(1),
        }
    }
}

/// What handlers share.
#[derive(Debug)]
pub struct AppState {
    pub service: Arc<Service>,
    pub keys: Keys,
    pub settings: ServerSettings,
    inflight: Arc<tokio::sync::Semaphore>,
    metrics: metrics::Metrics,
    by_address: Option<limit::AddressBuckets>,
    cache: cache::ResultCache,
    coverage: coverage::Coverage,
}

impl AppState {
    pub fn new(service: Arc<Service>, keys: Keys, settings: ServerSettings) -> Self {
        let inflight = Arc::new(tokio::sync::Semaphore::new(settings.max_concurrency.max(1)));
        let by_address = settings
            .rate
            .filter(|r| r.validate("server.rate").is_ok())
            .map(|r| limit::AddressBuckets::new(&r));
        Self {
            by_address,
            cache: cache::ResultCache::new(settings.cache_bytes),
            coverage: coverage::Coverage::new(settings.low_score, settings.query_log),
            service,
            keys,
            settings,
            inflight,
            metrics: metrics::Metrics::new(),
        }
    }
}

type St = State<Arc<AppState>>;

#[derive(OpenApi)]
#[openapi(
    info(title = "Quarry", description = "Retrieval backend for LLM applications"),
    components(schemas(ErrorBody)),
    modifiers(&SecurityAddon),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The routes, with their OpenAPI description.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(search::search))
        .routes(routes!(search::context))
        .routes(routes!(status::collections, collections::create_collection))
        .routes(routes!(
            collections::get_collection,
            collections::delete_collection
        ))
        .routes(routes!(
            collections::list_documents,
            collections::post_documents
        ))
        .routes(routes!(status::collection_stats))
        .routes(routes!(
            documents::put_document,
            documents::get_document,
            documents::delete_document
        ))
        .routes(routes!(status::sources))
        .routes(routes!(jobs::start_sync))
        .routes(routes!(jobs::get_job))
        .routes(routes!(openai::embeddings))
        .routes(routes!(openai::models))
        .routes(routes!(rerank::rerank))
        .routes(routes!(status::healthz))
        .routes(routes!(status::livez))
        .routes(routes!(status::readyz))
        .routes(routes!(status::metrics_route))
}

/// The OpenAPI document of [`app`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    mcp_and_ui_paths(&mut doc);
    limit::document(&mut doc);
    doc.paths.paths.insert(
        "/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This OpenAPI document"))
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new().description("OpenAPI 3 JSON"),
                ),
        ),
    );
    doc
}

/// `/mcp` and `/ui` are not JSON routes of their own, but a client should
/// find them in the document all the same.
fn mcp_and_ui_paths(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{OperationBuilder, PathItem};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::{Content, HttpMethod, ObjectBuilder, Ref, ResponseBuilder, Type};
    let rpc = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("jsonrpc", ObjectBuilder::new().schema_type(Type::String))
        .property("id", ObjectBuilder::new())
        .property("method", ObjectBuilder::new().schema_type(Type::String))
        .property("params", ObjectBuilder::new().schema_type(Type::Object))
        .required("jsonrpc")
        .required("method")
        .build();
    let error = || Content::new(Some(Ref::from_schema_name("ErrorBody")));
    let mcp = OperationBuilder::new()
        .summary(Some("Model Context Protocol, streamable HTTP (stateless)"))
        .description(Some(
            "JSON-RPC 2.0 messages of MCP: initialize, tools/list, tools/call. Send              `Accept: application/json, text/event-stream`. Tools: search, context,              list_collections, get_document, sync_source (write scope).",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", Content::new(Some(rpc)))
                .required(Some(utoipa::openapi::Required::True))
                .build(),
        ))
        .response("200", ResponseBuilder::new().description("A JSON-RPC response"))
        .response("202", ResponseBuilder::new().description("A notification was accepted"))
        .response(
            "4XX",
            ResponseBuilder::new()
                .description(
                    "No valid key, or over a limit (JSON, as every route); or not a valid \
                     MCP request (the MCP library's plain-text answer)",
                )
                .content("application/json", error())
                .content("text/plain", Content::new(None::<Ref>)),
        );
    doc.paths
        .paths
        .insert("/mcp".into(), PathItem::new(HttpMethod::Post, mcp));
    let ui = OperationBuilder::new()
        .summary(Some("A page to try searches and context in a browser"))
        .security(utoipa::openapi::security::SecurityRequirement::default())
        .response(
            "200",
            ResponseBuilder::new()
                .description("HTML")
                .content("text/html", Content::new(None::<Ref>)),
        );
    doc.paths
        .paths
        .insert("/ui".into(), PathItem::new(HttpMethod::Get, ui));
}

/// The application: every route with its layers.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let (router, _) = routes().split_for_parts();
    let doc = Arc::new(openapi());
    let router = router.route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = Arc::clone(&doc);
            async move { Json(doc.as_ref().clone()) }
        }),
    );
    let router = router
        .merge(mcp::routes(Arc::clone(&state)))
        .merge(ui::routes());
    let settings = state.settings.clone();
    router
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NotFound(format!("no route {}; see /openapi.json", uri.path()))
        })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(format!(
                "method {method} is not allowed on this route; see /openapi.json"
            ))
        })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            limit::limit,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_key,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), shed))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), track))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|e: BoxError| async move {
                    if e.is::<tower::timeout::error::Elapsed>() {
                        ApiError::Timeout
                    } else {
                        ApiError::Internal(e.to_string())
                    }
                }))
                .timeout(settings.request_timeout),
        )
        .with_state(state)
}

/// Sheds load: beyond `max_concurrency` requests in flight, answer 503 at
/// once instead of queueing without bound. Health probes are never shed.
async fn shed(State(state): St, req: Request, next: Next) -> Response {
    if auth::is_probe(req.uri().path()) {
        return next.run(req).await;
    }
    match Arc::clone(&state.inflight).try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::Overloaded.into_response(),
    }
}

/// `Request-Timeout: MS`: the request's own deadline, at most the server's
/// `request_timeout_secs`. Past it the handler's future is dropped, which
/// abandons its work, and the answer is a 504.
async fn deadline(req: Request, next: Next) -> Response {
    let Some(value) = req.headers().get("request-timeout") else {
        return next.run(req).await;
    };
    let ms = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0);
    let Some(ms) = ms else {
        return ApiError::BadRequest(
            "Request-Timeout must be a whole number of milliseconds, at least 1".into(),
        )
        .into_response();
    };
    match tokio::time::timeout(Duration::from_millis(ms), next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Deadline(ms).into_response(),
    }
}

/// Per-route request counts and latency.
async fn track(State(state): St, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let key = resp
        .extensions()
        .get::<auth::Caller>()
        .map_or("anonymous", |c| c.name());
    state
        .metrics
        .observe(&route, &method, key, status, started.elapsed());
    if route != "/healthz" && route != "/livez" && route != "/readyz" {
        tracing::info!(target: "quarry::access", key, %method, route, status,
            ms = started.elapsed().as_millis() as u64, "request");
    }
    resp
}

/// Serves `app` on `listener` until Ctrl-C or SIGTERM, letting in-flight
/// requests finish.
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    // Client addresses, for the rate limit of an open API.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down; finishing in-flight requests");
}
