//! The replacement journal.
//!
//! Replacing documents is two store operations: write the new points
//! (staged), then delete the old ones. Before the first, the ids of both are
//! written here; after the second, the entry is removed. A crash in between
//! leaves the entry, and the next open finishes the job: forward when every
//! new point made it (the write is one WAL-logged operation, so it is all or
//! nothing), backward otherwise. Readers in the crashed process are gone, and
//! readers after recovery see exactly one version of each document.

use std::path::{Path, PathBuf};

use quarry_core::PointId;
use quarry_store::VectorStore;
use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub new_ids: Vec<PointId>,
    pub old_ids: Vec<PointId>,
}

pub(crate) fn path(data_dir: &Path, collection: &str) -> PathBuf {
    data_dir.join("journal").join(format!("{collection}.json"))
}

pub(crate) fn write(path: &Path, journal: &Journal) -> Result<()> {
    write_json(path, journal)
}

/// Writes `value` as JSON to `path` atomically: a synced temporary file,
/// then a rename, so a crash leaves the old file or the new one.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let io = |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).map_err(|e| EngineError::Invalid(e.to_string()))?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

pub(crate) fn clear(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(EngineError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Finishes an interrupted replacement, if the journal has one.
pub(crate) fn recover(store: &dyn VectorStore, collection: &str, path: &Path) -> Result<bool> {
    let journal: Journal = match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(j) => j,
            // A torn journal means the crash came before the write it guards.
            Err(_) => return clear(path).map(|_| false),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(EngineError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let present = store.retrieve(collection, &journal.new_ids, false)?.len();
    if present == journal.new_ids.len() {
        store.publish(collection, &journal.new_ids, &journal.old_ids)?;
    } else {
        let old: std::collections::HashSet<_> = journal.old_ids.iter().collect();
        let partial: Vec<PointId> = journal
            .new_ids
            .iter()
            .filter(|id| !old.contains(id))
            .copied()
            .collect();
        store.delete(collection, &partial)?;
    }
    store.flush(collection)?;
    clear(path)?;
    Ok(true)
}
