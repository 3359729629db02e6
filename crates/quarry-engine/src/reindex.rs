//! Re-embedding a collection with another model, without downtime.
//!
//! The stored chunk text is embedded again into a new collection beside the
//! old one (sources are not read: they may be slow, gone, or changed since),
//! then the collection's alias switches to it in one step. Searches reach
//! the old collection until the switch and the new one after it, so none
//! fails and none sees a mix of models.

use std::sync::Arc;

use quarry_core::PointId;
use quarry_embed::{Embedder, InputKind, Priority};
use quarry_store::{CollectionSpec, Fields, Point, ScrollRequest, VectorStore};
use serde::Serialize;

use crate::{EngineError, Result, blocking};

const PAGE: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct ReindexReport {
    pub collection: String,
    pub old: String,
    pub new: String,
    pub points: usize,
    /// Chunks longer than the new model's window, embedded truncated.
    pub truncated: usize,
    pub dropped_old: bool,
}

/// The next physical name: `NAME-v2` after `NAME` or `NAME-v1`, and so on.
fn next_name(alias: &str, current: &str) -> String {
    let n = current
        .strip_prefix(alias)
        .and_then(|rest| rest.strip_prefix("-v"))
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    format!("{alias}-v{}", n + 1)
}

/// Rebuilds `collection` with `embedder`'s model and switches to it. The
/// new collection keeps the old one's index settings, or takes `index`
/// where the old one predates them.
pub async fn reindex(
    store: &Arc<dyn VectorStore>,
    embedder: &Embedder,
    collection: &str,
    index: quarry_core::config::IndexSettings,
    keep_old: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ReindexReport> {
    let name = collection.to_string();
    let (old, total) = blocking(store, move |s| {
        if s.collection_spec(&name)?.is_none() {
            return Err(quarry_store::StoreError::NoCollection(name.clone()));
        }
        Ok((s.resolve(&name)?, s.count(&name)?))
    })
    .await?;
    let fp = embedder.fingerprint();
    let old_spec = {
        let old = old.clone();
        blocking(store, move |s| s.collection_spec(&old)).await?
    };
    let spec = CollectionSpec {
        dimension: fp.dimension,
        model: serde_json::to_value(fp).map_err(|e| EngineError::Invalid(e.to_string()))?,
        index: Some(
            old_spec
                .as_ref()
                .and_then(|s| s.index.clone())
                .unwrap_or(index),
        ),
    };
    if old_spec
        .as_ref()
        .is_some_and(|o| o.model == spec.model && o.dimension == spec.dimension)
    {
        return Err(EngineError::Invalid(format!(
            "{collection} is already built with this model; nothing to reindex"
        )));
    }
    let new = next_name(collection, &old);
    {
        let (new, spec) = (new.clone(), spec.clone());
        // A leftover from an interrupted reindex is rebuilt from scratch.
        blocking(store, move |s| {
            if s.collection_spec(&new)?.is_some() {
                s.drop_collection(&new)?;
            }
            s.create_collection(&new, &spec)
        })
        .await?;
    }
    // The old collection is read on the blocking pool, a page ahead of
    // embedding, which runs here.
    let (tx, mut pages) = tokio::sync::mpsc::channel(1);
    let (reader_store, old_c) = (Arc::clone(store), old.clone());
    let reader = tokio::task::spawn_blocking(move || {
        for page in reader_store.scroll_all(&old_c, ScrollRequest::fields(Fields::All, PAGE)) {
            let failed = page.is_err();
            if tx.blocking_send(page).is_err() || failed {
                break;
            }
        }
    });
    let (mut done, mut truncated) = (0, 0);
    while let Some(page) = pages.recv().await {
        let page = page?.points;
        let texts: Vec<String> = page.iter().map(|p| p.payload.text.clone()).collect();
        let vectors = embedder
            .embed(&texts, InputKind::Passage, Priority::Bulk)
            .await?;
        truncated += vectors.iter().filter(|v| v.truncated).count();
        let points: Vec<Point> = page
            .into_iter()
            .zip(vectors)
            .zip(texts)
            .map(|((p, v), text)| Point {
                id: p.id,
                dense: v.embedding,
                text,
                payload: p.payload,
            })
            .collect();
        let ids: Vec<PointId> = points.iter().map(|p| p.id).collect();
        done += ids.len();
        let new_c = new.clone();
        blocking(store, move |s| {
            s.upsert_staged(&new_c, points)?;
            s.publish(&new_c, &ids, &[])
        })
        .await?;
        progress(done, total);
    }
    reader.await.map_err(|e| EngineError::Task(e.to_string()))?;
    {
        let (name, new, old) = (collection.to_string(), new.clone(), old.clone());
        blocking(store, move |s| {
            s.flush(&new)?;
            // Searches move to the new collection with its graph built.
            s.optimize(&new)?;
            s.switch_alias(&name, &new)?;
            if !keep_old {
                s.drop_collection(&old)?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(ReindexReport {
        collection: collection.into(),
        old,
        new,
        points: done,
        truncated,
        dropped_old: !keep_old,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn physical_names_count_up() {
        assert_eq!(super::next_name("docs", "docs"), "docs-v2");
        assert_eq!(super::next_name("docs", "docs-v1"), "docs-v2");
        assert_eq!(super::next_name("docs", "docs-v9"), "docs-v10");
    }
}
