//! What a sync did.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportError {
    pub uri: String,
    pub reason: String,
    /// `skipped` (deliberately not indexed) or `failed`.
    pub kind: String,
}

/// Deserialisable so the CLI can show a report a server sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncReport {
    pub source: String,
    pub collection: String,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    /// Documents that moved to a new id with their content unchanged (a
    /// renamed file): re-stored under the new id with their vectors reused,
    /// and counted neither as added nor as deleted.
    pub renamed: usize,
    pub skipped: usize,
    pub failed: usize,
    /// The documents behind `added`, `updated`, `renamed` and `deleted`,
    /// the first [`NAMED`] of each.
    pub changed: ChangedDocuments,
    /// The skips grouped by reason, most frequent first: a re-sync of a
    /// tree with many images reads as one line, not one per image.
    pub skipped_by_reason: Vec<ReasonCount>,
    /// Listed documents with identical content, the first [`NAMED`] groups:
    /// all are indexed, and searches fold their passages into one hit.
    pub duplicates: Vec<DuplicateDocuments>,
    pub errors: Vec<ReportError>,
    pub chunks_embedded: usize,
    pub chunks_reused: usize,
    pub tokens_embedded: usize,
    pub documents: usize,
    pub points: usize,
    pub seconds: Durations,
}

/// How many document ids each list of [`ChangedDocuments`] keeps; the
/// counts in [`SyncReport`] are always whole.
pub const NAMED: usize = 100;

/// Document ids by what the sync did to them, each list capped at
/// [`NAMED`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedDocuments {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    /// The new ids of renamed documents.
    pub renamed: Vec<String>,
    pub deleted: Vec<String>,
}

/// Documents whose content is byte for byte the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateDocuments {
    pub documents: Vec<String>,
}

/// One reason documents were skipped, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: usize,
}

/// Seconds per stage. Parsing, embedding and writing overlap, so their sum
/// exceeds `total`: each is that stage's own time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Durations {
    pub list: f64,
    pub plan: f64,
    /// Reading, parsing and chunking, in the parser thread.
    pub parse_chunk: f64,
    pub embed: f64,
    pub write: f64,
    /// Building the HNSW graph and quantized vectors, after the writes.
    pub index: f64,
    pub total: f64,
}

/// Adds `id` to `list` unless the list is full.
pub(crate) fn name(list: &mut Vec<String>, id: &str) {
    if list.len() < NAMED {
        list.push(id.to_string());
    }
}

impl SyncReport {
    pub(crate) fn skip(&mut self, uri: &str, reason: impl Into<String>) {
        self.skipped += 1;
        self.note(uri, reason.into(), "skipped");
    }

    pub(crate) fn fail(&mut self, uri: &str, reason: impl Into<String>) {
        self.failed += 1;
        self.note(uri, reason.into(), "failed");
    }

    /// Fills [`Self::skipped_by_reason`] from the skips noted so far. A
    /// reason's parenthesised details are one file's own (a minified file's
    /// line count and longest line), so the groups leave them out; each
    /// skip in `errors` keeps them.
    pub(crate) fn summarise_skips(&mut self) {
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        for e in self.errors.iter().filter(|e| e.kind == "skipped") {
            *counts.entry(reason_kind(&e.reason)).or_default() += 1;
        }
        let mut by_reason: Vec<ReasonCount> = counts
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect();
        by_reason.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        self.skipped_by_reason = by_reason;
    }

    fn note(&mut self, uri: &str, reason: String, kind: &str) {
        let (uri, kind) = (uri.to_string(), kind.to_string());
        self.errors.push(ReportError { uri, reason, kind });
    }
}

/// `reason` without its parenthesised parts.
fn reason_kind(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut depth = 0usize;
    for c in reason.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    // "file (details); hint" leaves "file ; hint".
    out.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ;", ";")
        .replace(" ,", ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_grouped_by_reason_and_names_are_capped() {
        let mut r = SyncReport::default();
        for i in 0..63 {
            r.skip(&format!("img/{i}.png"), "binary file type .png");
        }
        r.skip("empty.md", "empty file");
        // One group, whatever each minified file's own figures.
        let hint = "set sync.skip_generated = false to index it";
        r.skip(
            "a.min.js",
            format!("minified file (1 lines, the longest 113133 bytes); {hint}"),
        );
        r.skip(
            "b.css",
            format!("minified file (54 lines, the longest 19049 bytes); {hint}"),
        );
        r.skip("c.js", format!("minified file; {hint}"));
        r.fail("bad.pdf", "broken xref");
        r.summarise_skips();
        assert_eq!(
            r.skipped_by_reason,
            vec![
                ReasonCount {
                    reason: "binary file type .png".into(),
                    count: 63
                },
                ReasonCount {
                    reason: format!("minified file; {hint}"),
                    count: 3
                },
                ReasonCount {
                    reason: "empty file".into(),
                    count: 1
                },
            ]
        );
        let mut list = Vec::new();
        for i in 0..NAMED + 5 {
            name(&mut list, &format!("doc{i}"));
        }
        assert_eq!(list.len(), NAMED);
        assert_eq!(list[0], "doc0");
    }
}
