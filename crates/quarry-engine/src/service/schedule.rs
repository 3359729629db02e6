//! Keeping sources fresh without being asked: each source with `every` is
//! synced on that period (the first run at start), and each watched folder
//! shortly after it changes.
//!
//! Every run goes through the job registry, so a scheduled run, a watched
//! change and a `POST /v1/sources/NAME/sync` never sync one source at once:
//! whoever comes second waits for the next turn. A failed run is retried
//! sooner than the period, with a backoff, and its error stays in the
//! source's status until a run succeeds.

use std::sync::Arc;
use std::time::Duration;

use quarry_core::config::SourceConfig;
use tokio::sync::mpsc;

use super::Service;
use super::jobs::now_unix;
use crate::Result;

/// Writes to a watched folder come in bursts (an editor's save, a `git
/// pull`); one sync follows this long after the last of them.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How soon to look again when another sync of the source is running.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// The longest wait after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The running schedule; dropping it stops it (a run in progress finishes).
#[derive(Debug, Default)]
pub struct Schedule {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _watches: Vec<quarry_ingest::FolderWatch>,
    /// Sources with a period, a watch, or both.
    sources: usize,
}

impl Schedule {
    /// How many sources it keeps fresh.
    pub fn len(&self) -> usize {
        self.sources
    }

    pub fn is_empty(&self) -> bool {
        self.sources == 0
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a scheduled turn did.
enum Turn {
    Ran {
        ok: bool,
    },
    /// Another sync of the source was running.
    Busy,
    /// Another replica holds the source's lease, and syncs it.
    Elsewhere,
}

/// A holder name for this process's leases: host, process and start time,
/// so a restarted replica does not mistake its predecessor's lease for its
/// own (that one expires).
pub(super) fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{host}/{}/{started:x}", std::process::id())
}

/// How long a source's lease lasts: a period and a minute, renewed at every
/// turn and every third of it during a sync. A replica that dies hands its
/// sources to the others after at most this long.
fn lease_ttl(every: Option<Duration>) -> Duration {
    every.unwrap_or(Duration::from_secs(60)) + Duration::from_secs(60)
}

/// The wait after `failures` failures in a row: 1 s, 2 s, 4 s, ... but
/// never longer than the period or [`MAX_BACKOFF`].
fn backoff(failures: u32, every: Duration) -> Duration {
    let exp = Duration::from_secs(1u64 << failures.saturating_sub(1).min(16));
    exp.min(MAX_BACKOFF).min(every).max(Duration::from_secs(1))
}

impl Service {
    /// Starts the schedule of every configured source that has one. Needs
    /// a Tokio runtime.
    pub fn start_schedule(self: &Arc<Self>) -> Result<Schedule> {
        let mut schedule = Schedule::default();
        for config in self.sources.clone() {
            schedule.sources +=
                usize::from(config.every().is_some() || config.watched_path().is_some());
            if let Some(every) = config.every() {
                let service = Arc::clone(self);
                let config = config.clone();
                schedule.tasks.push(tokio::spawn(async move {
                    service.periodic(config, every).await
                }));
            }
            if let Some(path) = config.watched_path() {
                let (tx, rx) = mpsc::unbounded_channel();
                let watch =
                    quarry_ingest::watch_folder(path, vec![self.data_dir.clone()], move || {
                        let _ = tx.send(());
                    })?;
                schedule._watches.push(watch);
                let service = Arc::clone(self);
                schedule.tasks.push(tokio::spawn(
                    async move { service.watched(config, rx).await },
                ));
            }
        }
        Ok(schedule)
    }

    /// Takes or renews the source's lease. A store that cannot be reached
    /// grants nothing: the sync would fail anyway.
    async fn hold_lease(self: &Arc<Self>, config: &SourceConfig, ttl: Duration) -> bool {
        let key = format!("source/{}", config.name());
        let holder = self.replica.clone();
        match crate::blocking(&self.store, move |s| s.lease(&key, &holder, ttl)).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(source = config.name(), error = %e, "cannot take the source's lease");
                false
            }
        }
    }

    async fn turn(self: &Arc<Self>, config: &SourceConfig) -> Turn {
        let ttl = lease_ttl(config.every());
        if !self.hold_lease(config, ttl).await {
            return Turn::Elsewhere;
        }
        let Ok(id) = self.claim(config) else {
            return Turn::Busy;
        };
        // A sync longer than the lease keeps it.
        let renew = {
            let (service, config) = (Arc::clone(self), config.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    service.hold_lease(&config, ttl).await;
                }
            })
        };
        let result = self.run_job(config, &id, None).await;
        renew.abort();
        self.hold_lease(config, ttl).await;
        if let Err(e) = &result {
            tracing::warn!(source = config.name(), error = %e, "scheduled sync failed");
        }
        Turn::Ran { ok: result.is_ok() }
    }

    async fn periodic(self: Arc<Self>, config: SourceConfig, every: Duration) {
        let mut failures = 0;
        loop {
            let delay = match self.turn(&config).await {
                Turn::Ran { ok: true } => {
                    failures = 0;
                    every
                }
                Turn::Ran { ok: false } => {
                    failures += 1;
                    backoff(failures, every)
                }
                Turn::Busy => BUSY_RETRY.min(every),
                // Look again a period later: the holder may have died.
                Turn::Elsewhere => every,
            };
            self.jobs
                .set_next_run(&config, Some(now_unix() + delay.as_secs()));
            tokio::time::sleep(delay).await;
        }
    }

    async fn watched(
        self: Arc<Self>,
        config: SourceConfig,
        mut changes: mpsc::UnboundedReceiver<()>,
    ) {
        while changes.recv().await.is_some() {
            // Wait for the burst to end: one sync for all of it.
            loop {
                tokio::time::sleep(DEBOUNCE).await;
                let mut more = false;
                while changes.try_recv().is_ok() {
                    more = true;
                }
                if !more {
                    break;
                }
            }
            // A change must not be lost to a sync already running: it may
            // have listed the folder before the change.
            // Another replica that holds the lease syncs it instead.
            while let Turn::Busy = self.turn(&config).await {
                tokio::time::sleep(BUSY_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_up_to_the_period() {
        let hour = Duration::from_secs(3600);
        let secs: Vec<u64> = (1..=10).map(|n| backoff(n, hour).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff(5, Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(backoff(40, hour), MAX_BACKOFF);
    }
}
