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

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use quarry_core::document::sha256_hex;
use quarry_core::{Chunk, ParsedDocument, PointId};
use quarry_embed::{Embedder, InputKind, Priority};
use quarry_ingest::{Budget, Chunker, DocumentRef, ParseOptions, Parsed, Plan, Source};
use quarry_store::{CollectionSpec, Point, VectorStore};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::journal::{self, Journal};
use crate::report::SyncReport;
use crate::{EngineError, Result, blocking, manifest};

/// Bumped when parsing or payload layout changes, so every document is
/// re-chunked (reusing vectors of unchanged chunks).
const PIPELINE_VERSION: &str = "1";
/// Documents per write group, and chunks to embed per group.
const GROUP_DOCS: usize = 64;
const GROUP_CHUNKS: usize = 512;

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
}

/// Progress of the changed documents of one sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncProgress {
    /// Documents to parse and embed (added or changed).
    pub total: usize,
    pub done: usize,
    pub chunks_embedded: usize,
}

pub type ProgressFn = Arc<dyn Fn(SyncProgress) + Send + Sync>;

#[derive(Clone)]
pub struct Indexer {
    locks: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    progress: Option<ProgressFn>,
    store: Arc<dyn VectorStore>,
    embedder: Embedder,
    chunker: Chunker,
    data_dir: PathBuf,
    spec: CollectionSpec,
    chunking: Value,
    limits: ParseLimits,
}

/// What one file may cost the parser thread.
#[derive(Debug, Clone, Copy)]
struct ParseLimits {
    max_parse_secs: f64,
    skip_generated: bool,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("chunking", &self.chunking)
            .finish()
    }
}

/// A document after the parser thread.
struct Prepared {
    doc: DocumentRef,
    outcome: Outcome,
}

enum Outcome {
    Doc {
        parsed: Box<ParsedDocument>,
        chunks: Vec<Chunk>,
        hash: String,
    },
    Skipped(String),
    Failed(String),
}

/// A group ready to write.
struct WriteGroup {
    points: Vec<Point>,
    new_ids: Vec<PointId>,
    old_ids: Vec<PointId>,
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
            },
            embedder,
            chunker,
            data_dir: settings.data_dir.clone(),
            chunking,
            limits: ParseLimits {
                max_parse_secs: settings.max_parse_secs,
                skip_generated: settings.skip_generated,
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
        let (name, spec) = (collection.to_string(), self.spec.clone());
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

    /// The version a document is stored under: its content hash combined
    /// with everything else that shapes its chunks.
    fn salt(&self, tags: &[String]) -> String {
        format!("{}|tags={}", self.chunking, tags.join("\u{1f}"))
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
        let (name, filter) = (
            collection.to_string(),
            json!({"must": [{"key": "doc_id", "match": {"value": doc_id}}]}),
        );
        let mut points = blocking(&self.store, move |s| {
            let mut all = Vec::new();
            let mut offset = None;
            loop {
                let (page, next) = s.scroll(
                    &name,
                    offset,
                    1024,
                    &quarry_store::Fields::All,
                    false,
                    Some(&filter),
                )?;
                all.extend(page);
                match next {
                    Some(n) => offset = Some(n),
                    None => return Ok(all),
                }
            }
        })
        .await?;
        points.sort_by_key(|p| {
            p.payload
                .get("chunk_index")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        });
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
        let mut report = SyncReport {
            source: source.name().into(),
            collection: collection.into(),
            ..Default::default()
        };
        self.prepare(collection).await?;

        let t = Instant::now();
        let src = Arc::clone(&source);
        let (listed, issues) = tokio::task::spawn_blocking(move || src.list())
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        report.seconds.list = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let (name, source_name) = (collection.to_string(), source.name().to_string());
        let only_doc = only.map(str::to_string);
        let manifest = blocking(&self.store, move |s| {
            manifest::scan(s, &name, &source_name, only_doc.as_deref()).map_err(|e| match e {
                EngineError::Store(s) => s,
                other => quarry_store::StoreError::Invalid(other.to_string()),
            })
        })
        .await?;
        let mut keep: HashSet<String> = HashSet::new();
        for issue in issues {
            if issue.skipped {
                report.skip(&issue.uri, issue.reason);
            } else {
                report.fail(&issue.uri, issue.reason);
                // Unreadable now is not gone: keep what is indexed.
                keep.extend(issue.id);
            }
        }
        let salt = self.salt(tags);
        let listed: Vec<DocumentRef> = listed
            .into_iter()
            .map(|mut d| {
                d.version = doc_hash(&d.version, &salt);
                d
            })
            .collect();
        let listed_count = listed.len();
        let mut plan = Plan::new(listed, &manifest.docs);
        plan.deleted
            .retain(|id| !keep.contains(id) && only.is_none());
        report.unchanged = plan.unchanged;
        report.seconds.plan = t.elapsed().as_secs_f64();

        let was_stored: HashSet<String> = plan.updated.iter().map(|d| d.id.clone()).collect();
        let work: Vec<DocumentRef> = plan.added.into_iter().chain(plan.updated).collect();
        let mut to_delete: Vec<PointId> = Vec::new();
        for id in &plan.deleted {
            to_delete.extend(manifest.points.get(id).into_iter().flatten().copied());
        }
        report.deleted = plan.deleted.len();

        if !work.is_empty() {
            self.run_pipeline(
                source,
                collection,
                work,
                &manifest.points,
                &was_stored,
                tags,
                &mut report,
                &mut to_delete,
            )
            .await?;
        }

        let t = Instant::now();
        let name = collection.to_string();
        blocking(&self.store, move |s| {
            for ids in to_delete.chunks(4096) {
                s.delete(&name, ids)?;
            }
            s.flush(&name)
        })
        .await?;
        report.seconds.write += t.elapsed().as_secs_f64();
        let name = collection.to_string();
        report.points = blocking(&self.store, move |s| s.count(&name)).await?;
        report.documents = report.added + report.updated + report.unchanged;
        let _ = listed_count;
        report.seconds.total = started.elapsed().as_secs_f64();
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_pipeline(
        &self,
        source: Arc<dyn Source>,
        collection: &str,
        work: Vec<DocumentRef>,
        stored_points: &HashMap<String, Vec<PointId>>,
        was_stored: &HashSet<String>,
        tags: &[String],
        report: &mut SyncReport,
        to_delete: &mut Vec<PointId>,
    ) -> Result<()> {
        let mut progress = SyncProgress {
            total: work.len(),
            ..Default::default()
        };
        if let Some(f) = &self.progress {
            f(progress);
        }
        // Stage 1: a parser thread, ahead of embedding by a bounded channel.
        let (tx, mut rx) = mpsc::channel::<Prepared>(GROUP_DOCS * 2);
        let chunker = self.chunker.clone();
        let limits = self.limits;
        let salt = self.salt(tags);
        let source_tags = tags.to_vec();
        let parser = std::thread::Builder::new()
            .name("quarry-parse".into())
            .spawn(move || {
                for doc in work {
                    let mut outcome = prepare(source.as_ref(), &doc, &chunker, &salt, limits);
                    if let Outcome::Doc { parsed, .. } = &mut outcome {
                        for t in &source_tags {
                            if !parsed.tags.contains(t) {
                                parsed.tags.push(t.clone());
                            }
                        }
                    }
                    if tx.blocking_send(Prepared { doc, outcome }).is_err() {
                        break; // the sync was abandoned
                    }
                }
            })
            .map_err(|e| EngineError::Task(e.to_string()))?;

        // Stage 3: a writer task, one group behind embedding.
        let (wtx, mut wrx) = mpsc::channel::<WriteGroup>(1);
        let store = Arc::clone(&self.store);
        let name = collection.to_string();
        let journal_path = journal::path(&self.data_dir, collection);
        let writer = tokio::spawn(async move {
            let mut seconds = 0.0;
            while let Some(group) = wrx.recv().await {
                let t = Instant::now();
                let (store, name, jp) = (Arc::clone(&store), name.clone(), journal_path.clone());
                tokio::task::spawn_blocking(move || write_group(store.as_ref(), &name, &jp, group))
                    .await
                    .map_err(|e| EngineError::Task(e.to_string()))??;
                seconds += t.elapsed().as_secs_f64();
            }
            Ok::<f64, EngineError>(seconds)
        });

        // Stage 2: here. Group documents, embed what is new, hand to the writer.
        let parse_started = Instant::now();
        let mut pending: Vec<Prepared> = Vec::new();
        let mut done = false;
        while !done {
            match rx.recv().await {
                Some(p) => pending.push(p),
                None => done = true,
            }
            while pending.len() < GROUP_DOCS {
                match rx.try_recv() {
                    Ok(p) => pending.push(p),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        done = true;
                        break;
                    }
                }
            }
            let chunk_total: usize = pending
                .iter()
                .map(|p| match &p.outcome {
                    Outcome::Doc { chunks, .. } => chunks.len(),
                    _ => 0,
                })
                .sum();
            if pending.is_empty()
                || (!done && pending.len() < GROUP_DOCS && chunk_total < GROUP_CHUNKS)
            {
                continue;
            }
            let group = std::mem::take(&mut pending);
            progress.done += group.len();
            let write = self
                .embed_group(
                    collection,
                    group,
                    stored_points,
                    was_stored,
                    report,
                    to_delete,
                )
                .await?;
            if let Some(f) = &self.progress {
                progress.chunks_embedded = report.chunks_embedded;
                f(progress);
            }
            if !write.points.is_empty() && wtx.send(write).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        drop(wtx);
        let _ = parser.join();
        report.seconds.parse_chunk = parse_started.elapsed().as_secs_f64();
        report.seconds.write += writer
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        Ok(())
    }

    async fn embed_group(
        &self,
        collection: &str,
        group: Vec<Prepared>,
        stored_points: &HashMap<String, Vec<PointId>>,
        was_stored: &HashSet<String>,
        report: &mut SyncReport,
        to_delete: &mut Vec<PointId>,
    ) -> Result<WriteGroup> {
        let mut docs = Vec::new();
        for p in group {
            let old = stored_points.get(&p.doc.id).cloned().unwrap_or_default();
            match p.outcome {
                Outcome::Doc {
                    parsed,
                    chunks,
                    hash,
                } if !chunks.is_empty() => docs.push((p.doc, parsed, chunks, hash, old)),
                Outcome::Doc { .. } => {
                    report.skip(&p.doc.uri, "no text to index");
                    to_delete.extend(old);
                }
                Outcome::Skipped(reason) => {
                    report.skip(&p.doc.uri, reason);
                    to_delete.extend(old);
                }
                Outcome::Failed(reason) => report.fail(&p.doc.uri, reason),
            }
        }
        // Unchanged chunks keep their point id; their stored vectors are reused.
        let old_ids: HashSet<PointId> = docs.iter().flat_map(|d| d.4.iter().copied()).collect();
        let mut reuse_ids = Vec::new();
        let mut to_embed: Vec<(usize, usize)> = Vec::new();
        let mut ids: Vec<Vec<PointId>> = Vec::new();
        for (di, (doc, _, chunks, _, _)) in docs.iter().enumerate() {
            let doc_ids: Vec<PointId> = chunks
                .iter()
                .map(|c| PointId::for_chunk(&doc.id, c.index, &c.text))
                .collect();
            for (ci, id) in doc_ids.iter().enumerate() {
                if old_ids.contains(id) {
                    reuse_ids.push(*id);
                } else {
                    to_embed.push((di, ci));
                }
            }
            ids.push(doc_ids);
        }
        let name = collection.to_string();
        let reuse_lookup = reuse_ids.clone();
        let reused: HashMap<PointId, Vec<f32>> =
            blocking(&self.store, move |s| s.retrieve(&name, &reuse_lookup, true))
                .await?
                .into_iter()
                .filter_map(|p| Some((p.id, p.dense?)))
                .collect();

        let t = Instant::now();
        // A reused id whose vector could not be read is embedded after all.
        for (di, (_, _, chunks, _, _)) in docs.iter().enumerate() {
            for (ci, _) in chunks.iter().enumerate() {
                if old_ids.contains(&ids[di][ci]) && !reused.contains_key(&ids[di][ci]) {
                    to_embed.push((di, ci));
                }
            }
        }
        let texts: Vec<&str> = to_embed
            .iter()
            .map(|&(di, ci)| docs[di].2[ci].text.as_str())
            .collect();
        let vectors = self
            .embedder
            .embed(&texts, InputKind::Passage, Priority::Bulk)
            .await?;
        report.seconds.embed += t.elapsed().as_secs_f64();
        report.chunks_embedded += vectors.len();
        report.tokens_embedded += vectors.iter().map(|e| e.tokens).sum::<usize>();
        let mut fresh: HashMap<(usize, usize), Vec<f32>> = HashMap::new();
        for (key, e) in to_embed.into_iter().zip(vectors) {
            fresh.insert(key, e.embedding);
        }

        let mut write = WriteGroup {
            points: Vec::new(),
            new_ids: Vec::new(),
            old_ids: Vec::new(),
        };
        for (di, (doc, parsed, chunks, hash, old)) in docs.into_iter().enumerate() {
            let count = chunks.len();
            for (ci, chunk) in chunks.into_iter().enumerate() {
                let id = ids[di][ci];
                let dense = match fresh.remove(&(di, ci)) {
                    Some(v) => v,
                    None => {
                        report.chunks_reused += 1;
                        reused.get(&id).cloned().unwrap_or_default()
                    }
                };
                let payload =
                    self.payload(report.source.as_str(), &doc, &parsed, &chunk, count, &hash);
                write.points.push(Point {
                    id,
                    dense,
                    text: chunk.text,
                    payload,
                });
                write.new_ids.push(id);
            }
            write.old_ids.extend(old);
            if was_stored.contains(&doc.id) {
                report.updated += 1;
            } else {
                report.added += 1;
            }
        }
        Ok(write)
    }

    fn payload(
        &self,
        source: &str,
        doc: &DocumentRef,
        parsed: &ParsedDocument,
        chunk: &Chunk,
        count: usize,
        hash: &str,
    ) -> Map<String, Value> {
        let mut prefixes = Vec::new();
        if let Some(path) = &doc.path {
            let mut at = 0;
            while let Some(i) = path[at..].find('/') {
                at += i + 1;
                prefixes.push(Value::String(path[..at].to_string()));
            }
            prefixes.push(Value::String(path.clone()));
        }
        let fields = json!({
            "doc_id": doc.id,
            "doc_hash": hash,
            "source": source,
            "uri": doc.uri,
            "path": doc.path,
            "path_prefixes": prefixes,
            "title": parsed.title,
            "content_type": parsed.content_type,
            "tags": parsed.tags,
            "metadata": parsed.metadata,
            "chunk_index": chunk.index,
            "chunk_count": count,
            "text": chunk.text,
            "start": chunk.start,
            "end": chunk.end,
            "gap_before": chunk.gap_before,
            "headings": chunk.headings,
            "page": chunk.page,
            "model": self.spec.model,
            "chunking": self.chunking,
        });
        match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// The version a document is stored under: its content hash combined with
/// everything else that shapes its points (chunking, source tags, pipeline).
fn doc_hash(content_version: &str, salt: &str) -> String {
    sha256_hex(&[
        content_version.as_bytes(),
        salt.as_bytes(),
        PIPELINE_VERSION.as_bytes(),
    ])
}

/// Each file is parsed on a thread of its own with a large stack: parsers
/// of nested formats recurse, and a stack overflow aborts the process where
/// a panic would only fail the file.
const PARSE_STACK_BYTES: usize = 256 << 20;

/// Reads, parses and chunks one document, for the parser thread. Panics in
/// third-party parsers, and files over their budget, become a failure of
/// this document only.
fn prepare(
    source: &dyn Source,
    doc: &DocumentRef,
    chunker: &Chunker,
    salt: &str,
    limits: ParseLimits,
) -> Outcome {
    let raw = match source.read(doc) {
        Ok(r) => r,
        Err(reason) => return Outcome::Failed(reason),
    };
    // Hash what was actually read: the file may have changed since listing.
    let content = raw
        .version
        .clone()
        .unwrap_or_else(|| sha256_hex(&[&raw.bytes]));
    let hash = doc_hash(&content, salt);
    let name = doc.path.as_deref().unwrap_or(&doc.id).to_string();
    let options = ParseOptions {
        skip_generated: limits.skip_generated,
        budget: Budget::secs(limits.max_parse_secs),
    };
    let over_budget = options.budget.exceeded_reason();
    let chunker = chunker.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("quarry-parse-file".into())
        .stack_size(PARSE_STACK_BYTES)
        .spawn(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                parse_and_chunk(&name, raw, &chunker, &options, hash)
            }));
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return Outcome::Failed(format!("cannot start a parser thread: {e}"));
    }
    // The parsers and the chunker stop themselves at the budget; this is
    // the backstop for library code that cannot be interrupted. A thread
    // still running then is left to finish on its own.
    let backstop = std::time::Duration::from_secs_f64(limits.max_parse_secs * 1.5 + 1.0);
    match rx.recv_timeout(backstop) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Outcome::Failed("the parser crashed on this file".into())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Outcome::Failed(over_budget),
    }
}

fn parse_and_chunk(
    name: &str,
    raw: quarry_ingest::RawDocument,
    chunker: &Chunker,
    options: &ParseOptions,
    hash: String,
) -> Outcome {
    match quarry_ingest::parse_with(name, &raw.bytes, raw.content_type.as_deref(), options) {
        Parsed::Document(mut parsed) => {
            if raw.title.is_some() {
                parsed.title = raw.title.clone();
            }
            for (k, v) in &raw.metadata {
                if k == "tags"
                    && let Some(tags) = v.as_array()
                {
                    parsed
                        .tags
                        .extend(tags.iter().filter_map(|t| t.as_str().map(str::to_string)));
                }
                parsed.metadata.insert(k.clone(), v.clone());
            }
            match chunker.chunk_within(&parsed, &options.budget) {
                Ok(chunks) => Outcome::Doc {
                    parsed: Box::new(parsed),
                    chunks,
                    hash,
                },
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
        Parsed::Skipped(r) => Outcome::Skipped(r),
        Parsed::Failed(r) => Outcome::Failed(r),
    }
}

/// Writes one group: journal, staged upsert, publish, journal cleared.
fn write_group(
    store: &dyn VectorStore,
    collection: &str,
    journal_path: &std::path::Path,
    group: WriteGroup,
) -> Result<()> {
    let journal = Journal {
        new_ids: group.new_ids.clone(),
        old_ids: group.old_ids.clone(),
    };
    journal::write(journal_path, &journal)?;
    store.upsert_staged(collection, group.points)?;
    store.publish(collection, &group.new_ids, &group.old_ids)?;
    journal::clear(journal_path)
}
