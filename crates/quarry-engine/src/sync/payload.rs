//! What a chunk's point carries, and the version a document is stored under.

use quarry_core::document::sha256_hex;
use quarry_core::payload::ChunkPayload;
use quarry_core::{Chunk, ParsedDocument};
use quarry_ingest::DocumentRef;
use serde_json::Value;

/// Bumped when parsing or payload layout changes, so every document is
/// re-chunked (reusing vectors of unchanged chunks).
const PIPELINE_VERSION: &str = "1";

/// The version a document is stored under: its content hash combined with
/// everything else that shapes its points (chunking, source tags, pipeline).
pub(super) fn doc_hash(content_version: &str, salt: &str) -> String {
    sha256_hex(&[
        content_version.as_bytes(),
        salt.as_bytes(),
        PIPELINE_VERSION.as_bytes(),
    ])
}

/// Everything but the content that shapes a document's chunks.
pub(super) fn salt(chunking: &Value, tags: &[String]) -> String {
    format!("{chunking}|tags={}", tags.join("\u{1f}"))
}

/// One document's part of its points' payloads.
pub(super) struct DocumentFields<'a> {
    pub source: &'a str,
    pub doc: &'a DocumentRef,
    pub parsed: &'a ParsedDocument,
    pub hash: &'a str,
    pub chunk_count: usize,
    pub model: &'a Value,
    pub chunking: &'a Value,
}

impl DocumentFields<'_> {
    /// The payload of one of the document's chunks.
    pub(super) fn chunk(&self, chunk: &Chunk) -> ChunkPayload {
        let (doc, parsed) = (self.doc, self.parsed);
        ChunkPayload {
            doc_id: doc.id.clone(),
            doc_hash: self.hash.to_string(),
            source: self.source.to_string(),
            uri: doc.uri.clone(),
            path: doc.path.clone(),
            path_prefixes: doc
                .path
                .as_deref()
                .map(ChunkPayload::prefixes_of)
                .unwrap_or_default(),
            title: parsed.title.clone(),
            content_type: parsed.content_type.clone(),
            tags: parsed.tags.clone(),
            metadata: parsed.metadata.clone(),
            chunk_index: chunk.index,
            chunk_count: self.chunk_count,
            text: chunk.text.clone(),
            start: chunk.start,
            end: chunk.end,
            gap_before: chunk.gap_before.clone(),
            headings: chunk.headings.clone(),
            page: chunk.page,
            model: self.model.clone(),
            chunking: self.chunking.clone(),
        }
    }
}
