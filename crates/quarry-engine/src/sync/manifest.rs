//! The per-document manifest, read from the points themselves.
//!
//! Every chunk point carries its document's id, version hash and chunk
//! count, so the manifest is a scan of the collection, not a second file that
//! could drift from it.

use std::collections::HashMap;

use quarry_core::PointId;
use quarry_core::payload::ChunkPayload;
use quarry_ingest::StoredDoc;
use quarry_store::{Condition, Fields, ScrollRequest, VectorStore};

#[derive(Debug, Default)]
pub(crate) struct Manifest {
    pub docs: HashMap<String, StoredDoc>,
    pub points: HashMap<String, Vec<PointId>>,
    /// Points in the collection from any source.
    pub total_points: usize,
}

/// What the scan has seen of one document.
#[derive(Debug, Default)]
struct Seen {
    /// Points per stored version.
    versions: HashMap<String, usize>,
    /// The chunk count the points claim; `None` when they disagree.
    expected: Option<usize>,
    points: usize,
}

/// Scans `source`'s points in `collection`, or only `doc_id`'s.
pub(crate) fn scan(
    store: &dyn VectorStore,
    collection: &str,
    source: &str,
    doc_id: Option<&str>,
) -> quarry_store::Result<Manifest> {
    let fields = Fields::Only(vec![
        ChunkPayload::DOC_ID,
        ChunkPayload::DOC_HASH,
        ChunkPayload::SOURCE,
        ChunkPayload::CHUNK_COUNT,
    ]);
    let mut request = ScrollRequest::fields(fields, 4096);
    if let Some(id) = doc_id {
        request = request.filter(Condition::matches(ChunkPayload::DOC_ID, id));
    }
    let mut m = Manifest::default();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for page in store.scroll_all(collection, request) {
        let page = page?.points;
        m.total_points += page.len();
        for p in page {
            let payload = p.payload;
            if payload.source != source {
                continue;
            }
            let entry = seen.entry(payload.doc_id.clone()).or_default();
            *entry.versions.entry(payload.doc_hash).or_default() += 1;
            // Disagreeing chunk counts also mark the document inconsistent.
            entry.expected = match (entry.points, entry.expected) {
                (0, _) => Some(payload.chunk_count),
                (_, Some(n)) if n == payload.chunk_count => Some(n),
                _ => None,
            };
            entry.points += 1;
            m.points.entry(payload.doc_id).or_default().push(p.id);
        }
    }
    for (doc_id, s) in seen {
        let consistent = s.versions.len() == 1
            && s.expected.is_some()
            && s.versions.values().next() == s.expected.as_ref();
        let mut versions: Vec<String> = s.versions.into_keys().collect();
        versions.sort();
        m.docs.insert(
            doc_id,
            StoredDoc {
                versions,
                consistent,
            },
        );
    }
    Ok(m)
}
