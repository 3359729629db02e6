//! Sync jobs: what is running, what finished, and each source's totals.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use quarry_core::config::SourceConfig;

use crate::report::SyncReport;
use crate::sync::{SyncProgress, SyncStage};

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
    /// Where a running sync is.
    pub stage: SyncStage,
    /// Documents the source listed (0 while listing).
    pub listed: usize,
    /// Listed documents that needed no work.
    pub unchanged: usize,
    /// Documents to parse and embed (added, changed or renamed).
    pub total: usize,
    pub done: usize,
    pub chunks_embedded: usize,
    /// The document being read now.
    pub current: Option<String>,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncTotals {
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
    pub renamed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub chunks_embedded: u64,
}

impl SyncTotals {
    fn add(&mut self, r: &SyncReport) {
        self.added += r.added as u64;
        self.updated += r.updated as u64;
        self.deleted += r.deleted as u64;
        self.renamed += r.renamed as u64;
        self.skipped += r.skipped as u64;
        self.failed += r.failed as u64;
        self.chunks_embedded += r.chunks_embedded as u64;
    }
}

/// How a run of a source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    Succeeded,
    Failed,
}

/// One finished sync of a source, however it was started.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceRun {
    pub started_at_unix: u64,
    pub finished_at_unix: u64,
    pub outcome: RunOutcome,
    /// What a successful run did: counts, errors, timings.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub report: Option<SyncReport>,
}

/// A source as the server keeps it: what it is, how its runs went, and
/// when the next one is due.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceStatus {
    pub source: String,
    /// `fs`, `beir`, or `api` for documents written through the API.
    pub kind: String,
    pub collection: String,
    /// The configured schedule, if any.
    pub every_secs: Option<u64>,
    /// Whether the folder is watched for changes.
    pub watch: bool,
    /// A sync of it is running now.
    pub running: bool,
    pub last_run: Option<SourceRun>,
    pub last_success_unix: Option<u64>,
    pub next_run_unix: Option<u64>,
    /// Why the last run failed; cleared by the next success.
    pub error: Option<String>,
    /// Seconds since the collection was last known to be in step with the
    /// source: since the start of the last successful sync.
    pub lag_seconds: Option<u64>,
    /// Runs that failed, since the server started.
    pub runs_failed: u64,
    pub totals: SyncTotals,
}

impl SourceStatus {
    pub(crate) fn of(config: &SourceConfig) -> Self {
        Self {
            source: config.name().to_string(),
            kind: config.kind().to_string(),
            collection: config.collection().to_string(),
            every_secs: config.every().map(|d| d.as_secs()),
            watch: config.watched_path().is_some(),
            running: false,
            last_run: None,
            last_success_unix: None,
            next_run_unix: None,
            error: None,
            lag_seconds: None,
            runs_failed: 0,
            totals: SyncTotals::default(),
        }
    }
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
                stage: SyncStage::Listing,
                listed: 0,
                unchanged: 0,
                total: 0,
                done: 0,
                chunks_embedded: 0,
                current: None,
                started_at_unix: now_unix(),
                finished_at_unix: None,
                report: None,
                error: None,
            },
        );
        Ok(id)
    }

    pub(crate) fn progress(&self, id: &str, p: &SyncProgress) {
        if let Some(j) = lock(&self.jobs).get_mut(id) {
            (j.stage, j.listed, j.unchanged) = (p.stage, p.listed, p.unchanged);
            (j.total, j.done, j.chunks_embedded) = (p.total, p.done, p.chunks_embedded);
            j.current.clone_from(&p.current);
        }
    }

    pub(crate) fn finish(&self, id: &str, result: Result<SyncReport, String>) {
        let mut jobs = lock(&self.jobs);
        let Some(j) = jobs.get_mut(id) else {
            return;
        };
        j.finished_at_unix = Some(now_unix());
        j.current = None;
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

    /// Registers the configured sources, so they are listed before their
    /// first run.
    pub(crate) fn register(&self, sources: &[SourceConfig]) {
        let mut all = lock(&self.sources);
        for s in sources {
            all.insert(s.name().to_string(), SourceStatus::of(s));
        }
    }

    fn with_status(&self, config: &SourceConfig, f: impl FnOnce(&mut SourceStatus)) {
        let mut all = lock(&self.sources);
        let status = all
            .entry(config.name().to_string())
            .or_insert_with(|| SourceStatus::of(config));
        f(status);
    }

    pub(crate) fn set_running(&self, config: &SourceConfig, running: bool) {
        self.with_status(config, |s| s.running = running);
    }

    pub(crate) fn set_next_run(&self, config: &SourceConfig, at_unix: Option<u64>) {
        self.with_status(config, |s| s.next_run_unix = at_unix);
    }

    /// Records a finished run of `config` that started at `started_unix`.
    pub(crate) fn record(
        &self,
        config: &SourceConfig,
        started_unix: u64,
        result: Result<&SyncReport, String>,
    ) {
        let finished_at_unix = now_unix();
        self.with_status(config, |s| {
            s.running = false;
            let run = |outcome, r: Option<&SyncReport>| SourceRun {
                started_at_unix: started_unix,
                finished_at_unix,
                outcome,
                report: r.cloned(),
            };
            match result {
                Ok(report) => {
                    s.totals.add(report);
                    s.last_run = Some(run(RunOutcome::Succeeded, Some(report)));
                    // In step as of the listing, which is where it started.
                    s.last_success_unix = Some(started_unix);
                    s.error = None;
                }
                Err(e) => {
                    s.last_run = Some(run(RunOutcome::Failed, None));
                    s.runs_failed += 1;
                    s.error = Some(e);
                }
            }
        });
    }

    pub(crate) fn job(&self, id: &str) -> Option<Job> {
        lock(&self.jobs).get(id).cloned()
    }

    pub(crate) fn sources(&self) -> Vec<SourceStatus> {
        let now = now_unix();
        let mut all: Vec<SourceStatus> = lock(&self.sources).values().cloned().collect();
        for s in &mut all {
            s.lag_seconds = s.last_success_unix.map(|t| now.saturating_sub(t));
        }
        all.sort_by(|a, b| a.source.cmp(&b.source));
        all
    }
}
