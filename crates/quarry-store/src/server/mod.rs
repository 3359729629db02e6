//! The server store: a Qdrant server or cluster over gRPC (`qdrant-client`).
//!
//! It must behave exactly like [`crate::EdgeStore`], so:
//! - point ids, payloads, vector names and the keyword indexes are the same;
//! - BM25 sparse vectors are computed here, by the same tokenizer and
//!   weights qdrant-edge uses, and the server only applies IDF;
//! - the collection's [`CollectionSpec`] travels in the collection's metadata;
//! - staging is a payload flag instead of edge's in-memory set, because the
//!   process that syncs is usually not the one that serves; searches from any
//!   process exclude flagged points, and publish clears the flag.
//!
//! The trait is synchronous, like qdrant-edge, so calls run on a small
//! runtime owned by the store and the caller's thread waits (callers are on
//! the blocking pool already). Writes are idempotent (deterministic ids,
//! delete-by-id), so they are retried with backoff through an outage for up
//! to `retry_secs`; reads fail at once with [`StoreError::Unavailable`], so a
//! search during an outage answers 503 instead of hanging.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use qdrant_client::qdrant::{
    self as q, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePayloadPointsBuilder, DeletePointsBuilder, FieldType, GetPointsBuilder, Modifier,
    PointStruct, PointsIdsList, PrefetchQueryBuilder, QueryPointsBuilder, ScrollPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, VectorInput,
    VectorsConfigBuilder, with_payload_selector, with_vectors_selector,
};
use qdrant_client::{Payload, Qdrant};
use qdrant_edge::bm25_embed::EdgeBm25;
use quarry_core::PointId;
use quarry_core::config::ServerStoreConfig;
use quarry_core::payload::INDEXED_FIELDS;

use crate::{
    CollectionSpec, DENSE, Fields, Page, Point, Query, Result, SPARSE, ScoredPoint, ScrollRequest,
    SearchRequest, StoreError, StoredPoint, VectorStore,
};
use client::Retry;
use convert::{dense_of, from_qid, payload_of, to_qid, vectors_selector};

mod client;
mod convert;
mod filter;
mod info;
mod lease;

/// Marks a point written by [`VectorStore::upsert_staged`] and not yet published.
const STAGED: &str = "_quarry_staged";
/// The collection metadata key holding the [`CollectionSpec`].
const SPEC_KEY: &str = "quarry_spec";

pub struct ServerStore {
    client: Arc<Qdrant>,
    /// Always `Some` until drop; taken there to shut it down without
    /// blocking, since the last owner may be an async task.
    runtime: Option<tokio::runtime::Runtime>,
    config: ServerStoreConfig,
    bm25: EdgeBm25,
    /// Each collection's index settings, for its search parameters.
    params: std::sync::Mutex<HashMap<String, crate::IndexSettings>>,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore")
            .field("url", &self.config.url)
            .finish()
    }
}

impl Drop for ServerStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl ServerStore {
    fn create(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        let mut metadata = HashMap::new();
        metadata.insert(
            SPEC_KEY.to_string(),
            serde_json::to_value(spec).map_err(|e| StoreError::Invalid(e.to_string()))?,
        );
        let index = spec.index_settings();
        let dense = convert::dense_params(spec.dimension, &index);
        let mut builder = CreateCollectionBuilder::new(name)
            .vectors_config({
                let mut v = VectorsConfigBuilder::default();
                v.add_named_vector_params(DENSE, dense);
                v
            })
            .optimizers_config(
                q::OptimizersConfigDiffBuilder::default()
                    .indexing_threshold(index.indexing_threshold_kb as u64),
            )
            .sparse_vectors_config({
                let mut s = SparseVectorsConfigBuilder::default();
                s.add_named_vector_params(
                    SPARSE,
                    SparseVectorParamsBuilder::default().modifier(Modifier::Idf as i32),
                );
                s
            })
            .on_disk_payload(true)
            .metadata(metadata);
        if let Some(n) = self.config.shards {
            builder = builder.shard_number(n);
        }
        if let Some(n) = self.config.replicas {
            builder = builder.replication_factor(n);
        }
        let request = builder.build();
        self.call("create collection", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.create_collection(request).await.map(|_| ()) }
        })?;
        for field in INDEXED_FIELDS {
            self.index_field(name, field, FieldType::Keyword)?;
        }
        self.index_field(name, STAGED, FieldType::Bool)
    }

    /// Every search filters on the staging flag; unindexed, that filter
    /// reads each candidate's payload from disk (60 ms a query on SciFact,
    /// against about 1 ms with the index). Creating it again is a no-op.
    fn index_field(&self, name: &str, field: &str, kind: FieldType) -> Result<()> {
        let request = CreateFieldIndexCollectionBuilder::new(name, field, kind).wait(true);
        self.call("create payload index", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.create_field_index(request).await.map(|_| ()) }
        })
    }

    fn alias_map(&self) -> Result<HashMap<String, String>> {
        let response = self.call("list aliases", "", Retry::No, |c| async move {
            c.list_aliases().await
        })?;
        Ok(response
            .aliases
            .into_iter()
            .map(|a| (a.alias_name, a.collection_name))
            .collect())
    }

    fn existing(&self, name: &str, ids: &[q::PointId]) -> Result<HashSet<PointId>> {
        let request = GetPointsBuilder::new(name, ids.to_vec())
            .with_payload(with_payload_selector::SelectorOptions::Enable(false))
            .with_vectors(with_vectors_selector::SelectorOptions::Enable(false))
            .build();
        let points = self.call("retrieve", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.get_points(request).await.map(|r| r.result) }
        })?;
        points.iter().map(|p| from_qid(p.id.as_ref())).collect()
    }

    fn delete_ids(&self, name: &str, ids: Vec<q::PointId>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let request = DeletePointsBuilder::new(name)
            .points(PointsIdsList { ids })
            .wait(true)
            .build();
        self.call("delete points", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.delete_points(request).await.map(|_| ()) }
        })
    }

    fn stored(&self, p: q::RetrievedPoint) -> Result<StoredPoint> {
        Ok(StoredPoint {
            id: from_qid(p.id.as_ref())?,
            payload: payload_of(p.payload),
            dense: dense_of(p.vectors),
        })
    }
}

impl ServerStore {
    /// The server's query for `request`, with or without payloads.
    fn query_points(
        &self,
        name: &str,
        request: &SearchRequest,
        with_payload: bool,
    ) -> Result<Vec<qdrant_client::qdrant::ScoredPoint>> {
        quarry_core::CollectionName::new(name)?;
        let filter = filter::to_grpc(
            request.filter.as_ref(),
            vec![q::Condition::matches(STAGED, true)],
        )?;
        let dense = |v: &[f32]| q::Query::new_nearest(VectorInput::new_dense(v.to_vec()));
        let sparse = |t: &str| {
            let s = self.bm25.embed_query(t);
            q::Query::new_nearest(VectorInput::new_sparse(s.indices, s.values))
        };
        let params = self.params_of(name, request.exact, request.ef)?;
        let mut builder = QueryPointsBuilder::new(name)
            .params(params)
            .limit(request.limit as u64)
            .with_payload(with_payload)
            .filter(filter.clone());
        builder = match &request.query {
            Query::Dense(v) => builder.query(dense(v)).using(DENSE),
            Query::Bm25(t) => builder.query(sparse(t)).using(SPARSE),
            Query::Hybrid {
                dense: v,
                text,
                prefetch,
                rrf_k,
            } => builder
                .add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(dense(v))
                        .using(DENSE)
                        .params(params)
                        .filter(filter.clone())
                        .limit(*prefetch as u64),
                )
                .add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(sparse(text))
                        .using(SPARSE)
                        .filter(filter)
                        .limit(*prefetch as u64),
                )
                .query(q::Query::new_rrf(q::Rrf {
                    k: Some(*rrf_k as u32),
                    weights: vec![],
                })),
        };
        if let Some(t) = request.score_threshold {
            builder = builder.score_threshold(t);
        }
        let query = builder.build();
        let points = self.call("search", name, Retry::No, move |c| {
            let query = query.clone();
            async move { c.query(query).await.map(|r| r.result) }
        })?;
        Ok(points)
    }
}

impl VectorStore for ServerStore {
    fn open_collection(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        quarry_core::CollectionName::new(name)?;
        let physical = self.resolve(name)?;
        match self.spec_of(&physical)? {
            // Collections from before the flag had its index get it here.
            Some(existing) => {
                crate::check_spec(name, &existing, spec)?;
                self.index_field(&physical, STAGED, FieldType::Bool)
            }
            None => {
                // Behind an alias from the start, so `reindex` can later
                // switch it to a rebuilt collection in one step.
                let physical = format!("{name}-v1");
                self.create(&physical, spec)?;
                self.switch_alias(name, &physical)
            }
        }
    }

    fn collection_spec(&self, name: &str) -> Result<Option<CollectionSpec>> {
        self.spec_of(&self.resolve(name)?)
    }

    fn index_info(&self, name: &str) -> Result<Option<crate::IndexInfo>> {
        self.info_of(name).map(Some)
    }

    fn lease(&self, key: &str, holder: &str, ttl: std::time::Duration) -> Result<bool> {
        self.take_lease(key, holder, ttl)
    }

    fn list_collections(&self) -> Result<Vec<String>> {
        let response = self.call("list collections", "", Retry::No, |c| async move {
            c.list_collections().await
        })?;
        let physical = response.collections.into_iter().map(|d| d.name).collect();
        // Foreign collections on a shared server are not ours to list.
        Ok(crate::listed_names(physical, &self.alias_map()?, |n| {
            matches!(self.spec_of(n), Ok(Some(_)))
        }))
    }

    fn upsert_staged(&self, name: &str, points: Vec<Point>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let ids: Vec<q::PointId> = points.iter().map(|p| to_qid(p.id)).collect();
        // Points that already exist stay visible, as on the edge.
        let existing = self.existing(name, &ids)?;
        let mut structs = Vec::with_capacity(points.len());
        for p in points {
            let sparse = self.bm25.embed_document(&p.text);
            let vectors = q::NamedVectors::default()
                .add_vector(DENSE, q::Vector::new_dense(p.dense))
                .add_vector(SPARSE, q::Vector::new_sparse(sparse.indices, sparse.values));
            let mut payload = p.payload.to_map();
            if !existing.contains(&p.id) {
                payload.insert(STAGED.into(), serde_json::Value::Bool(true));
            }
            structs.push(PointStruct::new(
                to_qid(p.id),
                vectors,
                Payload::from(payload),
            ));
        }
        let request = UpsertPointsBuilder::new(name, structs).wait(true).build();
        self.call("upsert", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.upsert_points(request).await.map(|_| ()) }
        })
    }

    fn publish(&self, name: &str, staged: &[PointId], delete: &[PointId]) -> Result<()> {
        let keep: HashSet<_> = staged.iter().collect();
        let old: Vec<q::PointId> = delete
            .iter()
            .filter(|id| !keep.contains(id))
            .map(|id| to_qid(*id))
            .collect();
        // Reveal first, then delete: a reader in between may see a document
        // twice (the retriever keeps its best chunk), never see it missing.
        if !staged.is_empty() {
            let request = DeletePayloadPointsBuilder::new(name, vec![STAGED.to_string()])
                .points_selector(PointsIdsList {
                    ids: staged.iter().map(|id| to_qid(*id)).collect(),
                })
                .wait(true)
                .build();
            self.call("publish", name, Retry::Write, move |c| {
                let request = request.clone();
                async move { c.delete_payload(request).await.map(|_| ()) }
            })?;
        }
        self.delete_ids(name, old)
    }

    fn delete(&self, name: &str, ids: &[PointId]) -> Result<()> {
        self.delete_ids(name, ids.iter().map(|id| to_qid(*id)).collect())
    }

    fn scroll(&self, name: &str, request: &ScrollRequest) -> Result<Page> {
        let payload = match &request.fields {
            Fields::All => with_payload_selector::SelectorOptions::Enable(true),
            Fields::Only(f) => {
                with_payload_selector::SelectorOptions::Include(q::PayloadIncludeSelector {
                    fields: f.iter().map(|s| s.to_string()).collect(),
                })
            }
        };
        let mut builder = ScrollPointsBuilder::new(name)
            .limit(request.limit.clamp(1, u32::MAX as usize) as u32)
            .with_payload(payload)
            .with_vectors(vectors_selector(request.with_vectors));
        if let Some(o) = request.offset {
            builder = builder.offset(to_qid(o));
        }
        if let Some(f) = &request.filter {
            builder = builder.filter(filter::to_grpc(Some(f), vec![])?);
        }
        let request = builder.build();
        let response = self.call("scroll", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.scroll(request).await }
        })?;
        let next = response
            .next_page_offset
            .as_ref()
            .map(|id| from_qid(Some(id)))
            .transpose()?;
        let points = response
            .result
            .into_iter()
            .map(|p| self.stored(p))
            .collect::<Result<_>>()?;
        Ok(Page { points, next })
    }

    fn retrieve(
        &self,
        name: &str,
        ids: &[PointId],
        with_vectors: bool,
    ) -> Result<Vec<StoredPoint>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let request =
            GetPointsBuilder::new(name, ids.iter().map(|id| to_qid(*id)).collect::<Vec<_>>())
                .with_payload(with_payload_selector::SelectorOptions::Enable(true))
                .with_vectors(vectors_selector(with_vectors))
                .build();
        let points = self.call("retrieve", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.get_points(request).await.map(|r| r.result) }
        })?;
        points.into_iter().map(|p| self.stored(p)).collect()
    }

    fn search(&self, name: &str, request: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.query_points(name, request, true)?
            .into_iter()
            .map(|p| {
                Ok(ScoredPoint {
                    id: from_qid(p.id.as_ref())?,
                    score: p.score,
                    payload: payload_of(p.payload),
                })
            })
            .collect()
    }

    fn search_ids(&self, name: &str, request: &SearchRequest) -> Result<Vec<crate::ScoredId>> {
        self.query_points(name, request, false)?
            .into_iter()
            .map(|p| {
                Ok(crate::ScoredId {
                    id: from_qid(p.id.as_ref())?,
                    score: p.score,
                })
            })
            .collect()
    }

    fn count(&self, name: &str) -> Result<usize> {
        let request = CountPointsBuilder::new(name).exact(true).build();
        let response = self.call("count", name, Retry::No, move |c| {
            let request = request.clone();
            async move { c.count(request).await }
        })?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    fn flush(&self, _name: &str) -> Result<()> {
        // Every write above waits for the server's WAL (`wait = true`).
        Ok(())
    }

    fn create_collection(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        quarry_core::CollectionName::new(name)?;
        self.create(name, spec)
    }

    fn resolve(&self, name: &str) -> Result<String> {
        quarry_core::CollectionName::new(name)?;
        Ok(self
            .alias_map()?
            .remove(name)
            .unwrap_or_else(|| name.to_string()))
    }

    fn switch_alias(&self, name: &str, target: &str) -> Result<()> {
        self.params
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        quarry_core::CollectionName::new(name)?;
        quarry_core::CollectionName::new(target)?;
        // Qdrant's create_alias replaces an existing alias under one lock:
        // the atomic switch.
        let request = q::CreateAliasBuilder::new(target, name).build();
        self.call("switch alias", name, Retry::Write, move |c| {
            let request = request.clone();
            async move { c.create_alias(request).await.map(|_| ()) }
        })
    }

    fn drop_collection(&self, name: &str) -> Result<()> {
        quarry_core::CollectionName::new(name)?;
        self.params
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let aliases = self.alias_map()?;
        // Qdrant would resolve an alias and drop its target.
        if aliases.contains_key(name) {
            return Err(StoreError::Invalid(format!(
                "{name:?} is an alias; drop the collection it points to"
            )));
        }
        if let Some((alias, _)) = aliases.iter().find(|(_, t)| t.as_str() == name) {
            return Err(StoreError::Invalid(format!(
                "collection {name:?} is in use: alias {alias:?} points to it"
            )));
        }
        let owned = name.to_string();
        self.call("drop collection", name, Retry::Write, move |c| {
            let owned = owned.clone();
            async move { c.delete_collection(owned).await.map(|_| ()) }
        })
    }
}
