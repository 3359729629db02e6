//! A real Qdrant server for the server-store tests, started (and killed)
//! by each test: set `QDRANT_BIN` to a `qdrant` binary. Without it the
//! tests report themselves skipped (`quarry_core::skip_test`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Qdrant {
    bin: PathBuf,
    storage: PathBuf,
    pub http: u16,
    pub grpc: u16,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Qdrant {
    pub fn start(storage: &Path) -> Option<Self> {
        let Some(bin) = std::env::var_os("QDRANT_BIN").filter(|v| !v.is_empty()) else {
            quarry_core::skip_test("set QDRANT_BIN to a qdrant server binary to run this test");
            return None;
        };
        let mut q = Self {
            bin: PathBuf::from(bin),
            storage: storage.to_path_buf(),
            http: free_port(),
            grpc: free_port(),
            child: None,
        };
        q.up();
        Some(q)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn up(&mut self) {
        std::fs::create_dir_all(&self.storage).unwrap();
        let child = Command::new(&self.bin)
            .arg("--disable-telemetry")
            .current_dir(&self.storage)
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.http.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc.to_string())
            .env("QDRANT__SERVICE__ENABLE_STATIC_CONTENT", "false")
            .env("QDRANT__STORAGE__STORAGE_PATH", &self.storage)
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                self.storage.join("snapshots"),
            )
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/").is_none() {
            assert!(Instant::now() < deadline, "qdrant did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no clean shutdown, as in a crash or a pulled cable.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        ureq::get(&format!("http://127.0.0.1:{}{path}", self.http))
            .timeout(Duration::from_secs(2))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    pub fn points(&self, collection: &str) -> u64 {
        self.get(&format!("/collections/{collection}"))
            .and_then(|v| v["result"]["points_count"].as_u64())
            .unwrap_or(0)
    }
}

/// A temporary directory with a Qdrant server storing into it; None (the
/// test skips itself) without `QDRANT_BIN`.
pub fn qdrant_in_tempdir() -> Option<(tempfile::TempDir, Qdrant)> {
    let tmp = tempfile::tempdir().unwrap();
    let qdrant = Qdrant::start(&tmp.path().join("qdrant"))?;
    Some((tmp, qdrant))
}

impl Drop for Qdrant {
    fn drop(&mut self) {
        self.kill();
    }
}
