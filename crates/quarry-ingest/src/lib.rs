//! From sources to chunks: everything before embedding.
//!
//! A [`Source`] lists documents with a stable id and a version (a content
//! hash), and reads one on demand; sync planning compares that listing with
//! what the index holds, so unchanged documents are never read twice, parsed
//! or embedded. [`parse`] turns bytes into plain text with the structure that
//! citations need (headings, pages), and [`Chunker`] splits that text in the
//! embedding model's own tokens, so no chunk is ever cut short by the model.
//!
//! [`prepare`] is one document's whole trip through this crate, on a
//! thread of its own so that a hostile file fails alone.
//!
//! This crate knows nothing of Candle or Qdrant: it only needs the model's
//! `tokenizer.json`, which is what makes chunk sizes exact.

pub mod chunk;
pub mod parse;
pub mod plan;
pub mod prepare;
pub mod source;

pub use chunk::Chunker;
pub use parse::{Budget, ParseOptions, Parsed, parse, parse_with};
pub use plan::{Plan, Rename, StoredDoc};
pub use prepare::{PrepareOptions, Prepared, PreparedDoc, prepare};
pub use source::{
    BeirSource, DocumentRef, FolderWatch, FsSource, GitSource, Listing, ListingIssue, MemorySource,
    RawDocument, Source, SourceError, WebSource, open_source, open_source_in, watch_folder,
};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Source { path: PathBuf, message: String },
    #[error("invalid glob {pattern:?}: {message}")]
    Glob { pattern: String, message: String },
    #[error("{}: cannot load tokenizer: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },
    #[error("chunking: {0}")]
    Chunk(String),
    #[error("{0}")]
    OverBudget(String),
    #[error(transparent)]
    Listing(#[from] SourceError),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
