//! `type = "git"` end to end: a real repository made with the git CLI,
//! fetched over `file://` into the mirror, synced by the real binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::git::{commit_all, git, handbook_repo, write};
use support::*;

struct Setup {
    _dir: tempfile::TempDir,
    repo: std::path::PathBuf,
    config: std::path::PathBuf,
    data: std::path::PathBuf,
}

fn setup(web_url: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let repo = handbook_repo(dir.path(), &[("src/main.rs", "fn main() {}\n")]);
    let config = dir.path().join("quarry.toml");
    let template = if web_url {
        "web_url = \"https://git.example.com/handbook/blob/{sha}/{path}\"\n"
    } else {
        ""
    };
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"handbook\"\ntype = \"git\"\nurl = \"file://{}\"\ninclude = [\"docs/**\"]\n{template}",
            repo.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    Setup {
        repo,
        config,
        data,
        _dir: dir,
    }
}

fn sync_args<'a>(config: &'a Path, data: &'a Path) -> Vec<&'a str> {
    source_sync_args("handbook", config, data)
}

fn sync(setup: &Setup) -> std::process::Output {
    quarry_home(&sync_args(&setup.config, &setup.data))
}

fn export_of(config: &Path, data: &Path) -> Vec<serde_json::Value> {
    export_points("handbook", config, data)
}

fn export(setup: &Setup) -> Vec<serde_json::Value> {
    export_of(&setup.config, &setup.data)
}

#[test]
fn a_git_source_syncs_edits_deletes_adds_and_renames_exactly_and_cites_the_commit() {
    let s = setup(true);
    let first = success_json(&sync(&s));
    assert_eq!(
        (first["added"].as_u64(), first["failed"].as_u64()),
        (Some(4), Some(0)),
        "{first}"
    );
    assert!(
        s.data.join("sources/handbook.git/HEAD").is_file(),
        "a bare mirror is kept"
    );

    // Nothing changed: one fetch, nothing embedded.
    let again = success_json(&sync(&s));
    assert_eq!(again["unchanged"], 4, "{again}");
    assert_eq!(again["chunks_embedded"], 0, "{again}");

    // One edit, one delete, one add, one rename.
    write(
        &s.repo,
        &[
            (
                "docs/deploy.md",
                "# Deploy\n\nThe bison rollout checklist, now with a canary step.\n",
            ),
            ("docs/new.md", "# New\n\nThe echidna release notes.\n"),
        ],
    );
    std::fs::remove_file(s.repo.join("docs/old.md")).unwrap();
    git(&s.repo, &["mv", "docs/moved.md", "docs/renamed.md"]);
    let sha = commit_all(&s.repo, "second");
    let r = success_json(&sync(&s));
    assert_eq!(counts(&r), (1, 1, 1, 1), "{r}");
    assert_eq!(r["renamed"], 1, "{r}");
    let data = s.data.to_str().unwrap();
    for (query, doc) in [
        ("echidna release notes", "docs/new.md"),
        ("canary step", "docs/deploy.md"),
        ("dromedary handbook", "docs/renamed.md"),
    ] {
        let v = success_json(&bm25_search(query, "handbook", &[], Path::new(data)));
        assert_eq!(v["hits"][0]["doc_id"], doc, "{query}: {v}");
        if doc != "docs/renamed.md" {
            assert_eq!(
                v["hits"][0]["uri"],
                format!("https://git.example.com/handbook/blob/{sha}/{doc}"),
                "{v}"
            );
        }
    }
    let v = success_json(&bm25_search(
        "cormorant archive",
        "handbook",
        &[],
        Path::new(data),
    ));
    assert!(
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["doc_id"] != "docs/old.md"),
        "{v}"
    );
    let points = export(&s);
    let new = points
        .iter()
        .find(|p| p["payload"]["doc_id"] == "docs/new.md")
        .unwrap();
    assert_eq!(new["payload"]["metadata"]["git_commit"], sha, "{new}");
    assert!(
        points
            .iter()
            .all(|p| !p["payload"]["doc_id"].as_str().unwrap().starts_with("src/")),
        "include is honoured"
    );
    assert!(
        points
            .iter()
            .all(|p| p["payload"]["doc_id"] != "docs/moved.md"),
        "a renamed file's old path is gone"
    );

    // A rename alone re-stores the document under its new path, with the
    // vectors it already had.
    std::fs::create_dir_all(s.repo.join("docs/archive")).unwrap();
    git(
        &s.repo,
        &["mv", "docs/renamed.md", "docs/archive/renamed.md"],
    );
    commit_all(&s.repo, "third");
    let r = success_json(&sync(&s));
    assert_eq!(counts(&r), (0, 0, 0, 3), "{r}");
    assert_eq!(
        (r["renamed"].as_u64(), r["chunks_embedded"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    let hit =
        &success_json(&bm25_search("dromedary handbook", "handbook", &[], &s.data))["hits"][0];
    assert_eq!(hit["doc_id"], "docs/archive/renamed.md", "{hit}");
}

#[test]
fn a_git_remote_that_fails_fails_the_sync_and_deletes_nothing() {
    let s = setup(false);
    success_json(&sync(&s));
    let before = export(&s);
    let v = success_json(&bm25_search(
        "aardvark onboarding",
        "handbook",
        &[],
        &s.data,
    ));
    assert!(
        v["hits"][0]["uri"]
            .as_str()
            .unwrap()
            .contains("#docs/intro.md@"),
        "the default citation names the path and the commit: {v}"
    );
    // The remote disappears.
    let away = s.repo.with_extension("away");
    std::fs::rename(&s.repo, &away).unwrap();
    let out = sync(&s);
    assert!(!out.status.success(), "a failed fetch must fail the sync");
    let err = stderr(&out);
    assert!(
        err.contains("handbook") && err.contains("fetch") || err.contains("connect"),
        "{err}"
    );
    assert_eq!(
        export(&s),
        before,
        "a failed listing must not change the index"
    );
    // It comes back: the next sync succeeds with nothing to do.
    std::fs::rename(&away, &s.repo).unwrap();
    let back = success_json(&sync(&s));
    assert_eq!(counts(&back), (0, 0, 0, 4), "{back}");
}

#[test]
fn quarry_serve_picks_up_a_pushed_commit_on_its_schedule() {
    let s = setup(false);
    let config = std::fs::read_to_string(&s.config).unwrap() + "every = \"2s\"\n";
    std::fs::write(&s.config, config).unwrap();
    let (mut child, url) = quarry_serve(&[
        "--config",
        s.config.to_str().unwrap(),
        "--data-dir",
        s.data.to_str().unwrap(),
    ]);
    let search = |query: &str| http_hits(&url, "handbook", query);
    let wait = |query: &str, doc: &str, secs: u64| {
        let started = std::time::Instant::now();
        while !search(query).iter().any(|d| d == doc) {
            assert!(
                started.elapsed().as_secs() < secs,
                "{query:?} did not find {doc} within {secs} s"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        started.elapsed()
    };
    wait("aardvark onboarding", "docs/intro.md", 20);
    write(
        &s.repo,
        &[(
            "docs/pushed.md",
            "# Pushed\n\nThe flamingo migration plan.\n",
        )],
    );
    let sha = commit_all(&s.repo, "pushed");
    let took = wait("flamingo migration", "docs/pushed.md", 10);
    eprintln!("a pushed commit was searchable after {took:?} (every = 2s)");
    // The pushed file is searchable as soon as it is published; the run
    // that published it is recorded a moment later, when it ends.
    let sources = || -> serde_json::Value {
        ureq::get(&format!("{url}/v1/sources"))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let mut v = sources();
    while v["sources"][0]["totals"]["added"].as_u64().unwrap_or(0) < 5
        && started.elapsed().as_secs() < 10
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
        v = sources();
    }
    let status = &v["sources"][0];
    assert_eq!(
        (status["source"].as_str(), status["kind"].as_str()),
        (Some("handbook"), Some("git")),
        "{v}"
    );
    assert_eq!(status["last_run"]["outcome"], "succeeded", "{v}");
    assert!(status["totals"]["added"].as_u64().unwrap() >= 5, "{v}");
    let _ = sha;
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL at random moments of a git sync that adds, edits and deletes,
/// then a resume: the index equals an uninterrupted sync's, point by point.
#[test]
fn kill_9_during_a_git_sync_then_resume_equals_an_uninterrupted_sync() {
    let setup = setup(false);
    let doc = |i: usize, v: usize| {
        format!(
            "# Page {i}\n\nPage {i} version {v} describes the gecko {i} procedure in detail.\n\n{}\n",
            "More text about this procedure. ".repeat(20)
        )
    };
    for i in 0..120 {
        write(
            &setup.repo,
            &[(format!("docs/p{i:03}.md").as_str(), doc(i, 1).as_str())],
        );
    }
    commit_all(&setup.repo, "v1");
    success_json(&sync(&setup));
    let base = setup.data.with_extension("base");
    copy_dir(&setup.data, &base);
    for i in 0..160 {
        let path = setup.repo.join(format!("docs/p{i:03}.md"));
        if i < 120 && i % 5 == 0 {
            std::fs::remove_file(path).unwrap();
        } else if i >= 120 || i % 3 == 0 {
            std::fs::write(path, doc(i, 2)).unwrap();
        }
    }
    commit_all(&setup.repo, "v2");
    let clean = setup.data.with_extension("clean");
    copy_dir(&base, &clean);
    let started = std::time::Instant::now();
    let out = quarry_home(&sync_args(&setup.config, &clean));
    let full = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = export_of(&setup.config, &clean);
    let killed = kill_and_resume(
        (6, 20),
        &base,
        full,
        |data| quarry_command(&sync_args(&setup.config, data)),
        |data| export_of(&setup.config, data),
        &expected,
    );
    assert!(killed >= 3, "only {killed} kills landed mid-sync");
}

/// A `git daemon` on loopback serving `base`; killed on drop.
struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // git-daemon itself, not `git daemon`: git runs it as a child
        // process, which killing `git` would leave serving.
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 10, "git daemon did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_git_source_over_the_network_syncs_and_a_stopped_server_fails_the_sync() {
    let setup = setup(false);
    let base = setup.repo.parent().unwrap().to_path_buf();
    let daemon = Daemon::start(&base);
    let url = format!("git://127.0.0.1:{}/handbook", daemon.port);
    let config = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(&format!("file://{}", setup.repo.display()), &url);
    std::fs::write(&setup.config, config).unwrap();
    let first = success_json(&sync(&setup));
    assert_eq!(first["added"], 4, "{first}");
    write(
        &setup.repo,
        &[("docs/net.md", "# Net\n\nThe gannet network notes.\n")],
    );
    commit_all(&setup.repo, "over the network");
    let second = success_json(&sync(&setup));
    assert_eq!(
        (second["added"].as_u64(), second["unchanged"].as_u64()),
        (Some(1), Some(4)),
        "{second}"
    );
    let v = success_json(&bm25_search("gannet network", "handbook", &[], &setup.data));
    assert_eq!(v["hits"][0]["doc_id"], "docs/net.md", "{v}");
    assert!(
        v["hits"][0]["uri"].as_str().unwrap().starts_with(&url),
        "{v}"
    );
    // The server stops mid-life: the sync fails, nothing changes.
    let before = export(&setup);
    drop(daemon);
    assert_failed_naming(&sync(&setup), &url);
    assert_eq!(export(&setup), before);
}

#[test]
fn a_force_push_that_rewrites_history_is_synced_from_the_new_tree() {
    let setup = setup(false);
    success_json(&sync(&setup));
    // Rewrite the last commit: a file changes, another disappears, and the
    // old head is no longer an ancestor of the new one.
    write(
        &setup.repo,
        &[(
            "docs/intro.md",
            "# Intro\n\nThe aardvark onboarding guide, rewritten.\n",
        )],
    );
    std::fs::remove_file(setup.repo.join("docs/old.md")).unwrap();
    git(&setup.repo, &["add", "-A"]);
    git(&setup.repo, &["commit", "-q", "--amend", "-m", "rewritten"]);
    let r = success_json(&sync(&setup));
    assert_eq!(
        (
            r["updated"].as_u64(),
            r["deleted"].as_u64(),
            r["unchanged"].as_u64()
        ),
        (Some(1), Some(1), Some(2)),
        "{r}"
    );
    let v = success_json(&bm25_search("rewritten", "handbook", &[], &setup.data));
    assert_eq!(v["hits"][0]["doc_id"], "docs/intro.md", "{v}");
}
