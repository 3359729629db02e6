//! Stages 1 to 3 of a sync, running at once: a parser thread reads, parses
//! and chunks changed documents into a bounded channel while this task
//! embeds the previous group and a writer task stores the one before, so
//! memory stays flat and the model stays busy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use quarry_core::PointId;
use quarry_ingest::{DocumentRef, PrepareOptions, Prepared, Source};
use quarry_store::VectorStore;
use tokio::sync::mpsc;

use super::Indexer;
use super::journal::{self, Journal};
use super::progress::Tracker;
use super::reuse::{self, WriteGroup};
use crate::report::SyncReport;
use crate::{EngineError, Result};

/// Documents per write group, and chunks to embed per group.
const GROUP_DOCS: usize = 64;
const GROUP_CHUNKS: usize = 512;

/// A document after the parser thread.
pub(super) struct Parsed {
    pub doc: DocumentRef,
    pub outcome: Prepared,
    /// What reading, parsing and chunking it took.
    pub seconds: f64,
}

impl Parsed {
    fn chunks(&self) -> usize {
        match &self.outcome {
            Prepared::Doc(d) => d.chunks.len(),
            _ => 0,
        }
    }
}

/// One sync's state while its changed documents flow through the stages.
pub(super) struct Run<'a> {
    pub indexer: &'a Indexer,
    pub collection: &'a str,
    /// The points each stored document has before this sync.
    pub stored_points: HashMap<String, Vec<PointId>>,
    pub was_stored: HashSet<String>,
    /// Renamed documents' new ids, to the ids they are stored under.
    pub renamed_from: HashMap<String, String>,
    /// Points to delete once every group is written.
    pub to_delete: Vec<PointId>,
    pub report: SyncReport,
    /// Everything but content that the stored version covers.
    pub salt: String,
    pub tracker: Tracker,
    pub options: PrepareOptions,
}

impl Run<'_> {
    pub(super) async fn run(
        &mut self,
        source: Arc<dyn Source>,
        work: Vec<DocumentRef>,
    ) -> Result<()> {
        let mut rx = self.spawn_parser(source, work)?;
        let (wtx, writer) = self.spawn_writer();

        // Stage 2: here. Group documents, embed what is new, hand to the writer.
        let mut parse_seconds = 0.0;
        let mut pending: Vec<Parsed> = Vec::new();
        let mut done = false;
        while !done {
            match rx.recv().await {
                Some(p) => {
                    parse_seconds += p.seconds;
                    pending.push(p);
                }
                None => done = true,
            }
            while pending.len() < GROUP_DOCS {
                match rx.try_recv() {
                    Ok(p) => {
                        parse_seconds += p.seconds;
                        pending.push(p);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        done = true;
                        break;
                    }
                }
            }
            let chunk_total: usize = pending.iter().map(Parsed::chunks).sum();
            if pending.is_empty()
                || (!done && pending.len() < GROUP_DOCS && chunk_total < GROUP_CHUNKS)
            {
                continue;
            }
            let group = std::mem::take(&mut pending);
            let docs = group.len();
            let write = reuse::embed_group(self, group).await?;
            let chunks = self.report.chunks_embedded;
            self.tracker.update(|p| {
                p.done += docs;
                p.chunks_embedded = chunks;
            });
            if !write.points.is_empty() && wtx.send(write).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        drop(wtx);
        // The parser's own time: it overlaps embedding and writing.
        self.report.seconds.parse_chunk = parse_seconds;
        self.report.seconds.write += writer
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        Ok(())
    }

    /// Stage 1: a parser thread, ahead of embedding by a bounded channel.
    fn spawn_parser(
        &self,
        source: Arc<dyn Source>,
        work: Vec<DocumentRef>,
    ) -> Result<mpsc::Receiver<Parsed>> {
        let (tx, rx) = mpsc::channel::<Parsed>(GROUP_DOCS * 2);
        let chunker = self.indexer.chunker.clone();
        let options = self.options.clone();
        let tracker = self.tracker.clone();
        std::thread::Builder::new()
            .name("quarry-parse".into())
            .spawn(move || {
                for doc in work {
                    tracker.update(|p| p.current = Some(doc.uri.clone()));
                    let t = Instant::now();
                    let outcome = quarry_ingest::prepare(source.as_ref(), &doc, &chunker, &options);
                    let seconds = t.elapsed().as_secs_f64();
                    if tx
                        .blocking_send(Parsed {
                            doc,
                            outcome,
                            seconds,
                        })
                        .is_err()
                    {
                        break; // the sync was abandoned
                    }
                }
                tracker.update(|p| p.current = None);
            })
            .map_err(|e| EngineError::Task(e.to_string()))?;
        Ok(rx)
    }

    /// Stage 3: a writer task, one group behind embedding. It answers with
    /// the seconds it spent writing.
    fn spawn_writer(
        &self,
    ) -> (
        mpsc::Sender<WriteGroup>,
        tokio::task::JoinHandle<Result<f64>>,
    ) {
        let (wtx, mut wrx) = mpsc::channel::<WriteGroup>(1);
        let store = Arc::clone(&self.indexer.store);
        let name = self.collection.to_string();
        let journal_path = journal::path(&self.indexer.data_dir, self.collection);
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
        (wtx, writer)
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
