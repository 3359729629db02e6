//! `quarry sync` end to end on real files: formats, bad input, incremental
//! updates, and `kill -9` at random moments.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    quarry(args, Some(&home()), env, None)
}

/// `sync --path TREE -c docs --data-dir DATA --json`.
fn sync_docs_json<'a>(tree: &'a Path, data: &'a Path) -> Vec<&'a str> {
    let mut args = sync_args(tree, "docs", data);
    args.push("--json");
    args
}

fn sync_json(tree: &Path, data: &Path, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let out = run(&sync_docs_json(tree, data), env);
    assert_no_panic(&out);
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    (code, v)
}

fn export(data: &Path) -> String {
    let out = run(&["export", "-c", "docs", "--data-dir", s(data)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A small, valid two-page PDF with real text objects.
fn pdf(pages: &[&str]) -> Vec<u8> {
    let n = pages.len();
    let mut objs: Vec<String> = Vec::new();
    objs.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objs.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {n} >>",
        kids.join(" ")
    ));
    objs.push(
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    );
    for (i, text) in pages.iter().enumerate() {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R /Resources << /Font << /F1 3 0 R >> >> >>",
            5 + 2 * i
        ));
        let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
        objs.push(format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .bytes(),
    );
    out
}

#[test]
fn mixed_tree_indexes_every_good_format_and_reports_exactly_the_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let report = pdf(&[
        "Page one covers the capybara telemetry. It measures rivers and reeds at dawn every day.",
        "Page two covers zeolite filtration. Minerals trap ions in water treatment plants.",
    ]);
    let big = b"x".repeat(10_000);
    let files: &[(&str, &[u8])] = &[
        ("guide/intro.md", b"---\ntitle: Intro\ntags: [guide]\n---\n# Overview\n\nThe aardvark protocol keeps indexes fresh.\n\n## Details\n\nMore words.\n"),
        ("site/page.html", b"<html><head><title>Page</title><script>var trap='scriptword';</script></head><body><nav>navword</nav><main><h1>Heading</h1><p>The bandicoot endpoint answers quickly.</p></main></body></html>"),
        ("papers/report.pdf", &report),
        ("src/lib.rs", b"/// Computes the dromedary checksum.\npub fn dromedary(x: u32) -> u32 {\n    x.wrapping_mul(31)\n}\n"),
        ("src/tool.py", b"def echidna_parser(text):\n    \"\"\"Parse echidna records.\"\"\"\n    return text.split()\n"),
        ("src/app.ts", b"export function flamingoRouter(path: string): string {\n  return `flamingo:${path}`;\n}\n"),
        ("src/main.go", b"package main\n\n// gazelleServer serves gazelle requests.\nfunc gazelleServer() {}\n"),
        ("notes.txt", b"The hedgehog cache is warm.\n"),
        // Not UTF-8, but Latin-1: decoded, not skipped.
        ("legacy/latin1.txt", b"caf\xe9 au lait, the ibex brew\n"),
        // The bad ones.
        ("bad/zero.txt", b""),
        ("bad/blank.md", b"   \n\n  \n"),
        ("bad/big.txt", &big),
        ("bad/corrupt.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage"),
        ("bad/image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        ("bad/blob.bin2", b"\x00\x01\x02\x03binary"),
        (".gitignore", b"ignored/\n"),
        ("ignored/secret.md", b"# should not be indexed\n"),
    ];
    for (rel, bytes) in files {
        write(&tree, rel, bytes);
    }

    let data = dir.path().join("data");
    let env = [
        ("QUARRY_MAX_FILE_BYTES", "4096"),
        SMALL_CHUNKS[0],
        SMALL_CHUNKS[1],
    ];
    let (code, r) = sync_json(&tree, &data, &env);
    assert_eq!(
        code, 3,
        "some documents failed, so the documented partial exit code: {r}"
    );
    assert_eq!(r["added"], 9, "{r}");
    let mut bad: Vec<(String, String)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["uri"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    bad.sort();
    let expected: Vec<(String, String)> = [
        ("big.txt", "skipped"),
        ("blank.md", "skipped"),
        ("blob.bin2", "skipped"),
        ("corrupt.pdf", "failed"),
        ("image.png", "skipped"),
        ("zero.txt", "skipped"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(bad, expected, "{r}");
    assert_eq!(r["skipped"], 5);
    assert_eq!(r["failed"], 1);
    for e in r["errors"].as_array().unwrap() {
        assert!(!e["reason"].as_str().unwrap().is_empty());
    }

    for (query, doc) in [
        ("aardvark protocol", "guide/intro.md"),
        ("bandicoot endpoint", "site/page.html"),
        ("capybara telemetry", "papers/report.pdf"),
        ("zeolite filtration", "papers/report.pdf"),
        ("dromedary checksum", "src/lib.rs"),
        ("echidna records", "src/tool.py"),
        ("flamingoRouter", "src/app.ts"),
        ("gazelleServer", "src/main.go"),
        ("hedgehog cache", "notes.txt"),
        ("ibex brew", "legacy/latin1.txt"),
    ] {
        let v = success_json(&bm25_search(query, "docs", &[], &data));
        assert_eq!(v["hits"][0]["doc_id"], doc, "query {query:?}: {v}");
    }
    let v = success_json(&bm25_search("scriptword navword", "docs", &[], &data));
    assert_eq!(
        v["hits"].as_array().unwrap().len(),
        0,
        "script and nav text must not be indexed: {v}"
    );
    // Search flags are honoured: the filter excludes the only matching document.
    let filter = ["--filter", r#"{"path_prefix": "src/"}"#];
    let v = success_json(&bm25_search("aardvark protocol", "docs", &filter, &data));
    assert!(
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["doc_id"].as_str().unwrap().starts_with("src/")),
        "{v}"
    );
    let bad_filter = ["--filter", r#"{"colour": 1}"#, "--data-dir", s(&data)];
    let bad = run(
        &[&["search", "x", "-c", "docs"][..], &bad_filter].concat(),
        &[],
    );
    assert!(
        !bad.status.success() && stderr(&bad).contains("--filter"),
        "{}",
        stderr(&bad)
    );
    let exported = export(&data);
    for (kept, what) in [
        ("\"headings\":[\"Overview\"]", "heading paths are kept"),
        ("\"tags\":[\"guide\"]", "front matter tags are kept"),
        ("\"page\":2", "PDF pages are kept"),
    ] {
        assert!(exported.contains(kept), "{what}");
    }
    assert!(!exported.contains("secret.md"), ".gitignore is honoured");
}

fn doc_text(i: usize, variant: usize) -> String {
    format!(
        "# Document {i}\n\nThe first paragraph of document {i} talks about retrieval and indexing in some detail.\n\n\
         The second paragraph, version {variant}, is where edits happen in document number {i}.\n\n\
         The third paragraph closes document {i} with a summary of chunking and embeddings.\n"
    )
}

const SMALL_CHUNKS: &[(&str, &str)] = &[
    ("QUARRY_CHUNK_MAX_TOKENS", "24"),
    ("QUARRY_CHUNK_OVERLAP", "4"),
];

#[test]
fn edit_delete_add_is_exactly_one_of_each_and_embeds_only_changed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for i in 0..6 {
        write(&tree, &format!("d{i}.md"), doc_text(i, 0).as_bytes());
    }
    let data = dir.path().join("data");
    let (code, first) = sync_json(&tree, &data, SMALL_CHUNKS);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["added"], 6);
    let per_doc = first["chunks_embedded"].as_u64().unwrap() / 6;
    assert!(
        per_doc >= 3,
        "documents should span several chunks: {first}"
    );

    let (_, again) = sync_json(&tree, &data, SMALL_CHUNKS);
    assert_eq!(
        (
            again["unchanged"].as_u64(),
            again["chunks_embedded"].as_u64()
        ),
        (Some(6), Some(0)),
        "{again}"
    );

    write(&tree, "d1.md", doc_text(1, 1).as_bytes());
    std::fs::remove_file(tree.join("d2.md")).unwrap();
    write(&tree, "d9.md", doc_text(9, 0).as_bytes());
    let (code, r) = sync_json(&tree, &data, SMALL_CHUNKS);
    assert_eq!(code, 0, "{r}");
    assert_eq!(counts(&r), (1, 1, 1, 4), "{r}");
    let embedded = r["chunks_embedded"].as_u64().unwrap();
    let reused = r["chunks_reused"].as_u64().unwrap();
    assert!(
        reused >= 1,
        "unchanged chunks of the edited document are reused: {r}"
    );
    assert!(
        embedded < 2 * per_doc,
        "only the new document and the edited chunks are embedded: {r}"
    );

    // The index now equals a clean sync of the same tree.
    let clean = dir.path().join("clean");
    sync_json(&tree, &clean, SMALL_CHUNKS);
    assert_eq!(export(&data), export(&clean));
}

/// Kills `quarry sync` with SIGKILL at random moments of a sync that adds,
/// replaces and deletes documents, resumes it, and compares the result with
/// a clean sync, point by point.
#[test]
fn kill_9_at_random_moments_then_resync_equals_a_clean_sync() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1");
    let v2 = dir.path().join("v2");
    for i in 0..150 {
        write(&v1, &format!("docs/d{i:03}.md"), doc_text(i, 0).as_bytes());
        if i % 5 != 0 {
            write(
                &v2,
                &format!("docs/d{i:03}.md"),
                doc_text(i, (i % 3 == 0) as usize).as_bytes(),
            );
        }
    }
    for i in 150..200 {
        write(&v2, &format!("docs/d{i:03}.md"), doc_text(i, 0).as_bytes());
    }
    // The same tree path for every run: URIs are part of the payload.
    let tree = dir.path().join("tree");
    let use_tree = |from: &Path| {
        let _ = std::fs::remove_dir_all(&tree);
        copy_dir(from, &tree);
    };

    use_tree(&v2);
    let clean = dir.path().join("clean");
    let (code, _) = sync_json(&tree, &clean, SMALL_CHUNKS);
    assert_eq!(code, 0);
    let expected = export(&clean);

    use_tree(&v1);
    let base = dir.path().join("base");
    sync_json(&tree, &base, SMALL_CHUNKS);
    use_tree(&v2);
    let timing = dir.path().join("timing");
    copy_dir(&base, &timing);
    let t = Instant::now();
    sync_json(&tree, &timing, SMALL_CHUNKS);
    let full = t.elapsed();

    let killed_mid_sync = kill_and_resume(
        (12, 30),
        &base,
        full,
        |data| {
            let mut cmd = quarry_command(&sync_docs_json(&tree, data));
            cmd.envs(SMALL_CHUNKS.iter().copied());
            cmd
        },
        export,
        &expected,
    );
    assert!(
        killed_mid_sync >= 10,
        "only {killed_mid_sync} kills landed during a sync"
    );
}

#[test]
fn a_collection_refuses_vectors_from_another_model_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write(&tree, "a.md", b"# A\n\nSome text.\n");
    let data = dir.path().join("data");
    let (code, _) = sync_json(&tree, &data, &[]);
    assert_eq!(code, 0);
    // Same weights, different truncation: a different vector space.
    let config = dir.path().join("other.toml");
    std::fs::write(&config, "[model]\nmax_seq_length = 128\n").unwrap();
    let mut args = vec!["--config", s(&config)];
    args.extend(sync_args(&tree, "docs", &data));
    let out = run(&args, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_panic(&out);
    let err = stderr(&out);
    assert!(
        err.contains("\"docs\"")
            && err.contains("max_seq_length\":256")
            && err.contains("max_seq_length\":128"),
        "{err}"
    );
}

/// `quarry search` fuses hybrid results with the configured `rrf_k`, as
/// the server does. Qdrant's RRF is Σ 1 / (k + rank) with ranks from 0, so
/// a document first in both lists scores 2 / k.
#[test]
fn search_uses_the_configured_retrieval_settings() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write(
        &tree,
        "a.md",
        b"# Zebras

Zebras have black and white stripes.
",
    );
    write(
        &tree,
        "b.md",
        b"# Kettles

A kettle boils water for tea.
",
    );
    let data = dir.path().join("data");
    assert_eq!(sync_json(&tree, &data, &[]).0, 0);
    let config = dir.path().join("rrf.toml");
    std::fs::write(
        &config,
        "[retrieval]\nrrf_k = 1\nfusion = { method = \"rrf\" }\n",
    )
    .unwrap();
    let rrf60 = dir.path().join("rrf60.toml");
    std::fs::write(&rrf60, "[retrieval]\nfusion = { method = \"rrf\" }\n").unwrap();
    let top = |config: Option<&Path>| {
        let mut args = vec![];
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        args.extend(["search", "zebra stripes", "-c", "docs", "--mode", "hybrid"]);
        args.extend(["--json", "--data-dir", s(&data)]);
        let v = success_json(&run(&args, &[]));
        assert_eq!(v["hits"][0]["doc_id"], "a.md", "{v}");
        v["hits"][0]["score"].as_f64().unwrap()
    };
    let (default, rrf, configured) = (top(None), top(Some(&rrf60)), top(Some(&config)));
    // The default fusion (adaptive) scores on 0 to 1: first in both lists
    // is 1.
    assert!((default - 1.0).abs() < 1e-4, "adaptive: {default}");
    // RRF: 1 / (k + rank) per list, rank from 1.
    assert!((rrf - 2.0 / 61.0).abs() < 1e-4, "rrf, k = 60: {rrf}");
    assert!((configured - 1.0).abs() < 1e-4, "rrf_k = 1: {configured}");
}

/// Permission denied: the file is reported as failed and, if it was indexed
/// before, its indexed version is kept. Root can read anything, so as root
/// the sync runs as `nobody` (through `setpriv`) over a copy of the model.
#[test]
fn an_unreadable_file_is_reported_and_keeps_its_indexed_version() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let tree = dir.path().join("tree");
    write(&tree, "open.md", b"# Open\n\nEveryone can read this.\n");
    write(&tree, "secret.md", b"# Secret\n\nThe narwhal memo.\n");
    let data = dir.path().join("data");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let home = if is_root {
        // A model cache nobody can read: hard links (or copies) in the tempdir.
        let models = dir
            .path()
            .join("home/models/sentence-transformers--all-MiniLM-L6-v2");
        copy_dir(&model_dir(), &models);
        chmod_all(dir.path(), 0o777, 0o666);
        dir.path().join("home")
    } else {
        home()
    };
    let as_user = |args: &[&str]| {
        let mut cmd = if is_root {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_quarry"),
            ]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_quarry"))
        };
        let out = cmd.args(args).env("QUARRY_HOME", &home).output().unwrap();
        assert_no_panic(&out);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        (out.status.code(), v)
    };
    let args = sync_docs_json(&tree, &data);
    let (code, first) = as_user(&args);
    assert_eq!(
        (code, first["added"].as_u64()),
        (Some(0), Some(2)),
        "{first}"
    );
    std::fs::set_permissions(
        tree.join("secret.md"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let (code, second) = as_user(&args);
    assert_eq!(code, Some(3), "{second}");
    assert_eq!(
        (
            second["failed"].as_u64(),
            second["deleted"].as_u64(),
            second["unchanged"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{second}"
    );
    let e = &second["errors"][0];
    assert!(
        e["uri"].as_str().unwrap().ends_with("secret.md") && e["reason"] == "permission denied",
        "{second}"
    );
    assert_eq!(
        second["points"], first["points"],
        "the unreadable file's indexed version is kept"
    );
}

fn chmod_all(path: &Path, dir_mode: u32, file_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(path).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(dir_mode)).unwrap();
            chmod_all(&e.path(), dir_mode, file_mode);
        } else {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(file_mode)).unwrap();
        }
    }
}
