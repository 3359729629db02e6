//! API keys: named keys with scopes, tenants and rate limits, and the
//! unnamed keys of `QUARRY_READ_KEYS` and `QUARRY_WRITE_KEYS`.
//!
//! Keys are compared as sha256 digests in constant time, so neither a key's
//! content nor its length leaks through timing; a key's secret is never
//! logged, and its name labels what it did. Probes (`/healthz`, `/livez`,
//! `/readyz`) never need a key, as orchestrators expect; `/metrics` needs an
//! admin key unless `server.public_metrics` is set.
//!
//! A key limited to some collections sees only those: every other one
//! answers 404, exactly as one that does not exist, so a tenant cannot learn
//! another's collection names.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use globset::{Glob, GlobSet, GlobSetBuilder};
use quarry_core::config::{RateConfig, Scope, ServerConfig};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;
use crate::limit::KeyBucket;

/// One accepted key.
#[derive(Debug)]
struct Entry {
    /// `None` for the unnamed keys of `QUARRY_*_KEYS`.
    name: Option<String>,
    digest: [u8; 32],
    scope: Scope,
    collections: Option<Arc<GlobSet>>,
    bucket: Option<Arc<KeyBucket>>,
}

#[derive(Clone, Default)]
pub struct Keys {
    entries: Arc<Vec<Entry>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} keys)", self.entries.len())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Who is calling: what the auth layer found, for the handlers and the
/// rate limiter.
#[derive(Debug, Clone)]
pub struct Caller {
    name: Arc<str>,
    scope: Scope,
    collections: Option<Arc<GlobSet>>,
    /// Index into the keys, for the key's bucket.
    key: Option<usize>,
    /// An unnamed key, which keeps every right it had before named keys.
    legacy: bool,
}

impl Caller {
    /// The caller of an open API: may do everything.
    pub fn open() -> Self {
        Self {
            name: Arc::from("anonymous"),
            scope: Scope::Admin,
            collections: None,
            key: None,
            legacy: false,
        }
    }

    /// The key's name (`unnamed` for `QUARRY_*_KEYS`, `anonymous` when the
    /// API is open); never its secret.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the caller may change documents and start syncs.
    pub fn may_write(&self) -> bool {
        self.scope >= Scope::Write
    }

    /// Whether the collection exists for this caller.
    pub fn sees(&self, collection: &str) -> bool {
        self.collections
            .as_ref()
            .is_none_or(|set| set.is_match(collection))
    }

    /// A 404 for a collection this caller may not see, worded as the one
    /// for a collection that does not exist.
    pub fn check(&self, collection: &str) -> Result<(), ApiError> {
        if self.sees(collection) {
            Ok(())
        } else {
            Err(crate::error::no_collection(collection))
        }
    }
}

impl Keys {
    /// Unnamed keys only, as `QUARRY_READ_KEYS` and `QUARRY_WRITE_KEYS`
    /// give them.
    pub fn new<'a>(
        read: impl IntoIterator<Item = &'a str>,
        write: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self::build(read, write, &[], None).unwrap_or_default()
    }

    /// Every key `[server]` configures; an error names the key and field.
    pub fn from_config(s: &ServerConfig) -> Result<Self, String> {
        Self::build(
            s.read_keys.iter().map(String::as_str),
            s.write_keys.iter().map(String::as_str),
            &s.keys,
            s.rate.as_ref(),
        )
    }

    fn build<'a>(
        read: impl IntoIterator<Item = &'a str>,
        write: impl IntoIterator<Item = &'a str>,
        named: &[quarry_core::config::KeyConfig],
        default_rate: Option<&RateConfig>,
    ) -> Result<Self, String> {
        let bucket = |rate: Option<&RateConfig>, what: &str| -> Result<_, String> {
            rate.map(|r| {
                r.validate(what)
                    .map(|()| Arc::new(KeyBucket::new(r)))
                    .map_err(|e| e.to_string())
            })
            .transpose()
        };
        let mut entries = Vec::new();
        let unnamed: Vec<(&str, Scope)> = read
            .into_iter()
            .map(|k| (k, Scope::Read))
            .chain(write.into_iter().map(|k| (k, Scope::Write)))
            .collect();
        for (k, scope) in unnamed {
            let k = k.trim();
            if k.is_empty() {
                continue;
            }
            entries.push(Entry {
                name: None,
                digest: digest(k),
                scope,
                collections: None,
                // Each unnamed key a bucket of its own, at the default rate.
                bucket: bucket(default_rate, "server.rate")?,
            });
        }
        for k in named {
            let collections = if k.collections.is_empty() {
                None
            } else {
                let mut set = GlobSetBuilder::new();
                for pattern in &k.collections {
                    set.add(Glob::new(pattern).map_err(|e| {
                        format!(
                            "[[server.keys]] {:?}: collections pattern {pattern:?}: {e}",
                            k.name
                        )
                    })?);
                }
                Some(Arc::new(set.build().map_err(|e| e.to_string())?))
            };
            let what = format!("[[server.keys]] {:?}: rate", k.name);
            entries.push(Entry {
                name: Some(k.name.clone()),
                digest: k.secret_digest().map_err(|e| e.to_string())?,
                scope: k.scope(),
                collections,
                bucket: bucket(k.rate.as_ref().or(default_rate), &what)?,
            });
        }
        Ok(Self {
            entries: Arc::new(entries),
        })
    }

    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The entry whose digest is `d`. Every key is compared, so timing does
    /// not reveal which one matched.
    fn find(&self, d: &[u8; 32]) -> Option<usize> {
        self.entries.iter().enumerate().fold(None, |found, (i, e)| {
            let hit = bool::from(e.digest.ct_eq(d));
            if hit && found.is_none() {
                Some(i)
            } else {
                found
            }
        })
    }

    fn caller(&self, i: usize) -> Caller {
        let e = &self.entries[i];
        Caller {
            name: Arc::from(e.name.as_deref().unwrap_or("unnamed")),
            scope: e.scope,
            collections: e.collections.clone(),
            key: Some(i),
            legacy: e.name.is_none(),
        }
    }

    /// The rate limiter of the caller's key, if it has one.
    pub(crate) fn bucket(&self, caller: &Caller) -> Option<&KeyBucket> {
        self.entries.get(caller.key?)?.bucket.as_deref()
    }
}

/// Health probes: never a key, never a rate limit, never shed.
pub(crate) fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

/// What a request needs: writes change documents or start syncs.
fn needs(method: &Method, path: &str) -> Scope {
    if path == "/metrics" {
        Scope::Admin
    } else if matches!(*method, Method::PUT | Method::DELETE | Method::PATCH)
        || path.starts_with("/v1/sources/")
        // Creating a collection, and batch writes of documents.
        || (*method == Method::POST
            && (path == "/v1/collections" || path.ends_with("/documents")))
    {
        Scope::Write
    } else {
        Scope::Read
    }
}

pub(crate) async fn require_key(
    State(state): State<Arc<AppState>>,
    mut req: Request,
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
    let open = !keys.enabled()
        || is_probe(path)
        || crate::ui::is_ui(path)
        || (path == "/metrics" && state.settings.public_metrics);
    if open {
        req.extensions_mut().insert(Caller::open());
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
    let Some(caller) = token
        .and_then(|t| keys.find(&digest(t)))
        .map(|i| keys.caller(i))
    else {
        return ApiError::Unauthorized.into_response();
    };
    let needed = needs(req.method(), path);
    // Unnamed keys read metrics as they always could.
    let allowed = caller.scope >= needed || (needed == Scope::Admin && caller.legacy);
    if !allowed {
        return ApiError::Forbidden(match needed {
            Scope::Admin => "this API key may not read metrics; use a key with the admin scope",
            _ => "this API key may not write; use a key with the write scope",
        })
        .into_response();
    }
    req.extensions_mut().insert(caller.clone());
    let mut resp = next.run(req).await;
    // For the access log and the per-key metrics, which run outside.
    resp.extensions_mut().insert(caller);
    resp
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
