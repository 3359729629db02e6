//! `quarry eval` end to end: the project's own gate over `corpus/`, a
//! deliberately worse configuration failing it, dataset errors by line, and
//! an evaluation over HTTP agreeing with the in-process one.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> Output {
    let out = quarry(args, Some(&home()), &[], None);
    assert_no_panic(&out);
    out
}

/// `quarry eval --dataset DATASET --data-dir DATA EXTRA...`
fn eval(dataset: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["eval", "--dataset", s(dataset), "--data-dir", s(data)];
    args.extend_from_slice(extra);
    run(&args)
}

/// A temporary directory and the data directory in it.
fn tmp_and_data() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    (tmp, data)
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn the_project_gate_passes_and_truncated_whole_documents_fail_it() {
    let (tmp, data) = tmp_and_data();
    let dataset = repo().join("evals/guide");
    let baseline = repo().join("evals/baselines/guide.json");
    let out1 = tmp.path().join("run1");
    let o = eval(
        &dataset,
        &data,
        &["--out", s(&out1), "--baseline", s(&baseline)],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{}", stderr(&o));
    assert!(stdout.contains("gate: passed"), "{stdout}");
    let m = metrics(&out1);
    assert_eq!(m["index"]["reused"], false);
    assert!(m["dataset"]["queries_scored"].as_u64().unwrap() >= 40);
    for mode in ["dense", "bm25", "hybrid"] {
        let ndcg = m["modes"][mode]["ndcg@10"].as_f64().unwrap();
        assert!(ndcg > 0.4 && ndcg <= 1.0, "{mode} nDCG@10 {ndcg}");
        let trec = std::fs::read_to_string(out1.join(format!("run.{mode}.trec"))).unwrap();
        let first: Vec<&str> = trec.lines().next().unwrap().split(' ').collect();
        assert_eq!(
            (first.len(), first[1], first[3]),
            (6, "Q0", "1"),
            "{trec:.200}"
        );
    }
    let html = std::fs::read_to_string(out1.join("report.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"));
    assert!(out1.join("summary.md").is_file() && out1.join("per_query.json").is_file());

    // Same corpus, model and chunking: the index is reused, the numbers are
    // identical.
    let out2 = tmp.path().join("run2");
    let o = eval(&dataset, &data, &["--out", s(&out2)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m2 = metrics(&out2);
    assert_eq!(m2["index"]["reused"], true);
    assert_eq!(m2["modes"], m["modes"]);

    // Whole documents, truncated at the model's 256 tokens, hide everything
    // past each page's first screen from dense search: a real, significant
    // regression. (16-token chunks fail too, less sharply; 32-token chunks
    // cost about a point, which 74 queries cannot call significant.)
    let out3 = tmp.path().join("run3");
    let o = eval(
        &dataset,
        &data,
        &[
            "--out",
            s(&out3),
            "--chunking",
            "none",
            "--baseline",
            s(&baseline),
        ],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{stdout}\n{}", stderr(&o));
    assert!(stdout.contains("gate: FAILED dense ndcg@10"), "{stdout}");

    // compare reads the two run directories.
    let o = run(&["eval", "compare", s(&out1), s(&out3), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["deltas"].as_array().unwrap();
    assert_eq!(rows.len(), 18);
    assert!(rows.iter().all(|r| r["p_value"].as_f64().unwrap() > 0.0));
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A small dataset over a folder of Markdown files.
fn tiny_dataset(root: &Path, queries: &str, qrels: &str) -> PathBuf {
    write(
        &root.join("docs/rust.md"),
        "# Rust\n\nOwnership and borrowing make memory safety checkable at compile time.\n",
    );
    write(
        &root.join("docs/tea.md"),
        "# Tea\n\nGreen tea is steeped at about eighty degrees for two minutes.\n",
    );
    let ds = root.join("ds");
    write(&ds.join("dataset.toml"), "corpus = \"../docs\"\n");
    write(&ds.join("queries.jsonl"), queries);
    write(&ds.join("qrels/test.tsv"), qrels);
    ds
}

#[test]
fn dataset_errors_name_their_file_and_line() {
    let (tmp, data) = tmp_and_data();
    let good_q =
        "{\"_id\":\"1\",\"text\":\"memory safety\"}\n{\"_id\":\"2\",\"text\":\"brewing tea\"}\n";

    let fatal = [
        // A duplicate query id is fatal, with both lines.
        (
            "a",
            "{\"_id\":\"1\",\"text\":\"a\"}\n{\"_id\":\"2\",\"text\":\"b\"}\n{\"_id\":\"1\",\"text\":\"c\"}\n",
            "query-id\tcorpus-id\tscore\n1\trust.md\t1\n",
            "queries.jsonl:3: duplicate query id \"1\" (first at line 1)",
        ),
        // A grade that is not a number is fatal.
        (
            "b",
            good_q,
            "query-id\tcorpus-id\tscore\n1\trust.md\thigh\n",
            "test.tsv:2: score \"high\" is not an integer",
        ),
    ];
    for (name, queries, qrels, message) in fatal {
        let ds = tiny_dataset(&tmp.path().join(name), queries, qrels);
        let o = eval(&ds, &data, &[]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(message), "{}", stderr(&o));
    }

    // An unknown document and an unjudged query are reported, by line, in
    // stderr and in metrics.json; --strict makes them fatal.
    let ds = tiny_dataset(
        &tmp.path().join("c"),
        good_q,
        "query-id\tcorpus-id\tscore\n1\trust.md\t2\n1\tmissing.md\t1\n",
    );
    let out = tmp.path().join("run-c");
    let o = eval(&ds, &data, &["--out", s(&out), "--modes", "bm25"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for issue in [
        "test.tsv:3: document \"missing.md\" is not in the corpus",
        "queries.jsonl:2: query \"2\" has no relevant document",
    ] {
        assert!(err.contains(issue), "{err}");
    }
    let m = metrics(&out);
    assert_eq!(m["dataset"]["issues"].as_array().unwrap().len(), 2);
    assert_eq!(m["dataset"]["queries_scored"], 1);
    // The unreachable judged document halves recall, as trec_eval counts it.
    assert_eq!(m["modes"]["bm25"]["recall@100"], 0.5);
    let o = eval(&ds, &data, &["--strict", "--modes", "bm25"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn evaluating_a_running_server_gives_the_in_process_numbers() {
    let (tmp, data) = tmp_and_data();
    let corpus = repo().join("corpus");
    let dataset = repo().join("evals/guide");
    let o = run(&sync_args(&corpus, "guide", &data));
    assert!(o.status.success(), "{}", stderr(&o));
    // In process, the same collection the server will serve, as it is.
    let local = tmp.path().join("local");
    let o = eval(&dataset, &data, &["-c", "guide", "--out", s(&local)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics(&local)["index"]["existing"], true);
    assert_eq!(metrics(&local)["config"]["chunking"]["overlap"], 32);

    let (mut server, url) = support::quarry_serve(&["--data-dir", s(&data)]);
    let remote = tmp.path().join("remote");
    let o = run(&[
        "eval",
        "--dataset",
        s(&dataset),
        "--endpoint",
        &url,
        "-c",
        "guide",
        "--out",
        s(&remote),
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (metrics(&local), metrics(&remote));
    // Identical rankings, not merely close: the server adds nothing.
    assert_eq!(b["index"]["endpoint"], url.as_str());
    // The remote run describes the server's collection, not this
    // machine's settings.
    assert_eq!(
        b["config"]["model"]["model_id"],
        a["config"]["model"]["model_id"]
    );
    assert_eq!(b["config"]["retrieval"], "the server's configuration");
    assert!(b["config"].get("fusion").is_none() && b["config"].get("rrf_k").is_none());
    let documents = b["index"]["documents"].as_u64().unwrap();
    assert_eq!(documents, 25);
    let html = std::fs::read_to_string(remote.join("report.html")).unwrap();
    assert!(
        html.contains("the 25 documents of collection guide"),
        "{:.600}",
        html
    );
    let rows = html.split("<h2>Per query</h2>").nth(1).unwrap_or_default();
    let scored = b["dataset"]["queries_scored"].as_u64().unwrap() as usize;
    assert_eq!(
        rows.split("<table>")
            .nth(1)
            .unwrap()
            .matches("<tr><td>")
            .count(),
        scored
    );
    for mode in ["dense", "bm25", "hybrid"] {
        for (k, v) in a["modes"][mode].as_object().unwrap() {
            let (x, y) = (v.as_f64().unwrap(), b["modes"][mode][k].as_f64().unwrap());
            assert!((x - y).abs() < 1e-9, "{mode} {k}: local {x}, server {y}");
        }
    }
}
