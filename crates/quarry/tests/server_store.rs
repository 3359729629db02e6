//! The server store through outages, against a real Qdrant server that each
//! test starts (and kills) itself: set `QDRANT_BIN` to a `qdrant` binary.
//! Without it these tests report themselves skipped (`quarry_core::skip_test`).
//!
//! - a sync survives the server dying mid-way and ends with exactly the
//!   points a clean sync gives;
//! - searches answer 503 with the JSON error shape during an outage, and
//!   recover without a restart when the server returns;
//! - a server that is down at start makes `readyz` false, saying which part;
//! - `quarry migrate` copies an edge collection exactly, resumes after being
//!   killed, and is a no-op the second time;
//! - `quarry reindex` switches a served collection to another model while a
//!   search loop runs, and no search fails.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::qdrant::{free_port, qdrant_in_tempdir};
use support::{
    json_lines, numbers, quarry_command, quarry_home, quarry_ok, s, stderr, success_json, sync_args,
};

/// Enough documents that embedding them takes several seconds.
fn write_corpus(dir: &Path, docs: usize) {
    let words = [
        "retrieval",
        "vector",
        "shard",
        "replica",
        "token",
        "budget",
        "chunk",
        "index",
        "payload",
        "filter",
        "fusion",
        "latency",
        "embedding",
        "manifest",
        "journal",
        "alias",
    ];
    std::fs::create_dir_all(dir).unwrap();
    for d in 0..docs {
        let mut text = format!("# Note {d}\n\n");
        for s in 0..12 {
            let sentence: Vec<&str> = (0..14)
                .map(|w| words[(d * 7 + s * 5 + w * 3) % words.len()])
                .collect();
            text.push_str(&format!(
                "Sentence {s} of note {d}: {}.\n",
                sentence.join(" ")
            ));
        }
        std::fs::write(dir.join(format!("note-{d:04}.md")), text).unwrap();
    }
}

/// The repository's user guide.
fn guide_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus")
}

/// `quarry sync --path CORPUS -c COLLECTION --data-dir DATA --store STORE`.
fn sync_into(corpus: &Path, collection: &str, data: &Path, store: &str) -> std::process::Output {
    let mut args = sync_args(corpus, collection, data);
    args.extend(["--store", store]);
    quarry_home(&args)
}

/// `quarry reindex -c guide --model MODEL --data-dir DATA EXTRA...`, which
/// must succeed.
fn reindex_guide(model: &Path, data: &Path, extra: &[&str]) {
    let mut args = vec!["reindex", "-c", "guide", "--model", s(model)];
    args.extend(["--data-dir", s(data)]);
    args.extend_from_slice(extra);
    quarry_ok(&args);
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `quarry export` lines by id: (payload, vector).
fn export(data: &Path, store: &str) -> Vec<(String, serde_json::Value, Vec<f64>)> {
    export_collection(data, store, "notes")
}

fn export_collection(
    data: &Path,
    store: &str,
    collection: &str,
) -> Vec<(String, serde_json::Value, Vec<f64>)> {
    let mut args = vec!["export", "-c", collection, "--with-vectors"];
    args.extend(["--data-dir", s(data), "--store", store]);
    let o = quarry_ok(&args);
    json_lines(&String::from_utf8(o.stdout).unwrap())
        .into_iter()
        .map(|v| {
            let id = v["id"].as_str().unwrap().to_string();
            (id, v["payload"].clone(), numbers(&v["vector"]))
        })
        .collect()
}

#[test]
fn a_sync_through_a_server_outage_loses_nothing() {
    let Some((tmp, mut qdrant)) = qdrant_in_tempdir() else {
        return;
    };
    let corpus = tmp.path().join("corpus");
    write_corpus(&corpus, 300);
    let data = tmp.path().join("data");
    let mut sync = quarry_command(&sync_args(&corpus, "notes", &data))
        .args(["--store", &qdrant.url()])
        // Small batches make the sync long enough to interrupt.
        .env("QUARRY_MAX_BATCH_TOKENS", "512")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = sync.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while qdrant.points("notes") < 100 {
        assert!(Instant::now() < deadline, "the sync wrote nothing");
        assert!(
            sync.try_wait().unwrap().is_none(),
            "the sync ended before the outage"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = qdrant.points("notes");
    qdrant.kill();
    // The server stays down until the sync has hit the outage and is
    // retrying, plus a while, so the test cannot pass by missing it.
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.iter().any(|l: &String| l.contains("retrying")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => panic!("the sync never retried: {}", log.join("\n")),
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        sync.try_wait().unwrap().is_none(),
        "the sync gave up during the outage"
    );
    qdrant.up();
    let status = sync.wait().unwrap();
    log.extend(rx.try_iter());
    let log = log.join("\n");
    assert!(status.success(), "{log}");

    // A clean sync of the same corpus into the embedded store.
    let clean = tmp.path().join("clean");
    let o = sync_into(&corpus, "notes", &clean, "edge");
    assert!(o.status.success(), "{}", stderr(&o));
    let (got, want) = (export(&data, &qdrant.url()), export(&clean, "edge"));
    eprintln!(
        "killed at {before} points; {} after, {} in the clean sync",
        got.len(),
        want.len()
    );
    assert_eq!(got.len(), want.len());
    for ((id_a, p_a, v_a), (id_b, p_b, v_b)) in got.iter().zip(&want) {
        assert_eq!(id_a, id_b);
        assert_eq!(p_a, p_b, "{id_a}");
        let diff = max_abs_diff(v_a, v_b);
        assert!(diff < 1e-4, "{id_a}: vectors differ by {diff}");
    }
}

/// Syncs the repository's user guide into `guide`.
fn sync_guide(data: &Path, store: &str) {
    let o = sync_into(&guide_corpus(), "guide", data, store);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn serve(data: &Path, store: &str) -> (Child, String) {
    support::quarry_serve(&["--data-dir", s(data), "--store", store])
}

/// (status, body) of a response, whatever its status.
fn status_json(r: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    match r {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

/// (status, body) of a search.
fn search(url: &str) -> (u16, serde_json::Value) {
    status_json(
        ureq::post(&format!("{url}/v1/collections/guide/search"))
            .timeout(Duration::from_secs(20))
            .send_json(serde_json::json!({"query": "how do I rotate api keys", "top_k": 3})),
    )
}

fn ready(url: &str) -> (u16, serde_json::Value) {
    status_json(ureq::get(&format!("{url}/readyz")).call())
}

#[test]
fn searches_answer_503_during_an_outage_and_recover_by_themselves() {
    let Some((tmp, mut qdrant)) = qdrant_in_tempdir() else {
        return;
    };
    let data = tmp.path().join("data");
    sync_guide(&data, &qdrant.url());
    let (mut server, url) = serve(&data, &qdrant.url());
    let (code, body) = search(&url);
    assert_eq!(code, 200, "{body}");
    let first = body["hits"][0]["doc_id"].clone();
    assert!(first.is_string(), "{body}");

    qdrant.kill();
    let (code, body) = search(&url);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&qdrant.url()),
        "{body}"
    );
    let (code, body) = ready(&url);
    assert_eq!(
        (code, &body["ready"]),
        (503, &serde_json::json!(false)),
        "{body}"
    );
    assert_eq!(body["message"], "the store is not open", "{body}");

    qdrant.up();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (code, body) = search(&url);
        if code == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "search did not recover: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body["hits"][0]["doc_id"], first);
    assert_eq!(ready(&url).0, 200);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_server_down_at_start_makes_readyz_false_and_says_which_part() {
    // Needs no server at all: nothing listens on this port.
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("http://127.0.0.1:{}", free_port());
    let (mut server, url) = serve(&tmp.path().join("data"), &store);
    let (code, body) = ready(&url);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["store_open"], false, "{body}");
    // A probe needs no key, so it names no host: the log has the details.
    assert_eq!(body["message"], "the store is not open", "{body}");
    assert!(!body.to_string().contains(&store), "{body}");
}

/// The default model with CLS pooling instead of mean: another model, as
/// far as vectors and fingerprints go, built from files we already have.
fn cls_variant(dir: &Path) -> PathBuf {
    let src = support::model_dir();
    let dst = dir.join("minilm-cls");
    for entry in ["", "1_Pooling"] {
        std::fs::create_dir_all(dst.join(entry)).unwrap();
        for f in std::fs::read_dir(src.join(entry)).unwrap().flatten() {
            if f.path().is_file() && f.file_name() != "quarry-model.json" {
                std::fs::copy(f.path(), dst.join(entry).join(f.file_name())).unwrap();
            }
        }
    }
    let pooling = dst.join("1_Pooling/config.json");
    let text = std::fs::read_to_string(&pooling).unwrap();
    let text = text
        .replace(
            "\"pooling_mode_cls_token\": false",
            "\"pooling_mode_cls_token\": true",
        )
        .replace(
            "\"pooling_mode_mean_tokens\": true",
            "\"pooling_mode_mean_tokens\": false",
        );
    std::fs::write(&pooling, text).unwrap();
    dst
}

fn dense_top(url: &str) -> (u16, Option<f64>) {
    let r = ureq::post(&format!("{url}/v1/collections/guide/search"))
        .timeout(Duration::from_secs(30))
        .send_json(
            serde_json::json!({"query": "how do I rotate api keys", "top_k": 1, "mode": "dense"}),
        );
    match r {
        Ok(r) => {
            let body: serde_json::Value = r.into_json().unwrap();
            (200, body["hits"][0]["score"].as_f64())
        }
        Err(ureq::Error::Status(code, _)) => (code, None),
        Err(_) => (0, None),
    }
}

#[test]
fn reindex_switches_models_under_a_search_loop_without_a_failed_search() {
    let Some((tmp, qdrant)) = qdrant_in_tempdir() else {
        return;
    };
    let data = tmp.path().join("data");
    sync_guide(&data, &qdrant.url());
    let (mut server, url) = serve(&data, &qdrant.url());
    let (code, before) = dense_top(&url);
    assert_eq!(code, 200);
    let before = before.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looper = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(dense_top(&url));
            }
            seen
        })
    };
    let model = cls_variant(tmp.path());
    reindex_guide(&model, &data, &["--store", &qdrant.url()]);
    // Past the retriever's one-second cache of the alias target.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = looper.join().unwrap();
    let (code, after) = dense_top(&url);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 200);
    let after = after.unwrap();
    assert!(
        (after - before).abs() > 1e-3,
        "the model did not change: {before} vs {after}"
    );

    let failed = seen
        .iter()
        .filter(|(c, s)| *c != 200 || s.is_none())
        .count();
    let old = seen
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| (s - before).abs() < 1e-4))
        .count();
    let new = seen
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| (s - after).abs() < 1e-4))
        .count();
    eprintln!(
        "{} searches during the reindex: {failed} failed, {old} old model, {new} new model",
        seen.len()
    );
    assert_eq!(failed, 0, "{seen:?}");
    assert_eq!(
        old + new,
        seen.len(),
        "a result from neither model: {seen:?}"
    );
    assert!(
        old > 0 && new > 0,
        "the loop did not span the switch: {seen:?}"
    );
    // One switch, never back.
    let first_new = seen
        .iter()
        .position(|(_, s)| s.is_some_and(|s| (s - after).abs() < 1e-4))
        .unwrap();
    assert!(
        seen[first_new..]
            .iter()
            .all(|(_, s)| s.is_some_and(|s| (s - after).abs() < 1e-4))
    );
    // The old collection is gone; the name lists once.
    let collections = qdrant.get("/collections").unwrap();
    let names: Vec<&str> = collections["result"]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["guide-v2"], "{collections}");
}

#[test]
fn migrate_copies_exactly_resumes_after_a_kill_and_is_idempotent() {
    let Some((tmp, qdrant)) = qdrant_in_tempdir() else {
        return;
    };
    let edge = tmp.path().join("edge");
    quarry_ok(&sync_args(&guide_corpus(), "guide", &edge));
    let from = format!("edge:{}", s(&edge));
    let work = tmp.path().join("work");
    let args = |batch: &'static str| {
        let mut c = quarry_command(&["migrate", "--from", &from, "--to", &qdrant.url()]);
        c.args(["--batch", batch, "--data-dir", s(&work), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    };
    // Killed part-way: the checkpoint has some pages, the target some points.
    let mut first = args("2").spawn().unwrap();
    let checkpoint = work.join("migrate");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied = std::fs::read_dir(&checkpoint)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read(e.unwrap().path()).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["copied"].as_u64())
            .unwrap_or(0);
        if copied >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the copy finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().unwrap();
    let _ = first.wait();
    let partial = qdrant.points("guide");
    let total = export_collection(&edge, "edge", "guide").len() as u64;
    assert!(partial > 0 && partial < total, "{partial} of {total}");

    let report = |o: std::process::Output| -> serde_json::Value {
        assert!(o.status.success());
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()[0].clone()
    };
    let second = report(args("16").output().unwrap());
    assert_eq!(second["resumed"], true, "{second}");
    assert!(
        second["copied"].as_u64().unwrap() < total,
        "started over: {second}"
    );
    assert_eq!(second["target_points"].as_u64(), Some(total), "{second}");
    let third = report(args("16").output().unwrap());
    assert_eq!(third["copied"], 0, "{third}");

    // Exactly the same points: ids, payloads and vectors, bit for bit.
    let a = export_collection(&edge, "edge", "guide");
    let b = export_collection(&work, &qdrant.url(), "guide");
    assert_eq!(a, b);
    // And the copy is usable: the model binding came along, so a search works.
    let url = qdrant.url();
    quarry_ok(&[
        "search",
        "-c",
        "guide",
        "api keys",
        "--data-dir",
        s(&work),
        "--store",
        &url,
        "--json",
    ]);
    eprintln!(
        "migrate: killed at {partial}/{total}; resumed run wrote {}; a third run wrote 0",
        second["copied"]
    );
}

fn cli_top_score(data: &Path) -> f64 {
    let mut args = vec!["search", "-c", "guide", "how do I rotate api keys"];
    args.extend(["--mode", "dense", "-k", "1", "--json"]);
    args.extend(["--data-dir", s(data), "--store", "edge"]);
    let v = success_json(&quarry_home(&args));
    v["hits"][0]["score"].as_f64().unwrap()
}

/// The embedded store needs no server: reindex switches the pointer file,
/// the old shard goes, and a sync with the old model is refused by name.
#[test]
fn reindex_on_the_edge_switches_the_pointer_and_binds_the_new_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let corpus = guide_corpus();
    let sync = || sync_into(&corpus, "guide", &data, "edge");
    let o = sync();
    assert!(o.status.success(), "{}", stderr(&o));
    let before = cli_top_score(&data);
    let model = cls_variant(tmp.path());
    reindex_guide(&model, &data, &[]);
    let after = cli_top_score(&data);
    assert!((after - before).abs() > 1e-3, "{before} vs {after}");
    let aliases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("collections/aliases.json")).unwrap())
            .unwrap();
    assert_eq!(aliases["guide"], "guide-v2");
    let mut dirs: Vec<String> = std::fs::read_dir(data.join("collections"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, vec!["guide-v2"]);
    // The collection is now bound to the new model: syncing with the
    // configured one must fail, naming the way out.
    let o = sync();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("minilm-cls") && err.contains("reindex"),
        "{err}"
    );
}
