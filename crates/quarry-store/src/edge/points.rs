//! Point operations of the edge store: writes, publish, scroll, search.

use std::collections::HashSet;

use qdrant_edge::{
    Fusion, NamedQuery, PointId as QPointId, PointInsertOperations, PointOperations, PointStruct,
    Prefetch, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest as QScrollRequest,
    UpdateOperation, Vector, VectorInternal, VectorStructInternal, Vectors, WithPayloadInterface,
    WithVector,
};
use quarry_core::CollectionName;
use quarry_core::payload::ChunkPayload;

use super::{ALIASES_FILE, EdgeStore, SPEC_FILE, filter, from_qid, qerr, to_qid};
use crate::{
    CollectionSpec, DENSE, Fields, Page, Point, Query, Result, SPARSE, ScoredPoint, ScrollRequest,
    SearchRequest, StoreError, StoredPoint, VectorStore,
};

fn payload_of(p: Option<qdrant_edge::Payload>) -> ChunkPayload {
    ChunkPayload::from_map(p.map(|p| p.0.into_iter().collect()).unwrap_or_default())
}

fn dense_of(v: Option<VectorStructInternal>) -> Option<Vec<f32>> {
    match v? {
        VectorStructInternal::Named(mut m) => match m.remove(DENSE)? {
            VectorInternal::Dense(d) => Some(d),
            _ => None,
        },
        VectorStructInternal::Single(d) => Some(d),
        _ => None,
    }
}

impl VectorStore for EdgeStore {
    fn open_collection(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        match self.collection_spec(name)? {
            Some(existing) => crate::check_spec(name, &existing, spec)?,
            None => self.create(name, spec)?,
        }
        self.collection(name).map(|_| ())
    }

    fn collection_spec(&self, name: &str) -> Result<Option<CollectionSpec>> {
        super::read_spec(&self.dir(name)?)
    }

    fn list_collections(&self) -> Result<Vec<String>> {
        let physical: Vec<String> = std::fs::read_dir(&self.root)
            .map_err(|source| StoreError::Io {
                path: self.root.clone(),
                source,
            })?
            .flatten()
            .filter(|e| e.path().join(SPEC_FILE).is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        let known: HashSet<String> = physical.iter().cloned().collect();
        Ok(crate::listed_names(physical, &self.aliases(), |n| {
            known.contains(n)
        }))
    }

    fn upsert_staged(&self, name: &str, points: Vec<Point>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.check_space()?;
        let c = self.collection(name)?;
        let mut structs = Vec::with_capacity(points.len());
        let mut ids = Vec::with_capacity(points.len());
        for p in points {
            let sparse = self.bm25.embed_document(&p.text);
            let vectors = Vectors::new_named([
                (DENSE, Vector::new_dense(p.dense)),
                (SPARSE, Vector::from(sparse)),
            ]);
            ids.push(to_qid(p.id));
            structs.push(
                PointStruct::new(
                    to_qid(p.id),
                    vectors,
                    serde_json::Value::Object(p.payload.to_map()),
                )
                .into(),
            );
        }
        {
            let mut hidden = c.hidden.write().unwrap_or_else(|e| e.into_inner());
            // Points that already exist (unchanged chunks keep their id) are
            // visible now and stay visible: hiding them would open a gap.
            let existing: HashSet<QPointId> = c
                .shard
                .retrieve(
                    &ids,
                    Some(WithPayloadInterface::Bool(false)),
                    Some(WithVector::Bool(false)),
                )
                .map_err(qerr(name))?
                .into_iter()
                .map(|r| r.id)
                .collect();
            hidden.extend(ids.iter().filter(|id| !existing.contains(id)).copied());
        }
        c.shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(structs)),
            ))
            .map_err(qerr(name))?;
        // Points that existed were rewritten in place, visibly.
        c.changed();
        self.settle(&c)
    }

    fn publish(
        &self,
        name: &str,
        staged: &[quarry_core::PointId],
        delete: &[quarry_core::PointId],
    ) -> Result<()> {
        let c = self.collection(name)?;
        let keep: HashSet<_> = staged.iter().collect();
        let ids: Vec<QPointId> = delete
            .iter()
            .filter(|id| !keep.contains(id))
            .map(|id| to_qid(*id))
            .collect();
        if !ids.is_empty() {
            self.check_space()?;
        }
        let mut hidden = c.hidden.write().unwrap_or_else(|e| e.into_inner());
        if !ids.is_empty() {
            c.shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePoints { ids },
                ))
                .map_err(qerr(name))?;
        }
        for id in staged {
            hidden.remove(&to_qid(*id));
        }
        c.changed();
        drop(hidden);
        if delete.is_empty() {
            Ok(())
        } else {
            self.settle(&c)
        }
    }

    fn delete(&self, name: &str, ids: &[quarry_core::PointId]) -> Result<()> {
        self.publish(name, &[], ids)
    }

    fn scroll(&self, name: &str, request: &ScrollRequest) -> Result<Page> {
        let c = self.collection(name)?;
        let filter = filter::to_edge(request.filter.as_ref(), [])?;
        let with_payload = match &request.fields {
            Fields::All => WithPayloadInterface::Bool(true),
            Fields::Only(f) => serde_json::from_value(serde_json::json!(f))
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
        };
        let (records, next) = c
            .shard
            .scroll(QScrollRequest {
                offset: request.offset.map(to_qid),
                limit: Some(request.limit.max(1)),
                filter,
                with_payload: Some(with_payload),
                with_vector: if request.with_vectors {
                    WithVector::Selector(vec![DENSE.into()])
                } else {
                    WithVector::Bool(false)
                },
                order_by: None,
            })
            .map_err(qerr(name))?;
        let points = records
            .into_iter()
            .map(|r| StoredPoint {
                id: from_qid(&r.id),
                payload: payload_of(r.payload),
                dense: dense_of(r.vector),
            })
            .collect();
        Ok(Page {
            points,
            next: next.as_ref().map(from_qid),
        })
    }

    fn retrieve(
        &self,
        name: &str,
        ids: &[quarry_core::PointId],
        with_vectors: bool,
    ) -> Result<Vec<StoredPoint>> {
        let c = self.collection(name)?;
        let qids: Vec<QPointId> = ids.iter().map(|id| to_qid(*id)).collect();
        let with_vector = if with_vectors {
            WithVector::Selector(vec![DENSE.into()])
        } else {
            WithVector::Bool(false)
        };
        let records = c
            .shard
            .retrieve(
                &qids,
                Some(WithPayloadInterface::Bool(true)),
                Some(with_vector),
            )
            .map_err(qerr(name))?;
        Ok(records
            .into_iter()
            .map(|r| StoredPoint {
                id: from_qid(&r.id),
                payload: payload_of(r.payload),
                dense: dense_of(r.vector),
            })
            .collect())
    }

    fn search(&self, name: &str, request: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        Ok(self
            .query(name, request, true)?
            .into_iter()
            .map(|(hit, payload)| ScoredPoint {
                id: hit.id,
                score: hit.score,
                payload: payload_of(payload),
            })
            .collect())
    }

    fn search_ids(&self, name: &str, request: &SearchRequest) -> Result<Vec<crate::ScoredId>> {
        Ok(self
            .query(name, request, false)?
            .into_iter()
            .map(|(hit, _)| hit)
            .collect())
    }

    fn count(&self, name: &str) -> Result<usize> {
        Ok(self.collection(name)?.shard.info().points_count)
    }

    fn flush(&self, name: &str) -> Result<()> {
        self.collection(name)?.shard.flush();
        Ok(())
    }

    fn index_info(&self, name: &str) -> Result<Option<crate::IndexInfo>> {
        let info = self.collection(name)?.shard.info();
        Ok(Some(crate::IndexInfo {
            segments: info.segments_count,
            points: info.points_count,
            indexed_vectors: info.indexed_vectors_count,
        }))
    }

    fn optimize(&self, name: &str) -> Result<bool> {
        self.check_space()?;
        let c = self.collection(name)?;
        let built = c.shard.optimize().map_err(qerr(name))?;
        if built {
            c.shard.flush();
            self.settle(&c)?;
        }
        Ok(built)
    }

    fn create_collection(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        let physical = CollectionName::new(name)?;
        if self.path_of(&physical).exists() || self.aliases().contains_key(name) {
            return Err(StoreError::Invalid(format!(
                "collection {name:?} already exists"
            )));
        }
        self.create(name, spec)
    }

    fn resolve(&self, name: &str) -> Result<String> {
        Ok(self.target(name)?.to_string())
    }

    fn generation(&self, name: &str) -> Result<Option<String>> {
        let physical = self.target(name)?.to_string();
        let c = self.collection(&physical)?;
        let n = c.generation.load(std::sync::atomic::Ordering::SeqCst);
        Ok(Some(format!("{physical}#{n}")))
    }

    fn switch_alias(&self, name: &str, target: &str) -> Result<()> {
        CollectionName::new(name)?;
        let physical = CollectionName::new(target)?;
        if !self.path_of(&physical).join(SPEC_FILE).is_file() {
            return Err(StoreError::NoCollection(target.into()));
        }
        let mut aliases = self.aliases();
        aliases.insert(name.to_string(), target.to_string());
        let path = self.root.join(ALIASES_FILE);
        let tmp = self
            .root
            .join(format!(".{ALIASES_FILE}.{}", std::process::id()));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let bytes =
            serde_json::to_vec_pretty(&aliases).map_err(|e| StoreError::Invalid(e.to_string()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        // rename(2) is the atomic pointer switch.
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }

    fn drop_collection(&self, name: &str) -> Result<()> {
        // An alias may share its name with the collection it replaced (a
        // collection from before its first reindex); that one may go, the
        // one an alias points to may not.
        if let Some((alias, _)) = self.aliases().iter().find(|(_, t)| t.as_str() == name) {
            return Err(StoreError::Invalid(format!(
                "collection {name:?} is in use: alias {alias:?} points to it"
            )));
        }
        let dir = self.path_of(&CollectionName::new(name)?);
        if !dir.join(SPEC_FILE).is_file() {
            return Err(StoreError::NoCollection(name.into()));
        }
        if let Some(c) = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        {
            c.shard.flush();
            drop(c);
        }
        // Renamed first, so a crash mid-delete leaves no half collection;
        // `open` sweeps `.creating-` and `.dropped-` leftovers.
        let gone = self
            .root
            .join(format!(".dropped-{}-{name}", std::process::id()));
        std::fs::rename(&dir, &gone).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let _ = std::fs::remove_dir_all(&gone);
        Ok(())
    }
}

impl EdgeStore {
    /// The shard's query for `request`, with or without payloads.
    fn query(
        &self,
        name: &str,
        request: &SearchRequest,
        with_payload: bool,
    ) -> Result<Vec<(crate::ScoredId, Option<qdrant_edge::Payload>)>> {
        let c = self.collection(name)?;
        let hidden = c.hidden.read().unwrap_or_else(|e| e.into_inner());
        let filter = filter::to_edge(request.filter.as_ref(), hidden.iter().copied())?;
        let params = qdrant_edge::SearchParams {
            exact: request.exact,
            hnsw_ef: request.ef.or(c.params.hnsw_ef),
            ..c.params
        };
        let dense_query = |v: &[f32]| {
            ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::from(v.to_vec()),
                using: Some(DENSE.into()),
            }))
        };
        let sparse_query = |t: &str| {
            ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::from(self.bm25.embed_query(t)),
                using: Some(SPARSE.into()),
            }))
        };
        let threshold = request
            .score_threshold
            .map(qdrant_edge::external::ordered_float::OrderedFloat);
        let (prefetches, query) = match &request.query {
            Query::Dense(v) => (vec![], dense_query(v)),
            Query::Bm25(t) => (vec![], sparse_query(t)),
            Query::Hybrid {
                dense,
                text,
                prefetch,
                rrf_k,
            } => {
                let pf = |q| Prefetch {
                    prefetches: vec![],
                    query: Some(q),
                    limit: *prefetch,
                    params: Some(params),
                    filter: filter.clone(),
                    score_threshold: None,
                };
                (
                    vec![pf(dense_query(dense)), pf(sparse_query(text))],
                    ScoringQuery::Fusion(Fusion::Rrf {
                        k: *rrf_k,
                        weights: None,
                    }),
                )
            }
        };
        let points = c
            .shard
            .query(QueryRequest {
                prefetches,
                query: Some(query),
                filter,
                score_threshold: threshold,
                limit: request.limit,
                offset: 0,
                params: Some(params),
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(with_payload),
            })
            .map_err(qerr(name))?;
        Ok(points
            .into_iter()
            .map(|p| {
                let hit = crate::ScoredId {
                    id: from_qid(&p.id),
                    score: p.score,
                };
                (hit, p.payload)
            })
            .collect())
    }
}
