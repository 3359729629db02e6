//! The front ends LLM applications plug into, each driven by its official
//! client over real loopback HTTP (or real pipes), against the real model
//! and shard: MCP (the `mcp` Python SDK, over streamable HTTP and stdio),
//! OpenAI-compatible embeddings (the `openai` client), the `/ui` page
//! (Playwright driving Debian's Chromium), and the LangChain retriever
//! example. The clients live in a venv outside the repository, which
//! `scripts/test.sh` fills; without it these tests say they were skipped.
//!
//! Each client script asserts what it saw and prints one JSON object last;
//! the test asserts on that too, so a script that stops early fails here.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

const READER: &str = "reader-secret-value";
const WRITER: &str = "writer-secret-value";
const OTHER: &str = "other-tenant-secret";

/// The venv's python, if it has every module in `modules`.
fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let venv = std::env::var_os("QUARRY_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/quarry/test-venv"))
        });
    let python = venv.map(|v| v.join("bin/python")).filter(|p| p.is_file());
    let found = python.filter(|p| {
        Command::new(p)
            .arg("-c")
            .arg(format!("import {}", modules.join(", ")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        quarry_core::skip_test(&format!(
            "no test venv with {}: scripts/test.sh installs it (QUARRY_TEST_VENV)",
            modules.join(", ")
        ));
    }
    found
}

fn client(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The user guide (`corpus/`) as the `guide` source and collection, synced,
/// with keys: a reader of `guide`, a writer, and a reader of other
/// collections only.
struct Guide {
    dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    tree: PathBuf,
}

impl Guide {
    fn synced() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("guide");
        copy_dir(&repo_root().join("corpus"), &tree);
        let data = dir.path().join("data");
        let config = write_config(
            dir.path(),
            &format!(
                "[[sources]]\nname = \"guide\"\ntype = \"fs\"\npath = {:?}\ncollection = \"guide\"\n\n\
                 [[server.keys]]\nname = \"reader\"\nsecret_env = \"READER_KEY\"\nscopes = [\"read\"]\n\
                 collections = [\"guide\"]\n\n\
                 [[server.keys]]\nname = \"writer\"\nsecret_env = \"WRITER_KEY\"\nscopes = [\"write\"]\n\n\
                 [[server.keys]]\nname = \"other\"\nsecret_env = \"OTHER_KEY\"\nscopes = [\"read\"]\n\
                 collections = [\"billing\"]\n",
                tree
            ),
        );
        quarry_ok(&source_sync_args("guide", &config, &data));
        Self {
            dir,
            config,
            data,
            tree,
        }
    }

    fn serve(&self) -> (ServedChild, String) {
        let (child, url) = quarry_serve_env(
            &["--config", s(&self.config), "--data-dir", s(&self.data)],
            &[
                ("READER_KEY", READER),
                ("WRITER_KEY", WRITER),
                ("OTHER_KEY", OTHER),
            ],
        );
        (ServedChild(child), url)
    }
}

struct ServedChild(std::process::Child);

impl Drop for ServedChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a client script; it must succeed. Returns its last stdout line as
/// JSON.
fn run_client(python: &Path, script: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new(python)
        .arg(script)
        .envs(env.iter().copied())
        .env("QUARRY_BIN", env!("CARGO_BIN_EXE_quarry"))
        .env("QUARRY_HOME", home())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap();
    serde_json::from_str(last).unwrap()
}

/// A document the sync tools add, so a test can see the sync ran.
const ADDED: &str = "# Narwhal rotation\n\nThe narwhal rotation schedule moves the on-call \
                     pager every Thursday at noon.\n";

#[test]
fn mcp_over_streamable_http_shares_keys_tenants_and_errors_with_the_http_api() {
    let Some(python) = python_with(&["mcp", "httpx"]) else {
        return;
    };
    let guide = Guide::synced();
    std::fs::write(guide.tree.join("narwhal.md"), ADDED).unwrap();
    let (_server, url) = guide.serve();
    let report = run_client(
        &python,
        &client("mcp_client.py"),
        &[
            ("MCP_TRANSPORT", "http"),
            ("QUARRY_URL", &url),
            ("READER_KEY", READER),
            ("WRITER_KEY", WRITER),
            ("OTHER_KEY", OTHER),
        ],
    );
    assert_eq!(report["tools"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(report["search_top"], "health-checks.md", "{report}");
    assert_eq!(report["missing_key_status"], 401, "{report}");
    assert_eq!(report["read_key_sync"], "forbidden", "{report}");
    assert_eq!(report["other_tenant_search"], "not_found", "{report}");
    assert_eq!(report["bad_argument"], "bad_request", "{report}");
    assert_eq!(report["synced_doc_found"], "narwhal.md", "{report}");
}

#[test]
fn mcp_over_stdio_serves_every_tool() {
    let Some(python) = python_with(&["mcp"]) else {
        return;
    };
    let guide = Guide::synced();
    std::fs::write(guide.tree.join("narwhal.md"), ADDED).unwrap();
    let report = run_client(
        &python,
        &client("mcp_client.py"),
        &[
            ("MCP_TRANSPORT", "stdio"),
            ("QUARRY_CONFIG", s(&guide.config)),
            ("QUARRY_DATA", s(&guide.data)),
        ],
    );
    assert_eq!(report["tools"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(report["search_top"], "health-checks.md", "{report}");
    assert_eq!(report["bad_argument"], "bad_request", "{report}");
    assert_eq!(report["synced_doc_found"], "narwhal.md", "{report}");
    drop(guide.dir);
}

#[test]
fn the_openai_client_gets_quarry_embeds_vectors_and_token_counts() {
    let Some(python) = python_with(&["openai", "tokenizers"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "Liveness and readiness probes need no key.",
        "A second, rather longer sentence about chunking Markdown documents by headings.",
        "naïve café — ünïcödé",
    ];
    let mut args = vec!["embed"];
    args.extend(texts);
    let out = quarry_ok(&args);
    let expected: Vec<serde_json::Value> = json_lines(&String::from_utf8_lossy(&out.stdout));
    let expected_path = dir.path().join("expected.json");
    std::fs::write(
        &expected_path,
        serde_json::to_vec(&serde_json::json!({
            "texts": texts,
            "embeddings": expected.iter().map(|e| e["embedding"].clone()).collect::<Vec<_>>(),
            "tokens": expected.iter().map(|e| e["tokens"].clone()).collect::<Vec<_>>(),
            "tokenizer": model_dir().join("tokenizer.json"),
        }))
        .unwrap(),
    )
    .unwrap();
    let guide = Guide::synced();
    let (_server, url) = guide.serve();
    let report = run_client(
        &python,
        &client("openai_client.py"),
        &[
            ("QUARRY_URL", &url),
            ("READER_KEY", READER),
            ("EXPECTED", s(&expected_path)),
        ],
    );
    assert!(
        report["min_cosine"].as_f64().unwrap() >= 0.99999,
        "{report}"
    );
    let tokens: u64 = expected.iter().map(|e| e["tokens"].as_u64().unwrap()).sum();
    assert_eq!(report["prompt_tokens"], tokens, "{report}");
    assert_eq!(report["dimensions_error"], 400, "{report}");
    assert_eq!(report["too_many_inputs"], 413, "{report}");
    assert_eq!(report["unknown_model"], 404, "{report}");
}

#[test]
fn the_ui_searches_and_builds_context_in_headless_chromium() {
    let Some(python) = python_with(&["playwright"]) else {
        return;
    };
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.is_file() {
        quarry_core::skip_test("no /usr/bin/chromium: scripts/test.sh installs Debian's chromium");
        return;
    }
    let guide = Guide::synced();
    let (_server, url) = guide.serve();
    let shot = std::env::var("QUARRY_UI_SCREENSHOT")
        .unwrap_or_else(|_| s(&guide.dir.path().join("ui.png")).to_string());
    let report = run_client(
        &python,
        &client("ui_browser.py"),
        &[
            ("QUARRY_URL", &url),
            ("READER_KEY", READER),
            ("SCREENSHOT", &shot),
        ],
    );
    assert_eq!(
        report["first_hit"], "Health checks and readiness",
        "{report}"
    );
    assert!(
        report["context_citations"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert_eq!(report["console_errors"], serde_json::json!([]), "{report}");
    assert!(report["sources_rows"].as_u64().unwrap() >= 1, "{report}");
}

#[test]
fn the_langchain_example_retrieves_over_http() {
    let Some(python) = python_with(&["langchain_core"]) else {
        return;
    };
    let guide = Guide::synced();
    let (_server, url) = guide.serve();
    let example = repo_root().join("examples/langchain_retriever.py");
    let report = run_client(
        &python,
        &client("langchain_check.py"),
        &[
            ("QUARRY_URL", &url),
            ("QUARRY_API_KEY", READER),
            ("EXAMPLE", s(&example)),
        ],
    );
    assert_eq!(report["top_doc_id"], "health-checks.md", "{report}");
    assert!(report["documents"].as_u64().unwrap() >= 1, "{report}");
}
