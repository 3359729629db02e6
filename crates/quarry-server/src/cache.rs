//! A result cache that is never stale.
//!
//! Search and context answers are cached under the collection's
//! generation (see `VectorStore::generation`) and the normalised request,
//! so any publish, delete, update or alias switch makes the very next
//! request a miss: nothing is ever invalidated, old entries just stop
//! being asked for and age out. Where the store has no cheap generation (a
//! Qdrant server other replicas write to), nothing is cached. The cache is
//! bounded in bytes, least recently used first out. `Cache-Control:
//! no-cache` bypasses it; every cacheable answer says `Quarry-Cache: hit`
//! or `miss`. Degraded answers are not cached: the next request may do
//! better.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use quarry_engine::Degraded;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

/// What the cache counts, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

#[derive(Debug)]
struct Inner {
    entries: lru::LruCache<String, Cached>,
    bytes: usize,
}

#[derive(Debug)]
pub(crate) struct ResultCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

/// The request's own say: `Cache-Control: no-cache` (or `no-store`).
pub(crate) fn bypassed(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|d| {
                matches!(
                    d.trim().to_ascii_lowercase().as_str(),
                    "no-cache" | "no-store"
                )
            })
        })
}

/// The cache key: the route, the generation, and the request as JSON with
/// its keys sorted, the query's spacing collapsed and the deadline left
/// out (it does not change the answer).
pub(crate) fn key(route: &str, generation: &str, body: &serde_json::Value) -> String {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("timeout_ms");
        if let Some(serde_json::Value::String(q)) = map.get_mut("query") {
            *q = q.split_whitespace().collect::<Vec<_>>().join(" ");
        }
    }
    format!("{route}\u{0}{generation}\u{0}{}", sorted(body))
}

/// `v` with every object's keys in order (serde_json keeps insertion order
/// here, as a workspace dependency asks for it), so equal requests print
/// alike.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// A JSON answer; `Quarry-Cache` when it was cacheable.
fn respond(body: Bytes, cache: Option<&'static str>) -> Response {
    let mut resp = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(state) = cache {
        resp.headers_mut()
            .insert("quarry-cache", HeaderValue::from_static(state));
    }
    resp
}

/// A kept answer, and its best score for coverage monitoring.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub body: Bytes,
    pub best: Option<f32>,
}

/// What a cacheable route computes: its answer, whether it degraded, and
/// its best hit's score.
pub(crate) struct Answer<T> {
    pub body: T,
    pub degraded: Option<Degraded>,
    pub best: Option<f32>,
}

/// The route's request: what the cache keys on and coverage records.
pub(crate) struct Asked<'a, R> {
    pub route: &'a str,
    pub collection: &'a str,
    pub query: &'a str,
    pub mode: quarry_engine::Mode,
    pub request: &'a R,
}

/// Answers `request` on `route` of `collection` from the cache, or by
/// running `work` and keeping what it returns. A degraded answer is marked
/// (`Quarry-Degraded`, a metric) and not kept.
pub(crate) async fn cached<T, R, Fut>(
    state: &AppState,
    asked: Asked<'_, R>,
    headers: &HeaderMap,
    work: Fut,
) -> Result<Response, ApiError>
where
    T: Serialize,
    R: Serialize,
    Fut: std::future::Future<Output = Result<Answer<T>, ApiError>>,
{
    let cache = &state.cache;
    let generation = match cache.enabled() {
        true => state.service.generation(asked.collection).await,
        false => None,
    };
    let key = generation.and_then(|g| {
        let request = serde_json::to_value(asked.request).ok()?;
        Some(key(asked.route, &g, &request))
    });
    if let Some(k) = &key
        && !bypassed(headers)
        && let Some(hit) = cache.get(k)
    {
        let coverage = &state.coverage;
        coverage.observe(asked.collection, asked.mode, asked.query, hit.best);
        return Ok(respond(hit.body, Some("hit")));
    }
    let answer = work.await?;
    let body = Bytes::from(
        serde_json::to_vec(&answer.body).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    // A degraded search was answered by BM25, on BM25's scale.
    let served = match answer.degraded {
        Some(_) => quarry_engine::Mode::Bm25,
        None => asked.mode,
    };
    let coverage = &state.coverage;
    coverage.observe(asked.collection, served, asked.query, answer.best);
    let marker = key.as_ref().map(|_| "miss");
    let Some(degraded) = answer.degraded else {
        if let Some(k) = key {
            let best = answer.best;
            cache.put(
                k,
                Cached {
                    body: body.clone(),
                    best,
                },
            );
        }
        return Ok(respond(body, marker));
    };
    state.metrics.degraded(&degraded.reason);
    let mut resp = respond(body, marker);
    if let Ok(v) = HeaderValue::from_str(&degraded.reason) {
        resp.headers_mut().insert("quarry-degraded", v);
    }
    Ok(resp)
}

impl ResultCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Cached> {
        let found = self.lock().entries.get(key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `body` under `key`, evicting the least recently used entries
    /// until everything fits; a body larger than the whole cache is not
    /// kept.
    pub fn put(&self, key: String, entry: Cached) {
        let size = key.len() + entry.body.len();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.put(key.clone(), entry) {
            inner.bytes -= key.len() + old.body.len();
        }
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some((k, v)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes -= k.len() + v.body.len();
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes: self.lock().bytes as u64,
            max_bytes: self.max_bytes as u64,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_spacing_order_and_deadlines_but_not_generations() {
        let a = serde_json::json!({"query": "  rotate   keys ", "top_k": 5, "timeout_ms": 9});
        let b = serde_json::json!({"top_k": 5, "query": "rotate keys"});
        assert_eq!(key("search", "g1", &a), key("search", "g1", &b));
        assert_ne!(key("search", "g1", &a), key("search", "g2", &a));
        assert_ne!(key("search", "g1", &a), key("context", "g1", &a));
        let mut h = HeaderMap::new();
        assert!(!bypassed(&h));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, No-Cache"),
        );
        assert!(bypassed(&h));
    }

    fn entry(bytes: usize) -> Cached {
        Cached {
            body: Bytes::from(vec![0; bytes]),
            best: None,
        }
    }

    #[test]
    fn the_cache_stays_within_its_bytes_evicting_the_oldest() {
        let c = ResultCache::new(100);
        c.put("a".into(), entry(40));
        c.put("b".into(), entry(40));
        assert!(c.get("a").is_some());
        // "b" is now the least recently used.
        c.put("c".into(), entry(40));
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        let s = c.stats();
        assert!(s.bytes <= 100, "{s:?}");
        assert_eq!((s.evictions, s.hits, s.misses), (1, 3, 1));
        c.put("huge".into(), entry(500));
        assert!(c.get("huge").is_none());
    }
}
