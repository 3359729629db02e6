//! `/ui`: a page to try Quarry in a browser, served from the binary.
//!
//! Three files compiled in (`include_str!`): no CDN, no build step, and a
//! strict Content-Security-Policy, since the page handles an API key. The
//! page itself needs no key (it holds no data); it calls the JSON API like
//! any client, and asks for a key only when the API answers 401, keeping it
//! in `sessionStorage`, so it lives as long as the tab.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Paths the page is made of: they need no key.
pub(crate) fn is_ui(path: &str) -> bool {
    matches!(
        path,
        "/ui" | "/ui/" | "/ui/app.js" | "/ui/app.css" | "/ui/config.json"
    )
}

pub(crate) fn routes() -> axum::Router<Arc<AppState>> {
    let index = || async { asset(INDEX, "text/html; charset=utf-8") };
    axum::Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route(
            "/ui/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/ui/config.json", get(config))
}

/// Whether the page must ask for a key before its first call: asking the
/// API and getting a 401 would work too, but leaves an error in the
/// browser's console on every visit.
async fn config(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys_required": state.keys.enabled() }))
}
