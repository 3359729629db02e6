//! Where vectors live.
//!
//! One [`VectorStore`] trait, so the indexer and retriever never see which
//! Qdrant they talk to. This is the only crate that imports Qdrant; its
//! nested request and update enums stay behind a handful of methods here.
//!
//! Writes that replace a document come in two steps, [`VectorStore::upsert_staged`]
//! then [`VectorStore::publish`]: staged points are invisible to searches
//! until publish removes the old ones and reveals the new ones in one step,
//! so a concurrent search never sees a document missing or doubled.
//!
//! What a point carries is [`ChunkPayload`], and what a read may ask of
//! payloads is a typed [`Condition`]; each store converts both to its own
//! Qdrant types in its `filter` module, so nothing above this crate writes
//! Qdrant's JSON.

pub mod disk;
mod edge;
pub mod filter;
mod scroll;
mod server;

pub use edge::EdgeStore;
pub use filter::{Condition, MatchValue, Range};
pub use scroll::ScrollAll;
pub use server::ServerStore;

use quarry_core::PointId;
pub use quarry_core::config::{IndexSettings, Quantization};
use quarry_core::payload::ChunkPayload;
use serde::{Deserialize, Serialize};

pub const DENSE: &str = "dense";
pub const SPARSE: &str = "bm25";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("collection {0:?} does not exist; run `quarry sync` to create it")]
    NoCollection(String),
    #[error(
        "collection {collection:?} was built with {existing}, not {requested}; sync into a new collection or reindex it"
    )]
    Mismatch {
        collection: String,
        existing: String,
        requested: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("Qdrant ({collection}): {message}")]
    Qdrant { collection: String, message: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Name(#[from] quarry_core::NameError),
    #[error(
        "the data directory's file system has {free} bytes free, below the low-water mark of {min_free} (min_free_bytes); writes are refused until space is freed (searches still work)"
    )]
    DiskFull { free: u64, min_free: u64 },
    #[error(
        "collection {collection:?} is open in {owner}: an embedded index belongs to one process at a time. Stop that process, or sync through the server it runs (POST /v1/sources/NAME/sync)"
    )]
    Locked { collection: String, owner: String },
    #[error(
        "the Qdrant server at {url} is unreachable ({message}); check that it runs and that store.url is right"
    )]
    Unavailable { url: String, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a collection is bound to: vectors from another model (or another
/// chunking) must not be mixed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSpec {
    pub dimension: usize,
    /// The model fingerprint (id, weights sha256, dimension, pooling, ...).
    pub model: serde_json::Value,
    /// How the dense vectors are indexed, fixed at creation. `None`: a
    /// collection created before `[index]` existed
    /// ([`IndexSettings::legacy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexSettings>,
}

impl CollectionSpec {
    /// The index the collection was created with.
    pub fn index_settings(&self) -> IndexSettings {
        self.index.clone().unwrap_or_else(IndexSettings::legacy)
    }
}

/// A point to write.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: PointId,
    pub dense: Vec<f32>,
    /// The text the BM25 vector is computed from.
    pub text: String,
    pub payload: ChunkPayload,
}

/// A point read back. A scroll that selected a few fields leaves the
/// others at their defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPoint {
    pub id: PointId,
    pub payload: ChunkPayload,
    pub dense: Option<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Dense(Vec<f32>),
    Bm25(String),
    /// Both, fused by reciprocal rank; each side fetches `prefetch` hits.
    Hybrid {
        dense: Vec<f32>,
        text: String,
        prefetch: usize,
        rrf_k: usize,
    },
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    pub limit: usize,
    pub filter: Option<Condition>,
    pub score_threshold: Option<f32>,
    /// Search every vector rather than the HNSW graph: the ground truth
    /// that `quarry bench search` measures recall against.
    pub exact: bool,
    /// HNSW candidates for this search instead of the collection's `ef`.
    pub ef: Option<usize>,
}

/// A hit without its payload: what fusion needs before it knows which
/// few hits it keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredId {
    pub id: PointId,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredPoint {
    pub id: PointId,
    pub score: f32,
    pub payload: ChunkPayload,
}

/// Which payload fields a scroll returns.
#[derive(Debug, Clone)]
pub enum Fields {
    All,
    Only(Vec<&'static str>),
}

/// One page of a scroll: points in id order from `offset`.
#[derive(Debug, Clone)]
pub struct ScrollRequest {
    pub offset: Option<PointId>,
    pub limit: usize,
    pub fields: Fields,
    pub with_vectors: bool,
    pub filter: Option<Condition>,
}

impl ScrollRequest {
    /// Every point's `fields`, without vectors, in pages of `limit`.
    pub fn fields(fields: Fields, limit: usize) -> Self {
        Self {
            offset: None,
            limit,
            fields,
            with_vectors: false,
            filter: None,
        }
    }

    pub fn filter(mut self, filter: Condition) -> Self {
        self.filter = Some(filter);
        self
    }

    pub fn with_vectors(mut self, with_vectors: bool) -> Self {
        self.with_vectors = with_vectors;
        self
    }
}

/// What [`VectorStore::scroll`] returns.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub points: Vec<StoredPoint>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<PointId>,
}

pub trait VectorStore: Send + Sync {
    /// Creates the collection, or checks that an existing one was built for
    /// the same spec.
    fn open_collection(&self, name: &str, spec: &CollectionSpec) -> Result<()>;
    fn collection_spec(&self, name: &str) -> Result<Option<CollectionSpec>>;
    fn list_collections(&self) -> Result<Vec<String>>;
    /// Writes points that searches do not see until [`Self::publish`].
    fn upsert_staged(&self, name: &str, points: Vec<Point>) -> Result<()>;
    /// Deletes `delete` (minus anything in `staged`) and reveals `staged`, as
    /// one step for readers.
    fn publish(&self, name: &str, staged: &[PointId], delete: &[PointId]) -> Result<()>;
    fn delete(&self, name: &str, ids: &[PointId]) -> Result<()>;
    /// One page of points in id order; [`scroll_all`](ScrollAll) pages
    /// through a whole collection.
    fn scroll(&self, name: &str, request: &ScrollRequest) -> Result<Page>;
    fn retrieve(&self, name: &str, ids: &[PointId], with_vectors: bool)
    -> Result<Vec<StoredPoint>>;
    fn search(&self, name: &str, request: &SearchRequest) -> Result<Vec<ScoredPoint>>;
    /// [`search`](Self::search) without payloads: a hybrid search fetches
    /// hundreds of candidates per side and keeps ten, so reading every
    /// candidate's payload would cost more than the search.
    fn search_ids(&self, name: &str, request: &SearchRequest) -> Result<Vec<ScoredId>>;
    fn count(&self, name: &str) -> Result<usize>;
    /// Makes written data durable.
    fn flush(&self, name: &str) -> Result<()>;
    /// Creates a collection under exactly this name, with no alias: the
    /// target of a later [`Self::switch_alias`].
    fn create_collection(&self, name: &str, spec: &CollectionSpec) -> Result<()>;
    /// The collection that `name` reaches: an alias's target, or `name`.
    fn resolve(&self, name: &str) -> Result<String>;
    /// Points alias `name` at collection `target` in one step: readers see
    /// either the old collection or the new one, never neither.
    fn switch_alias(&self, name: &str, target: &str) -> Result<()>;
    /// Deletes a collection (not an alias) and its points.
    fn drop_collection(&self, name: &str) -> Result<()>;
    /// A token that changes whenever what a search of `name` sees may
    /// have changed: a publish, a delete, an update in place, an alias
    /// switch. `None` where there is no cheap one (a server shared with
    /// other writers), and callers must not cache.
    fn generation(&self, name: &str) -> Result<Option<String>> {
        let _ = name;
        Ok(None)
    }

    /// Takes, or renews, the lease `key` for `holder` for `ttl`: false while
    /// another holder's lease is live. Replicas sharing a server store sync
    /// each source under its lease; the edge store belongs to one process,
    /// which holds every lease.
    fn lease(&self, key: &str, holder: &str, ttl: std::time::Duration) -> Result<bool> {
        let _ = (key, holder, ttl);
        Ok(true)
    }

    /// Builds the indexes that writes left pending (the HNSW graph,
    /// quantized vectors, merged segments), blocking until done; true if
    /// anything was built. Searches keep working meanwhile. A Qdrant server
    /// optimizes by itself, so there it does nothing.
    fn optimize(&self, name: &str) -> Result<bool> {
        let _ = name;
        Ok(false)
    }

    /// How much of `name` its HNSW graph covers, where the store can say
    /// cheaply.
    fn index_info(&self, name: &str) -> Result<Option<IndexInfo>> {
        let _ = name;
        Ok(None)
    }
}

/// What a collection's index covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexInfo {
    pub segments: usize,
    pub points: usize,
    /// Vectors in indexed segments, dense and sparse together (Qdrant's
    /// `indexed_vectors_count`): 0 until a segment is first indexed, and
    /// up to `2 × points` (a dense and a BM25 vector each) after.
    pub indexed_vectors: usize,
}

impl<'s> dyn VectorStore + 's {
    /// Every page of a scroll, one request at a time.
    pub fn scroll_all<'a>(&'a self, name: &'a str, request: ScrollRequest) -> ScrollAll<'a> {
        ScrollAll {
            store: self,
            name,
            request,
            done: false,
        }
    }
}

/// An existing collection may be reopened only for the spec it was built for.
/// The index settings are not part of the match: a collection keeps the
/// index it was created with, and its vectors are as valid under any.
fn check_spec(name: &str, existing: &CollectionSpec, requested: &CollectionSpec) -> Result<()> {
    if existing.dimension == requested.dimension && existing.model == requested.model {
        return Ok(());
    }
    Err(StoreError::Mismatch {
        collection: name.into(),
        existing: existing.model.to_string(),
        requested: requested.model.to_string(),
    })
}

/// The names a store lists: its collections, except those an alias points
/// to, which are listed under the alias. `ours` says whether a physical
/// collection is Quarry's and intact (a shared server holds others).
fn listed_names(
    physical: Vec<String>,
    aliases: &std::collections::HashMap<String, String>,
    ours: impl Fn(&str) -> bool,
) -> Vec<String> {
    let targets: std::collections::HashSet<&String> = aliases.values().collect();
    let mut names: Vec<String> = aliases
        .iter()
        .filter(|(_, target)| ours(target))
        .map(|(alias, _)| alias.clone())
        .collect();
    names.extend(
        physical
            .into_iter()
            .filter(|n| !targets.contains(n) && ours(n)),
    );
    names.sort();
    names.dedup();
    names
}

/// Opens the configured store: edge shards under `data_dir`, or a server.
/// `min_free_bytes` is the edge store's low-water mark (`sync.min_free_bytes`).
pub fn open(
    config: &quarry_core::config::StoreConfig,
    data_dir: &std::path::Path,
    min_free_bytes: u64,
) -> Result<std::sync::Arc<dyn VectorStore>> {
    Ok(match config {
        quarry_core::config::StoreConfig::Edge => {
            std::sync::Arc::new(EdgeStore::open(data_dir)?.with_min_free(min_free_bytes))
        }
        quarry_core::config::StoreConfig::Server(c) => {
            std::sync::Arc::new(ServerStore::connect(c)?)
        }
    })
}

/// How many documents and points a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Distinct `doc_id`s.
    pub documents: usize,
    pub points: usize,
}

/// Documents and points in a collection, by one scan.
pub fn count_documents(store: &dyn VectorStore, name: &str) -> Result<Counts> {
    let mut docs = std::collections::HashSet::new();
    let mut points = 0;
    let request = ScrollRequest::fields(Fields::Only(vec![ChunkPayload::DOC_ID]), 4096);
    for page in store.scroll_all(name, request) {
        let page = page?.points;
        points += page.len();
        docs.extend(page.into_iter().map(|p| p.payload.doc_id));
    }
    Ok(Counts {
        documents: docs.len(),
        points,
    })
}
