//! One document from its source to its chunks: read, parse, merge the
//! source's title, metadata and tags, chunk. This is the parser stage of a
//! sync, and the part of it that handles untrusted bytes, so it is where a
//! bad file is contained: a panic in a third-party parser, a stack overflow
//! in a nested format or a file over its time budget fails that document
//! only.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use quarry_core::document::sha256_hex;
use quarry_core::{Chunk, ParsedDocument};

use crate::Chunker;
use crate::parse::{Budget, ParseOptions, Parsed};
use crate::source::{DocumentRef, RawDocument, Source};

/// Each file is parsed on a thread of its own with a large stack: parsers
/// of nested formats recurse, and a stack overflow aborts the process where
/// a panic would only fail the file.
const PARSE_STACK_BYTES: usize = 256 << 20;

/// What one file may cost, and what the source adds to every document.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// `sync.max_parse_secs`: one file's parse and chunking budget.
    pub max_parse_secs: f64,
    /// `sync.skip_generated`: leave minified and generated files out.
    pub skip_generated: bool,
    /// The source's configured tags.
    pub tags: Vec<String>,
}

/// A document ready to embed.
#[derive(Debug)]
pub struct PreparedDoc {
    pub parsed: ParsedDocument,
    pub chunks: Vec<Chunk>,
    /// The version of what was actually read: the file may have changed
    /// since it was listed.
    pub content_version: String,
}

#[derive(Debug)]
pub enum Prepared {
    Doc(Box<PreparedDoc>),
    /// Deliberately left out (generated, empty, an unknown binary format).
    Skipped(String),
    /// Could not be read, parsed or chunked.
    Failed(String),
}

/// Reads, parses and chunks `doc`. Never panics.
pub fn prepare(
    source: &dyn Source,
    doc: &DocumentRef,
    chunker: &Chunker,
    options: &PrepareOptions,
) -> Prepared {
    let mut raw = match source.read(doc) {
        Ok(r) => r,
        Err(e) => return Prepared::Failed(e.reason().to_string()),
    };
    let content_version = raw
        .version
        .clone()
        .unwrap_or_else(|| sha256_hex(&[&raw.bytes]));
    let name = doc.path.as_deref().unwrap_or(&doc.id).to_string();
    let parse = ParseOptions {
        skip_generated: options.skip_generated,
        budget: Budget::secs(options.max_parse_secs),
        boilerplate: std::mem::take(&mut raw.boilerplate),
    };
    let over_budget = parse.budget.exceeded_reason();
    let chunker = chunker.clone();
    let tags = options.tags.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("quarry-parse-file".into())
        .stack_size(PARSE_STACK_BYTES)
        .spawn(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                parse_and_chunk(&name, raw, &chunker, &parse, &tags)
            }));
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return Prepared::Failed(format!("cannot start a parser thread: {e}"));
    }
    // The parsers and the chunker stop themselves at the budget; this is
    // the backstop for library code that cannot be interrupted. A thread
    // still running then is left to finish on its own.
    let backstop = Duration::from_secs_f64(options.max_parse_secs * 1.5 + 1.0);
    match rx.recv_timeout(backstop) {
        Ok(Ok(Ok(mut prepared))) => {
            prepared.content_version = content_version;
            Prepared::Doc(Box::new(prepared))
        }
        Ok(Ok(Err(other))) => other,
        Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
            Prepared::Failed("the parser crashed on this file".into())
        }
        Err(RecvTimeoutError::Timeout) => Prepared::Failed(over_budget),
    }
}

/// On the file's own thread. `Err` carries a skip or failure.
fn parse_and_chunk(
    name: &str,
    raw: RawDocument,
    chunker: &Chunker,
    options: &ParseOptions,
    tags: &[String],
) -> Result<PreparedDoc, Prepared> {
    let mut parsed = match crate::parse_with(name, &raw.bytes, raw.content_type.as_deref(), options)
    {
        Parsed::Document(parsed) => parsed,
        Parsed::Skipped(r) => return Err(Prepared::Skipped(r)),
        Parsed::Failed(r) => return Err(Prepared::Failed(r)),
    };
    if raw.title.is_some() {
        parsed.title = raw.title.clone();
    }
    for (k, v) in &raw.metadata {
        if k == "tags"
            && let Some(list) = v.as_array()
        {
            parsed
                .tags
                .extend(list.iter().filter_map(|t| t.as_str().map(str::to_string)));
        }
        parsed.metadata.insert(k.clone(), v.clone());
    }
    for t in tags {
        if !parsed.tags.contains(t) {
            parsed.tags.push(t.clone());
        }
    }
    let chunks = chunker
        .chunk_within(&parsed, &options.budget)
        .map_err(|e| Prepared::Failed(e.to_string()))?;
    Ok(PreparedDoc {
        parsed,
        chunks,
        content_version: String::new(),
    })
}
