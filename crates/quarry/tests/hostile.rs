//! A hostile corpus, generated at test time by `scripts/hostile-corpus.py`
//! (nothing binary is committed): parser bombs, deep nesting, minified and
//! generated files, broken and encrypted PDFs, legacy encodings, NULs,
//! FIFOs, symlink loops and links out of the root, names that are not
//! UTF-8. One sync must give every file its documented outcome and reason,
//! leave every good file searchable, and stay within bounds of time and
//! memory that the test reports (and checks loosely, so a quadratic parser
//! or an unbounded inflate still fails it).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Far beyond what the corpus needs (seconds, and about 300 MB), far
/// below what the defects took (minutes per file, and 4.4 GB for one PDF).
const MAX_SECS: u64 = 300;
const MAX_RSS_KB: u64 = 1_500_000;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

/// Peak RSS of a running process, from /proc.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The BM25 search of `query` in the corpus's collection, as JSON.
fn search(data: &Path, query: &str) -> serde_json::Value {
    success_json(&bm25_search(query, "hostile", &[], data))
}

#[test]
fn a_hostile_corpus_gets_its_outcomes_and_every_good_file_is_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    let made = Command::new("python3")
        .arg(repo().join("scripts/hostile-corpus.py"))
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(corpus.join("manifest.json")).unwrap()).unwrap();
    let docs = corpus.join("docs");
    let config = dir.path().join("quarry.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"hostile\"\ntype = \"fs\"\npath = {:?}\nfollow_symlinks = true\n",
            docs.to_str().unwrap()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let started = Instant::now();
    let mut child = quarry_command(&["--config", s(&config), "sync", "--json"])
        .args(["--data-dir", s(&data)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = peak_rss_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(MAX_SECS) {
            let _ = child.kill();
            panic!("the sync ran past {MAX_SECS}s: a file's cost is unbounded");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    let out = child.wait_with_output().unwrap();
    assert_no_panic(&out);
    eprintln!(
        "hostile corpus: sync took {secs:.1}s, peak RSS {} MB",
        peak / 1024
    );
    assert!(
        peak < MAX_RSS_KB,
        "peak RSS {peak} kB: something is unbounded"
    );
    assert_eq!(status.code(), Some(3), "partial success: {}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));

    let errors = report["errors"].as_array().unwrap();
    let files = manifest["files"].as_array().unwrap();
    let mut indexed = 0;
    for f in files {
        let path = f["path"].as_str().unwrap();
        let outcome = f["outcome"].as_str().unwrap();
        let reason = f["reason"].as_str();
        // Non-UTF-8 names are matched by their escaped id, not by path.
        let raw = f.get("path_b64").is_some();
        let found = errors.iter().find(|e| {
            let uri = e["uri"].as_str().unwrap();
            !raw && uri.ends_with(&format!("/{path}"))
        });
        match outcome {
            "indexed" => {
                assert!(found.is_none(), "{path} should be indexed: {found:?}");
                indexed += 1;
            }
            "skipped" | "failed" | "listing" => {
                let e = found.unwrap_or_else(|| panic!("{path}: no report entry in {report}"));
                let kind = e["kind"].as_str().unwrap();
                let expected_kind = if outcome == "listing" {
                    "failed"
                } else {
                    outcome
                };
                assert_eq!(kind, expected_kind, "{path}: {e}");
                let why = e["reason"].as_str().unwrap().to_lowercase();
                if let Some(r) = reason {
                    assert!(why.contains(r), "{path}: reason {why:?} lacks {r:?}");
                }
                assert!(!why.contains("panick"), "{path}: {why}");
            }
            other => panic!("unknown outcome {other}"),
        }
    }
    assert_eq!(report["added"], indexed, "{report}");
    assert_eq!(errors.len(), files.len() - indexed, "{report}");

    // Every good file is found by its probe word, and only there.
    for f in files.iter().filter(|f| f["outcome"] == "indexed") {
        let probe = f["probe"].as_str().unwrap();
        let v = search(&data, probe);
        let hits = v["hits"].as_array().unwrap();
        assert!(
            !hits.is_empty(),
            "{probe} ({}) is not searchable",
            f["path"]
        );
        let text = hits[0]["text"].as_str().unwrap().to_lowercase();
        assert!(text.contains(probe), "{probe}: top hit {:?}", hits[0]);
        if f.get("path_b64").is_none() {
            assert_eq!(hits[0]["doc_id"], f["path"], "{probe}");
        }
    }
    // The two non-UTF-8 names keep two documents, neither of them "vanished".
    let ids: Vec<String> = ["snorkelbey", "wobbletarn"]
        .iter()
        .map(|probe| {
            let v = search(&data, probe);
            v["hits"][0]["doc_id"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(ids, ["names/caf%E9.txt", "names/caf%E8.txt"]);
    // Nothing from outside the root was read.
    let out = quarry_home(&["export", "-c", "hostile", "--data-dir", s(&data)]);
    let exported = String::from_utf8(out.stdout).unwrap();
    assert!(!exported.contains("outsidesecret"));
    assert!(!exported.contains('\0'), "a NUL reached the index");
    assert!(
        exported.contains("\"encoding\":\"windows-1252\""),
        "the decoded encoding is recorded"
    );
}
