//! What a sync did.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportError {
    pub uri: String,
    pub reason: String,
    /// `skipped` (deliberately not indexed) or `failed`.
    pub kind: &'static str,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub source: String,
    pub collection: String,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    /// Documents that moved to a new id with their content unchanged (a
    /// renamed file): re-stored under the new id with their vectors reused,
    /// and counted neither as added nor as deleted.
    pub renamed: usize,
    pub skipped: usize,
    pub failed: usize,
    pub errors: Vec<ReportError>,
    pub chunks_embedded: usize,
    pub chunks_reused: usize,
    pub tokens_embedded: usize,
    pub documents: usize,
    pub points: usize,
    pub seconds: Durations,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Durations {
    pub list: f64,
    pub plan: f64,
    pub parse_chunk: f64,
    pub embed: f64,
    pub write: f64,
    pub total: f64,
}

impl SyncReport {
    pub(crate) fn skip(&mut self, uri: &str, reason: impl Into<String>) {
        self.skipped += 1;
        self.note(uri, reason.into(), "skipped");
    }

    pub(crate) fn fail(&mut self, uri: &str, reason: impl Into<String>) {
        self.failed += 1;
        self.note(uri, reason.into(), "failed");
    }

    fn note(&mut self, uri: &str, reason: String, kind: &'static str) {
        let uri = uri.to_string();
        self.errors.push(ReportError { uri, reason, kind });
    }
}
