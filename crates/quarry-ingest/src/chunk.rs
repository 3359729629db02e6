//! Token-aware chunking with text-splitter.
//!
//! Sizes are counted with the embedding model's own tokenizer, and the
//! budget leaves room for the special tokens and the passage prompt the
//! embedder adds, so a chunk always fits the model whole.

use std::path::Path;
use std::sync::Arc;

use quarry_core::{Chunk, ParsedDocument};
use text_splitter::{
    ChunkCharIndex, ChunkConfig, CodeSplitter, MarkdownSplitter, TextSplitter, TryChunkSizer,
};
use tokenizers::Tokenizer;

use crate::parse::{Budget, OverBudget};
use crate::{IngestError, Result};

/// Syntax trees deeper than this are split as plain text.
const MAX_CODE_DEPTH: usize = 64;

/// Token counts for the splitter, that stop it once the file's budget is
/// spent: the splitter sizes candidate chunks many times over, so this is
/// where a pathological file spends its time.
#[derive(Clone, Copy)]
struct BudgetSizer<'a> {
    tokenizer: &'a Tokenizer,
    budget: &'a Budget,
}

impl TryChunkSizer for BudgetSizer<'_> {
    type Error = OverBudget;

    fn try_size(&self, chunk: &str) -> std::result::Result<usize, OverBudget> {
        self.budget.check()?;
        Ok(self
            .tokenizer
            .encode_fast(chunk, false)
            .map(|e| e.len())
            .unwrap_or(usize::MAX))
    }
}

/// The deepest nesting of `text`'s syntax tree, walked without recursion;
/// `None` when the grammar cannot be loaded or the text parsed.
fn syntax_depth(language: tree_sitter_language::LanguageFn, text: &str) -> Option<usize> {
    let mut parser = tree_sitter::Parser::new();
    parser.set_language(&language.into()).ok()?;
    let tree = parser.parse(text, None)?;
    let mut cursor = tree.walk();
    let (mut depth, mut deepest) = (0usize, 0usize);
    loop {
        deepest = deepest.max(depth);
        if deepest > MAX_CODE_DEPTH {
            return Some(deepest);
        }
        if cursor.goto_first_child() {
            depth += 1;
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return Some(deepest);
            }
            depth -= 1;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Chunker {
    tokenizer: Arc<Tokenizer>,
    max_tokens: usize,
    overlap: usize,
    /// One chunk per document, left for the model to truncate: how
    /// sentence-transformers evaluations embed a corpus, so results compare.
    whole: bool,
}

impl Chunker {
    /// `budget` is the most tokens a chunk may have: the configured
    /// `max_tokens`, already capped by the caller to the model's limit minus
    /// special tokens and prompt.
    pub fn new(tokenizer_json: &Path, budget: usize, overlap: usize) -> Result<Self> {
        let err = |message: String| IngestError::Tokenizer {
            path: tokenizer_json.to_path_buf(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(tokenizer_json).map_err(|e| err(e.to_string()))?;
        // Sizes must be the full token count: no truncation, no padding.
        tokenizer
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        tokenizer.with_padding(None);
        if budget < 8 {
            return Err(IngestError::Chunk(format!(
                "chunk budget of {budget} tokens is too small"
            )));
        }
        let overlap = overlap.min(budget / 2);
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
            max_tokens: budget,
            overlap,
            whole: false,
        })
    }

    /// A chunker that keeps every document whole (`--chunking none`); the
    /// embedder truncates it at the model's limit.
    pub fn whole(tokenizer_json: &Path, model_limit: usize) -> Result<Self> {
        Ok(Self {
            whole: true,
            ..Self::new(tokenizer_json, model_limit.max(8), 0)?
        })
    }

    pub fn is_whole(&self) -> bool {
        self.whole
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn overlap(&self) -> usize {
        self.overlap
    }

    /// Tokens of `text` without special tokens.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.len())
            .unwrap_or(usize::MAX)
    }

    /// Splits a parsed document. Markdown (and HTML, which is parsed into
    /// Markdown-like text) splits at headings and paragraphs first; code
    /// along its syntax tree; everything else at paragraphs and sentences.
    pub fn chunk(&self, doc: &ParsedDocument) -> Result<Vec<Chunk>> {
        self.chunk_within(doc, &Budget::unlimited())
    }

    /// [`Self::chunk`], giving up with [`IngestError::OverBudget`] once
    /// `budget` runs out.
    pub fn chunk_within(&self, doc: &ParsedDocument, budget: &Budget) -> Result<Vec<Chunk>> {
        let sizer = BudgetSizer {
            tokenizer: self.tokenizer.as_ref(),
            budget,
        };
        let config = || {
            ChunkConfig::new(self.max_tokens)
                .with_sizer(sizer)
                .with_overlap(self.overlap)
                .map_err(|e| IngestError::Chunk(e.to_string()))
        };
        let over = |_| IngestError::OverBudget(budget.exceeded_reason());
        let text = doc.text.as_str();
        if self.whole {
            if text.trim().is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![Chunk {
                index: 0,
                text: text.to_string(),
                start: 0,
                end: text.chars().count(),
                headings: Vec::new(),
                page: doc.page_at(0),
                gap_before: String::new(),
            }]);
        }
        let pieces: Vec<ChunkCharIndex<'_>> = match doc.content_type.as_str() {
            "text/markdown" | "text/html" => MarkdownSplitter::new(config()?)
                .try_chunk_char_indices(text)
                .collect::<std::result::Result<_, _>>()
                .map_err(over)?,
            ct if ct.starts_with("text/x-") => {
                let lang: Option<tree_sitter_language::LanguageFn> = match &ct[7..] {
                    "rust" => Some(tree_sitter_rust::LANGUAGE),
                    "python" => Some(tree_sitter_python::LANGUAGE),
                    "javascript" => Some(tree_sitter_javascript::LANGUAGE),
                    "typescript" => Some(tree_sitter_typescript::LANGUAGE_TYPESCRIPT),
                    "tsx" => Some(tree_sitter_typescript::LANGUAGE_TSX),
                    "go" => Some(tree_sitter_go::LANGUAGE),
                    _ => None,
                };
                // The splitter's work grows with the number of distinct
                // depths in the syntax tree times its size: 3,000 nested
                // parentheses took minutes. Code nested that deep is not
                // written by people; it is split as text.
                let splitter = match lang {
                    Some(l) if syntax_depth(l, text).is_some_and(|d| d <= MAX_CODE_DEPTH) => {
                        CodeSplitter::new(l, config()?).ok()
                    }
                    _ => None,
                };
                match splitter {
                    Some(splitter) => splitter
                        .try_chunk_char_indices(text)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(over)?,
                    None => TextSplitter::new(config()?)
                        .try_chunk_char_indices(text)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(over)?,
                }
            }
            _ => TextSplitter::new(config()?)
                .try_chunk_char_indices(text)
                .collect::<std::result::Result<_, _>>()
                .map_err(over)?,
        };
        let mut prev_end_byte: Option<usize> = None;
        Ok(pieces
            .into_iter()
            .filter(|p| !p.chunk.trim().is_empty())
            .enumerate()
            .map(|(index, p)| {
                let start = p.char_offset;
                let gap_before = match prev_end_byte {
                    Some(end) if p.byte_offset > end => text[end..p.byte_offset].to_string(),
                    _ => String::new(),
                };
                prev_end_byte = Some(p.byte_offset + p.chunk.len());
                Chunk {
                    index,
                    text: p.chunk.to_string(),
                    start,
                    end: start + p.chunk.chars().count(),
                    headings: doc.heading_path(start),
                    page: doc.page_at(start),
                    gap_before,
                }
            })
            .collect())
    }
}
