//! Quarry's HTTP API.
//!
//! Handlers are thin: they validate input, call the engine's one
//! [`Retriever`], and map results to JSON. Errors become responses in one
//! place ([`error`]); authentication, body limits, timeouts and load
//! shedding are layers around the whole router, so no route can forget them.
//! The OpenAPI document is generated from the same route declarations that
//! build the router, so the two cannot disagree.

pub mod api;
mod auth;
pub mod error;
mod metrics;
pub mod writes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Json};
use quarry_core::CollectionName;
use quarry_engine::context::{self, ContextOptions, TokenCounter};
use quarry_engine::{Retriever, SearchOptions};
use tower::ServiceBuilder;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use api::*;
pub use auth::Keys;
use auth::SecurityAddon;
use error::{ApiError, ErrorBody};

/// Limits and defaults of the server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_concurrency: usize,
    pub max_top_k: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 64,
            max_top_k: 1000,
        }
    }
}

/// What handlers share.
pub struct AppState {
    pub retriever: Retriever,
    pub counter: TokenCounter,
    pub keys: Keys,
    pub settings: ServerSettings,
    /// Document writes and sync jobs; `None` serves read-only.
    pub writer: Option<writes::Writer>,
    inflight: Arc<tokio::sync::Semaphore>,
    metrics: metrics::Metrics,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish()
    }
}

impl AppState {
    pub fn new(
        retriever: Retriever,
        counter: TokenCounter,
        keys: Keys,
        settings: ServerSettings,
    ) -> Self {
        let inflight = Arc::new(tokio::sync::Semaphore::new(settings.max_concurrency.max(1)));
        Self {
            retriever,
            counter,
            keys,
            settings,
            writer: None,
            inflight,
            metrics: metrics::Metrics::new(),
        }
    }

    pub fn with_writer(mut self, writer: writes::Writer) -> Self {
        self.writer = Some(writer);
        self
    }
}

type St = State<Arc<AppState>>;

/// JSON bodies whose rejections go through [`ApiError`].
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(Json::<T>::from_request(req, state).await?.0))
    }
}

/// Path parameters whose rejections (a name that breaks the naming rule, a
/// `%FF` that is not UTF-8) go through [`ApiError`], so they get the one JSON
/// error shape too.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

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
        .routes(routes!(search))
        .routes(routes!(context_route))
        .routes(routes!(collections))
        .routes(routes!(
            writes::put_document,
            writes::get_document,
            writes::delete_document
        ))
        .routes(routes!(writes::start_sync))
        .routes(routes!(writes::get_job))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_route))
}

/// The OpenAPI document of [`app`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
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
            auth::require_key,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), shed))
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
/// once instead of queueing without bound. Health checks are never shed.
async fn shed(State(state): St, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    match Arc::clone(&state.inflight).try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::Overloaded.into_response(),
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
    state
        .metrics
        .observe(&route, &method, resp.status().as_u16(), started.elapsed());
    resp
}

fn search_options(
    state: &AppState,
    top_k: Option<usize>,
    mode: ModeBody,
    filter: FilterBody,
    threshold: Option<f32>,
    per_doc: Option<usize>,
) -> Result<SearchOptions, ApiError> {
    let top_k = top_k.unwrap_or(10);
    if top_k == 0 || top_k > state.settings.max_top_k {
        return Err(ApiError::BadRequest(format!(
            "top_k must be between 1 and {}",
            state.settings.max_top_k
        )));
    }
    if per_doc == Some(0) {
        return Err(ApiError::BadRequest(
            "per_doc_limit must be at least 1".into(),
        ));
    }
    if threshold.is_some_and(|t| !t.is_finite()) {
        return Err(ApiError::BadRequest(
            "score_threshold must be a finite number".into(),
        ));
    }
    Ok(SearchOptions {
        mode: mode.into(),
        top_k,
        filter: filter.into_filter().map_err(ApiError::BadRequest)?,
        score_threshold: threshold,
        per_doc_limit: per_doc,
    })
}

/// Search a collection.
#[utoipa::path(post, path = "/v1/collections/{name}/search", request_body = SearchBody,
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = SearchResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn search(
    State(state): St,
    ApiPath(name): ApiPath<CollectionName>,
    JsonBody(body): JsonBody<SearchBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    let options = search_options(
        &state,
        body.top_k,
        body.mode,
        body.filter,
        body.score_threshold,
        body.per_doc_limit,
    )?;
    let hits = state.retriever.search(&name, &body.query, &options).await?;
    Ok(Json(SearchResponse {
        hits: hits.into_iter().map(HitBody::from).collect(),
    }))
}

/// Token-budgeted grounding context with citations.
#[utoipa::path(post, path = "/v1/collections/{name}/context", request_body = ContextBody,
    params(("name" = String, Path, description = "Collection", pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")),
    responses((status = 200, body = ContextResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn context_route(
    State(state): St,
    ApiPath(name): ApiPath<CollectionName>,
    JsonBody(body): JsonBody<ContextBody>,
) -> Result<Json<ContextResponse>, ApiError> {
    if body.max_tokens == 0 || body.max_tokens > 1_000_000 {
        return Err(ApiError::BadRequest(
            "max_tokens must be between 1 and 1000000".into(),
        ));
    }
    if body.per_doc_limit == Some(0) {
        return Err(ApiError::BadRequest(
            "per_doc_limit must be at least 1".into(),
        ));
    }
    let search = search_options(
        &state,
        Some(body.candidates.unwrap_or(50)),
        body.mode,
        body.filter,
        body.score_threshold,
        None,
    )?;
    let options = ContextOptions {
        search,
        max_tokens: body.max_tokens,
        per_doc_limit: body.per_doc_limit,
    };
    let ctx = context::build(
        &state.retriever,
        &state.counter,
        &name,
        &body.query,
        &options,
    )
    .await?;
    Ok(Json(ContextResponse {
        text: ctx.text,
        passages: ctx.passages.into_iter().map(PassageBody::from).collect(),
        tokens: ctx.tokens,
        max_tokens: ctx.max_tokens,
    }))
}

/// Collections with their model, dimension, documents and points.
#[utoipa::path(get, path = "/v1/collections", responses((status = 200, body = CollectionsResponse), (status = "4XX", body = ErrorBody)))]
async fn collections(State(state): St) -> Result<Json<CollectionsResponse>, ApiError> {
    let store = Arc::clone(state.retriever.store());
    let infos = tokio::task::spawn_blocking(
        move || -> Result<Vec<CollectionInfo>, quarry_store::StoreError> {
            let mut out = Vec::new();
            for name in store.list_collections()? {
                let Some(spec) = store.collection_spec(&name)? else {
                    continue;
                };
                let (docs, points) = quarry_store::count_documents(store.as_ref(), &name)?;
                out.push(CollectionInfo {
                    name,
                    model: spec.model,
                    dimension: spec.dimension,
                    documents: docs,
                    points,
                });
            }
            Ok(out)
        },
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::from(quarry_engine::EngineError::from(e)))?;
    Ok(Json(CollectionsResponse { collections: infos }))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = HealthResponse)))]
async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Readiness: the model answers and the store opens.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = ReadyResponse), (status = 401, body = ErrorBody), (status = 503, body = ReadyResponse)))]
async fn readyz(State(state): St) -> Response {
    let model_loaded = state
        .retriever
        .embedder()
        .count_tokens("ready", quarry_embed::InputKind::Query)
        .is_ok();
    let store = Arc::clone(state.retriever.store());
    let store_result = tokio::task::spawn_blocking(move || store.list_collections()).await;
    let (store_open, message) = match store_result {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(e) => (false, Some(e.to_string())),
    };
    let ready = model_loaded && store_open;
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyResponse {
            ready,
            model_loaded,
            store_open,
            message,
        }),
    )
        .into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "OpenMetrics text format", content_type = "application/openmetrics-text"), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn metrics_route(State(state): St) -> Result<Response, ApiError> {
    let stats = state.retriever.embedder().stats();
    let store = Arc::clone(state.retriever.store());
    let per_collection = tokio::task::spawn_blocking(move || -> Vec<(String, usize, usize)> {
        let names = store.list_collections().unwrap_or_default();
        names
            .into_iter()
            .filter_map(|n| {
                quarry_store::count_documents(store.as_ref(), &n)
                    .ok()
                    .map(|(d, p)| (n, d, p))
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut body = state.metrics.render(&stats, &per_collection);
    if let Some(w) = &state.writer {
        metrics::render_sync(&mut body, w);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Serves `app` on `listener` until Ctrl-C or SIGTERM, letting in-flight
/// requests finish.
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app)
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
