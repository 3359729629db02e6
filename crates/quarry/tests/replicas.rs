//! Two `quarry serve` replicas sharing one Qdrant server, each with the
//! same scheduled git source: the source's lease in Qdrant lets exactly
//! one of them sync it, and both serve what it wrote. Needs `QDRANT_BIN`
//! (see `support::qdrant`); without it the test reports itself skipped.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::git::{commit, git};
use support::qdrant::qdrant_in_tempdir;
use support::*;

fn sources(url: &str) -> serde_json::Value {
    ureq::get(&format!("{url}/v1/sources"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

fn wait_for(url: &str, query: &str, doc: &str, secs: u64) {
    let started = Instant::now();
    while !http_hits(url, "handbook", query).iter().any(|d| d == doc) {
        assert!(
            started.elapsed().as_secs() < secs,
            "{url}: {query:?} did not find {doc} within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn replicas_sharing_a_qdrant_server_sync_each_source_from_one_replica() {
    let Some((tmp, qdrant)) = qdrant_in_tempdir() else {
        return;
    };
    let repo = tmp.path().join("handbook");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    commit(
        &repo,
        &[("intro.md", "# Intro\n\nThe aardvark onboarding guide.\n")],
        "first",
    );
    let config = write_config(
        tmp.path(),
        &format!(
            "[[sources]]\nname = \"handbook\"\ntype = \"git\"\nurl = \"file://{}\"\nevery = \"2s\"\n",
            repo.display()
        ),
    );
    let store = qdrant.url();
    let replica = |name: &str| {
        let data = tmp.path().join(name);
        quarry_serve(&[
            "--config",
            s(&config),
            "--data-dir",
            s(&data),
            "--store",
            &store,
        ])
    };
    let (mut a, url_a) = replica("a");
    let (mut b, url_b) = replica("b");
    wait_for(&url_a, "aardvark onboarding", "intro.md", 60);
    wait_for(&url_b, "aardvark onboarding", "intro.md", 60);
    // Several periods later, still only one replica has ever synced it.
    std::thread::sleep(Duration::from_secs(7));
    let ran = |url: &str| !sources(url)["sources"][0]["last_run"].is_null();
    let (ran_a, ran_b) = (ran(&url_a), ran(&url_b));
    assert!(
        ran_a ^ ran_b,
        "exactly one replica syncs: a {ran_a}, b {ran_b}"
    );
    // A push is picked up by the holder and served by both.
    commit(
        &repo,
        &[("pushed.md", "# Pushed\n\nThe flamingo migration plan.\n")],
        "pushed",
    );
    let (holder, other) = if ran_a {
        (&url_a, &url_b)
    } else {
        (&url_b, &url_a)
    };
    wait_for(other, "flamingo migration", "pushed.md", 15);
    let runs = sources(holder)["sources"][0]["totals"]["added"].as_u64();
    assert_eq!(runs, Some(2), "{}", sources(holder));
    assert!(sources(other)["sources"][0]["last_run"].is_null());
    for child in [&mut a, &mut b] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
