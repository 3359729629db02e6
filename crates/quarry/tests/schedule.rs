//! `quarry serve` keeps sources fresh by itself: a source with `every` is
//! synced on its period, a watched folder soon after it changes, and
//! `GET /v1/sources` says how each one is doing. Real binary, real HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// A `quarry serve` that is killed when the test ends, pass or fail.
struct Served {
    child: std::process::Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, sources_toml: &str) -> Served {
    let config = dir.join("quarry.toml");
    std::fs::write(&config, sources_toml).unwrap();
    let data = dir.join("data");
    let (child, url) = quarry_serve(&["--config", s(&config), "--data-dir", s(&data)]);
    Served { child, url }
}

fn hits(url: &str, collection: &str, query: &str) -> Vec<String> {
    http_hits(url, collection, query)
}

/// Polls until `query` finds `doc`; returns how long that took.
fn wait_for(url: &str, collection: &str, (query, doc): (&str, &str), secs: u64) -> Duration {
    let limit = Duration::from_secs(secs);
    let started = Instant::now();
    loop {
        if hits(url, collection, query).iter().any(|h| h == doc) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{query:?} did not find {doc} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn source_status(url: &str, name: &str) -> serde_json::Value {
    let v: serde_json::Value = ureq::get(&format!("{url}/v1/sources"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no source {name} in {v}"))
}

#[test]
fn a_source_with_every_is_synced_on_its_period_and_reports_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("notes");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.md"), "# A\n\nThe axolotl ledger.\n").unwrap();
    let toml = format!(
        "[[sources]]\nname = \"notes\"\ntype = \"fs\"\npath = \"{}\"\nevery = \"2s\"\n",
        tree.display()
    );
    let server = serve(dir.path(), &toml);
    // The first run happens at start.
    wait_for(&server.url, "notes", ("axolotl ledger", "a.md"), 10);
    std::fs::write(tree.join("b.md"), "# B\n\nThe bandicoot appendix.\n").unwrap();
    let took = wait_for(&server.url, "notes", ("bandicoot appendix", "b.md"), 10);
    eprintln!("a new file was searchable {took:?} after it was written (every = 2s)");
    // The run that indexed b.md records itself just after publishing it.
    let started = Instant::now();
    let status = loop {
        let status = source_status(&server.url, "notes");
        if status["totals"]["added"].as_u64().is_some_and(|n| n >= 2) {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["kind"], "fs", "{status}");
    assert_eq!(status["collection"], "notes", "{status}");
    assert_eq!(status["every_secs"], 2, "{status}");
    assert_eq!(status["last_run"]["outcome"], "succeeded", "{status}");
    assert!(status["error"].is_null(), "{status}");
    assert!(status["next_run_unix"].as_u64().is_some(), "{status}");
    assert!(
        status["lag_seconds"].as_u64().is_some_and(|l| l <= 10),
        "{status}"
    );
    assert!(status["totals"]["added"].as_u64().unwrap() >= 2, "{status}");

    // The folder disappears: the runs fail, say why, and delete nothing.
    std::fs::rename(&tree, dir.path().join("gone")).unwrap();
    let started = Instant::now();
    let status = loop {
        let status = source_status(&server.url, "notes");
        if status["error"].is_string() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["last_run"]["outcome"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("not a directory"),
        "{status}"
    );
    assert!(status["runs_failed"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(
        hits(&server.url, "notes", "axolotl ledger"),
        ["a.md"],
        "a failed listing must not delete"
    );
    // Back again: the next success clears the error.
    std::fs::rename(dir.path().join("gone"), &tree).unwrap();
    let started = Instant::now();
    loop {
        let status = source_status(&server.url, "notes");
        if status["error"].is_null() && status["last_run"]["outcome"] == "succeeded" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = ureq::get(&format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for line in [
        "quarry_source_runs_failed_total{source=\"notes\"}",
        "quarry_source_last_success_timestamp_seconds{source=\"notes\"}",
        "quarry_source_failing{source=\"notes\"} 0",
        "quarry_source_documents{source=\"notes\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[test]
fn a_watched_folder_is_searchable_seconds_after_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("watched");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("first.md"), "# First\n\nThe capybara manifest.\n").unwrap();
    // The data directory inside the watched folder: its writes must not
    // make each sync trigger the next.
    let config = write_config(
        dir.path(),
        &format!(
            "[[sources]]\nname = \"watched\"\ntype = \"fs\"\npath = \"{}\"\nwatch = true\n",
            tree.display()
        ),
    );
    let data = tree.join(".quarry");
    let (child, url) = quarry_serve(&["--config", s(&config), "--data-dir", s(&data)]);
    let server = Served { child, url };
    // A watched source with no schedule is synced on its first change.
    std::fs::write(tree.join("second.md"), "# Second\n\nThe dromedary index.\n").unwrap();
    let took = wait_for(&server.url, "watched", ("dromedary index", "second.md"), 5);
    eprintln!("a new file in a watched folder was searchable after {took:?}");
    assert_eq!(
        hits(&server.url, "watched", "capybara manifest"),
        ["first.md"]
    );
    // A burst of writes is one sync, and the data directory's own writes
    // do not start more: the run count settles.
    for i in 0..20 {
        std::fs::write(
            tree.join(format!("burst-{i}.md")),
            format!("# Burst {i}\n\nechidna {i}\n"),
        )
        .unwrap();
    }
    wait_for(&server.url, "watched", ("echidna 19", "burst-19.md"), 5);
    std::thread::sleep(Duration::from_secs(2));
    let settled = source_status(&server.url, "watched");
    std::thread::sleep(Duration::from_secs(2));
    let later = source_status(&server.url, "watched");
    assert_eq!(
        settled["last_run"], later["last_run"],
        "syncs kept running with nothing changing: {later}"
    );
    assert_eq!(later["watch"], true, "{later}");
}
