//! The HTTP API with the real model and a real on-disk shard: `oneshot`
//! through the router, and once over real HTTP on loopback.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use quarry_core::config::SourceConfig;
use quarry_engine::testing::{TestIndex, write_tree};
use quarry_server::{AppState, Keys, ServerSettings, app};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    router: axum::Router,
    // Last: the store flushes into this directory when dropped.
    _dir: tempfile::TempDir,
}

async fn fixture(keys: Keys) -> Fixture {
    fixture_with(
        keys,
        ServerSettings {
            max_body_bytes: 4096,
            ..ServerSettings::default()
        },
    )
    .await
}

async fn fixture_with(keys: Keys, server_settings: ServerSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(
        &tree,
        &[
            (
                "guide/sync.md",
                "---\ntags: [ops]\n---\n# Sync\n\nIncremental sync skips unchanged documents.\n\n## Crashes\n\nA killed sync resumes cleanly.\n",
            ),
            ("notes.txt", "Hybrid search fuses BM25 and dense rankings."),
        ],
    );
    let index = TestIndex::open(&dir.path().join("data"), 64, 0);
    index.sync_dir("docs", &tree).await;
    // A file the sync-job test expects to be picked up later.
    write_tree(
        &tree,
        &[(
            "later.md",
            "# Later\n\nAdded after the first sync: the ocelot appendix.\n",
        )],
    );
    let service = index.service_with(vec![SourceConfig::fs("docs", &tree)], 1 << 20);
    let state = AppState::new(service, keys, server_settings);
    Fixture {
        router: app(Arc::new(state)),
        _dir: dir,
    }
}

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    raw(router, req).await
}

/// A POST of a JSON body, without a key.
async fn post(router: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    call(router, "POST", uri, Some(body), None).await
}

/// The status of a request with no body.
async fn status(router: &axum::Router, method: &str, uri: &str, key: Option<&str>) -> StatusCode {
    call(router, method, uri, None, key).await.0
}

const SEARCH: &str = "/v1/collections/docs/search";
const CONTEXT: &str = "/v1/collections/docs/context";

async fn raw(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

fn assert_error_shape(v: &Value) {
    assert!(
        v["error"]["code"].is_string()
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_mode_with_real_model_and_shard() {
    let f = fixture(Keys::default()).await;
    for mode in ["dense", "bm25", "hybrid"] {
        let body = json!({"query": "killed sync", "mode": mode, "top_k": 3});
        let (s, v) = post(&f.router, SEARCH, body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let hits = v["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "{mode}: {v}");
        assert_eq!(hits[0]["doc_id"], "guide/sync.md", "{mode}: {v}");
        for field in ["doc_id", "chunk_id", "score", "text", "uri"] {
            assert!(!hits[0][field].is_null(), "{field} missing: {v}");
        }
    }
    let tagged = json!({"query": "search", "filter": {"tags": ["ops"]}});
    let (s, v) = post(&f.router, SEARCH, tagged).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["doc_id"] == "guide/sync.md"),
        "{v}"
    );
    let context = json!({"query": "what happens to a killed sync", "max_tokens": 60});
    let (s, v) = post(&f.router, CONTEXT, context).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["tokens"].as_u64().unwrap() <= 60 && v["text"].as_str().unwrap().contains("[1]"),
        "{v}"
    );
    let (s, v) = call(&f.router, "GET", "/v1/collections", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["collections"][0]["name"], "docs");
    assert_eq!(v["collections"][0]["documents"], 2);
    assert_eq!(v["collections"][0]["dimension"], 384);
    assert_eq!(
        status(&f.router, "GET", "/healthz", None).await,
        StatusCode::OK
    );
    let (s, v) = call(&f.router, "GET", "/readyz", None, None).await;
    assert_eq!((s, v["ready"].clone()), (StatusCode::OK, Value::Bool(true)));
    let (s, v) = call(&f.router, "GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    for metric in [
        "quarry_http_requests_total{route=\"/v1/collections/{name}/search\"",
        "quarry_http_request_duration_seconds_bucket",
        "quarry_embed_queue_depth",
        "quarry_embed_tokens_total",
        "quarry_collection_points{collection=\"docs\"} ",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_with_the_error_shape() {
    let f = fixture(Keys::default()).await;
    let bad_requests = [
        (SEARCH, json!({"query": "x", "top_k": 1_000_000})),
        (SEARCH, json!({"query": "   "})),
        (SEARCH, json!({"query": "x", "top_k": 0})),
        (SEARCH, json!({"query": "x", "filter": {"colour": "red"}})),
        (SEARCH, json!({"query": "x", "mode": "fuzzy"})),
        (SEARCH, json!({"query": 42})),
        (SEARCH, json!({"query": "x", "extra": 1})),
        (CONTEXT, json!({"query": "x", "max_tokens": 0})),
        (CONTEXT, json!({"query": "x"})),
        (
            SEARCH,
            json!({"query": "x", "filter": {"metadata": {"a": [1]}}}),
        ),
    ];
    let cases = bad_requests
        .into_iter()
        .map(|(uri, body)| (uri, body, StatusCode::BAD_REQUEST))
        .chain([(
            "/v1/collections/nope/search",
            json!({"query": "x"}),
            StatusCode::NOT_FOUND,
        )]);
    for (uri, body, want) in cases {
        let (s, v) = post(&f.router, uri, body.clone()).await;
        assert_eq!(s, want, "{uri} {body}: {v}");
        assert_error_shape(&v);
    }
    // Garbage JSON, a missing content type, and an oversized body.
    let garbage = Request::post("/v1/collections/docs/search")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (s, v) = raw(&f.router, garbage).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(&v);
    let no_type = Request::post("/v1/collections/docs/search")
        .body(Body::from("{\"query\": \"x\"}"))
        .unwrap();
    let (s, v) = raw(&f.router, no_type).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_shape(&v);
    let big = json!({"query": "x".repeat(10_000)});
    let (s, v) = post(&f.router, SEARCH, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_error_shape(&v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_route_but_health() {
    let f = fixture(Keys::new(["reader"], ["writer"])).await;
    let body = || Some(json!({"query": "sync"}));
    let (s, v) = call(&f.router, "POST", SEARCH, body(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error_shape(&v);
    for (key, want) in [
        ("wrong", StatusCode::UNAUTHORIZED),
        ("reader", StatusCode::OK),
        ("writer", StatusCode::OK),
    ] {
        let s = call(&f.router, "POST", SEARCH, body(), Some(key)).await.0;
        assert_eq!(s, want, "search with key {key:?}");
    }
    for (uri, want) in [
        ("/v1/collections", StatusCode::UNAUTHORIZED),
        ("/metrics", StatusCode::UNAUTHORIZED),
        ("/healthz", StatusCode::OK),
        ("/livez", StatusCode::OK),
        ("/readyz", StatusCode::OK),
    ] {
        assert_eq!(status(&f.router, "GET", uri, None).await, want, "{uri}");
    }
    // Unnamed keys read metrics, as they always could.
    assert_eq!(
        status(&f.router, "GET", "/metrics", Some("reader")).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_loopback_http_works() {
    let f = fixture(Keys::default()).await;
    let (s, doc) = call(&f.router, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for route in [
        "/v1/collections/{name}/search",
        "/v1/collections/{name}/context",
        "/v1/collections/{name}/documents/{id}",
        "/v1/sources/{name}/sync",
        "/v1/jobs/{id}",
        "/v1/collections",
        "/healthz",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/embeddings",
        "/v1/models",
        "/mcp",
        "/ui",
    ] {
        assert!(
            paths.iter().any(|p| *p == route),
            "{route} missing from the OpenAPI document: {paths:?}"
        );
    }
    // Every documented path answers something other than 404 (method-level
    // checks are in the other tests).
    for p in &paths {
        if p.contains("sources") {
            continue; // starting a sync is covered in documents_and_sync_jobs
        }
        let uri = p.replace("{name}", "docs").replace("{id}", "x");
        let posted = ["search", "context", "embeddings", "/mcp", "/rerank"];
        let method = if posted.iter().any(|p| uri.ends_with(p)) {
            "POST"
        } else {
            "GET"
        };
        let (s, _) = call(
            &f.router,
            method,
            &uri,
            (method == "POST").then(|| json!({"query": "x", "max_tokens": 10})),
            None,
        )
        .await;
        assert!(s != StatusCode::NOT_FOUND || uri.ends_with("/x"), "{uri}");
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{uri}");
    }

    // Real HTTP on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = f.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let body = json!({"query": "hybrid search", "mode": "bm25"}).to_string();
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "POST /v1/collections/docs/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"doc_id\":\"notes.txt\""), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_routes_need_a_write_key() {
    let f = fixture(Keys::new(["reader"], ["writer"])).await;
    let doc = || Some(json!({"text": "hello"}));
    let uri = "/v1/collections/docs/documents/x";
    let put = |key| call(&f.router, "PUT", uri, doc(), key);
    assert_eq!(put(Some("reader")).await.0, StatusCode::FORBIDDEN);
    let delete = status(&f.router, "DELETE", uri, Some("reader")).await;
    assert_eq!(delete, StatusCode::FORBIDDEN);
    let sync = "/v1/sources/docs/sync";
    let (s, v) = call(&f.router, "POST", sync, None, Some("reader")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_error_shape(&v);
    assert_eq!(put(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(put(Some("writer")).await.0, StatusCode::OK);
    let get = status(&f.router, "GET", uri, Some("reader")).await;
    assert_eq!(get, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_and_sync_jobs() {
    let f = fixture(Keys::default()).await;
    // A document owned by a configured source cannot be overwritten through the API.
    let owned = "/v1/collections/docs/documents/notes.txt";
    let (s, v) = call(&f.router, "PUT", owned, Some(json!({"text": "x"})), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_error_shape(&v);
    let uri = "/v1/collections/docs/documents/api%2Fnote-1";
    let body = json!({"text": "# Lynx\n\nThe lynx protocol batches writes.", "content_type": "text/markdown", "title": "Lynx", "metadata": {"team": "edge"}});
    let (s, v) = call(&f.router, "PUT", uri, Some(body.clone()), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"], "added");
    assert!(
        v["status"]["chunks"].as_u64().unwrap() >= 1
            && v["status"]["hash"].as_str().unwrap().len() == 64,
        "{v}"
    );
    let (_, again) = call(&f.router, "PUT", uri, Some(body), None).await;
    assert_eq!(
        (again["result"].clone(), again["chunks_embedded"].clone()),
        (json!("unchanged"), json!(0)),
        "{again}"
    );
    let search =
        json!({"query": "lynx protocol", "mode": "bm25", "filter": {"metadata": {"team": "edge"}}});
    let (s, hits) = post(&f.router, SEARCH, search).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hits["hits"][0]["doc_id"], "api/note-1", "{hits}");
    let (s, st) = call(&f.router, "GET", uri, None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (st["source"].clone(), st["title"].clone()),
        (json!("api"), json!("Lynx")),
        "{st}"
    );
    assert!(
        st["updated_at_unix"].as_u64().unwrap() > 1_700_000_000,
        "{st}"
    );
    let pdf = json!({"text": "x", "content_type": "application/pdf"});
    let (s, v) = call(&f.router, "PUT", uri, Some(pdf), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = call(&f.router, "DELETE", uri, None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for method in ["GET", "DELETE"] {
        let s = status(&f.router, method, uri, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} after the delete");
    }

    // A sync job over the configured source picks up the file added after
    // the fixture's own sync.
    let (s, v) = call(&f.router, "POST", "/v1/sources/docs/sync", None, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job = v["job_id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for _ in 0..600 {
        let (s, v) = call(&f.router, "GET", &format!("/v1/jobs/{job}"), None, None).await;
        assert_eq!(s, StatusCode::OK);
        last = v;
        if last["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(
        (
            last["report"]["added"].clone(),
            last["report"]["unchanged"].clone()
        ),
        (json!(1), json!(2)),
        "{last}"
    );
    for (method, uri) in [("POST", "/v1/sources/nope/sync"), ("GET", "/v1/jobs/nope")] {
        let s = status(&f.router, method, uri, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    let (_, m) = call(&f.router, "GET", "/metrics", None, None).await;
    let m = m.as_str().unwrap();
    assert!(
        m.contains("quarry_sync_documents_total{source=\"docs\",outcome=\"added\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("quarry_sync_seconds_since_success{source=\"docs\"}"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_shed_with_503_and_slow_requests_time_out() {
    let settings = ServerSettings {
        max_concurrency: 1,
        ..ServerSettings::default()
    };
    let f = fixture_with(Keys::default(), settings).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let router = f.router.clone();
        tasks.push(tokio::spawn(async move {
            let body =
                Some(json!({"query": format!("distinct query {i} about sync"), "mode": "dense"}));
            call(&router, "POST", SEARCH, body, None).await
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(v["error"]["code"], "overloaded", "{v}");
                shed += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(ok >= 1 && shed >= 1, "{ok} served, {shed} shed");

    let settings = ServerSettings {
        request_timeout: std::time::Duration::from_millis(1),
        ..ServerSettings::default()
    };
    let f = fixture_with(Keys::default(), settings).await;
    let body = json!({"query": "a query that needs the model", "mode": "dense"});
    let (s, v) = post(&f.router, SEARCH, body).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_error_shape(&v);
}
