//! Sync jobs: what is running, what finished, and each source's totals.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::report::SyncReport;
use crate::sync::SyncProgress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// One sync of a configured source, started through the service.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: String,
    pub source: String,
    pub state: JobState,
    /// Documents to parse and embed (added or changed).
    pub total: usize,
    pub done: usize,
    pub chunks_embedded: usize,
    pub started_at_unix: u64,
    pub finished_at_unix: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub report: Option<SyncReport>,
    pub error: Option<String>,
}

/// What a job's start returns.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStarted {
    pub job_id: String,
    pub source: String,
}

/// Documents and chunks a source's successful syncs processed, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncTotals {
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub failed: u64,
    pub chunks_embedded: u64,
}

impl SyncTotals {
    fn add(&mut self, r: &SyncReport) {
        self.added += r.added as u64;
        self.updated += r.updated as u64;
        self.deleted += r.deleted as u64;
        self.skipped += r.skipped as u64;
        self.failed += r.failed as u64;
        self.chunks_embedded += r.chunks_embedded as u64;
    }
}

/// A source's sync history, for metrics and status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub totals: SyncTotals,
    /// When its last sync succeeded.
    #[serde(skip)]
    pub last_success: Option<SystemTime>,
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Default)]
pub(crate) struct JobRegistry {
    jobs: Mutex<HashMap<String, Job>>,
    sources: Mutex<HashMap<String, SourceStatus>>,
}

impl JobRegistry {
    /// Registers a running job for `source`, unless one is running already
    /// (whose id is the error).
    pub(crate) fn start(&self, source: &str) -> Result<String, String> {
        let mut jobs = lock(&self.jobs);
        if let Some(running) = jobs
            .values()
            .find(|j| j.source == source && j.state == JobState::Running)
        {
            return Err(running.id.clone());
        }
        let id = uuid::Uuid::new_v4().to_string();
        jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                source: source.to_string(),
                state: JobState::Running,
                total: 0,
                done: 0,
                chunks_embedded: 0,
                started_at_unix: now_unix(),
                finished_at_unix: None,
                report: None,
                error: None,
            },
        );
        Ok(id)
    }

    pub(crate) fn progress(&self, id: &str, p: SyncProgress) {
        if let Some(j) = lock(&self.jobs).get_mut(id) {
            (j.total, j.done, j.chunks_embedded) = (p.total, p.done, p.chunks_embedded);
        }
    }

    pub(crate) fn finish(&self, id: &str, result: Result<SyncReport, String>) {
        let mut jobs = lock(&self.jobs);
        let Some(j) = jobs.get_mut(id) else {
            return;
        };
        j.finished_at_unix = Some(now_unix());
        match result {
            Ok(report) => {
                j.state = JobState::Succeeded;
                j.report = Some(report);
            }
            Err(e) => {
                j.state = JobState::Failed;
                j.error = Some(e);
            }
        }
    }

    /// Counts a successful sync of `source`, however it was started.
    pub(crate) fn record(&self, source: &str, report: &SyncReport) {
        let mut sources = lock(&self.sources);
        let s = sources
            .entry(source.to_string())
            .or_insert_with(|| SourceStatus {
                source: source.to_string(),
                totals: SyncTotals::default(),
                last_success: None,
            });
        s.totals.add(report);
        s.last_success = Some(SystemTime::now());
    }

    pub(crate) fn job(&self, id: &str) -> Option<Job> {
        lock(&self.jobs).get(id).cloned()
    }

    pub(crate) fn sources(&self) -> Vec<SourceStatus> {
        let mut all: Vec<SourceStatus> = lock(&self.sources).values().cloned().collect();
        all.sort_by(|a, b| a.source.cmp(&b.source));
        all
    }
}
