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
use crate::coverage::Best;
use crate::error::ApiError;

/// What the cache counts, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub stale: u64,
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
    /// Stale answers served while the store was unavailable.
    stale: AtomicU64,
    /// Each collection's last generation, to find its answers by while
    /// the store cannot say.
    generations: Mutex<std::collections::HashMap<String, String>>,
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

/// A kept answer, and its best hit for coverage monitoring.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub body: Bytes,
    pub best: Option<Best>,
}

/// What a cacheable route computes: its answer, whether it degraded, and
/// its best hit.
pub(crate) struct Answer<T> {
    pub body: T,
    pub degraded: Option<Degraded>,
    pub best: Option<Best>,
    /// Where a search's time went, for `Server-Timing`.
    pub timing: Option<quarry_engine::StageTimes>,
}

/// The route's request: what the cache keys on and coverage records.
pub(crate) struct Asked<'a, R> {
    pub route: &'a str,
    pub collection: &'a str,
    pub query: &'a str,
    pub mode: quarry_engine::Mode,
    pub request: &'a R,
}

/// An answer as JSON, with what the front end tells its caller about it.
#[derive(Debug)]
pub(crate) struct Served {
    pub body: Bytes,
    /// `hit` or `miss` when the answer was cacheable.
    pub cache: Option<&'static str>,
    /// Why the answer came from BM25 alone.
    pub degraded: Option<String>,
    /// `Server-Timing`: embed, store, rerank and total milliseconds of an
    /// answer that was computed (not one from the cache).
    pub timing: Option<String>,
}

impl IntoResponse for Served {
    fn into_response(self) -> Response {
        let mut resp = respond(self.body, self.cache);
        if let Some(v) = self.degraded.and_then(|r| HeaderValue::from_str(&r).ok()) {
            resp.headers_mut().insert("quarry-degraded", v);
        }
        if let Some(v) = self.timing.and_then(|t| HeaderValue::from_str(&t).ok()) {
            resp.headers_mut().insert("server-timing", v);
        }
        resp
    }
}

/// Answers `request` on `route` of `collection` from the cache (unless
/// `bypass`), or by running `work` and keeping what it returns. A degraded
/// answer is counted (a metric) and not kept. Every front end answers
/// search and context through here.
pub(crate) async fn serve_cached<T, R, Fut>(
    state: &AppState,
    asked: Asked<'_, R>,
    bypass: bool,
    work: Fut,
) -> Result<Served, ApiError>
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
    let request = match cache.enabled() {
        true => serde_json::to_value(asked.request).ok(),
        false => None,
    };
    // Where this answer is kept: under the generation, or, where the store
    // has none to give (a Qdrant server, or a store that just failed),
    // under the last one seen or `unversioned`. Only a generation's own
    // entries are ever served fresh; the others only stand in, marked
    // stale, when the store cannot answer.
    let standing = generation
        .clone()
        .or_else(|| cache.last_generation(asked.collection))
        .unwrap_or_else(|| "unversioned".into());
    let keep_key = match (cache.enabled(), &request) {
        (true, Some(r)) => Some(key(asked.route, &standing, r)),
        _ => None,
    };
    if let Some(g) = &generation {
        cache.saw_generation(asked.collection, g);
    }
    let fresh_key = generation.as_ref().and(keep_key.as_ref());
    if let Some(k) = fresh_key
        && !bypass
        && let Some(hit) = cache.get(k)
    {
        let coverage = &state.coverage;
        coverage.observe(asked.collection, asked.mode, asked.query, hit.best);
        return Ok(Served {
            body: hit.body,
            cache: Some("hit"),
            degraded: None,
            timing: None,
        });
    }
    let started = std::time::Instant::now();
    let answer = match work.await {
        Ok(answer) => answer,
        Err(ApiError::Unavailable(why)) => {
            // The store is unreachable: the last answer to this very
            // request beats a 503, as long as it says it is stale.
            let Some(stale) = keep_key.as_ref().and_then(|k| cache.peek(k)) else {
                return Err(ApiError::Unavailable(why));
            };
            tracing::warn!(collection = asked.collection, error = %why,
                "the store is unavailable; serving a stale cached answer");
            cache.stale.fetch_add(1, Ordering::Relaxed);
            return Ok(Served {
                body: marked_stale(&stale.body),
                cache: Some("stale"),
                degraded: None,
                timing: None,
            });
        }
        Err(e) => return Err(e),
    };
    let body = Bytes::from(
        serde_json::to_vec(&answer.body).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    let timing = answer
        .timing
        .map(|t| server_timing(&t, started.elapsed().as_secs_f64() * 1e3));
    // A degraded search was answered by BM25, on BM25's scale.
    let served = match answer.degraded {
        Some(_) => quarry_engine::Mode::Bm25,
        None => asked.mode,
    };
    let coverage = &state.coverage;
    coverage.observe(asked.collection, served, asked.query, answer.best);
    let marker = fresh_key.map(|_| "miss");
    let Some(degraded) = answer.degraded else {
        if let Some(k) = keep_key {
            let best = answer.best;
            cache.put(
                k,
                Cached {
                    body: body.clone(),
                    best,
                },
            );
        }
        return Ok(Served {
            body,
            cache: marker,
            degraded: None,
            timing,
        });
    };
    state.metrics.degraded(&degraded.reason);
    Ok(Served {
        body,
        cache: marker,
        degraded: Some(degraded.reason),
        timing,
    })
}

/// The W3C `Server-Timing` value: the stages that ran, then the whole
/// answer (search, ranking and JSON), so a client sees where its latency
/// went beyond the network (browsers show it in their developer tools).
fn server_timing(t: &quarry_engine::StageTimes, total_ms: f64) -> String {
    let mut parts = vec![
        format!("embed;dur={:.2}", t.embed_ms),
        format!("store;dur={:.2}", t.store_ms),
    ];
    if t.rerank_ms > 0.0 {
        parts.push(format!("rerank;dur={:.2}", t.rerank_ms));
    }
    parts.push(format!("total;dur={total_ms:.2}"));
    parts.join(", ")
}

/// A kept answer with `"stale": true` added, so a client that reads only
/// the body still knows.
fn marked_stale(body: &Bytes) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("stale".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&map)
                .map(Bytes::from)
                .unwrap_or_else(|_| body.clone())
        }
        _ => body.clone(),
    }
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
            stale: AtomicU64::new(0),
            generations: Mutex::default(),
        }
    }

    fn last_generation(&self, collection: &str) -> Option<String> {
        let seen = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(collection).cloned()
    }

    fn saw_generation(&self, collection: &str, generation: &str) {
        let mut seen = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(collection).map(String::as_str) != Some(generation) {
            seen.insert(collection.to_string(), generation.to_string());
        }
    }

    /// An entry, without counting a hit or a miss.
    fn peek(&self, key: &str) -> Option<Cached> {
        self.lock().entries.peek(key).cloned()
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
            stale: self.stale.load(Ordering::Relaxed),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod stale_tests {
    use std::sync::Arc;

    use super::*;
    use quarry_engine::testing::{TestIndex, write_tree};

    #[derive(Serialize)]
    struct Request {
        query: &'static str,
    }

    fn asked(request: &Request) -> Asked<'_, Request> {
        Asked {
            route: "search",
            collection: "docs",
            query: request.query,
            mode: quarry_engine::Mode::Bm25,
            request,
        }
    }

    async fn answer(text: &str) -> Result<Answer<serde_json::Value>, ApiError> {
        Ok(Answer {
            body: serde_json::json!({ "hits": [text] }),
            degraded: None,
            best: Some(Best {
                score: 1.0,
                relevance: 1.0,
            }),
            timing: None,
        })
    }

    async fn unavailable() -> Result<Answer<serde_json::Value>, ApiError> {
        Err(ApiError::Unavailable(
            "the vector store at http://q:6334 is unreachable".into(),
        ))
    }

    /// With a real store and service: an answer kept under the collection's
    /// generation stands in, marked stale, when the store cannot answer;
    /// a request never answered before still gets the 503.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_store_gets_the_last_answer_marked_stale_before_any_503() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, &[("a.md", "# A\n\nThe aardvark appendix.\n")]);
        let index = TestIndex::open(&dir.path().join("data"), 64, 0);
        index.sync_dir("docs", &tree).await;
        let service = index.service_with(vec![], 1 << 20);
        let state = Arc::new(AppState::new(
            service,
            crate::Keys::default(),
            crate::ServerSettings::default(),
        ));
        let asked_once = Request { query: "aardvark" };
        let first = serve_cached(&state, asked(&asked_once), false, answer("fresh"))
            .await
            .unwrap();
        assert_eq!(first.cache, Some("miss"));

        let stale = serve_cached(&state, asked(&asked_once), true, unavailable())
            .await
            .unwrap();
        assert_eq!(stale.cache, Some("stale"));
        let body: serde_json::Value = serde_json::from_slice(&stale.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "hits": ["fresh"], "stale": true })
        );
        let resp = stale.into_response();
        assert_eq!(resp.headers()["quarry-cache"], "stale");
        assert_eq!(state.cache.stats().stale, 1);

        let never = Request { query: "bison" };
        let err = serve_cached(&state, asked(&never), false, unavailable()).await;
        assert!(matches!(err, Err(ApiError::Unavailable(_))), "{err:?}");
    }
}
