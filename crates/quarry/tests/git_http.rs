//! `type = "git"` over smart HTTP: git's own `git http-backend`, behind a
//! minimal CGI bridge on loopback, fetched through gix's HTTP transport.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::git::{commit, git, handbook_repo};
use support::*;

/// `git http-backend` as CGI, one request per connection. Stopping it
/// closes the listener, so later fetches are refused.
struct HttpBackend {
    url: String,
    stop: Arc<AtomicBool>,
    /// Requests served, to show an unchanged repository costs one fetch.
    requests: Arc<AtomicUsize>,
}

impl HttpBackend {
    fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (halt, count) = (Arc::clone(&stop), Arc::clone(&requests));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let root = root.clone();
                std::thread::spawn(move || serve(&root, conn.unwrap()));
            }
        });
        Self {
            url,
            stop,
            requests,
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// One HTTP request through the CGI program.
fn serve(root: &Path, stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| {
        headers
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body).unwrap();
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let exec_path = git(root, &["--exec-path"]);
    let mut child = Command::new(Path::new(&exec_path).join("git-http-backend"))
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap().stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, payload) = match split {
        Some((i, n)) => (
            String::from_utf8_lossy(&out[..i]).into_owned(),
            &out[i + n..],
        ),
        None => (String::new(), &out[..]),
    };
    let mut status = "200 OK".to_string();
    let mut response = Vec::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => response.extend_from_slice(format!("{h}\r\n").as_bytes()),
            None => {}
        }
    }
    let mut stream = stream;
    let start = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        payload.len()
    );
    let _ = stream.write_all(start.as_bytes());
    let _ = stream.write_all(&response);
    let _ = stream.write_all(b"\r\n");
    let _ = stream.write_all(payload);
}

#[test]
fn a_git_source_over_smart_http_syncs_renames_and_a_stopped_server_fails_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let repo = handbook_repo(dir.path(), &[]);
    let server = HttpBackend::start(dir.path().to_path_buf());
    let url = format!("{}/handbook", server.url);
    let config = dir.path().join("quarry.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nname = \"handbook\"\ntype = \"git\"\nurl = \"{url}\"\n\
             web_url = \"https://git.example.com/handbook/blob/{{sha}}/{{path}}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = source_sync_args("handbook", &config, &data);
    let first = success_json(&quarry_home(&args));
    assert_eq!(counts(&first), (4, 0, 0, 0), "{first}");
    let again = success_json(&quarry_home(&args));
    assert_eq!(counts(&again), (0, 0, 0, 4), "{again}");
    assert_eq!(again["chunks_embedded"], 0, "{again}");

    commit(
        &repo,
        &[
            (
                "docs/deploy.md",
                "# Deploy\n\nThe bison rollout checklist, with a canary.\n",
            ),
            ("docs/new.md", "# New\n\nThe echidna release notes.\n"),
        ],
        "edit and add",
    );
    git(&repo, &["rm", "-q", "docs/old.md"]);
    git(&repo, &["mv", "docs/moved.md", "docs/renamed.md"]);
    git(&repo, &["commit", "-q", "-m", "delete and rename"]);
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let r = success_json(&quarry_home(&args));
    assert_eq!(counts(&r), (1, 1, 1, 1), "{r}");
    assert_eq!(r["renamed"], 1, "{r}");
    let v = success_json(&bm25_search("echidna release", "handbook", &[], &data));
    assert_eq!(v["hits"][0]["doc_id"], "docs/new.md", "{v}");
    assert_eq!(
        v["hits"][0]["uri"],
        format!("https://git.example.com/handbook/blob/{sha}/docs/new.md"),
        "the citation carries the commit: {v}"
    );

    let before = export_points("handbook", &config, &data);
    commit(&repo, &[("docs/late.md", "Too late to be seen.\n")], "late");
    let served = server.requests.load(Ordering::SeqCst);
    server.stop();
    assert_failed_naming(&quarry_home(&args), &url);
    assert_eq!(export_points("handbook", &config, &data), before);
    assert!(
        served >= 6,
        "three fetches went over HTTP ({served} requests)"
    );
}
