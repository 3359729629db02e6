//! What the server says about one collection: the spec Quarry stored in
//! its metadata, the search parameters that follow from it, and how much
//! of it the HNSW graph covers.

use qdrant_client::qdrant as q;

use super::client::Retry;
use super::{SPEC_KEY, ServerStore, convert};
use crate::{CollectionSpec, IndexInfo, Result, StoreError};

impl ServerStore {
    /// The search parameters of `name`'s index, read from its spec once
    /// per name (an alias switch or drop in this process clears them; one
    /// in another replica leaves `ef` stale until restart, which costs
    /// recall or time, never correctness).
    pub(super) fn params_of(
        &self,
        name: &str,
        exact: bool,
        ef: Option<usize>,
    ) -> Result<q::SearchParams> {
        let cached = self
            .params
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let index = match cached {
            Some(index) => index,
            None => {
                let index = self
                    .spec_of(name)?
                    .ok_or_else(|| StoreError::NoCollection(name.to_string()))?
                    .index_settings();
                self.params
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), index.clone());
                index
            }
        };
        Ok(convert::search_params(&index, exact, ef))
    }

    /// The spec of the physical collection `name` (no alias lookup).
    pub(super) fn spec_of(&self, name: &str) -> Result<Option<CollectionSpec>> {
        let owned = name.to_string();
        let info = match self.call("collection info", name, Retry::No, move |c| {
            let owned = owned.clone();
            async move { c.collection_info(owned).await }
        }) {
            Ok(info) => info,
            Err(StoreError::NoCollection(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let metadata = info
            .result
            .and_then(|r| r.config)
            .map(|c| c.metadata)
            .unwrap_or_default();
        match metadata.get(SPEC_KEY) {
            Some(v) => serde_json::from_value(v.clone().into_json())
                .map(Some)
                .map_err(|e| StoreError::Invalid(format!("collection {name:?} metadata: {e}"))),
            None => Err(StoreError::Invalid(format!(
                "collection {name:?} on {} was not created by Quarry (no {SPEC_KEY} metadata); pick another name",
                self.config.url
            ))),
        }
    }

    /// The server indexes in the background; this reports how far it got.
    pub(super) fn info_of(&self, name: &str) -> Result<IndexInfo> {
        let owned = name.to_string();
        let info = self.call("collection info", name, Retry::No, move |c| {
            let owned = owned.clone();
            async move { c.collection_info(owned).await }
        })?;
        let r = info.result.unwrap_or_default();
        let n = |v: Option<u64>| v.unwrap_or(0) as usize;
        Ok(IndexInfo {
            segments: r.segments_count as usize,
            points: n(r.points_count),
            indexed_vectors: n(r.indexed_vectors_count),
        })
    }
}
