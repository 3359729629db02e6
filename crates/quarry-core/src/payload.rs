//! What a stored point carries: the one definition of a chunk's payload.
//!
//! The indexer writes it, the retriever, the manifest scan, the document
//! status route and evaluation read it, and the stores turn it into Qdrant's
//! JSON and back. The field names and their order are the stored layout of
//! every existing index, so they change only with a migration.
//!
//! Every field has a default because reads may ask for a few fields only
//! (the manifest scan reads four); a field a scroll did not select reads as
//! empty rather than failing the whole page.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Payload fields with a keyword index, which filters and sync planning use.
pub const INDEXED_FIELDS: &[&str] = &[
    ChunkPayload::DOC_ID,
    ChunkPayload::SOURCE,
    ChunkPayload::PATH_PREFIXES,
    ChunkPayload::TAGS,
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChunkPayload {
    /// The document's id within its source (a relative path, a BEIR `_id`).
    #[serde(deserialize_with = "lenient")]
    pub doc_id: String,
    /// The version the document is stored under: a hash of its content and
    /// of everything else that shapes its chunks.
    #[serde(deserialize_with = "lenient")]
    pub doc_hash: String,
    /// The configured source the document came from.
    #[serde(deserialize_with = "lenient")]
    pub source: String,
    #[serde(deserialize_with = "lenient")]
    pub uri: String,
    /// The path relative to the source root, where there is one.
    #[serde(deserialize_with = "lenient")]
    pub path: Option<String>,
    /// `a/`, `a/b/` and the path itself: a prefix filter is a keyword match.
    #[serde(deserialize_with = "lenient")]
    pub path_prefixes: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub content_type: String,
    #[serde(deserialize_with = "lenient")]
    pub tags: Vec<String>,
    /// Front matter and source metadata, as given.
    #[serde(deserialize_with = "lenient")]
    pub metadata: Map<String, Value>,
    #[serde(deserialize_with = "lenient")]
    pub chunk_index: usize,
    /// Chunks of the document: a document whose points disagree, or number
    /// fewer, was interrupted mid-write.
    #[serde(deserialize_with = "lenient")]
    pub chunk_count: usize,
    #[serde(deserialize_with = "lenient")]
    pub text: String,
    /// Character offsets into the parsed document.
    #[serde(deserialize_with = "lenient")]
    pub start: usize,
    #[serde(deserialize_with = "lenient")]
    pub end: usize,
    /// Whitespace between the previous chunk and this one.
    #[serde(deserialize_with = "lenient")]
    pub gap_before: String,
    #[serde(deserialize_with = "lenient")]
    pub headings: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub page: Option<u32>,
    /// The model fingerprint the vector came from.
    pub model: Value,
    /// The chunking settings the document was split with.
    pub chunking: Value,
}

impl ChunkPayload {
    pub const DOC_ID: &str = "doc_id";
    pub const DOC_HASH: &str = "doc_hash";
    pub const SOURCE: &str = "source";
    pub const PATH_PREFIXES: &str = "path_prefixes";
    pub const TAGS: &str = "tags";
    pub const CHUNK_INDEX: &str = "chunk_index";
    pub const CHUNK_COUNT: &str = "chunk_count";
    pub const CHUNKING: &str = "chunking";
    pub const METADATA: &str = "metadata";

    /// The prefixes a path is indexed under: each parent directory with its
    /// trailing slash, then the path itself.
    pub fn prefixes_of(path: &str) -> Vec<String> {
        let mut prefixes: Vec<String> = path
            .match_indices('/')
            .map(|(i, _)| path[..=i].to_string())
            .collect();
        prefixes.push(path.to_string());
        prefixes
    }

    /// The payload as the JSON object Qdrant stores.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // A struct of strings, numbers and JSON values always
            // serialises to an object.
            _ => Map::new(),
        }
    }

    /// Reads a stored payload; see [`lenient`] for fields of the wrong type.
    pub fn from_map(map: Map<String, Value>) -> Self {
        serde_json::from_value(Value::Object(map)).unwrap_or_default()
    }
}

/// A field of the wrong type reads as its default, so one odd point (a
/// payload edited by hand, a field from another tool) cannot fail a whole
/// scan. (`model` and `chunking` take any JSON.)
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A payload as the indexer wrote it before this struct existed.
    const BEFORE: &str = include_str!("../tests/fixtures/payload-before-chunkpayload.json");

    #[test]
    fn a_payload_written_before_the_struct_reads_and_writes_back_the_same() {
        let stored: Map<String, Value> = serde_json::from_str(BEFORE).unwrap();
        let p = ChunkPayload::from_map(stored.clone());
        assert_eq!(p.doc_id, "guide/page.md");
        assert_eq!(p.path_prefixes, ChunkPayload::prefixes_of("guide/page.md"));
        assert_eq!(p.headings, ["Heading One"]);
        assert_eq!((p.chunk_index, p.chunk_count, p.page), (0, 1, None));
        assert_eq!(p.metadata["year"], 2024);
        assert_eq!(p.chunking["max_tokens"], 254);
        assert_eq!(Value::Object(p.to_map()), Value::Object(stored));
    }

    #[test]
    fn partial_and_odd_payloads_read_with_defaults() {
        let p = ChunkPayload::from_map(
            serde_json::from_str(
                r#"{"doc_id": "a", "chunk_count": "three", "uri": 7, "_staged": true}"#,
            )
            .unwrap(),
        );
        assert_eq!((p.doc_id.as_str(), p.chunk_count), ("a", 0));
        assert_eq!(ChunkPayload::prefixes_of("x"), ["x"]);
    }
}
