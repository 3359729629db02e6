//! `watch = true`: telling the server that a folder changed.
//!
//! Only the signal lives here; what to do about it (debounce, sync, never
//! two at once) is the scheduler's. Changes under `ignore` are dropped, so a
//! data directory inside the watched folder cannot make every sync trigger
//! the next.

use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};

use crate::{IngestError, Result};

/// Keeps the watch alive; dropping it stops the events.
pub struct FolderWatch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for FolderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderWatch")
    }
}

/// Calls `on_change` (on the watcher's thread) whenever something under
/// `root` changes, except under one of `ignore`.
pub fn watch_folder(
    root: &Path,
    ignore: Vec<PathBuf>,
    on_change: impl Fn() + Send + 'static,
) -> Result<FolderWatch> {
    // Events carry canonical paths; a path that does not exist yet (a data
    // directory created later) is made absolute, never left relative.
    let canon = |p: &Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let ignore: Vec<PathBuf> = ignore.iter().map(|p| canon(p)).collect();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            // A dropped event may hide a change: sync to be sure.
            on_change();
            return;
        };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.is_empty()
            || event
                .paths
                .iter()
                .any(|p| !ignore.iter().any(|i| p.starts_with(i)));
        if relevant {
            on_change();
        }
    };
    let error = |e: notify::Error| IngestError::Source {
        path: root.to_path_buf(),
        message: format!("cannot watch the folder: {e}"),
    };
    let mut watcher = notify::recommended_watcher(handler).map_err(error)?;
    watcher
        .watch(&canon(root), RecursiveMode::Recursive)
        .map_err(error)?;
    Ok(FolderWatch { _watcher: watcher })
}
