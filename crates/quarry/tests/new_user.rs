//! What a new user trips over, tried as one would: the CLI while a server
//! holds the index, sync reports that name what changed, code listings
//! kept, duplicate passages folded, log files without colour codes, and
//! configuration errors that point at the line. Real binary, real model,
//! real shard, real HTTP on loopback.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::*;

const OWNERSHIP: &str = "Each value in Rust has an owner. There can only be one owner at a time. When the owner goes out of scope, the value will be dropped, and its memory is returned to the allocator.";

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post(url: &str, body: serde_json::Value) -> serde_json::Value {
    ureq::post(url)
        .send_json(body)
        .unwrap()
        .into_json()
        .unwrap()
}

#[test]
fn the_cli_names_the_server_holding_the_index_and_goes_through_it_with_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, data) = (dir.path().join("tree"), dir.path().join("data"));
    write(
        &tree,
        "ownership.md",
        &format!("# Ownership\n\n{OWNERSHIP}\n"),
    );
    write(
        &tree,
        "cargo.md",
        "# Cargo\n\nCargo builds the code and downloads its dependencies.\n",
    );
    let config = dir.path().join("quarry.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"book\"\ntype = \"fs\"\npath = \"{}\"\ncollection = \"book\"\n",
            tree.display()
        ),
    )
    .unwrap();
    let local = ["--config", s(&config), "--data-dir", s(&data)];
    quarry_ok(&[&["sync"][..], &local].concat());
    let (child, url) = quarry_serve(&local);
    let _server = Killed(child);
    // The server opens the shard on its first search.
    let hits = post(
        &format!("{url}/v1/collections/book/search"),
        serde_json::json!({"query": "who owns a value", "mode": "bm25"}),
    );
    assert_eq!(hits["hits"][0]["doc_id"], "ownership.md");

    let out = quarry_home(&[&["search", "who owns a value", "-c", "book"][..], &local].concat());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("`quarry serve` (process "), "{err}");
    assert!(err.contains(&format!("--endpoint {url}")), "{err}");

    let out = quarry_ok(&[
        "search",
        "who owns a value",
        "-c",
        "book",
        "--endpoint",
        &url,
        "--json",
    ]);
    let found = success_json(&out);
    assert_eq!(found["hits"][0]["doc_id"], "ownership.md", "{found}");
    // Without -c, the server's only collection.
    let out = quarry_ok(&[
        "search",
        "dependencies",
        "--endpoint",
        &url,
        "--mode",
        "bm25",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("cargo.md"), "{text}");

    write(
        &tree,
        "borrowing.md",
        "# Borrowing\n\nA reference borrows a value without owning it.\n",
    );
    let out = quarry_ok(&["sync", "--endpoint", &url, "--source", "book", "--json"]);
    let report = success_json(&out);
    assert_eq!(report["added"], 1, "{report}");
    assert_eq!(report["unchanged"], 2, "{report}");
    assert_eq!(
        report["changed"]["added"],
        serde_json::json!(["borrowing.md"]),
        "{report}"
    );
    // The job says how many documents were listed, not only how many
    // needed work.
    let job = post(
        &format!("{url}/v1/sources/book/sync"),
        serde_json::json!({}),
    );
    let job_url = format!("{url}/v1/jobs/{}", job["job_id"].as_str().unwrap());
    let job = loop {
        let job: serde_json::Value = ureq::get(&job_url).call().unwrap().into_json().unwrap();
        if job["state"] != "running" {
            break job;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        (
            job["listed"].as_u64(),
            job["unchanged"].as_u64(),
            job["total"].as_u64()
        ),
        (Some(3), Some(3), Some(0)),
        "{job}"
    );
    assert!(job["current"].is_null(), "{job}");
    let out = quarry_home(&["sync", "--endpoint", &url, "--path", s(&tree), "-c", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--source NAME"), "{}", stderr(&out));
}

#[test]
fn the_sync_report_names_changed_documents_and_groups_skips_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, data) = (dir.path().join("tree"), dir.path().join("data"));
    write(&tree, "a.md", &format!("# A\n\n{OWNERSHIP}\n"));
    write(&tree, "b.md", "# B\n\nBorrowing lends a value out.\n");
    write(&tree, "copy/a.md", &format!("# A\n\n{OWNERSHIP}\n"));
    for i in 0..3 {
        std::fs::write(
            tree.join(format!("img{i}.png")),
            [0x89, b'P', b'N', b'G', 0, 1, 2, i],
        )
        .unwrap();
    }
    let out = quarry_ok(&sync_args(&tree, "book", &data));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("  added: a.md, b.md, copy/a.md\n"), "{text}");
    assert!(
        text.contains("  skipped: binary file type .png (3)\n"),
        "{text}"
    );
    assert!(!text.contains("img0.png"), "{text}");
    assert!(text.contains("identical documents (1 groups"), "{text}");
    assert!(text.contains("a.md = copy/a.md"), "{text}");

    std::fs::remove_file(tree.join("b.md")).unwrap();
    write(&tree, "a.md", "# A\n\nOwnership, revised.\n");
    let out = quarry_ok(&[&sync_args(&tree, "book", &data)[..], &["--json"]].concat());
    let report = success_json(&out);
    assert_eq!(
        report["changed"]["updated"],
        serde_json::json!(["a.md"]),
        "{report}"
    );
    assert_eq!(
        report["changed"]["deleted"],
        serde_json::json!(["b.md"]),
        "{report}"
    );
    assert_eq!(
        report["skipped_by_reason"],
        serde_json::json!([{"reason": "binary file type .png", "count": 3}])
    );
    // Parsing is timed in the parser, not as the whole pipeline.
    assert!(
        report["seconds"]["parse_chunk"].as_f64().unwrap()
            < report["seconds"]["total"].as_f64().unwrap()
    );
}

#[test]
fn listings_keep_their_lines_and_copies_fold_into_one_hit() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, data) = (dir.path().join("tree"), dir.path().join("data"));
    write(
        &tree,
        "ch01.html",
        &format!("<html><body><main><h1>Ownership</h1><p>{OWNERSHIP}</p></main></body></html>"),
    );
    // The print view holds the same chapter, with the next one's title.
    write(
        &tree,
        "print.html",
        &format!(
            "<html><body><main><h1>Ownership</h1><p>{OWNERSHIP}</p><h1>Next chapter</h1></main></body></html>"
        ),
    );
    write(
        &tree,
        "files.html",
        "<html><body><main><h1>Files</h1><p>Opening a file:</p><pre><code class=\"language-rust\">use std::fs::File;\n\nfn main() {\n    let f = File::open(\"hello.txt\");\n}\n</code></pre></main></body></html>",
    );
    write(
        &tree,
        "other.md",
        "# Other\n\nThreads run code at the same time.\n",
    );
    quarry_ok(&sync_args(&tree, "book", &data));
    let search = |extra: &[&str]| {
        let args = [
            &[
                "search",
                "value owner goes out of scope",
                "-c",
                "book",
                "--data-dir",
                s(&data),
                "--json",
                "--mode",
                "bm25",
            ][..],
            extra,
        ]
        .concat();
        success_json(&quarry_ok(&args))["hits"]
            .as_array()
            .unwrap()
            .clone()
    };
    let hits = search(&[]);
    let ownership: Vec<&serde_json::Value> = hits
        .iter()
        .filter(|h| {
            h["text"]
                .as_str()
                .unwrap()
                .contains("There can only be one owner")
        })
        .collect();
    assert_eq!(ownership.len(), 1, "{hits:#?}");
    let (kept, folded) = match ownership[0]["doc_id"].as_str().unwrap() {
        "ch01.html" => ("ch01.html", "print.html"),
        _ => ("print.html", "ch01.html"),
    };
    assert_eq!(ownership[0]["doc_id"], kept);
    assert_eq!(ownership[0]["duplicates"], serde_json::json!([folded]));
    let all = search(&["--no-dedupe"]);
    let copies = all
        .iter()
        .filter(|h| {
            h["text"]
                .as_str()
                .unwrap()
                .contains("There can only be one owner")
        })
        .count();
    assert_eq!(copies, 2, "{all:#?}");

    let args = [
        "search",
        "open a file hello.txt",
        "-c",
        "book",
        "--data-dir",
        s(&data),
        "--json",
        "--mode",
        "bm25",
    ];
    let hits = success_json(&quarry_ok(&args))["hits"]
        .as_array()
        .unwrap()
        .clone();
    let code = hits.iter().find(|h| h["doc_id"] == "files.html").unwrap();
    assert!(
        code["text"].as_str().unwrap().contains("```rust\nuse std::fs::File;\n\nfn main() {\n    let f = File::open(\"hello.txt\");\n}\n```"),
        "{code}"
    );
}

#[test]
fn a_log_file_has_no_colour_codes_shows_requests_and_no_qdrant_noise() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, data) = (dir.path().join("tree"), dir.path().join("data"));
    write(&tree, "a.md", "# A\n\nA passage about logs.\n");
    quarry_ok(&sync_args(&tree, "logs", &data));
    let log = dir.path().join("serve.log");
    let child = quarry_command(&["serve", "--addr", "127.0.0.1:0", "--data-dir", s(&data)])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _server = Killed(child);
    let started = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(rest) = text.split("on http://").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no listen line: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let hits = post(
        &format!("{url}/v1/collections/logs/search"),
        serde_json::json!({"query": "logs"}),
    );
    assert_eq!(hits["hits"][0]["doc_id"], "a.md");
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("/v1/collections/{name}/search")
            || started.elapsed() > Duration::from_secs(10)
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
    assert!(
        text.contains("quarry::access") && text.contains("status=200"),
        "{text}"
    );
    assert!(!text.contains("Feature flags"), "{text}");
}

#[test]
fn a_configuration_error_keeps_its_caret_under_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quarry.toml");
    std::fs::write(
        &config,
        "data_dir = \"d\"\n[retrieval]\nrrf_k = \"sixty\"\n",
    )
    .unwrap();
    let out = quarry_home(&["collections", "--config", s(&config)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("3 | rrf_k"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        lines[at + 1].trim_start_matches(' ').starts_with("| "),
        "{err}"
    );
    assert!(lines[at + 1].contains('^'), "{err}");
    assert!(err.contains(s(&config)), "{err}");
}

/// Status and JSON body of a request with key `key`.
fn call(
    method: &str,
    url: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let r = ureq::request(method, url).set("Authorization", &format!("Bearer {key}"));
    let result = match body {
        Some(b) => r.send_json(b),
        None => r.call(),
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    (status, resp.into_json().unwrap_or_default())
}

#[test]
fn an_application_creates_fills_pages_and_deletes_a_collection_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("quarry.toml");
    std::fs::write(
        &config,
        "[server]\nmax_batch = 3\n\n[[server.keys]]\nname = \"app\"\nsecret_env = \"APP_KEY\"\nscopes = [\"write\"]\n\n\
         [[server.keys]]\nname = \"reader\"\nsecret_env = \"READER_KEY\"\nscopes = [\"read\"]\n",
    )
    .unwrap();
    let (app, reader) = ("app-secret-value", "reader-secret-value");
    let (child, url) = quarry_serve_env(
        &["--config", s(&config), "--data-dir", s(&data)],
        &[("APP_KEY", app), ("READER_KEY", reader)],
    );
    let _server = Killed(child);
    let collections = format!("{url}/v1/collections");

    // Today's way in for an application that only pushes documents.
    let (status, body) = call(
        "PUT",
        &format!("{collections}/notes/documents/a"),
        app,
        Some(serde_json::json!({"text": "x"})),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.to_string().contains("POST /v1/collections"), "{body}");

    let (status, _) = call(
        "POST",
        &collections,
        reader,
        Some(serde_json::json!({"name": "notes"})),
    );
    assert_eq!(status, 403, "a read key cannot create collections");
    let (status, body) = call(
        "POST",
        &collections,
        app,
        Some(serde_json::json!({"name": "notes", "model": "intfloat/e5-small"})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("sentence-transformers/all-MiniLM-L6-v2"),
        "{body}"
    );
    let (status, body) = call(
        "POST",
        &collections,
        app,
        Some(serde_json::json!({"name": "notes", "index": {"m": 1}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("index.m = 1"), "{body}");
    // Index settings on top of the server's: int8 vectors, and a graph
    // built past 1 KiB so that even two documents get one.
    let (status, body) = call(
        "POST",
        &collections,
        app,
        Some(serde_json::json!({"name": "notes",
            "index": {"quantization": "int8", "indexing_threshold_kb": 1}})),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["documents"].as_u64()),
        (Some("notes"), Some(0))
    );
    assert_eq!(
        (&body["index"]["quantization"], &body["index"]["m"]),
        (&serde_json::json!("int8"), &serde_json::json!(16)),
        "{body}"
    );
    let (status, _) = call(
        "POST",
        &collections,
        app,
        Some(serde_json::json!({"name": "notes"})),
    );
    assert_eq!(status, 409);

    let docs = serde_json::json!({"documents": [
        {"id": "tea", "text": "Green tea is steeped at 80 degrees for two minutes.", "title": "Tea"},
        {"id": "blank", "text": "   "},
        {"id": "coffee", "text": "Espresso is brewed under nine bars of pressure.", "content_type": "text/markdown"},
    ]});
    let batch = format!("{collections}/notes/documents");
    let (status, body) = call("POST", &batch, app, Some(docs.clone()));
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    let outcome: Vec<(&str, Option<&str>)> = results
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["result"].as_str()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("tea", Some("added")),
            ("blank", None),
            ("coffee", Some("added"))
        ]
    );
    assert!(
        results[1]["error"].as_str().unwrap().contains("text"),
        "{body}"
    );
    let (_, body) = call("POST", &batch, app, Some(docs));
    assert_eq!(body["results"][0]["result"], "unchanged", "{body}");
    let four = serde_json::json!({"documents": (0..4).map(|i| serde_json::json!({"id": format!("d{i}"), "text": "t"})).collect::<Vec<_>>()});
    let (status, body) = call("POST", &batch, app, Some(four));
    assert_eq!(status, 400);
    assert!(body.to_string().contains("server.max_batch"), "{body}");

    let (_, info) = call("GET", &format!("{collections}/notes"), reader, None);
    assert_eq!(info["points"], 2, "{info}");
    assert!(
        info["indexed_vectors"].as_u64().unwrap() >= 4,
        "each write's sync builds the graph: {info}"
    );

    let (status, page) = call("GET", &format!("{batch}?limit=1"), reader, None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 2);
    assert_eq!(page["documents"][0]["doc_id"], "coffee");
    assert_eq!(page["next"], "coffee");
    let (_, page) = call(
        "GET",
        &format!("{batch}?limit=1&after=coffee"),
        reader,
        None,
    );
    assert_eq!(page["documents"][0]["doc_id"], "tea");
    assert_eq!(page["documents"][0]["title"], "Tea");
    assert!(page["next"].is_null(), "{page}");
    let (status, _) = call("GET", &format!("{batch}?limit=0"), reader, None);
    assert_eq!(status, 400);

    let (_, hits) = call(
        "POST",
        &format!("{collections}/notes/search"),
        reader,
        Some(serde_json::json!({"query": "how hot for green tea"})),
    );
    assert_eq!(hits["hits"][0]["doc_id"], "tea", "{hits}");

    let (status, _) = call("DELETE", &format!("{collections}/notes"), reader, None);
    assert_eq!(status, 403);
    let (status, body) = call("DELETE", &format!("{collections}/notes"), app, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["documents"], 2);
    let (status, _) = call("GET", &batch, reader, None);
    assert_eq!(status, 404);
    let (_, listing) = call("GET", &collections, reader, None);
    assert_eq!(listing["collections"], serde_json::json!([]));
    let (status, _) = call("DELETE", &format!("{collections}/notes"), app, None);
    assert_eq!(status, 404);
}

#[test]
fn the_test_summary_counts_every_binary_and_every_crash() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = std::fs::read_to_string(repo.join("scripts/test.sh")).unwrap();
    assert!(
        script.contains("cargo test --workspace --no-fail-fast"),
        "a failing binary would hide the rest"
    );
    // One binary fails a test, the next passes 80, a third crashes before
    // printing a result, a fourth does not build.
    let log = "\
     Running tests/a.rs (target/debug/deps/a-1)
test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s
error: test failed, to rerun pass `-p quarry --test a`
     Running tests/b.rs (target/debug/deps/b-2)
test result: ok. 80 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.10s
     Running tests/c.rs (target/debug/deps/c-3)
error: test failed, to rerun pass `-p quarry --test c`
Caused by:
  process didn't exit successfully: `target/debug/deps/c-3` (signal: 11, SIGSEGV: invalid memory reference)
error: could not compile `quarry-store` (test \"contract\") due to 1 previous error
Caused by:
  process didn't exit successfully: `target/debug/deps/a-1` (exit status: 101)
";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, log).unwrap();
    let out = std::process::Command::new("awk")
        .args(["-v", "skipped=1", "-v", "api=-1", "-f"])
        .arg(repo.join("scripts/test-summary.awk"))
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "summary: 83 passed, 3 failed, 3 skipped\n"
    );
}

#[test]
fn relevance_is_one_scale_across_modes_and_min_relevance_filters_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus");
    quarry_ok(&sync_args(&corpus, "guide", &data));
    let top = |query: &str, mode: &str, extra: &[&str]| {
        let args = [
            &[
                "search",
                query,
                "-c",
                "guide",
                "--data-dir",
                s(&data),
                "--json",
                "-k",
                "3",
                "--mode",
                mode,
            ][..],
            extra,
        ]
        .concat();
        success_json(&quarry_ok(&args))["hits"]
            .as_array()
            .unwrap()
            .clone()
    };
    // On the calibration's scale (fitted where few top hits are judged
    // relevant) a good hit of this small guide reads about 0.1 to 0.6, an
    // off-topic one about 0.
    let on = "what is the API key scope for writes";
    let off = "chocolate cake recipe with fresh strawberries";
    const ON_TOPIC: f64 = 0.1;
    const OFF_TOPIC: f64 = 0.02;
    for mode in ["dense", "bm25", "hybrid"] {
        let hits = top(on, mode, &[]);
        let best = hits[0]["relevance"].as_f64().unwrap();
        assert_eq!(hits[0]["doc_id"], "authentication.md", "{mode}: {hits:#?}");
        assert!(best >= ON_TOPIC, "{mode}: on-topic relevance {best}");
        let worst_off = top(off, mode, &[])
            .iter()
            .map(|h| h["relevance"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            worst_off <= OFF_TOPIC,
            "{mode}: off-topic relevance {worst_off}"
        );
        // The raw scores are on three scales; the filter is on one.
        assert!(
            top(off, mode, &["--min-relevance", "0.1"]).is_empty(),
            "{mode}"
        );
        let kept = top(on, mode, &["--min-relevance", "0.1"]);
        assert!(
            !kept.is_empty() && kept.iter().all(|h| h["relevance"].as_f64().unwrap() >= 0.1),
            "{mode}: {kept:#?}"
        );
    }
    let out = quarry_home(&[
        "search",
        on,
        "-c",
        "guide",
        "--data-dir",
        s(&data),
        "--min-relevance",
        "1.5",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("min_relevance must be between 0 and 1"),
        "{}",
        stderr(&out)
    );
}
