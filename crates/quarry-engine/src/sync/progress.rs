//! What a running sync tells its watchers: the stage it is in, how many
//! documents the source listed and how many of them need work, and the
//! document being read now, so a slow file is named rather than sat on in
//! silence.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Where a sync is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SyncStage {
    /// Listing the source; no totals are known yet.
    #[default]
    Listing,
    /// Comparing the listing with what the collection holds.
    Planning,
    /// Reading, parsing, embedding and writing the changed documents.
    Indexing,
    /// Deleting documents gone from the source.
    Deleting,
    /// Building the search index over what was written.
    Optimizing,
}

/// Progress of one sync. A job's JSON carries the same fields, so the CLI
/// reads a server's progress into this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncProgress {
    pub stage: SyncStage,
    /// Documents the source listed (0 while listing).
    pub listed: usize,
    /// Listed documents whose stored version is current: no work.
    pub unchanged: usize,
    /// Documents to read, parse and embed (added, changed or renamed).
    pub total: usize,
    /// Of `total`, those embedded and handed to the writer.
    pub done: usize,
    pub chunks_embedded: usize,
    /// The document the parser is reading now.
    pub current: Option<String>,
}

pub type ProgressFn = Arc<dyn Fn(&SyncProgress) + Send + Sync>;

/// One sync's progress, updated from the sync task and the parser thread.
#[derive(Clone, Default)]
pub(crate) struct Tracker {
    state: Arc<Mutex<SyncProgress>>,
    watcher: Option<ProgressFn>,
}

impl Tracker {
    pub(crate) fn new(watcher: Option<ProgressFn>) -> Self {
        Self {
            state: Arc::default(),
            watcher,
        }
    }

    /// Applies `f` and shows the watcher the result.
    pub(crate) fn update(&self, f: impl FnOnce(&mut SyncProgress)) {
        let Some(watcher) = &self.watcher else {
            return;
        };
        let snapshot = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut state);
            state.clone()
        };
        watcher(&snapshot);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn watchers_see_every_update_in_order() {
        let seen: Arc<Mutex<Vec<SyncProgress>>> = Arc::default();
        let s = Arc::clone(&seen);
        let tracker = Tracker::new(Some(Arc::new(move |p: &SyncProgress| {
            s.lock().unwrap().push(p.clone());
        })));
        tracker.update(|p| p.stage = SyncStage::Planning);
        tracker.update(|p| {
            p.stage = SyncStage::Indexing;
            p.listed = 592;
            p.total = 63;
        });
        tracker.update(|p| p.current = Some("book/ch01.html".into()));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].stage, SyncStage::Planning);
        assert_eq!((seen[2].listed, seen[2].total), (592, 63));
        assert_eq!(seen[2].current.as_deref(), Some("book/ch01.html"));
    }
}
