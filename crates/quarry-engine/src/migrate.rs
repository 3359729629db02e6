//! Copying collections between stores (edge → server, usually).
//!
//! Nothing is recomputed: vectors, payloads and the collection spec (model
//! fingerprint, chunking) are copied as they are, and the per-document
//! manifest travels inside the payloads. Point ids are deterministic, so
//! writing a page twice is harmless; that makes the copy idempotent, and a
//! checkpoint of the last copied id makes it resumable.

use std::path::{Path, PathBuf};

use quarry_core::PointId;
use quarry_store::{Fields, Page, Point, ScrollRequest, VectorStore};
use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Where the next page starts; `None` with `done` means finished.
    next: Option<PointId>,
    copied: usize,
    done: bool,
}

/// What one collection's copy did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrateReport {
    pub collection: String,
    /// Points written in this run (a resumed copy skips finished pages).
    pub copied: usize,
    /// Points in the source and, after the copy, in the target.
    pub source_points: usize,
    pub target_points: usize,
    pub resumed: bool,
}

fn load(path: &Path) -> Checkpoint {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The checkpoint file for copying `collection` to `target` (a URL or path).
pub fn checkpoint_path(dir: &Path, collection: &str, target: &str) -> PathBuf {
    let tag: String = target
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    dir.join(format!("{collection}--{tag}.json"))
}

/// Copies `collection` from `from` to `to` in pages of `page` points,
/// resuming from `checkpoint`. `progress` gets (points copied so far, points
/// in the source).
pub fn copy_collection(
    from: &dyn VectorStore,
    to: &dyn VectorStore,
    collection: &str,
    page: usize,
    checkpoint: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<MigrateReport> {
    let spec = from
        .collection_spec(collection)?
        .ok_or_else(|| quarry_store::StoreError::NoCollection(collection.into()))?;
    // A target built for another model fails here, before anything is written.
    to.open_collection(collection, &spec)?;
    let source_points = from.count(collection)?;
    let mut state = load(checkpoint);
    let resumed = state.copied > 0 || state.done;
    if state.done && to.count(collection)? >= source_points {
        return Ok(MigrateReport {
            collection: collection.into(),
            copied: 0,
            source_points,
            target_points: to.count(collection)?,
            resumed,
        });
    }
    if state.done {
        // The source grew since (a sync after the copy): go over it again.
        state = Checkpoint::default();
    }
    let mut copied = 0;
    let request = ScrollRequest {
        offset: state.next,
        ..ScrollRequest::fields(Fields::All, page.max(1)).with_vectors(true)
    };
    for batch in from.scroll_all(collection, request) {
        let Page {
            points: batch,
            next,
        } = batch?;
        let points: Vec<Point> = batch
            .into_iter()
            .map(|p| {
                let dense = p.dense.ok_or_else(|| {
                    EngineError::Invalid(format!("point {} in {collection} has no vector", p.id))
                })?;
                Ok(Point {
                    id: p.id,
                    dense,
                    text: p.payload.text.clone(),
                    payload: p.payload,
                })
            })
            .collect::<Result<_>>()?;
        let ids: Vec<PointId> = points.iter().map(|p| p.id).collect();
        copied += ids.len();
        to.upsert_staged(collection, points)?;
        to.publish(collection, &ids, &[])?;
        state.copied += ids.len();
        state.next = next;
        state.done = next.is_none();
        crate::sync::write_json(checkpoint, &state)?;
        progress(state.copied.min(source_points), source_points);
        if state.done {
            break;
        }
    }
    to.flush(collection)?;
    Ok(MigrateReport {
        collection: collection.into(),
        copied,
        source_points,
        target_points: to.count(collection)?,
        resumed,
    })
}
