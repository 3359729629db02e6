//! Serving in production, over real HTTP on loopback with the real model
//! and shard: key-free probes (and the Dockerfile's and compose's health
//! checks, run as written), named keys with scopes and tenants, and rate
//! limits with their headers.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

const BOT: &str = "bot-secret-value";
const OPS: &str = "ops-secret-value";
const LIMITED: &str = "limited-secret-value";

struct Served {
    child: std::process::Child,
    url: String,
    data: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two collections, `support` and `billing`, served with `server` as the
/// `[server]` part of the configuration.
fn serve_with(server: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (collection, text) in [
        (
            "support",
            "Resetting a password takes the aardvark reset link.",
        ),
        (
            "billing",
            "Invoices are due on the bison day of each month.",
        ),
    ] {
        let tree = dir.path().join(collection);
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("doc.md"), format!("# {collection}\n\n{text}\n")).unwrap();
        quarry_ok(&sync_args(&tree, collection, &data));
    }
    let config = dir.path().join("quarry.toml");
    std::fs::write(&config, server).unwrap();
    let (child, url) = quarry_serve_env(
        &["--config", s(&config), "--data-dir", s(&data)],
        &[("SUPPORT_BOT_KEY", BOT), ("LIMITED_KEY", LIMITED)],
    );
    Served {
        child,
        url,
        data,
        _dir: dir,
    }
}

fn keyed_config() -> String {
    format!(
        "[[server.keys]]\nname = \"support-bot\"\nsecret_env = \"SUPPORT_BOT_KEY\"\nscopes = [\"read\"]\n\
         collections = [\"support\", \"faq-*\"]\n\n\
         [[server.keys]]\nname = \"ops\"\nsecret_sha256 = \"{}\"\nscopes = [\"admin\"]\n\n\
         [[server.keys]]\nname = \"limited\"\nsecret_env = \"LIMITED_KEY\"\n\
         rate = {{ per_second = 0.2, burst = 2 }}\n",
        sha256_hex(OPS.as_bytes())
    )
}

/// Status, headers and JSON body (or text) of a request.
fn request(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, ureq::Response) {
    let mut r = ureq::request(method, url);
    if let Some(k) = key {
        r = r.set("Authorization", &format!("Bearer {k}"));
    }
    let result = match body {
        Some(b) => r.send_json(b),
        None => r.call(),
    };
    match result {
        Ok(resp) => (resp.status(), resp),
        Err(ureq::Error::Status(code, resp)) => (code, resp),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn search(served: &Served, collection: &str, key: Option<&str>) -> (u16, ureq::Response) {
    request(
        "POST",
        &format!("{}/v1/collections/{collection}/search", served.url),
        key,
        Some(serde_json::json!({"query": "password reset", "mode": "bm25"})),
    )
}

/// A search of `support` on the server at `base`, with `body`.
fn search_body(base: &str, body: serde_json::Value) -> (u16, ureq::Response) {
    let url = format!("{base}/v1/collections/support/search");
    request("POST", &url, None, Some(body))
}

/// Holds `/metrics` of the open server at `base` to holding `line`; on
/// failure, shows the lines that share `family`.
fn assert_metric(base: &str, line: &str, family: &str) {
    let (_, resp) = request("GET", &format!("{base}/metrics"), None, None);
    let text = resp.into_string().unwrap();
    let related: Vec<&str> = text.lines().filter(|l| l.contains(family)).collect();
    assert!(
        text.contains(line),
        "{line} missing from:\n{}",
        related.join("\n")
    );
}

fn json(resp: ureq::Response) -> serde_json::Value {
    resp.into_json().unwrap()
}

#[test]
fn probes_need_no_key_and_say_nothing_private_while_metrics_need_an_admin_key() {
    let served = serve_with(&keyed_config());
    for probe in ["/healthz", "/livez", "/readyz"] {
        let (status, resp) = request("GET", &format!("{}{probe}", served.url), None, None);
        assert_eq!(status, 200, "{probe} without a key");
        let text = resp.into_string().unwrap();
        assert!(
            !text.contains(served.data.to_str().unwrap()) && !text.contains("support"),
            "{probe} reveals nothing private: {text}"
        );
    }
    let metrics = format!("{}/metrics", served.url);
    assert_eq!(request("GET", &metrics, None, None).0, 401);
    let (status, resp) = request("GET", &metrics, Some(BOT), None);
    assert_eq!(status, 403);
    assert!(
        json(resp)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin")
    );
    // A request of the bot's, to label.
    assert_eq!(search(&served, "support", Some(BOT)).0, 200);
    let (status, resp) = request("GET", &metrics, Some(OPS), None);
    assert_eq!(status, 200);
    let text = resp.into_string().unwrap();
    assert!(
        text.contains("quarry_http_requests_by_key_total{key=\"support-bot\",status=\"200\"}"),
        "key names label the metrics"
    );
    for secret in [BOT, OPS, LIMITED] {
        assert!(!text.contains(secret), "a secret leaked into /metrics");
    }
}

#[test]
fn the_dockerfile_and_compose_health_checks_pass_with_keys_set() {
    let served = serve_with(&keyed_config());
    let port = served.url.rsplit(':').next().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let check = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("CMD curl"))
        .map(|rest| format!("curl{rest}"))
        .expect("the Dockerfile has a curl HEALTHCHECK");
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let compose_test: Vec<String> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("test: "))
        .filter(|t| t.contains("/readyz"))
        .map(|t| serde_json::from_str(t).unwrap())
        .next()
        .expect("docker-compose.yml has a readyz health check for quarry");
    assert_eq!(compose_test[0], "CMD");
    let shell = check.replace("7700", port);
    let out = Command::new("sh").args(["-c", &shell]).output().unwrap();
    assert!(out.status.success(), "{shell}: {}", stderr(&out));
    let args: Vec<String> = compose_test[2..]
        .iter()
        .map(|a| a.replace("7700", port))
        .collect();
    let out = Command::new(&compose_test[1]).args(&args).output().unwrap();
    assert!(out.status.success(), "{compose_test:?}: {}", stderr(&out));
}

#[test]
fn a_tenant_key_sees_only_its_collections_and_only_reads() {
    let served = serve_with(&keyed_config());
    let (status, resp) = search(&served, "support", Some(BOT));
    assert_eq!(status, 200);
    assert_eq!(json(resp)["hits"][0]["doc_id"], "doc.md");
    // Another tenant's collection is not there, worded as a missing one.
    let (status, resp) = search(&served, "billing", Some(BOT));
    assert_eq!(status, 404);
    let hidden = json(resp)["error"]["message"].as_str().unwrap().to_string();
    let (status, resp) = search(&served, "nonexistent", Some(OPS));
    assert_eq!(status, 404);
    let missing = json(resp)["error"]["message"].as_str().unwrap().to_string();
    assert_eq!(
        hidden.replace("billing", "X"),
        missing.replace("nonexistent", "X")
    );
    let (_, resp) = request(
        "GET",
        &format!("{}/v1/collections", served.url),
        Some(BOT),
        None,
    );
    let names: Vec<String> = json(resp)["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["support"]);
    let (_, resp) = request(
        "GET",
        &format!("{}/v1/collections", served.url),
        Some(OPS),
        None,
    );
    assert_eq!(json(resp)["collections"].as_array().unwrap().len(), 2);
    // Read only: a write is refused, a write elsewhere is not even there.
    let put = |collection: &str| {
        request(
            "PUT",
            &format!("{}/v1/collections/{collection}/documents/new", served.url),
            Some(BOT),
            Some(serde_json::json!({"text": "hello"})),
        )
        .0
    };
    assert_eq!(put("support"), 403);
    assert_eq!(search(&served, "support", Some("not-a-key")).0, 401);
}

#[test]
fn a_key_over_its_rate_gets_429_with_the_ratelimit_headers() {
    let served = serve_with(&keyed_config());
    // burst 2, then one token every 5 s.
    let mut remaining = Vec::new();
    for _ in 0..2 {
        let (status, resp) = search(&served, "support", Some(LIMITED));
        assert_eq!(status, 200);
        assert_eq!(resp.header("ratelimit-limit"), Some("2"));
        remaining.push(resp.header("ratelimit-remaining").unwrap().to_string());
    }
    assert_eq!(remaining, ["1", "0"]);
    let (status, resp) = search(&served, "support", Some(LIMITED));
    assert_eq!(status, 429);
    let header = |h: &str| resp.header(h).map(str::to_string);
    let retry: u64 = header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    assert_eq!(header("ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header("ratelimit-remaining").as_deref(), Some("0"));
    let reset: u64 = header("ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=5).contains(&reset), "RateLimit-Reset {reset}");
    let body = json(resp);
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limited")
    );
    // Other keys have buckets of their own.
    assert_eq!(search(&served, "support", Some(BOT)).0, 200);
    // MCP shares the key's bucket: an agent cannot go round the limit.
    let mcp = |key: &str| {
        let r = ureq::post(&format!("{}/mcp", served.url))
            .set("Authorization", &format!("Bearer {key}"))
            .set("Accept", "application/json, text/event-stream")
            .send_json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        match r {
            Ok(resp) => resp.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("POST /mcp: {e}"),
        }
    };
    assert_eq!(mcp(LIMITED), 429);
    assert_ne!(mcp(BOT), 429);
}

#[test]
fn an_open_api_limits_each_client_address() {
    let served = serve_with("[server]\nrate = { per_second = 0.2, burst = 2 }\n");
    assert_eq!(search(&served, "support", None).0, 200);
    assert_eq!(search(&served, "support", None).0, 200);
    let (status, resp) = search(&served, "support", None);
    assert_eq!(status, 429);
    assert!(resp.header("retry-after").is_some());
    // Probes are never limited.
    for _ in 0..5 {
        assert_eq!(
            request("GET", &format!("{}/readyz", served.url), None, None).0,
            200
        );
    }
}

#[test]
fn a_request_past_its_deadline_is_abandoned_with_a_504() {
    let served = serve_with("");
    let url = format!("{}/v1/collections/support/search", served.url);
    // A dense query the cache cannot have seen takes a forward pass, far
    // longer than a millisecond.
    let query = |n: u32| format!("how long does resetting a password take, case {n}");
    let body = serde_json::json!({"query": query(1), "mode": "dense", "timeout_ms": 1});
    let (status, resp) = request("POST", &url, None, Some(body));
    assert_eq!(status, 504);
    let v = json(resp);
    assert_eq!(v["error"]["code"], "deadline_exceeded", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("1 ms"),
        "{v}"
    );
    let r = ureq::post(&url)
        .set("Request-Timeout", "1")
        .send_json(serde_json::json!({"query": query(2), "mode": "dense"}));
    assert!(matches!(r, Err(ureq::Error::Status(504, _))), "{r:?}");
    let r = ureq::post(&url)
        .set("Request-Timeout", "soon")
        .send_json(serde_json::json!({"query": query(3)}));
    assert!(matches!(r, Err(ureq::Error::Status(400, _))), "{r:?}");
    // A generous deadline changes nothing.
    let body = serde_json::json!({"query": query(4), "mode": "dense", "timeout_ms": 30000});
    assert_eq!(request("POST", &url, None, Some(body)).0, 200);
}

#[test]
fn a_late_query_embedding_degrades_to_bm25_and_says_so() {
    let served = serve_with("[retrieval]\nembed_timeout_ms = 1\n");
    let url = |route: &str| format!("{}/v1/collections/support/{route}", served.url);
    let query = |n: u32| format!("resetting a password with the aardvark link, take {n}");
    let (status, resp) = search_body(
        &served.url,
        serde_json::json!({"query": query(1), "mode": "hybrid"}),
    );
    assert_eq!(status, 200);
    assert_eq!(resp.header("quarry-degraded"), Some("embed_timeout"));
    let v = json(resp);
    assert_eq!(
        v["degraded"],
        serde_json::json!({"reason": "embed_timeout", "served": "bm25"}),
        "{v}"
    );
    assert_eq!(v["hits"][0]["doc_id"], "doc.md", "BM25 still answers: {v}");
    // The same for a context.
    let (status, resp) = request(
        "POST",
        &url("context"),
        None,
        Some(serde_json::json!({"query": query(2), "max_tokens": 200})),
    );
    assert_eq!(status, 200);
    assert_eq!(json(resp)["degraded"]["served"], "bm25");
    // Dense does not degrade unless asked to: 503.
    let (status, resp) = search_body(
        &served.url,
        serde_json::json!({"query": query(3), "mode": "dense"}),
    );
    assert_eq!(status, 503);
    assert!(resp.header("retry-after").is_some());
    assert_metric(
        &served.url,
        "quarry_degraded_responses_total{reason=\"embed_timeout\"} 2",
        "degraded",
    );
    // With fallback = "bm25", dense degrades too.
    let dense = serve_with("[retrieval]\nembed_timeout_ms = 1\nfallback = \"bm25\"\n");
    let (status, resp) = search_body(
        &dense.url,
        serde_json::json!({"query": query(4), "mode": "dense"}),
    );
    assert_eq!(status, 200);
    assert_eq!(json(resp)["degraded"]["reason"], "embed_timeout");
    // A timeout the embedding meets degrades nothing.
    let normal = serve_with("[retrieval]\nembed_timeout_ms = 30000\n");
    let (status, resp) = search_body(
        &normal.url,
        serde_json::json!({"query": query(5), "mode": "hybrid"}),
    );
    assert_eq!(status, 200);
    assert!(resp.header("quarry-degraded").is_none());
    assert!(json(resp)["degraded"].is_null());
}

/// The stages of one `Server-Timing` header, by name, in milliseconds.
fn server_timing(resp: &ureq::Response) -> std::collections::BTreeMap<String, f64> {
    resp.header("server-timing")
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| {
            let (name, dur) = part.trim().split_once(";dur=")?;
            Some((name.to_string(), dur.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_computed_answer_says_where_its_time_went_in_server_timing() {
    let served = serve_with("");
    let body =
        || serde_json::json!({"query": "how do I reset my password", "mode": "dense", "top_k": 3});
    let (status, first) = search_body(&served.url, body());
    assert_eq!(status, 200);
    let stages = server_timing(&first);
    let keys: Vec<&str> = stages.keys().map(String::as_str).collect();
    assert_eq!(keys, ["embed", "store", "total"], "{stages:?}");
    // The query embedding is a forward pass; no stage outlasts the total.
    assert!(stages["embed"] > 0.0, "{stages:?}");
    assert!(
        stages["embed"] + stages["store"] <= stages["total"] + 0.5,
        "{stages:?}"
    );
    // A cached answer computed nothing, so it names no stage.
    let (_, again) = search_body(&served.url, body());
    assert_eq!(again.header("quarry-cache"), Some("hit"));
    assert!(
        server_timing(&again).is_empty(),
        "{:?}",
        again.header("server-timing")
    );
}

#[test]
fn the_result_cache_is_never_stale() {
    let served = serve_with("");
    let body = || serde_json::json!({"query": "password   reset", "mode": "bm25", "top_k": 5});
    let cache_state = |resp: &ureq::Response| resp.header("quarry-cache").map(str::to_string);
    let ids = |resp: ureq::Response| -> Vec<String> {
        json(resp)["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["doc_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, first) = search_body(&served.url, body());
    assert_eq!(cache_state(&first).as_deref(), Some("miss"));
    let before = ids(first);
    // Spacing and key order do not matter; the answer is the same bytes.
    let (_, again) = search_body(
        &served.url,
        serde_json::json!({"top_k": 5, "mode": "bm25", "query": "password reset"}),
    );
    assert_eq!(cache_state(&again).as_deref(), Some("hit"));
    assert_eq!(ids(again), before);
    // The caller can bypass it.
    let bypass = ureq::post(&format!("{}/v1/collections/support/search", served.url))
        .set("Cache-Control", "no-cache")
        .send_json(body())
        .unwrap();
    assert_eq!(cache_state(&bypass).as_deref(), Some("miss"));
    // A write makes the very next identical search a miss that shows it.
    let put = request(
        "PUT",
        &format!("{}/v1/collections/support/documents/admins.md", served.url),
        None,
        Some(
            serde_json::json!({"text": "# Admins\n\nA password reset for admins goes through the ocelot console."}),
        ),
    );
    assert_eq!(put.0, 200);
    let (_, after) = search_body(&served.url, body());
    assert_eq!(cache_state(&after).as_deref(), Some("miss"));
    let after = ids(after);
    assert!(after.contains(&"admins.md".to_string()), "{after:?}");
    let (_, cached) = search_body(&served.url, body());
    assert_eq!(cache_state(&cached).as_deref(), Some("hit"));
    // So does a delete.
    let delete = request(
        "DELETE",
        &format!("{}/v1/collections/support/documents/admins.md", served.url),
        None,
        None,
    );
    assert_eq!(delete.0, 200);
    let (_, gone) = search_body(&served.url, body());
    assert_eq!(cache_state(&gone).as_deref(), Some("miss"));
    assert_eq!(ids(gone), before);
    let (_, resp) = request("GET", &format!("{}/metrics", served.url), None, None);
    let text = resp.into_string().unwrap();
    for line in [
        "quarry_result_cache_hits_total 2",
        "quarry_result_cache_misses_total 3",
    ] {
        assert!(text.contains(line), "{line} missing");
    }
}

#[test]
fn collection_stats_show_the_questions_the_corpus_cannot_answer() {
    // A generous embedding timeout: a loaded machine must not turn these
    // dense searches into 503s.
    let served = serve_with(
        "[server]\nquery_log = true\ncache_bytes = 0\n[retrieval]\nembed_timeout_ms = 30000\n",
    );
    let dense = |q: &str| {
        search_body(
            &served.url,
            serde_json::json!({"query": q, "mode": "dense"}),
        )
    };
    assert_eq!(dense("how do I reset my password").0, 200);
    let unanswerable = "migratory patterns of arctic terns over the pacific";
    assert_eq!(dense(unanswerable).0, 200);
    let bm25 = serde_json::json!({"query": "zzyzx qwerty", "mode": "bm25"});
    assert_eq!(search_body(&served.url, bm25).0, 200);
    let stats = |collection: &str| {
        let url = format!("{}/v1/collections/{collection}/stats", served.url);
        request("GET", &url, None, None)
    };
    let (status, resp) = stats("support");
    assert_eq!(status, 200);
    let v = json(resp);
    assert_eq!(v["queries"], 3, "{v}");
    assert_eq!(v["by_mode"]["dense"]["queries"], 2, "{v}");
    assert_eq!(v["low_score_queries"], 2, "{v}");
    let logged: Vec<&str> = v["recent_low"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["query"].as_str().unwrap())
        .collect();
    // Newest first; the answered question is not there.
    assert_eq!(logged, ["zzyzx qwerty", unanswerable], "{v}");
    // Judged on the one relevance scale, whatever the mode.
    let relevance = v["recent_low"][1]["best_relevance"].as_f64().unwrap();
    assert!(
        relevance < f64::from(quarry_core::config::LOW_RELEVANCE),
        "{v}"
    );
    assert!(
        v["recent_low"][1]["best_score"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert_eq!(
        stats("billing").1.into_json::<serde_json::Value>().unwrap()["queries"],
        0
    );
    assert_eq!(stats("nonexistent").0, 404);
    assert_metric(
        &served.url,
        "quarry_low_score_queries_total{collection=\"support\",mode=\"dense\"} 1",
        "low_score",
    );
    assert_metric(
        &served.url,
        "quarry_query_best_relevance_count{collection=\"support\",mode=\"dense\"} 2",
        "best_relevance",
    );
}
