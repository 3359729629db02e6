//! API keys with read and write scopes.
//!
//! Keys are compared as sha256 digests in constant time, so neither a key's
//! content nor its length leaks through timing, and keys are never logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

#[derive(Clone, Default)]
pub struct Keys {
    read: Vec<[u8; 32]>,
    write: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keys({} read, {} write)",
            self.read.len(),
            self.write.len()
        )
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Keys {
    pub fn new<'a>(
        read: impl IntoIterator<Item = &'a str>,
        write: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let clean = |k: &&str| !k.trim().is_empty();
        Self {
            read: read
                .into_iter()
                .filter(clean)
                .map(|k| digest(k.trim()))
                .collect(),
            write: write
                .into_iter()
                .filter(clean)
                .map(|k| digest(k.trim()))
                .collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.read.is_empty() || !self.write.is_empty()
    }

    fn matches(list: &[[u8; 32]], d: &[u8; 32]) -> bool {
        // Check every key, so timing does not reveal which one matched.
        list.iter()
            .fold(false, |found, k| found | bool::from(k.ct_eq(d)))
    }
}

/// Writes: changing documents and starting syncs.
fn needs_write(method: &Method, path: &str) -> bool {
    matches!(*method, Method::PUT | Method::DELETE | Method::PATCH)
        || path.starts_with("/v1/sources/")
}

pub(crate) async fn require_key(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let keys = &state.keys;
    let path = req.uri().path();
    // Two credentials are ambiguous: proxies and servers disagree on which
    // one counts, which is how one slips past a check.
    if req
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return ApiError::BadRequest("send one Authorization header, not several".into())
            .into_response();
    }
    if !keys.enabled() || path == "/healthz" {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::Unauthorized.into_response();
    };
    let d = digest(token);
    let can_write = Keys::matches(&keys.write, &d);
    let can_read = can_write | Keys::matches(&keys.read, &d);
    if !can_read {
        return ApiError::Unauthorized.into_response();
    }
    if needs_write(req.method(), path) && !can_write {
        return ApiError::Forbidden.into_response();
    }
    next.run(req).await
}

/// Declares the bearer scheme in the OpenAPI document.
pub(crate) struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Quarry API key"))
                    .build(),
            ),
        );
    }
}
