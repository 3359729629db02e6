//! The CLI against a running `quarry serve`.
//!
//! An embedded index belongs to one process at a time, so while a server
//! holds it, `quarry search` and `quarry sync` cannot open it. `serve`
//! leaves `DATA_DIR/server.json` naming its process and address; a command
//! that finds the index locked says so and offers `--endpoint`, which sends
//! the same request to the server over HTTP instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const SERVER_FILE: &str = "server.json";

/// What `serve` writes while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RunningServer {
    pub pid: u32,
    pub url: String,
}

/// Removes `server.json` when the server stops.
pub(super) struct ServerFileGuard {
    path: PathBuf,
}

impl Drop for ServerFileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records that this process serves `data_dir` at `url`.
pub(super) fn announce(data_dir: &Path, url: &str) -> anyhow::Result<ServerFileGuard> {
    let path = data_dir.join(SERVER_FILE);
    let me = RunningServer {
        pid: std::process::id(),
        url: url.to_string(),
    };
    std::fs::create_dir_all(data_dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec(&me)?))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(ServerFileGuard { path })
}

/// The server that serves `data_dir` now, if one does: a `server.json`
/// whose process is still alive (one left by a killed server is not).
pub(super) fn running_server(data_dir: &Path) -> Option<RunningServer> {
    let bytes = std::fs::read(data_dir.join(SERVER_FILE)).ok()?;
    let server: RunningServer = serde_json::from_slice(&bytes).ok()?;
    let alive =
        !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{}", server.pid)).exists();
    alive.then_some(server)
}

/// Adds to a "collection is open in another process" error what to do
/// about it: the server holding the index, and `--endpoint`.
pub fn explain_locked(err: anyhow::Error, data_dir: &Path) -> anyhow::Error {
    let locked = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<quarry_store::StoreError>(),
            Some(quarry_store::StoreError::Locked { .. })
        ) || matches!(
            c.downcast_ref::<quarry_engine::EngineError>(),
            Some(quarry_engine::EngineError::Store(
                quarry_store::StoreError::Locked { .. }
            ))
        )
    });
    if !locked {
        return err;
    }
    match running_server(data_dir) {
        Some(s) => err.context(format!(
            "`quarry serve` (process {}) holds the index in {} and listens on {url}: run this command with `--endpoint {url}` to go through it, or stop it first",
            s.pid,
            data_dir.display(),
            url = s.url
        )),
        None => err.context(format!(
            "another process holds the index in {}: if it is `quarry serve`, pass `--endpoint URL` with its address",
            data_dir.display()
        )),
    }
}

/// A running server's API.
pub(super) struct Remote {
    base: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

impl Remote {
    pub(super) fn new(endpoint: &str, api_key: Option<String>) -> Self {
        Self {
            base: endpoint.trim_end_matches('/').to_string(),
            api_key,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(600))
                .build(),
        }
    }

    pub(super) fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.agent.get(&self.url(path)), None)
    }

    pub(super) fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(self.agent.post(&self.url(path)), Some(body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn call(&self, req: ureq::Request, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = req.url().to_string();
        let req = match &self.api_key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        };
        let sent = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match sent {
            Ok(resp) => resp
                .into_json()
                .with_context(|| format!("{url} answered something that is not JSON")),
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(text);
                let hint = if code == 401 {
                    " (pass --api-key or set QUARRY_API_KEY)"
                } else {
                    ""
                };
                bail!("{url} answered {code}: {message}{hint}")
            }
            Err(e) => bail!("cannot reach {url}: {e}; is `quarry serve` running there?"),
        }
    }

    /// `collection`, or the server's only collection.
    pub(super) fn pick_collection(&self, collection: Option<&str>) -> anyhow::Result<String> {
        if let Some(c) = collection {
            return Ok(c.to_string());
        }
        let listing = self.get("/v1/collections")?;
        let names: Vec<&str> = listing["collections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        match names.as_slice() {
            [one] => Ok((*one).to_string()),
            [] => bail!("{} has no collections yet; sync a source first", self.base),
            many => bail!(
                "{} has {} collections ({}): choose one with --collection",
                self.base,
                many.len(),
                many.join(", ")
            ),
        }
    }

    /// Syncs configured sources through the server, following each job to
    /// its end; `show` is told the progress as it changes.
    pub(super) fn sync(
        &self,
        source: Option<&str>,
        show: &dyn Fn(&str, &quarry_engine::SyncProgress),
    ) -> anyhow::Result<Vec<quarry_engine::SyncReport>> {
        let names: Vec<String> = match source {
            Some(s) => vec![s.to_string()],
            None => self.get("/v1/sources")?["sources"]
                .as_array()
                .into_iter()
                .flatten()
                // Documents written through the API have no source to list.
                .filter(|s| s["kind"].as_str() != Some("api"))
                .filter_map(|s| s["source"].as_str().map(str::to_string))
                .collect(),
        };
        if names.is_empty() {
            bail!("{} has no configured sources to sync", self.base);
        }
        let mut reports = Vec::new();
        for name in names {
            let started = self.post(&format!("/v1/sources/{name}/sync"), &Value::Null)?;
            let Some(id) = started["job_id"].as_str() else {
                bail!("{} did not answer a job id for source {name:?}", self.base);
            };
            loop {
                let job = self.get(&format!("/v1/jobs/{id}"))?;
                let progress: quarry_engine::SyncProgress =
                    serde_json::from_value(job.clone()).unwrap_or_default();
                show(&name, &progress);
                match job["state"].as_str() {
                    Some("running") => std::thread::sleep(Duration::from_millis(500)),
                    Some("succeeded") => {
                        let report = serde_json::from_value(job["report"].clone())
                            .with_context(|| format!("the report of job {id}"))?;
                        reports.push(report);
                        break;
                    }
                    _ => bail!(
                        "the sync of {name:?} failed on the server: {}",
                        job["error"].as_str().unwrap_or("no reason given")
                    ),
                }
            }
        }
        Ok(reports)
    }
}
