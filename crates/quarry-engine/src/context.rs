//! Grounding context: the best passages for a query that fit an LLM's token
//! budget, with citations.
//!
//! Hits are grouped by document and runs of consecutive chunks are merged
//! back into one passage, using the chunks' character offsets and the
//! whitespace the splitter trimmed between them, so a passage is exactly a
//! slice of the parsed document and overlapping chunks never repeat text.
//! Passages are taken best-first while the whole rendered block stays within
//! the budget, counted with the LLM's tokenizer (the embedding model's by
//! default) on the final text, not estimated.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokenizers::Tokenizer;

use crate::retriever::{Hit, Retriever, SearchOptions};
use crate::{EngineError, Result};

/// Counts tokens the way the LLM will: no truncation, no padding.
#[derive(Debug, Clone)]
pub struct TokenCounter {
    tokenizer: Arc<Tokenizer>,
}

impl TokenCounter {
    pub fn from_file(path: &Path) -> Result<Self> {
        let err = |e: String| {
            EngineError::Invalid(format!("{}: cannot load tokenizer: {e}", path.display()))
        };
        let mut t = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        t.with_truncation(None).map_err(|e| err(e.to_string()))?;
        t.with_padding(None);
        Ok(Self {
            tokenizer: Arc::new(t),
        })
    }

    pub fn count(&self, text: &str) -> usize {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.len())
            .unwrap_or(usize::MAX)
    }
}

#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// How candidates are found (mode, filter, threshold). `top_k` is the
    /// number of candidate chunks considered.
    pub search: SearchOptions,
    pub max_tokens: usize,
    /// At most this many passages from one document.
    pub per_doc_limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Passage {
    pub citation: usize,
    pub doc_id: String,
    pub uri: String,
    pub title: Option<String>,
    pub headings: Vec<String>,
    pub page: Option<u32>,
    /// Character offsets into the parsed document: `text == parsed[start..end]`.
    pub start: usize,
    pub end: usize,
    pub score: f32,
    /// The best of its hits' `relevance` (0 to 1, the same in every mode).
    pub relevance: f32,
    pub chunk_ids: Vec<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ContextResponse))]
pub struct Context {
    /// The passages rendered for a prompt, each behind its `[n]` citation.
    pub text: String,
    pub passages: Vec<Passage>,
    /// Tokens in `text`; never more than `max_tokens`.
    pub tokens: usize,
    pub max_tokens: usize,
    /// Set when the candidates came from BM25 alone because the query
    /// embedding was late or impossible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<crate::Degraded>,
}

/// A document's text rebuilt from its stored chunks, in order; a chunk
/// missing from the middle shows as a paragraph break.
pub(crate) fn document_text(hits: Vec<Hit>) -> String {
    let passages: Vec<String> = passages_of(hits).into_iter().map(|p| p.text).collect();
    passages.join("\n\n")
}

/// Merges a document's hits into passages: consecutive chunk indices join.
fn passages_of(mut hits: Vec<Hit>) -> Vec<Passage> {
    hits.sort_by_key(|h| h.chunk_index);
    hits.dedup_by_key(|h| h.chunk_index);
    let mut out: Vec<(Passage, usize)> = Vec::new();
    for h in hits {
        if let Some((p, last)) = out.last_mut()
            && h.chunk_index == *last + 1
        {
            if h.start >= p.end {
                p.text.push_str(&h.gap_before);
                p.text.push_str(&h.text);
            } else {
                // Overlapping chunks: append only the part past the passage's end.
                let skip = p.end - h.start;
                p.text.extend(h.text.chars().skip(skip));
            }
            p.end = p.end.max(h.end);
            p.score = p.score.max(h.score);
            p.relevance = p.relevance.max(h.relevance);
            p.chunk_ids.push(h.chunk_id);
            *last = h.chunk_index;
            continue;
        }
        let index = h.chunk_index;
        out.push((
            Passage {
                citation: 0,
                doc_id: h.doc_id,
                uri: h.uri,
                title: h.title,
                headings: h.headings,
                page: h.page,
                start: h.start,
                end: h.end,
                score: h.score,
                relevance: h.relevance,
                chunk_ids: vec![h.chunk_id],
                text: h.text,
            },
            index,
        ));
    }
    out.into_iter().map(|(p, _)| p).collect()
}

fn render(p: &Passage) -> String {
    let name = p
        .title
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or(&p.doc_id);
    let mut head = format!("[{}] {name}", p.citation);
    if !p.headings.is_empty() {
        head.push_str(&format!(" › {}", p.headings.join(" › ")));
    }
    if let Some(page) = p.page {
        head.push_str(&format!(", page {page}"));
    }
    format!("{head}\n{}\n\n", p.text)
}

/// Builds the context for `query` in `collection`.
pub async fn build(
    retriever: &Retriever,
    counter: &TokenCounter,
    collection: &str,
    query: &str,
    options: &ContextOptions,
) -> Result<Context> {
    if options.max_tokens == 0 {
        return Err(EngineError::Invalid("max_tokens must be at least 1".into()));
    }
    let searched = retriever
        .search_full(collection, query, &options.search)
        .await?;
    let (hits, degraded) = (searched.hits, searched.degraded);
    let mut order: Vec<String> = Vec::new();
    let mut by_doc: HashMap<String, Vec<Hit>> = HashMap::new();
    for h in hits {
        if !by_doc.contains_key(&h.doc_id) {
            order.push(h.doc_id.clone());
        }
        by_doc.entry(h.doc_id.clone()).or_default().push(h);
    }
    let mut candidates: Vec<Passage> = Vec::new();
    // Each hit by chunk id, for a merged passage that does not fit the
    // budget and is tried chunk by chunk.
    let mut by_chunk: HashMap<String, Hit> = HashMap::new();
    for doc in order {
        let hits = by_doc.remove(&doc).unwrap_or_default();
        by_chunk.extend(hits.iter().map(|h| (h.chunk_id.clone(), h.clone())));
        let mut ps = passages_of(hits);
        ps.sort_by(|a, b| b.score.total_cmp(&a.score));
        if let Some(cap) = options.per_doc_limit {
            ps.truncate(cap);
        }
        candidates.extend(ps);
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));

    let mut chosen: Vec<Passage> = Vec::new();
    let mut text = String::new();
    let mut tokens = 0;
    let mut queue: std::collections::VecDeque<Passage> = candidates.into();
    while let Some(mut p) = queue.pop_front() {
        p.citation = chosen.len() + 1;
        let candidate = format!("{text}{}", render(&p));
        let n = counter.count(candidate.trim_end());
        if n <= options.max_tokens {
            text = candidate;
            tokens = n;
            chosen.push(p);
        } else if p.chunk_ids.len() > 1 {
            // Merged neighbours too long together: the best document
            // should not drop out of a small budget for that, so its
            // chunks are tried one by one, best first, before the rest.
            let mut parts: Vec<Passage> = p
                .chunk_ids
                .iter()
                .filter_map(|id| passages_of(vec![by_chunk.remove(id)?]).pop())
                .collect();
            parts.sort_by(|a, b| b.score.total_cmp(&a.score));
            for part in parts.into_iter().rev() {
                queue.push_front(part);
            }
        }
    }
    let text = text.trim_end().to_string();
    Ok(Context {
        text,
        passages: chosen,
        tokens,
        max_tokens: options.max_tokens,
        degraded,
    })
}
