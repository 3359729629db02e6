//! Sync orchestration: keep a collection exactly in step with a source.
//!
//! The order of operations is what makes this safe:
//!
//! 1. finish any replacement a crash interrupted ([`crate::journal`]);
//! 2. read the manifest from the points themselves and list the source;
//! 3. plan: unchanged documents are skipped without being read twice;
//! 4. a parser thread reads, parses and chunks changed documents into a
//!    bounded channel while this task embeds the previous group and a writer
//!    task stores the one before, so memory stays flat and the model stays
//!    busy;
//! 5. each group is written staged, then published, which deletes the old
//!    points and reveals the new ones as one step for readers;
//! 6. documents gone from the source are deleted in the same sync.
//!
//! Point ids are derived from (document id, chunk position, chunk text) and
//! payloads hold nothing time-dependent, so any sequence of interrupted and
//! completed syncs converges on exactly what one clean sync produces.

//!
//! The stages live apart: [`plan`] (listing against manifest), the parser
//! stage in `quarry_ingest::prepare`, [`pipeline`] (the three concurrent
//! stages), [`reuse`] (which chunks keep their stored vectors) and
//! [`payload`] (what each point carries).

mod journal;
mod manifest;
mod payload;
mod pipeline;
mod plan;
mod progress;
mod reuse;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use quarry_core::payload::ChunkPayload;
use quarry_core::{Config, PointId};
use quarry_embed::{Embedder, InputKind};
use quarry_ingest::{Chunker, PrepareOptions, Source};
use quarry_store::{CollectionSpec, Condition, Fields, ScrollRequest, VectorStore};
use serde_json::{Value, json};

pub(crate) use journal::write_json;
use progress::Tracker;
pub use progress::{ProgressFn, SyncProgress, SyncStage};

use crate::report::SyncReport;
use crate::{EngineError, Result, blocking};

#[derive(Debug, Clone)]
pub struct IndexerSettings {
    pub data_dir: PathBuf,
    pub chunk_max_tokens: usize,
    pub chunk_overlap: usize,
    /// Index each document as one chunk, truncated by the model
    /// (evaluation's `--chunking none`).
    pub whole_documents: bool,
    /// `sync.max_parse_secs`: one file's parse and chunking budget.
    pub max_parse_secs: f64,
    /// `sync.skip_generated`: leave minified and generated files out.
    pub skip_generated: bool,
    /// `[index]`: how collections this indexer creates index their vectors.
    pub index: quarry_core::config::IndexConfig,
}

impl IndexerSettings {
    /// The settings `quarry.toml` gives: chunks, not whole documents.
    pub fn from_config(config: &Config) -> Self {
        Self {
            data_dir: config.data_dir.clone(),
            chunk_max_tokens: config.chunking.max_tokens,
            chunk_overlap: config.chunking.overlap,
            whole_documents: false,
            max_parse_secs: config.sync.max_parse_secs,
            skip_generated: config.sync.skip_generated,
            index: config.index.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Indexer {
    locks: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    progress: Option<ProgressFn>,
    store: Arc<dyn VectorStore>,
    embedder: Embedder,
    chunker: Chunker,
    data_dir: PathBuf,
    /// The model and dimension; the index settings are set per collection.
    spec: CollectionSpec,
    index: quarry_core::config::IndexConfig,
    chunking: Value,
    /// What one file may cost the parser stage (tags are set per sync).
    limits: PrepareOptions,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Indexer({})", self.chunking)
    }
}

impl Indexer {
    /// `tokenizer_json` is the embedding model's tokenizer, so chunks are
    /// sized in the model's own tokens.
    pub fn new(
        store: Arc<dyn VectorStore>,
        embedder: Embedder,
        tokenizer_json: &std::path::Path,
        settings: &IndexerSettings,
    ) -> Result<Self> {
        let fp = embedder.fingerprint().clone();
        // Room for [CLS], [SEP] and the passage prompt: a chunk must never be
        // truncated by the model.
        let reserved = embedder.count_tokens("", InputKind::Passage)?;
        let budget = settings
            .chunk_max_tokens
            .min(fp.max_seq_length.saturating_sub(reserved));
        let (chunker, chunking) = if settings.whole_documents {
            let c = Chunker::whole(tokenizer_json, budget)?;
            (c, json!({"whole": true}))
        } else {
            let c = Chunker::new(tokenizer_json, budget, settings.chunk_overlap)?;
            let j = json!({"max_tokens": c.max_tokens(), "overlap": c.overlap()});
            (c, j)
        };
        let model = serde_json::to_value(&fp).map_err(|e| EngineError::Invalid(e.to_string()))?;
        Ok(Self {
            locks: Arc::default(),
            progress: None,
            store,
            spec: CollectionSpec {
                dimension: fp.dimension,
                model,
                index: None,
            },
            index: settings.index.clone(),
            embedder,
            chunker,
            data_dir: settings.data_dir.clone(),
            chunking,
            limits: PrepareOptions {
                max_parse_secs: settings.max_parse_secs,
                skip_generated: settings.skip_generated,
                tags: Vec::new(),
            },
        })
    }

    /// Calls `f` as changed documents are processed.
    pub fn with_progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The chunking settings documents are stored under.
    pub fn chunking(&self) -> &Value {
        &self.chunking
    }

    /// Opens (or creates) `collection` for this model and finishes any
    /// replacement an earlier crash interrupted.
    pub async fn prepare(&self, collection: &str) -> Result<()> {
        self.prepare_with(collection, None).await
    }

    /// Like [`Self::prepare`], a new collection taking `index` on top of
    /// `[index]` (an existing one keeps the index it was built with).
    pub async fn prepare_with(
        &self,
        collection: &str,
        index: Option<&quarry_core::config::IndexOverride>,
    ) -> Result<()> {
        let mut settings = self.index.for_collection(collection);
        if let Some(o) = index {
            settings = o.apply(settings);
            settings.validate("index").map_err(EngineError::Invalid)?;
        }
        let spec = CollectionSpec {
            index: Some(settings),
            ..self.spec.clone()
        };
        let name = collection.to_string();
        let journal = journal::path(&self.data_dir, collection);
        blocking(&self.store, move |s| {
            s.open_collection(&name, &spec)?;
            Ok(name)
        })
        .await?;
        let name = collection.to_string();
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || journal::recover(store.as_ref(), &name, &journal))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        Ok(())
    }

    pub async fn sync(&self, source: Arc<dyn Source>, collection: &str) -> Result<SyncReport> {
        self.sync_tagged(source, collection, &[]).await
    }

    /// Like [`Self::sync`], adding `tags` to every document of the source.
    pub async fn sync_tagged(
        &self,
        source: Arc<dyn Source>,
        collection: &str,
        tags: &[String],
    ) -> Result<SyncReport> {
        self.run_sync(source, collection, tags, None).await
    }

    /// Adds or replaces one document through the same path as a sync, under
    /// source `api`. Other documents are untouched.
    pub async fn put_document(
        &self,
        collection: &str,
        source: quarry_ingest::MemorySource,
        doc_id: &str,
    ) -> Result<SyncReport> {
        self.run_sync(Arc::new(source), collection, &[], Some(doc_id))
            .await
    }

    /// Deletes every point of one document; returns how many there were.
    pub async fn delete_document(&self, collection: &str, doc_id: &str) -> Result<usize> {
        let _guard = self.lock(collection).await;
        self.prepare(collection).await?;
        let ids: Vec<PointId> = self
            .document_points(collection, doc_id)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let (name, n) = (collection.to_string(), ids.len());
        blocking(&self.store, move |s| {
            s.delete(&name, &ids)?;
            s.flush(&name)
        })
        .await?;
        Ok(n)
    }

    /// The stored points of one document, in chunk order.
    pub async fn document_points(
        &self,
        collection: &str,
        doc_id: &str,
    ) -> Result<Vec<quarry_store::StoredPoint>> {
        let name = collection.to_string();
        let request = ScrollRequest::fields(Fields::All, 1024)
            .filter(Condition::matches(ChunkPayload::DOC_ID, doc_id));
        let mut points =
            blocking(&self.store, move |s| s.scroll_all(&name, request).points()).await?;
        points.sort_by_key(|p| p.payload.chunk_index);
        Ok(points)
    }

    /// Serialises writers of one collection: the journal and the
    /// staged/publish protocol assume one writer at a time.
    async fn lock(&self, collection: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(collection.to_string()).or_default())
        };
        lock.lock_owned().await
    }

    async fn run_sync(
        &self,
        source: Arc<dyn Source>,
        collection: &str,
        tags: &[String],
        only: Option<&str>,
    ) -> Result<SyncReport> {
        let _guard = self.lock(collection).await;
        let started = Instant::now();
        let tracker = Tracker::new(self.progress.clone());
        tracker.update(|p| p.stage = SyncStage::Listing);
        let mut report = SyncReport {
            source: source.name().into(),
            collection: collection.into(),
            ..Default::default()
        };
        self.prepare(collection).await?;

        let t = Instant::now();
        let src = Arc::clone(&source);
        let listing = tokio::task::spawn_blocking(move || src.list())
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        report.seconds.list = t.elapsed().as_secs_f64();
        tracker.update(|p| {
            p.stage = SyncStage::Planning;
            p.listed = listing.docs.len();
        });

        let t = Instant::now();
        let (name, source_name) = (collection.to_string(), source.name().to_string());
        let only_doc = only.map(str::to_string);
        let manifest = blocking(&self.store, move |s| {
            manifest::scan(s, &name, &source_name, only_doc.as_deref())
        })
        .await?;
        let salt = payload::salt(&self.chunking, tags);
        let plan = plan::plan(listing, manifest, &salt, only, &mut report);
        report.seconds.plan = t.elapsed().as_secs_f64();
        tracker.update(|p| {
            p.stage = SyncStage::Indexing;
            p.unchanged = report.unchanged;
            p.total = plan.work.len();
        });

        let mut run = pipeline::Run {
            indexer: self,
            collection,
            stored_points: plan.stored_points,
            was_stored: plan.was_stored,
            renamed_from: plan.renamed_from,
            to_delete: plan.to_delete,
            report,
            salt,
            tracker: tracker.clone(),
            options: PrepareOptions {
                tags: tags.to_vec(),
                ..self.limits.clone()
            },
        };
        if !plan.work.is_empty() {
            run.run(source, plan.work).await?;
        }
        let pipeline::Run {
            mut report,
            to_delete,
            ..
        } = run;

        let t = Instant::now();
        if !to_delete.is_empty() {
            tracker.update(|p| p.stage = SyncStage::Deleting);
        }
        let name = collection.to_string();
        blocking(&self.store, move |s| {
            for ids in to_delete.chunks(4096) {
                s.delete(&name, ids)?;
            }
            s.flush(&name)
        })
        .await?;
        report.seconds.write += t.elapsed().as_secs_f64();
        // Writes land in segments searched by brute force; past
        // `indexing_threshold_kb` they need their graph built, and the
        // embedded store builds only when asked. Unchanged syncs build
        // nothing, so this costs only after real writes.
        let t = Instant::now();
        tracker.update(|p| p.stage = SyncStage::Optimizing);
        let name = collection.to_string();
        blocking(&self.store, move |s| s.optimize(&name)).await?;
        report.seconds.index = t.elapsed().as_secs_f64();
        let name = collection.to_string();
        report.points = blocking(&self.store, move |s| s.count(&name)).await?;
        report.documents = report.added + report.updated + report.renamed + report.unchanged;
        report.seconds.total = started.elapsed().as_secs_f64();
        report.summarise_skips();
        Ok(report)
    }
}
