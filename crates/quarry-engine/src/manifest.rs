//! The per-document manifest, read from the points themselves.
//!
//! Every chunk point carries its document's id, version hash and chunk
//! count, so the manifest is a scan of the collection, not a second file that
//! could drift from it.

use std::collections::HashMap;

use quarry_core::PointId;
use quarry_ingest::StoredDoc;
use quarry_store::{Fields, VectorStore};

use crate::Result;

#[derive(Debug, Default)]
pub(crate) struct Manifest {
    pub docs: HashMap<String, StoredDoc>,
    pub points: HashMap<String, Vec<PointId>>,
    /// Points in the collection from any source.
    pub total_points: usize,
}

/// Scans `source`'s points in `collection`, or only `doc_id`'s.
pub(crate) fn scan(
    store: &dyn VectorStore,
    collection: &str,
    source: &str,
    doc_id: Option<&str>,
) -> Result<Manifest> {
    let filter =
        doc_id.map(|id| serde_json::json!({"must": [{"key": "doc_id", "match": {"value": id}}]}));
    let fields = Fields::Only(vec![
        "doc_id".into(),
        "doc_hash".into(),
        "source".into(),
        "chunk_count".into(),
    ]);
    let mut m = Manifest::default();
    let mut counts: HashMap<String, (HashMap<String, usize>, usize)> = HashMap::new();
    let mut offset = None;
    loop {
        let (page, next) =
            store.scroll(collection, offset, 4096, &fields, false, filter.as_ref())?;
        m.total_points += page.len();
        for p in page {
            let get = |k: &str| {
                p.payload
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            if get("source") != source {
                continue;
            }
            let doc_id = get("doc_id");
            let entry = counts.entry(doc_id.clone()).or_default();
            *entry.0.entry(get("doc_hash")).or_default() += 1;
            let expected = p
                .payload
                .get("chunk_count")
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as usize;
            // Disagreeing chunk counts also mark the document inconsistent.
            entry.1 = if entry.1 == 0 || entry.1 == expected {
                expected
            } else {
                usize::MAX
            };
            m.points.entry(doc_id).or_default().push(p.id);
        }
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    for (doc_id, (versions, expected)) in counts {
        let consistent = versions.len() == 1 && versions.values().next() == Some(&expected);
        let mut versions: Vec<String> = versions.into_keys().collect();
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
