//! The cross-encoder reranker end to end: fetched from a Hub-shaped server
//! on loopback and run by `quarry rerank`; `POST /rerank` and the search
//! and context stage over real HTTP with the real embedding model and
//! shard. The cross-encoder is the random BERT one in
//! `testdata/rerankers/bert`, whose sentence-transformers scores are in
//! `scores.json` (see `scripts/reranker-fixture.sh`).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::*;

fn fixture() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/rerankers")
        .canonicalize()
        .unwrap();
    // The weights are not tracked: built from each weights.json by the
    // script (standard library only; a no-op when they are current).
    let script = dir.join("../../scripts/reranker_weights.py");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .status()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(
        status.success(),
        "python3 {} failed: {status}",
        script.display()
    );
    dir
}

/// The reference pairs of the BERT fixture with the first query, and
/// their scores and logits.
fn reference() -> (String, Vec<String>, Vec<f64>, Vec<f64>) {
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("scores.json")).unwrap())
            .unwrap();
    let bert = &all["bert"];
    let query = bert["pairs"][0][0].as_str().unwrap().to_string();
    let (mut texts, mut scores, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for (i, pair) in bert["pairs"].as_array().unwrap().iter().enumerate() {
        if pair[0] == query.as_str() {
            texts.push(pair[1].as_str().unwrap().to_string());
            scores.push(bert["scores"][i].as_f64().unwrap());
            raw.push(bert["raw"][i].as_f64().unwrap());
        }
    }
    assert!(texts.len() >= 3);
    (query, texts, scores, raw)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

/// The Hub as cross-encoder/ms-marco-MiniLM-L-6-v2 is laid out there
/// (sentence-transformers 4: no modules.json, the activation in
/// config.json); every other file answers 404.
fn hub_routes(repo: &str) -> HashMap<String, Resp> {
    let dir = fixture().join("bert");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config["sentence_transformers"] =
        json!({"activation_fn": "torch.nn.modules.activation.Sigmoid", "version": "4.0.1"});
    let mut files = vec![("config.json".to_string(), config.to_string().into_bytes())];
    for name in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        files.push((name.into(), std::fs::read(dir.join(name)).unwrap()));
    }
    files
        .into_iter()
        .map(|(name, body)| {
            let sha = sha256_hex(&body);
            let resp = Resp::ok(body)
                .header("x-repo-commit", "0123456789abcdef0123456789abcdef01234567")
                .header("etag", &format!("\"{}\"", &sha[..40]));
            (format!("/{repo}/resolve/main/{name}"), resp)
        })
        .collect()
}

#[test]
fn a_reranker_fetched_from_the_hub_scores_as_sentence_transformers() {
    let server = Server::start(hub_routes("acme/tiny-reranker"));
    let home = tempfile::tempdir().unwrap();
    let hub = [("HF_ENDPOINT", server.url.as_str())];
    let out = quarry(
        &[
            "model",
            "fetch",
            "--model",
            "acme/tiny-reranker",
            "--source",
            "hf",
        ],
        Some(home.path()),
        &hub,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let installed = home.path().join("models/acme--tiny-reranker");
    assert!(installed.join("model.safetensors").is_file());
    assert!(!installed.join("modules.json").exists());

    let (query, texts, scores, raw) = reference();
    let mut args = vec![
        "rerank",
        "--model",
        "acme/tiny-reranker",
        "--format",
        "jsonl",
    ];
    args.push(&query);
    args.extend(texts.iter().map(String::as_str));
    for (logits, want) in [(false, &scores), (true, &raw)] {
        let mut args = args.clone();
        if logits {
            args.push("--raw");
        }
        let out = quarry(&args, Some(home.path()), &[], None);
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(lines.len(), texts.len());
        let got: Vec<f64> = lines.iter().map(|l| l["score"].as_f64().unwrap()).collect();
        assert!(
            got.windows(2).all(|w| w[0] >= w[1]),
            "not best first: {got:?}"
        );
        for l in &lines {
            let i = l["index"].as_u64().unwrap() as usize;
            assert_eq!(l["text"], texts[i].as_str());
            let s = l["score"].as_f64().unwrap();
            assert!(close(s, want[i]), "text {i}: {s} against {}", want[i]);
        }
    }

    // An embedding model is not a reranker, and says so.
    let out = quarry(
        &["rerank", "--model", s(&model_dir()), "q", "t"],
        Some(home.path()),
        &[],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a cross-encoder"),
        "{}",
        stderr(&out)
    );
}

fn post(url: &str, body: Value) -> (u16, Value) {
    match ureq::post(url).send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

struct Served {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A collection `docs` of the reference passages and a few more, served
/// with the BERT fixture as `[retrieval] rerank`.
fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("docs");
    std::fs::create_dir_all(&tree).unwrap();
    let (_, texts, _, _) = reference();
    let mut all = texts.clone();
    all.extend([
        "Backups of the index are written as JSON Lines sorted by id.".to_string(),
        "A crash during a sync leaves the journal to replay.".to_string(),
        "Rate limits answer 429 with a Retry-After header.".to_string(),
    ]);
    for (i, text) in all.iter().enumerate() {
        std::fs::write(tree.join(format!("doc{i}.txt")), text).unwrap();
    }
    let data = dir.path().join("data");
    quarry_ok(&sync_args(&tree, "docs", &data));
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\ncache_bytes = 0\n\n[retrieval]\nrerank = {{ model = \"{}\", top_n = 20 }}\n",
            fixture().join("bert").display()
        ),
    );
    let (child, url) = quarry_serve(&["--config", s(&config), "--data-dir", s(&data)]);
    Served {
        child,
        url,
        _dir: dir,
    }
}

#[test]
fn rerank_route_and_search_stage_over_http() {
    let served = serve();
    let (query, texts, scores, raw) = reference();
    let url = format!("{}/rerank", served.url);

    // text-embeddings-inference's shape: best first, by index.
    let (status, body) = post(
        &url,
        json!({"query": query, "texts": texts, "return_text": true}),
    );
    assert_eq!(status, 200, "{body}");
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), texts.len());
    let got: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(got.windows(2).all(|w| w[0] >= w[1]), "{got:?}");
    for item in items {
        let i = item["index"].as_u64().unwrap() as usize;
        assert_eq!(item["text"], texts[i].as_str());
        assert!(close(item["score"].as_f64().unwrap(), scores[i]), "{item}");
    }
    let (_, body) = post(
        &url,
        json!({"query": query, "texts": texts, "raw_scores": true}),
    );
    for item in body.as_array().unwrap() {
        let i = item["index"].as_u64().unwrap() as usize;
        assert!(close(item["score"].as_f64().unwrap(), raw[i]), "{item}");
        assert!(item.get("text").is_none());
    }
    let (status, body) = post(&url, json!({"query": query, "texts": []}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &url,
        json!({"query": query, "texts": ["a"], "model": "other/model"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("not configured"), "{body}");

    // The configured stage: every hit rescored, best first, each with its
    // first-stage score kept; the scores are the cross-encoder's.
    let search = format!("{}/v1/collections/docs/search", served.url);
    let (status, body) = post(&search, json!({"query": query, "top_k": 3}));
    assert_eq!(status, 200, "{body}");
    let hits = body["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    let got: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(got.windows(2).all(|w| w[0] >= w[1]), "{got:?}");
    let hit_texts: Vec<String> = hits
        .iter()
        .map(|h| h["text"].as_str().unwrap().to_string())
        .collect();
    let (_, direct) = post(&url, json!({"query": query, "texts": hit_texts}));
    for (i, hit) in hits.iter().enumerate() {
        assert!(hit["retrieval_score"].is_number(), "{hit}");
        let want = direct
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["index"] == i)
            .unwrap()["score"]
            .as_f64()
            .unwrap();
        assert!(
            close(hit["score"].as_f64().unwrap(), want),
            "{hit} against {want}"
        );
    }
    // The best of all the chunks by the cross-encoder comes first, even
    // where the first stage ranked it lower.
    let (_, everything) = post(&url, json!({"query": query, "texts": all_texts(&served)}));
    let best = everything[0]["score"].as_f64().unwrap();
    assert!(close(got[0], best), "{} against the best {best}", got[0]);

    // Off for one request, and a stage asked for by a request.
    let (_, body) = post(
        &search,
        json!({"query": query, "top_k": 3, "rerank": {"top_n": 0}}),
    );
    assert!(body["hits"][0].get("retrieval_score").is_none(), "{body}");
    let (status, body) = post(
        &search,
        json!({"query": query, "top_k": 2, "rerank": {"top_n": 1001}}),
    );
    assert_eq!(status, 400, "{body}");

    // Context packs the cross-encoder's order.
    let context = format!("{}/v1/collections/docs/context", served.url);
    let (status, body) = post(&context, json!({"query": query, "max_tokens": 400}));
    assert_eq!(status, 200, "{body}");
    let first = body["passages"][0]["score"].as_f64().unwrap();
    assert!(close(first, best), "context starts at {first}, not {best}");

    // Documented.
    let doc: Value = ureq::get(&format!("{}/openapi.json", served.url))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert!(doc["paths"]["/rerank"]["post"].is_object());
    assert!(doc["components"]["schemas"]["RerankBody"].is_object());
    assert!(
        doc["components"]["schemas"]["SearchBody"]["properties"]["rerank"].is_object(),
        "{}",
        doc["components"]["schemas"]["SearchBody"]
    );
}

/// Every chunk's text in `docs`: a dense search returns every point.
fn all_texts(served: &Served) -> Vec<String> {
    let (_, body) = post(
        &format!("{}/v1/collections/docs/search", served.url),
        json!({"query": "anything", "mode": "dense", "top_k": 50, "rerank": {"top_n": 0}}),
    );
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["text"].as_str().unwrap().to_string())
        .collect()
}
