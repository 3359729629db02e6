//! `type = "s3"` end to end: a real S3-compatible server (moto, in server
//! mode) on loopback, objects written with the same `object_store` client
//! users' tools would use, synced by the real binary.
//!
//! `scripts/test.sh` installs moto into the test venv when it is missing;
//! without it (`QUARRY_MOTO_SERVER`, or `moto_server` in the venv) these
//! tests report themselves skipped.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::*;

const BUCKET: &str = "reports";

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUARRY_MOTO_SERVER") {
        return Some(p.into());
    }
    let venv = std::env::var_os("QUARRY_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/quarry/test-venv"))
        })?;
    let p = venv.join("bin/moto_server");
    p.is_file().then_some(p)
}

/// A moto server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Option<Self> {
        let Some(bin) = moto_binary() else {
            quarry_core::skip_test(
                "no S3-compatible server: install moto[server] into the test venv \
                 (scripts/test.sh does) or set QUARRY_MOTO_SERVER",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        while ureq::get(&format!("{endpoint}/moto-api/")).call().is_err() {
            assert!(started.elapsed().as_secs() < 30, "moto did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(Self { child, endpoint })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Credentials moto accepts, for the client here and the binary alike.
const ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "quarry-test"),
    ("AWS_SECRET_ACCESS_KEY", "quarry-test-secret"),
    ("AWS_REGION", "us-east-1"),
];

/// The bucket, through `object_store` on a runtime of its own.
struct Bucket {
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
}

impl Bucket {
    fn create(endpoint: &str) -> Self {
        // moto creates a bucket on a plain PUT of its path.
        let r = ureq::put(&format!("{endpoint}/{BUCKET}")).call();
        assert!(r.is_ok(), "creating the bucket: {r:?}");
        let store = AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_region(ENV[2].1)
            .with_access_key_id(ENV[0].1)
            .with_secret_access_key(ENV[1].1)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            store: Arc::new(store),
            rt,
        }
    }

    fn put(&self, key: &str, text: &str) {
        let payload = PutPayload::from(text.as_bytes().to_vec());
        self.rt
            .block_on(self.store.put(&Key::from(key), payload))
            .unwrap();
    }

    fn delete(&self, key: &str) {
        self.rt
            .block_on(self.store.delete(&Key::from(key)))
            .unwrap();
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
}

fn setup(endpoint: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quarry.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"reports\"\ntype = \"s3\"\nurl = \"s3://{BUCKET}/q3/\"\n\
             endpoint = \"{endpoint}\"\nregion = \"us-east-1\"\ntimeout_secs = 5\n{extra}"
        ),
    )
    .unwrap();
    Setup {
        data: dir.path().join("data"),
        config,
        _dir: dir,
    }
}

fn sync(setup: &Setup) -> std::process::Output {
    let mut cmd = quarry_command(&source_sync_args("reports", &setup.config, &setup.data));
    cmd.envs(ENV).output().unwrap()
}

fn export(s: &Setup) -> Vec<serde_json::Value> {
    export_points("reports", &s.config, &s.data)
}

fn first_hit(query: &str, data: &Path) -> serde_json::Value {
    let v = success_json(&bm25_search(query, "reports", &[], data));
    v["hits"][0].clone()
}

fn seed(bucket: &Bucket) {
    bucket.put(
        "q3/summary.md",
        "# Summary\n\nThe aardvark revenue summary.\n",
    );
    bucket.put("q3/costs.md", "# Costs\n\nThe bison cost breakdown.\n");
    bucket.put("q3/old.txt", "The cormorant archive of last year.\n");
    bucket.put("q3/drafts/skip.tmp", "The scratch file nobody wants.\n");
    // Outside the prefix: never listed.
    bucket.put(
        "q4/plan.md",
        "# Plan\n\nThe dromedary plan for next quarter.\n",
    );
}

#[test]
fn an_s3_source_syncs_edits_deletes_and_adds_exactly_and_cites_the_object_key() {
    let Some(moto) = Moto::start() else { return };
    let bucket = Bucket::create(&moto.endpoint);
    seed(&bucket);
    let s = setup(&moto.endpoint, "exclude = [\"**/*.tmp\"]\n");
    let first = success_json(&sync(&s));
    assert_eq!(counts(&first), (3, 0, 0, 0), "{first}");
    assert_eq!(first["failed"], 0, "{first}");

    // Nothing changed: the listing's ETags match, nothing is read again.
    let again = success_json(&sync(&s));
    assert_eq!(counts(&again), (0, 0, 0, 3), "{again}");
    assert_eq!(again["chunks_embedded"], 0, "{again}");

    bucket.put(
        "q3/costs.md",
        "# Costs\n\nThe bison cost breakdown, with the new echidna line.\n",
    );
    bucket.delete("q3/old.txt");
    bucket.put(
        "q3/new/forecast.md",
        "# Forecast\n\nThe flamingo forecast.\n",
    );
    let r = success_json(&sync(&s));
    assert_eq!(counts(&r), (1, 1, 1, 1), "{r}");

    for (query, doc) in [
        ("flamingo forecast", "new/forecast.md"),
        ("echidna line", "costs.md"),
    ] {
        let hit = first_hit(query, &s.data);
        assert_eq!(hit["doc_id"], doc, "{query}: {hit}");
        assert_eq!(hit["uri"], format!("s3://{BUCKET}/q3/{doc}"), "{hit}");
    }
    let points = export(&s);
    let ids: std::collections::BTreeSet<&str> = points
        .iter()
        .map(|p| p["payload"]["doc_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        ["costs.md", "new/forecast.md", "summary.md"],
        "the deleted object is gone; the excluded and out-of-prefix ones never came"
    );
    let costs = points
        .iter()
        .find(|p| p["payload"]["doc_id"] == "costs.md")
        .unwrap();
    assert_eq!(
        costs["payload"]["metadata"]["s3_key"], "q3/costs.md",
        "{costs}"
    );
    assert!(
        costs["payload"]["metadata"]["s3_etag"]
            .as_str()
            .is_some_and(|e| !e.is_empty() && !e.contains('"')),
        "{costs}"
    );
}

#[test]
fn a_stopped_s3_server_fails_the_sync_and_changes_nothing() {
    let Some(mut moto) = Moto::start() else {
        return;
    };
    let bucket = Bucket::create(&moto.endpoint);
    seed(&bucket);
    let s = setup(&moto.endpoint, "");
    success_json(&sync(&s));
    let before = export(&s);
    // Changes that a half-seen bucket could misread as deletions.
    bucket.delete("q3/summary.md");
    bucket.put("q3/costs.md", "# Costs\n\nRewritten.\n");
    moto.stop();
    let started = std::time::Instant::now();
    let out = sync(&s);
    assert!(
        !out.status.success(),
        "an unreachable server must fail the sync"
    );
    let err = stderr(&out);
    assert!(
        err.contains("s3://reports/q3/") && err.contains("temporary"),
        "the error names the source URL and says a retry may help: {err}"
    );
    eprintln!("failed after {:?}", started.elapsed());
    assert_eq!(
        export(&s),
        before,
        "a failed listing must not change the index"
    );
}

#[test]
fn a_missing_bucket_or_a_url_that_is_not_s3_is_named_with_its_fix() {
    let Some(moto) = Moto::start() else { return };
    let s = setup(&moto.endpoint, "");
    // No bucket at all: moto answers NoSuchBucket.
    let out = sync(&s);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("s3://reports/q3/"), "{err}");
    assert!(
        err.contains("NoSuchBucket") && err.contains("check the bucket in `url`"),
        "{err}"
    );
    assert!(
        !err.contains("temporary") && !err.contains("<?xml"),
        "{err}"
    );
    assert_no_panic(&out);
    // A URL that is not S3's.
    let bad = setup(&moto.endpoint, "");
    let text = std::fs::read_to_string(&bad.config)
        .unwrap()
        .replace("s3://reports/q3/", "https://reports/q3/");
    std::fs::write(&bad.config, text).unwrap();
    let out = sync(&bad);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("s3://bucket/prefix/"),
        "{}",
        stderr(&out)
    );
}
