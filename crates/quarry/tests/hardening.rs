//! Attacks a hostile user would try, each a defect that once worked: names
//! that leave the data directory, a page nested deep enough to overflow a
//! recursive walk, error responses without the one JSON shape, a disk that
//! fills up, and a second process on a shard that is already open.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;

use support::*;

const WRITE_KEY: &str = "write-key-hardening";

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path) -> Served {
    let (child, url) = quarry_serve_env(
        &["--data-dir", s(data)],
        &[("QUARRY_WRITE_KEYS", WRITE_KEY)],
    );
    Served { child, url }
}

fn sync(tree: &Path, data: &Path, collection: &str) {
    quarry_ok(&sync_args(tree, collection, data));
}

/// A temporary directory with `tree/a.md` holding `text`, synced into
/// `data` as `collection`: (the directory, the tree, the data directory).
fn synced_tree(text: &str, collection: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.md"), text).unwrap();
    let data = dir.path().join("data");
    sync(&tree, &data, collection);
    (dir, tree, data)
}

/// `synced_tree`, served: (the directory, the tree, the server).
fn served_tree(text: &str, collection: &str) -> (tempfile::TempDir, PathBuf, Served) {
    let (dir, tree, data) = synced_tree(text, collection);
    let server = serve(&data);
    (dir, tree, server)
}

/// One raw HTTP/1.1 exchange, so the test controls every byte of the
/// request line and headers (a client library would normalise them).
fn raw(url: &str, request: &str) -> (u16, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn request(method: &str, path: &str, headers: &[&str], body: &str) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if !body.is_empty() || method != "GET" {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

fn auth() -> String {
    format!("Authorization: Bearer {WRITE_KEY}")
}

/// One request with the write key: (status, body).
fn authed(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = raw(url, &request(method, path, &[&auth()], body));
    (status, body)
}

/// A search of `collection` with the write key, which must answer 200: the
/// response body.
#[track_caller]
fn search_ok(url: &str, collection: &str, query: &str) -> String {
    let path = format!("/v1/collections/{collection}/search");
    let (status, body) = authed(url, "POST", &path, query);
    assert_eq!(status, 200, "{body}");
    body
}

/// The one error shape, with no server path in it.
fn assert_error_shape(status: u16, body: &str, expected: u16, root: &Path) {
    assert_eq!(status, expected, "{body}");
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );
    assert!(
        !body.contains(root.to_str().unwrap()),
        "the error leaks a path: {body}"
    );
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                pending.push(e.path());
            } else {
                out.push((
                    e.path().display().to_string(),
                    m.len(),
                    m.modified().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn collection_names_never_leave_the_data_directory_on_any_route() {
    let (dir, tree, data) = synced_tree("# Victim\n\nThe quokka ledger is private.\n", "docs");
    // A shard outside the served data directory.
    let other = dir.path().join("other");
    sync(&tree, &other, "secret");
    let before = snapshot(&other);
    let server = serve(&data);
    let search = r#"{"query": "quokka ledger", "mode": "bm25"}"#;
    let escaped = "..%2F..%2Fother%2Fcollections%2Fsecret";
    let absolute = format!(
        "{}%2Fcollections%2Fsecret",
        other.to_str().unwrap().replace('/', "%2F")
    );
    for name in [
        escaped,
        absolute.as_str(),
        "..",
        "a%00b",
        &"x".repeat(300),
        "%FF",
    ] {
        for (method, route, body) in [
            ("POST", "search", search),
            (
                "POST",
                "context",
                r#"{"query": "quokka", "max_tokens": 100}"#,
            ),
            ("GET", "documents/a.md", ""),
            ("DELETE", "documents/a.md", ""),
            ("PUT", "documents/x", r#"{"text": "hello"}"#),
        ] {
            let path = format!("/v1/collections/{name}/{route}");
            let (status, body) = authed(&server.url, method, &path, body);
            // The absolute name is the caller's own text; the served data
            // directory must not show.
            assert_error_shape(status, &body, 400, &data);
        }
    }
    assert_eq!(
        before,
        snapshot(&other),
        "a file outside the data directory changed"
    );
    // The real collection still answers.
    let body = search_ok(&server.url, "docs", search);
    assert!(body.contains("a.md"), "{body}");
}

#[test]
fn every_error_has_the_json_shape_and_hostile_requests_are_refused() {
    let (dir, _, server) = served_tree("# A\n\nThe wombat index.\n", "docs");
    let u = &server.url;
    for (method, path, expected) in [
        // Unknown route and wrong method.
        ("GET", "/v1/nothing", 404),
        ("DELETE", "/v1/collections", 405),
        // A document id that is not UTF-8.
        ("GET", "/v1/collections/docs/documents/%FF", 400),
    ] {
        let (s, b) = authed(u, method, path, "");
        assert_error_shape(s, &b, expected, dir.path());
    }
    // Two Authorization headers are ambiguous.
    let two = [auth(), "Authorization: Bearer wrong".to_string()];
    let refs: Vec<&str> = two.iter().map(String::as_str).collect();
    let (s, _, b) = raw(u, &request("GET", "/v1/collections", &refs, ""));
    assert_error_shape(s, &b, 400, dir.path());
    // A citation URI that would run script in a page.
    let put = r#"{"text": "hello", "uri": "javascript:alert(1)"}"#;
    let (s, b) = authed(u, "PUT", "/v1/collections/docs/documents/x", put);
    assert_error_shape(s, &b, 400, dir.path());
    // The OpenAPI document says what the routes do.
    let (s, b) = authed(u, "GET", "/openapi.json", "");
    assert_eq!(s, 200);
    let doc: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["401"].is_object());
    // Probes need no key, and say so.
    for probe in ["/healthz", "/livez", "/readyz"] {
        let op = &doc["paths"][probe]["get"];
        assert!(op["responses"]["401"].is_null(), "{probe}: {op}");
        assert_eq!(op["security"], serde_json::json!([{}]), "{probe}: {op}");
    }
    // Any other route may meet a rate limit.
    let search = &doc["paths"]["/v1/collections/{name}/search"]["post"]["responses"]["429"];
    assert!(search["headers"]["Retry-After"].is_object(), "{search}");
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["application/openmetrics-text"].is_object());
    let params = &doc["paths"]["/v1/collections/{name}/search"]["post"]["parameters"];
    assert!(params[0]["schema"]["pattern"].is_string(), "{params}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ContextBody"]["properties"]["max_tokens"]["maximum"],
        1000000
    );
    assert_eq!(
        schemas["ContextBody"]["properties"]["per_doc_limit"]["minimum"],
        1
    );
    assert_eq!(
        schemas["PutDocumentBody"]["properties"]["text"]["minLength"],
        1
    );
}

#[test]
fn a_deeply_nested_page_is_indexed_and_the_server_lives() {
    let (_dir, _, server) = served_tree("# A\n\nFirst.\n", "deep");
    let depth = 10_000;
    let html = format!(
        "<html><body>{}<p>The narwhal compass points north.</p>{}</body></html>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let body = serde_json::json!({"text": html, "content_type": "text/html"}).to_string();
    let (s, b) = authed(
        &server.url,
        "PUT",
        "/v1/collections/deep/documents/page",
        &body,
    );
    assert_eq!(s, 200, "{b}");
    let search = r#"{"query": "narwhal compass", "mode": "bm25"}"#;
    let b = search_ok(&server.url, "deep", search);
    assert!(b.contains("narwhal compass"), "{b}");
}

#[test]
fn a_second_process_on_an_open_shard_is_told_who_owns_it() {
    let (dir, tree, server) = served_tree("# A\n\nThe okapi trail.\n", "docs");
    search_ok(&server.url, "docs", r#"{"query": "okapi"}"#);
    let data = dir.path().join("data");
    let out = quarry_home(&sync_args(&tree, "docs", &data));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(!err.contains("WouldBlock"), "{err}");
    assert!(
        err.contains("is open in process") && err.contains("quarry serve"),
        "{err}"
    );
    assert!(err.contains("/v1/sources/"), "{err}");
}
