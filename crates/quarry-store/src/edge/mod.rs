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
    CreateIndex, Distance, EdgeConfigBuilder, EdgeOptimizersConfig, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldIndexOperations, HnswIndexConfig,
    Modifier, PointId as QPointId, QuantizationConfig, QuantizationSearchParams, SearchParams,
    UpdateOperation,
};
use quarry_core::CollectionName;

use crate::{CollectionSpec, DENSE, Result, SPARSE, StoreError};

mod filter;
mod points;

const SPEC_FILE: &str = "collection.json";
const SHARD_DIR: &str = "shard";

struct Collection {
    shard: EdgeShard,
    /// How searches walk the index: `ef` and quantization rescoring, from
    /// the settings the collection was created with.
    params: SearchParams,
    /// The shard's folder, whose files are preallocated after each write.
    dir: PathBuf,
    /// Staged point ids, hidden from searches until published. Searches hold
    /// the read lock while they run; publish takes the write lock.
    hidden: RwLock<HashSet<QPointId>>,
    /// Changes whenever what searches see may have changed (see
    /// [`crate::VectorStore::generation`]).
    generation: std::sync::atomic::AtomicU64,
}

/// Generations are drawn from one process-wide sequence, so a collection
/// dropped and created again never repeats an old one. The shard's lock
/// keeps every writer in this process.
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Collection {
    fn changed(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.generation
            .store(GENERATIONS.fetch_add(1, SeqCst), SeqCst);
    }
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
        let index =
            read_spec(&dir)?.map_or_else(crate::IndexSettings::legacy, |s| s.index_settings());
        let c = Arc::new(Collection {
            params: search_params(&index),
            shard,
            dir: shard_dir,
            hidden: RwLock::new(HashSet::new()),
            generation: std::sync::atomic::AtomicU64::new(
                GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            ),
        });
        open.insert(name.to_string(), Arc::clone(&c));
        Ok(c)
    }

    fn create(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        if let Some(index) = &spec.index {
            index
                .validate("index")
                .map_err(|e| StoreError::Invalid(format!("collection {name:?}: {e}")))?;
        }
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
        let config = edge_config(spec)?;
        {
            let shard = EdgeShard::new(&tmp.join(SHARD_DIR), config).map_err(qerr(name))?;
            for field in quarry_core::payload::INDEXED_FIELDS {
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
}

/// The spec stored in collection folder `dir`; `None` when there is none.
fn read_spec(dir: &Path) -> Result<Option<CollectionSpec>> {
    let path = dir.join(SPEC_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// The shard's configuration for `spec`: its dense vectors under the HNSW
/// and quantization settings it asks for, and the BM25 vectors.
fn edge_config(spec: &CollectionSpec) -> Result<qdrant_edge::EdgeConfig> {
    let index = spec.index_settings();
    let invalid = |e: serde_json::Error| StoreError::Invalid(format!("index settings: {e}"));
    let hnsw: HnswIndexConfig = serde_json::from_value(serde_json::json!({
        "m": index.m,
        "ef_construct": index.ef_construct,
        "full_scan_threshold": index.full_scan_threshold_kb,
    }))
    .map_err(invalid)?;
    let mut dense = EdgeVectorParamsBuilder::new(spec.dimension, Distance::Cosine)
        .hnsw_config(hnsw)
        .on_disk(index.on_disk);
    if index.quantization == crate::Quantization::Int8 {
        let q: QuantizationConfig = serde_json::from_value(serde_json::json!({
            "scalar": { "type": "int8", "quantile": 0.99, "always_ram": true }
        }))
        .map_err(invalid)?;
        dense = dense.quantization_config(q);
    }
    Ok(EdgeConfigBuilder::new()
        .vector(DENSE, dense.build())
        .sparse_vector(
            SPARSE,
            EdgeSparseVectorParamsBuilder::new()
                .modifier(Modifier::Idf)
                .build(),
        )
        .hnsw_config(hnsw)
        .optimizers(EdgeOptimizersConfig {
            indexing_threshold: Some(index.indexing_threshold_kb),
            ..EdgeOptimizersConfig::default()
        })
        .on_disk_payload(true)
        .build())
}

fn search_params(index: &crate::IndexSettings) -> SearchParams {
    SearchParams {
        hnsw_ef: Some(index.ef),
        quantization: (index.quantization != crate::Quantization::None).then_some(
            QuantizationSearchParams {
                ignore: false,
                rescore: Some(index.rescore),
                oversampling: Some(index.oversampling),
            },
        ),
        ..SearchParams::default()
    }
}
