//! Documents and chunks as they flow from parsing to the store.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A parsed document: plain text plus what citations need to point into it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParsedDocument {
    pub text: String,
    pub title: Option<String>,
    /// `text/markdown`, `text/html`, `application/pdf`, `text/x-rust`, ...
    pub content_type: String,
    /// Front matter and source-specific fields.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
    /// Headings as (char offset of the heading, level 1-6, title).
    pub headings: Vec<(usize, u8, String)>,
    /// Char offset where each page starts (PDF); empty for unpaged text.
    pub page_starts: Vec<usize>,
}

impl ParsedDocument {
    /// The heading breadcrumb in force at `offset` (chars).
    pub fn heading_path(&self, offset: usize) -> Vec<String> {
        let mut path: Vec<(u8, &str)> = Vec::new();
        for (at, level, title) in &self.headings {
            if *at > offset {
                break;
            }
            path.retain(|(l, _)| l < level);
            path.push((*level, title));
        }
        path.into_iter().map(|(_, t)| t.to_string()).collect()
    }

    /// 1-based page number containing `offset` (chars), if paged.
    pub fn page_at(&self, offset: usize) -> Option<u32> {
        if self.page_starts.is_empty() {
            return None;
        }
        Some(
            self.page_starts
                .iter()
                .take_while(|&&s| s <= offset)
                .count()
                .max(1) as u32,
        )
    }
}

/// One chunk of a document's parsed text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub index: usize,
    pub text: String,
    /// Char offsets into the parsed text: `text == parsed[start..end]`.
    pub start: usize,
    pub end: usize,
    pub headings: Vec<String>,
    pub page: Option<u32>,
    /// The text between the previous chunk's end and this chunk's start
    /// (whitespace the splitter trimmed); empty when the chunks overlap. It
    /// lets adjacent chunks be merged back into the exact source text.
    pub gap_before: String,
}

/// A point id: 128 bits rendered as a UUID, derived from the document id,
/// the chunk position and the chunk text, so the same chunk always gets the
/// same id and re-running a sync is idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PointId(pub u128);

impl PointId {
    pub fn for_chunk(doc_id: &str, index: usize, text: &str) -> Self {
        let mut h = Sha256::new();
        h.update((doc_id.len() as u64).to_le_bytes());
        h.update(doc_id.as_bytes());
        h.update((index as u64).to_le_bytes());
        h.update(text.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        // Mark it as an RFC 4122 version-5-style UUID so every tool accepts it.
        bytes[6] = (bytes[6] & 0x0f) | 0x50;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(u128::from_be_bytes(bytes))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 {
            return None;
        }
        u128::from_str_radix(&hex, 16).ok().map(Self)
    }
}

impl std::fmt::Display for PointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// Hex sha256 of some bytes: document versions and content hashes.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_stable_uuids() {
        let a = PointId::for_chunk("doc", 0, "text");
        assert_eq!(a, PointId::for_chunk("doc", 0, "text"));
        assert_ne!(a, PointId::for_chunk("doc", 1, "text"));
        assert_ne!(a, PointId::for_chunk("doc", 0, "text!"));
        let s = a.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "5");
        assert_eq!(PointId::parse(&s), Some(a));
    }

    #[test]
    fn heading_path_follows_levels() {
        let d = ParsedDocument {
            headings: vec![
                (0, 1, "A".into()),
                (10, 2, "B".into()),
                (20, 2, "C".into()),
                (30, 1, "D".into()),
            ],
            ..Default::default()
        };
        assert_eq!(d.heading_path(25), vec!["A", "C"]);
        assert_eq!(d.heading_path(35), vec!["D"]);
    }
}
