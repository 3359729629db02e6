//! Embedding a group of documents, reusing what is already stored.
//!
//! A chunk's point id is derived from its document, position and text, so
//! a chunk that did not change keeps its id, and its stored vector is read
//! back instead of being embedded again: editing one paragraph of a long
//! document embeds one chunk.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use quarry_core::PointId;
use quarry_embed::{InputKind, Priority};
use quarry_ingest::{DocumentRef, Prepared, PreparedDoc};
use quarry_store::Point;

use super::payload::{DocumentFields, doc_hash};
use super::pipeline::{Parsed, Run};
use crate::{Result, blocking};

/// A group ready to write.
pub(super) struct WriteGroup {
    pub points: Vec<Point>,
    pub new_ids: Vec<PointId>,
    pub old_ids: Vec<PointId>,
}

/// A document with chunks to store.
struct Ready {
    doc: DocumentRef,
    prepared: Box<PreparedDoc>,
    /// The version it is stored under.
    hash: String,
    /// Its points before this sync.
    old: Vec<PointId>,
    /// Its chunks' point ids, in chunk order.
    ids: Vec<PointId>,
    /// A renamed document: where its chunks' vectors are stored instead.
    moved: Option<Moved>,
}

/// A renamed document's old name: its chunks' ids under that name, and the
/// points stored there.
struct Moved {
    prior: Vec<PointId>,
    stored: Vec<PointId>,
}

impl Ready {
    /// Where each chunk's vector may already be stored: its own id, or for
    /// a renamed document the id the chunk had under its old name.
    fn prior(&self) -> &[PointId] {
        self.moved.as_ref().map_or(&self.ids, |m| &m.prior)
    }

    /// The stored points `prior` may name.
    fn stored(&self) -> &[PointId] {
        self.moved.as_ref().map_or(&self.old, |m| &m.stored)
    }
}

/// A chunk of the group: which document, which chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ChunkAt {
    doc: usize,
    chunk: usize,
}

/// Sorts the group's outcomes, embeds the chunks that are new, and builds
/// the points to write.
pub(super) async fn embed_group(run: &mut Run<'_>, group: Vec<Parsed>) -> Result<WriteGroup> {
    let docs = ready_documents(run, group);
    let stored: HashSet<PointId> = docs
        .iter()
        .flat_map(|d| d.stored().iter().copied())
        .collect();
    let reuse_ids: Vec<PointId> = docs
        .iter()
        .flat_map(|d| d.prior().iter().copied())
        .filter(|id| stored.contains(id))
        .collect();
    let name = run.collection.to_string();
    let reused: HashMap<PointId, Vec<f32>> = blocking(&run.indexer.store, move |s| {
        s.retrieve(&name, &reuse_ids, true)
    })
    .await?
    .into_iter()
    .filter_map(|p| Some((p.id, p.dense?)))
    .collect();

    // New chunks, and reused ids whose vector could not be read back.
    let to_embed: Vec<ChunkAt> = docs
        .iter()
        .enumerate()
        .flat_map(|(d, ready)| {
            ready
                .prior()
                .iter()
                .enumerate()
                .filter(|(_, id)| !reused.contains_key(id))
                .map(move |(c, _)| ChunkAt { doc: d, chunk: c })
        })
        .collect();
    let t = Instant::now();
    let texts: Vec<&str> = to_embed
        .iter()
        .map(|at| docs[at.doc].prepared.chunks[at.chunk].text.as_str())
        .collect();
    let vectors = run
        .indexer
        .embedder
        .embed(&texts, InputKind::Passage, Priority::Bulk)
        .await?;
    let report = &mut run.report;
    report.seconds.embed += t.elapsed().as_secs_f64();
    report.chunks_embedded += vectors.len();
    report.tokens_embedded += vectors.iter().map(|e| e.tokens).sum::<usize>();
    let mut fresh: HashMap<ChunkAt, Vec<f32>> = to_embed
        .into_iter()
        .zip(vectors)
        .map(|(at, e)| (at, e.embedding))
        .collect();

    let mut write = WriteGroup {
        points: Vec::new(),
        new_ids: Vec::new(),
        old_ids: Vec::new(),
    };
    for (d, ready) in docs.into_iter().enumerate() {
        let fields = DocumentFields {
            source: &run.report.source,
            doc: &ready.doc,
            parsed: &ready.prepared.parsed,
            hash: &ready.hash,
            chunk_count: ready.prepared.chunks.len(),
            model: &run.indexer.spec.model,
            chunking: &run.indexer.chunking,
        };
        let mut points = Vec::with_capacity(ready.ids.len());
        let mut reused_here = 0;
        for (c, chunk) in ready.prepared.chunks.iter().enumerate() {
            let id = ready.ids[c];
            let dense = match fresh.remove(&ChunkAt { doc: d, chunk: c }) {
                Some(v) => v,
                None => {
                    reused_here += 1;
                    reused.get(&ready.prior()[c]).cloned().unwrap_or_default()
                }
            };
            points.push(Point {
                id,
                dense,
                text: chunk.text.clone(),
                payload: fields.chunk(chunk),
            });
            write.new_ids.push(id);
        }
        write.points.extend(points);
        write.old_ids.extend(ready.old);
        run.report.chunks_reused += reused_here;
        let (count, names) = if ready.moved.is_some() {
            (&mut run.report.renamed, &mut run.report.changed.renamed)
        } else if run.was_stored.contains(&ready.doc.id) {
            (&mut run.report.updated, &mut run.report.changed.updated)
        } else {
            (&mut run.report.added, &mut run.report.changed.added)
        };
        *count += 1;
        crate::report::name(names, &ready.doc.id);
    }
    Ok(write)
}

/// The group's documents with chunks; skips and failures go to the report.
/// A document that is now skipped (or has no text) loses its old points; one
/// that failed keeps them.
fn ready_documents(run: &mut Run<'_>, group: Vec<Parsed>) -> Vec<Ready> {
    let mut docs = Vec::new();
    for p in group {
        let old = run
            .stored_points
            .get(&p.doc.id)
            .cloned()
            .unwrap_or_default();
        // A renamed document that yields nothing to store leaves its old
        // name deleted.
        let moved = usize::from(run.renamed_from.contains_key(&p.doc.id));
        match p.outcome {
            Prepared::Doc(prepared) if !prepared.chunks.is_empty() => {
                let hash = doc_hash(&prepared.content_version, &run.salt);
                let ids_for = |doc_id: &str| -> Vec<PointId> {
                    prepared
                        .chunks
                        .iter()
                        .map(|c| PointId::for_chunk(doc_id, c.index, &c.text))
                        .collect()
                };
                let ids = ids_for(&p.doc.id);
                // The old name's points are already queued for deletion.
                let moved = run.renamed_from.get(&p.doc.id).map(|from| Moved {
                    prior: ids_for(from),
                    stored: run.stored_points.get(from).cloned().unwrap_or_default(),
                });
                docs.push(Ready {
                    doc: p.doc,
                    prepared,
                    hash,
                    old,
                    ids,
                    moved,
                });
            }
            Prepared::Doc(_) => {
                run.report.skip(&p.doc.uri, "no text to index");
                run.report.deleted += moved;
                run.to_delete.extend(old);
            }
            Prepared::Skipped(reason) => {
                run.report.skip(&p.doc.uri, reason);
                run.report.deleted += moved;
                run.to_delete.extend(old);
            }
            Prepared::Failed(reason) => {
                run.report.fail(&p.doc.uri, reason);
                run.report.deleted += moved;
            }
        }
    }
    docs
}
