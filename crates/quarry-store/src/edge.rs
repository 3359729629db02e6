//! The embedded store: one qdrant-edge shard per collection, under
//! `DATA_DIR/collections/NAME/`.
//!
//! qdrant-edge is synchronous and single-process; async callers reach it
//! through `spawn_blocking`. A collection folder is created under a
//! temporary name and renamed into place once its shard and payload indexes
//! exist, so a crash during creation never leaves a half collection.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::external::uuid::Uuid;
use qdrant_edge::{
    CreateIndex, Distance, EdgeConfigBuilder, EdgeShard, EdgeSparseVectorParamsBuilder,
    EdgeVectorParamsBuilder, FieldIndexOperations, Fusion, Modifier, NamedQuery,
    PointId as QPointId, PointInsertOperations, PointOperations, PointStruct, Prefetch, QueryEnum,
    QueryRequest, ScoringQuery, ScrollRequest, UpdateOperation, Vector, VectorInternal,
    VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};

use quarry_core::CollectionName;

use crate::{
    CollectionSpec, DENSE, Fields, Point, Query, Result, SPARSE, ScoredPoint, SearchRequest,
    StoreError, StoredPoint, VectorStore,
};

const SPEC_FILE: &str = "collection.json";
const SHARD_DIR: &str = "shard";
/// Payload fields with a keyword index: the ones filters and sync planning use.
pub const INDEXED_FIELDS: &[&str] = &["doc_id", "source", "path_prefixes", "tags"];

struct Collection {
    shard: EdgeShard,
    /// The shard's folder, whose files are preallocated after each write.
    dir: PathBuf,
    /// Staged point ids, hidden from searches until published. Searches hold
    /// the read lock while they run; publish takes the write lock.
    hidden: RwLock<HashSet<QPointId>>,
}

pub struct EdgeStore {
    root: PathBuf,
    open: Mutex<HashMap<String, Arc<Collection>>>,
    bm25: EdgeBm25,
    /// `aliases.json` as last read, with its modification time: another
    /// process (`quarry reindex`) may switch an alias under a running server.
    aliases: Mutex<(Option<std::time::SystemTime>, HashMap<String, String>)>,
    /// Writes are refused below this much free space (see [`crate::disk`]).
    min_free: u64,
}

const ALIASES_FILE: &str = "aliases.json";
/// Who has the shard open: written by the process that holds its lock.
const OWNER_FILE: &str = "owner";

fn owner_description() -> String {
    let args: Vec<String> = std::env::args()
        .take(3)
        .map(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
        })
        .collect();
    format!("process {} ({})", std::process::id(), args.join(" "))
}

impl std::fmt::Debug for EdgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStore")
            .field("root", &self.root)
            .finish()
    }
}

fn qerr(collection: &str) -> impl Fn(qdrant_edge::OperationError) -> StoreError + '_ {
    move |e| StoreError::Qdrant {
        collection: collection.to_string(),
        message: e.to_string(),
    }
}

fn to_qid(id: quarry_core::PointId) -> QPointId {
    QPointId::Uuid(Uuid::from_u128(id.0))
}

fn from_qid(id: &QPointId) -> quarry_core::PointId {
    match id {
        QPointId::Uuid(u) => quarry_core::PointId(u.as_u128()),
        QPointId::NumId(n) => quarry_core::PointId(*n as u128),
    }
}

impl EdgeStore {
    /// Opens (or prepares) a store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("collections");
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            path: root.clone(),
            source,
        })?;
        let bm25 = EdgeBm25::new(EdgeBm25Config::default())
            .map_err(|e| StoreError::Invalid(format!("BM25 configuration: {e}")))?;
        // Remove collection folders whose creation was interrupted.
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".creating-") || n.starts_with(".dropped-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        crate::disk::ensure_reserve(&root);
        Ok(Self {
            root,
            open: Mutex::new(HashMap::new()),
            bm25,
            aliases: Mutex::default(),
            min_free: crate::disk::DEFAULT_MIN_FREE_BYTES,
        })
    }

    /// Sets the low-water mark below which writes are refused; 0 turns the
    /// check off.
    pub fn with_min_free(mut self, bytes: u64) -> Self {
        self.min_free = bytes;
        self
    }

    /// Before a write: enough room for qdrant to grow its files?
    fn check_space(&self) -> Result<()> {
        crate::disk::check_free(&self.root, self.min_free)
    }

    /// After a write: every file the shard maps is backed by real blocks.
    fn settle(&self, c: &Collection) -> Result<()> {
        crate::disk::preallocate(&c.dir).map_err(|source| StoreError::Io {
            path: c.dir.clone(),
            source,
        })
    }

    /// The only place a collection name becomes a path: a
    /// [`CollectionName`] cannot reach outside `root`.
    fn path_of(&self, physical: &CollectionName) -> PathBuf {
        self.root.join(physical.as_str())
    }

    /// The folder of the collection that `name` reaches.
    fn dir(&self, name: &str) -> Result<PathBuf> {
        Ok(self.path_of(&self.target(name)?))
    }

    fn aliases(&self) -> HashMap<String, String> {
        let path = self.root.join(ALIASES_FILE);
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut cache = self.aliases.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != mtime || mtime.is_none() {
            cache.1 = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            cache.0 = mtime;
        }
        cache.1.clone()
    }

    /// The physical collection `name` reaches. Both the name and an alias's
    /// target are checked: `aliases.json` is a file anyone may have edited.
    fn target(&self, name: &str) -> Result<CollectionName> {
        let name = CollectionName::new(name)?;
        match self.aliases().get(name.as_str()) {
            Some(target) => Ok(CollectionName::new(target)?),
            None => Ok(name),
        }
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        let target = self.target(name)?;
        let name = target.as_str();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = open.get(name) {
            return Ok(Arc::clone(c));
        }
        let dir = self.path_of(&target);
        if !dir.join(SPEC_FILE).is_file() {
            return Err(StoreError::NoCollection(name.to_string()));
        }
        let shard_dir = dir.join(SHARD_DIR);
        // Reads must work on a full disk: back what exists before loading,
        // so that nothing qdrant maps can fault. A failure here is not yet
        // a reason to refuse a read.
        if let Err(e) = crate::disk::preallocate(&shard_dir) {
            tracing::warn!(collection = name, error = %e, "cannot preallocate shard files");
        }
        let mut loaded = EdgeShard::load(&shard_dir, None);
        // Loading rewrites the shard's small config file; on a disk with
        // nothing free that fails, and a read would fail with it. The
        // reserve exists for that moment: give its space back and retry.
        if loaded
            .as_ref()
            .is_err_and(|e| e.to_string().contains("No space left on device"))
            && crate::disk::release_reserve(&self.root)
        {
            tracing::warn!(
                collection = name,
                "disk full: released the reserve to open the shard"
            );
            loaded = EdgeShard::load(&shard_dir, None);
        }
        let shard = loaded.map_err(|e| {
            // The WAL's file lock: another process has this shard open.
            if e.to_string().contains("WouldBlock") {
                StoreError::Locked {
                    collection: name.to_string(),
                    owner: std::fs::read_to_string(dir.join(OWNER_FILE))
                        .ok()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "another process".into()),
                }
            } else {
                qerr(name)(e)
            }
        })?;
        // Says who holds the lock, for the error above in the next process.
        let _ = std::fs::write(dir.join(OWNER_FILE), owner_description());
        let c = Arc::new(Collection {
            shard,
            dir: shard_dir,
            hidden: RwLock::new(HashSet::new()),
        });
        open.insert(name.to_string(), Arc::clone(&c));
        Ok(c)
    }

    fn create(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        let physical = CollectionName::new(name)?;
        self.check_space()?;
        let tmp = self
            .root
            .join(format!(".creating-{}-{name}", std::process::id()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join(SHARD_DIR)).map_err(io(&tmp))?;
        let config = EdgeConfigBuilder::new()
            .vector(
                DENSE,
                EdgeVectorParamsBuilder::new(spec.dimension, Distance::Cosine).build(),
            )
            .sparse_vector(
                SPARSE,
                EdgeSparseVectorParamsBuilder::new()
                    .modifier(Modifier::Idf)
                    .build(),
            )
            .on_disk_payload(true)
            .build();
        {
            let shard = EdgeShard::new(&tmp.join(SHARD_DIR), config).map_err(qerr(name))?;
            for field in INDEXED_FIELDS {
                let op: CreateIndex = serde_json::from_value(serde_json::json!({
                    "field_name": field, "field_schema": "keyword"
                }))
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
                shard
                    .update(UpdateOperation::FieldIndexOperation(
                        FieldIndexOperations::CreateIndex(op),
                    ))
                    .map_err(qerr(name))?;
            }
            shard.flush();
        }
        crate::disk::preallocate(&tmp).map_err(io(&tmp))?;
        let spec_json =
            serde_json::to_vec_pretty(spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
        std::fs::write(tmp.join(SPEC_FILE), spec_json).map_err(io(&tmp))?;
        let dir = self.path_of(&physical);
        std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
        Ok(())
    }

    fn filter(json: &serde_json::Value) -> Result<qdrant_edge::Filter> {
        serde_json::from_value(json.clone())
            .map_err(|e| StoreError::Invalid(format!("filter: {e}")))
    }
}

fn payload_map(p: Option<qdrant_edge::Payload>) -> serde_json::Map<String, serde_json::Value> {
    p.map(|p| p.0.into_iter().collect()).unwrap_or_default()
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
        let path = self.dir(name)?.join(SPEC_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
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
        let aliases = self.aliases();
        let targets: HashSet<&String> = aliases.values().collect();
        let mut names: Vec<String> = physical
            .iter()
            .filter(|n| !targets.contains(n))
            .cloned()
            .chain(
                aliases
                    .iter()
                    .filter(|(_, t)| physical.contains(t))
                    .map(|(a, _)| a.clone()),
            )
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
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
                PointStruct::new(to_qid(p.id), vectors, serde_json::Value::Object(p.payload))
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

    fn scroll(
        &self,
        name: &str,
        offset: Option<quarry_core::PointId>,
        limit: usize,
        fields: &Fields,
        with_vectors: bool,
        filter: Option<&crate::Filter>,
    ) -> Result<(Vec<StoredPoint>, Option<quarry_core::PointId>)> {
        let c = self.collection(name)?;
        let filter = filter.map(Self::filter).transpose()?;
        let with_payload = match fields {
            Fields::All => WithPayloadInterface::Bool(true),
            Fields::Only(f) => serde_json::from_value(serde_json::json!(f))
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
        };
        let (records, next) = c
            .shard
            .scroll(ScrollRequest {
                offset: offset.map(to_qid),
                limit: Some(limit.max(1)),
                filter,
                with_payload: Some(with_payload),
                with_vector: if with_vectors {
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
                payload: payload_map(r.payload),
                dense: dense_of(r.vector),
            })
            .collect();
        Ok((points, next.as_ref().map(from_qid)))
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
                payload: payload_map(r.payload),
                dense: dense_of(r.vector),
            })
            .collect())
    }

    fn search(&self, name: &str, request: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        let c = self.collection(name)?;
        let hidden = c.hidden.read().unwrap_or_else(|e| e.into_inner());
        let mut filter = request
            .filter
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        if !hidden.is_empty() {
            let ids: Vec<String> = hidden.iter().map(|id| from_qid(id).to_string()).collect();
            let obj = filter
                .as_object_mut()
                .ok_or_else(|| StoreError::Invalid("filter must be a JSON object".into()))?;
            let must_not = obj
                .entry("must_not")
                .or_insert_with(|| serde_json::json!([]));
            match must_not {
                serde_json::Value::Array(a) => a.push(serde_json::json!({ "has_id": ids })),
                other => *other = serde_json::json!([other.clone(), { "has_id": ids }]),
            }
        }
        let filter = if filter.as_object().is_some_and(|o| o.is_empty()) {
            None
        } else {
            Some(Self::filter(&filter)?)
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
                    params: None,
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
                params: None,
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(true),
            })
            .map_err(qerr(name))?;
        Ok(points
            .into_iter()
            .map(|p| ScoredPoint {
                id: from_qid(&p.id),
                score: p.score,
                payload: payload_map(p.payload),
            })
            .collect())
    }

    fn count(&self, name: &str) -> Result<usize> {
        Ok(self.collection(name)?.shard.info().points_count)
    }

    fn flush(&self, name: &str) -> Result<()> {
        self.collection(name)?.shard.flush();
        Ok(())
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
