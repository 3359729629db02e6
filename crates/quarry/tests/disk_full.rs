//! A full disk: on a small tmpfs, a sync must stop with an error that says
//! what is wrong (never SIGBUS), searches and exports must keep working,
//! and once space is freed the next sync must leave a correct index.
//! Mounting needs root; where it is refused the test reports itself skipped.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run(args: &[&str], data: &Path) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--data-dir", data.to_str().unwrap()]);
    quarry(&all, Some(&home()), &[], None)
}

fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Leaves about `leave` bytes free on the file system of `dir`.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let filler = dir.join(format!("filler-{leave}"));
    let size = free_bytes(dir).saturating_sub(leave);
    let f = std::fs::File::create(&filler).unwrap();
    // Written, not truncated: tmpfs must really hold the bytes.
    let mut w = std::io::BufWriter::new(f);
    let block = vec![0xa5u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        if std::io::Write::write_all(&mut w, &block[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = std::io::Write::flush(&mut w);
    filler
}

fn assert_no_signal(out: &std::process::Output, what: &str) {
    assert!(
        out.status.signal().is_none(),
        "{what} died from signal {:?}: {}",
        out.status.signal(),
        stderr(out)
    );
    assert_no_panic(out);
}

/// The BM25 search for record 3 still finds the old version of doc3.md.
fn assert_old_doc3_is_found(data: &Path, what: &str) {
    let out = bm25_search("pangolin3 archive", "docs", &[], data);
    assert_no_signal(&out, what);
    let v = success_json(&out);
    assert_eq!(v["hits"][0]["doc_id"], "doc3.md", "{v}");
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_index_survives_it() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=400m", "tmpfs"])
        .arg(&mnt)
        .output();
    if !mounted.is_ok_and(|o| o.status.success()) {
        quarry_core::skip_test("cannot mount a tmpfs here (needs root and mount rights)");
        return;
    }
    let _mount = Mount(mnt.clone());
    let data = mnt.join("data");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    for i in 0..20 {
        std::fs::write(
            tree.join(format!("doc{i}.md")),
            format!("# Doc {i}\n\nThe pangolin{i} archive holds record {i}.\n"),
        )
        .unwrap();
    }
    let sync = |data: &Path| {
        run(
            &[
                "sync",
                "--path",
                tree.to_str().unwrap(),
                "-c",
                "docs",
                "--json",
            ],
            data,
        )
    };

    // A first sync into an empty data directory on a full disk is refused.
    let filler = fill(&mnt, 4 << 20);
    let out = sync(&data);
    assert_no_signal(&out, "sync at open");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("min_free_bytes"), "{}", stderr(&out));
    std::fs::remove_file(&filler).unwrap();

    let out = sync(&data);
    assert!(out.status.success(), "{}", stderr(&out));

    // Changed documents on a full disk: refused, with the reason.
    for i in 0..20 {
        std::fs::write(
            tree.join(format!("doc{i}.md")),
            format!("# Doc {i}\n\nThe tapir{i} register replaced record {i}.\n"),
        )
        .unwrap();
    }
    let filler = fill(&mnt, 4 << 20);
    let out = sync(&data);
    assert_no_signal(&out, "sync mid-way");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("low-water mark") && err.contains("min_free_bytes"),
        "{err}"
    );

    // Reads work on the full disk, and still see the old version.
    assert_old_doc3_is_found(&data, "search");
    let out = run(&["export", "-c", "docs"], &data);
    assert_no_signal(&out, "export");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 20);

    // Not a byte left: a fresh process still opens the shard and reads.
    let last = fill(&mnt, 0);
    assert_eq!(free_bytes(&mnt), 0);
    assert_old_doc3_is_found(&data, "search on a disk with no byte free");

    // Space freed: the next sync completes and the index is exactly right.
    std::fs::remove_file(&last).unwrap();
    std::fs::remove_file(&filler).unwrap();
    let out = sync(&data);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["updated"], 20, "{r}");
    let out = run(&["export", "-c", "docs"], &data);
    let exported = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(exported.lines().count(), 20);
    assert!(!exported.contains("pangolin") && exported.contains("tapir7 register"));
}
