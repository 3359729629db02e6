//! Document sources, one module per kind.
//!
//! A source lists documents cheaply and reads one on demand. Every kind fits
//! the same trait: an id stable across syncs, a version that changes
//! whenever the content does, and a read. A new kind is a module here, a
//! variant of [`SourceConfig`] and an arm of [`open_source`].
//!
//! Failures are a [`SourceError`] that says whether trying again later may
//! help: a sync keeps a document's indexed version when its read fails for
//! any reason, and a failed listing fails the sync before anything is
//! deleted, but only a transient failure is worth retrying.

mod beir;
mod fs;
mod git;
mod memory;
mod s3;
mod watch;
mod web;

pub use beir::BeirSource;
pub use fs::FsSource;
pub use git::GitSource;
pub use memory::MemorySource;
pub use s3::S3Source;
pub use watch::{FolderWatch, watch_folder};
pub use web::WebSource;

use quarry_core::config::SourceConfig;

use crate::Result;

/// One listed document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRef {
    /// Stable across syncs: the relative path (fs) or `_id` (beir).
    pub id: String,
    /// Changes whenever the content does: a sha256 of the bytes.
    pub version: String,
    pub uri: String,
    /// Relative path within the source, where there is one.
    pub path: Option<String>,
    pub size: u64,
}

/// What reading a document gives.
#[derive(Debug, Clone)]
pub struct RawDocument {
    pub bytes: Vec<u8>,
    /// Set when the source already knows the kind (BEIR records are text).
    pub content_type: Option<String>,
    pub title: Option<String>,
    /// Fields merged over the document's own front matter.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The version, when it covers more than the bytes (title, metadata);
    /// otherwise the reader hashes the bytes it read.
    pub version: Option<String>,
    /// Lines to leave out of an HTML page, by `parse::line_key`: text its
    /// site repeats on most pages (web sources only).
    pub boilerplate: std::collections::HashSet<u64>,
}

/// A listing problem that does not stop the sync: an unreadable file, a
/// symlink loop, a file over the size limit.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingIssue {
    /// The document id, when the entry is a document that exists but could
    /// not be read: its indexed version is kept rather than deleted.
    pub id: Option<String>,
    pub uri: String,
    pub reason: String,
    /// A deliberate skip (over the size limit) rather than a failure.
    pub skipped: bool,
}

impl ListingIssue {
    /// An entry that could not be listed, and is no document.
    pub fn failed(uri: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            id: None,
            uri: uri.into(),
            reason: reason.into(),
            skipped: false,
        }
    }

    /// An entry left out on purpose (a FIFO, a link out of the root).
    pub fn skipped(uri: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            skipped: true,
            ..Self::failed(uri, reason)
        }
    }
}

/// What listing a source gives: its documents, and the entries that could
/// not be listed, which do not stop the sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub docs: Vec<DocumentRef>,
    pub issues: Vec<ListingIssue>,
}

/// Why a source could not list or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// May succeed later: a timeout, a lost connection, a server error, a
    /// file locked or briefly missing while it is rewritten.
    #[error("{uri}: {message} (temporary; the next sync retries)")]
    Transient { uri: String, message: String },
    /// Will fail the same way until something changes: permission denied,
    /// over the size limit, not found, malformed.
    #[error("{uri}: {message}")]
    Permanent { uri: String, message: String },
}

impl SourceError {
    pub fn transient(uri: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Transient {
            uri: uri.into(),
            message: message.into(),
        }
    }

    pub fn permanent(uri: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent {
            uri: uri.into(),
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// The reason alone, for a report row that already names the document.
    pub fn reason(&self) -> &str {
        match self {
            Self::Transient { message, .. } | Self::Permanent { message, .. } => message,
        }
    }

    /// An I/O failure on `uri`: interruptions and timeouts are transient.
    pub fn io(uri: impl Into<String>, e: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let message = match e.kind() {
            PermissionDenied => "permission denied".to_string(),
            NotFound => "file vanished before it could be read".to_string(),
            _ => e.to_string(),
        };
        match e.kind() {
            Interrupted | TimedOut | WouldBlock | ResourceBusy | ConnectionReset
            | ConnectionAborted => Self::transient(uri, message),
            _ => Self::permanent(uri, message),
        }
    }
}

pub trait Source: Send + Sync {
    fn name(&self) -> &str;
    /// Lists every document, plus entries that could not be listed.
    fn list(&self) -> Result<Listing, SourceError>;
    /// Reads one listed document. The content may have changed since the
    /// listing; the caller re-hashes what it reads.
    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError>;
}

/// Builds the source a `[[sources]]` entry describes. Kinds that keep
/// state between syncs (a git mirror) need [`open_source_in`].
pub fn open_source(config: &SourceConfig, max_file_bytes: u64) -> Result<Box<dyn Source>> {
    open_source_in(config, max_file_bytes, None)
}

/// A lock that a panicked holder poisoned still guards plain data.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state directory a kind that keeps state needs.
fn needs<'a>(state_dir: Option<&'a std::path::Path>, name: &str) -> Result<&'a std::path::Path> {
    state_dir.ok_or_else(|| crate::IngestError::Source {
        path: name.into(),
        message: "this source keeps state between syncs (a git mirror, a crawl's ETags) in the \
                  data directory; sync it with `quarry sync` or `quarry serve`"
            .into(),
    })
}

/// [`open_source`], with `state_dir` (under the data directory) for what a
/// source keeps between syncs.
pub fn open_source_in(
    config: &SourceConfig,
    max_file_bytes: u64,
    state_dir: Option<&std::path::Path>,
) -> Result<Box<dyn Source>> {
    Ok(match config {
        SourceConfig::Fs(c) => Box::new(FsSource::new(c, max_file_bytes)?),
        SourceConfig::Beir(c) => Box::new(BeirSource::open(&c.name, &c.path)?),
        SourceConfig::Git(c) => Box::new(GitSource::new(
            c,
            max_file_bytes,
            needs(state_dir, c.name.as_str())?,
        )?),
        SourceConfig::Web(c) => Box::new(WebSource::new(
            c,
            max_file_bytes,
            needs(state_dir, c.name.as_str())?,
        )?),
        SourceConfig::S3(c) => Box::new(S3Source::new(c, max_file_bytes)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_failures_say_whether_a_retry_can_help() {
        let io = |kind| SourceError::io("file:///a", &std::io::Error::from(kind));
        assert!(io(std::io::ErrorKind::TimedOut).is_transient());
        assert!(io(std::io::ErrorKind::Interrupted).is_transient());
        let denied = io(std::io::ErrorKind::PermissionDenied);
        assert!(!denied.is_transient());
        assert_eq!(denied.reason(), "permission denied");
        assert!(denied.to_string().starts_with("file:///a: "));
        let gone = io(std::io::ErrorKind::NotFound);
        assert_eq!(gone.reason(), "file vanished before it could be read");
        assert!(!gone.is_transient());
    }
}
