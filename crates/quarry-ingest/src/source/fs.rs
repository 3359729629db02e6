//! `type = "fs"`: a directory tree.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use quarry_core::config::FsSourceConfig;
use quarry_core::document::sha256_hex;

use super::{DocumentRef, Listing, ListingIssue, RawDocument, Source, SourceError};
use crate::{IngestError, Result};

/// A directory tree.
#[derive(Debug)]
pub struct FsSource {
    name: String,
    root: PathBuf,
    filter: PathFilter,
    gitignore: bool,
    follow_symlinks: bool,
    max_file_bytes: u64,
    /// `root`, resolved: what followed links must stay inside.
    canonical_root: PathBuf,
    /// The file behind each listed id: ids are text, and a file name that
    /// is not UTF-8 cannot be rebuilt from its id.
    paths: std::sync::Mutex<HashMap<String, PathBuf>>,
}

/// `include` and `exclude` globs, as every kind with paths applies them.
#[derive(Debug, Default)]
pub(super) struct PathFilter {
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
}

impl PathFilter {
    pub(super) fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Self {
            include: globs(include)?,
            exclude: globs(exclude)?,
        })
    }

    /// Included (by default everything) and not excluded.
    pub(super) fn allows(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(path))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(path))
    }
}

fn globs(patterns: &[String]) -> Result<Option<globset::GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(false)
            .build()
            .map_err(|e| IngestError::Glob {
                pattern: p.clone(),
                message: e.to_string(),
            })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| IngestError::Glob {
        pattern: patterns.join(","),
        message: e.to_string(),
    })
}

impl FsSource {
    pub fn new(config: &FsSourceConfig, max_file_bytes: u64) -> Result<Self> {
        let root = config.path.clone();
        if !root.is_dir() {
            return Err(IngestError::Source {
                path: root,
                message: format!("source {:?}: not a directory", config.name),
            });
        }
        let canonical_root = std::fs::canonicalize(&root).map_err(|source| IngestError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self {
            name: config.name.clone(),
            canonical_root,
            paths: Default::default(),
            root,
            filter: PathFilter::new(&config.include, &config.exclude)?,
            gitignore: config.gitignore,
            follow_symlinks: config.follow_symlinks,
            max_file_bytes,
        })
    }

    /// The document id of a file: its path relative to the root. Bytes of
    /// a name that are not UTF-8 are written `%XX` (and `%` itself `%25`,
    /// in such names only), so two such names never share an id and names
    /// that are valid UTF-8 keep the id they always had.
    fn rel(&self, path: &Path) -> String {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        match rel.to_str() {
            Some(s) => s.replace('\\', "/"),
            None => escape_non_utf8(rel.as_os_str()),
        }
    }
}

impl Source for FsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn list(&self) -> Result<Listing, SourceError> {
        let mut docs = Vec::new();
        let mut issues = Vec::new();
        let mut walker = ignore::WalkBuilder::new(&self.root);
        walker
            .hidden(true)
            .git_ignore(self.gitignore)
            .git_exclude(self.gitignore)
            .git_global(false)
            .ignore(self.gitignore)
            .require_git(false)
            .follow_links(self.follow_symlinks)
            .sort_by_file_path(|a, b| a.cmp(b));
        // A followed link to a folder outside the root is not walked at all
        // (it could be `/`); links to files are reported one by one below.
        let root = self.canonical_root.clone();
        let walker = walker
            .filter_entry(move |e| {
                !(e.path_is_symlink()
                    && e.file_type().is_some_and(|t| t.is_dir())
                    && std::fs::canonicalize(e.path()).is_ok_and(|p| !p.starts_with(&root)))
            })
            .build();
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let uri = error_path(&e).unwrap_or(&self.root).display().to_string();
                    issues.push(ListingIssue::failed(uri, e.to_string()));
                    continue;
                }
            };
            let Some(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if !kind.is_file() {
                if !kind.is_dir() && !kind.is_symlink() {
                    // FIFOs, sockets, devices: reading one could block forever.
                    issues.push(ListingIssue::skipped(
                        format!("file://{}", path.display()),
                        "not a regular file (a FIFO, socket or device)",
                    ));
                }
                continue;
            }
            let rel = self.rel(path);
            if !self.filter.allows(&rel) {
                continue;
            }
            let canonical = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
            let uri = format!("file://{}", canonical.display());
            if self.follow_symlinks && !canonical.starts_with(&self.canonical_root) {
                issues.push(ListingIssue::skipped(
                    format!("file://{}", path.display()),
                    format!(
                        "a link to {}, outside the source root; links are followed only inside it",
                        canonical.display()
                    ),
                ));
                continue;
            }
            let bytes = match read_limited(path, &uri, self.max_file_bytes) {
                Ok(b) => b,
                Err(unread) => {
                    let (reason, skipped) = match unread {
                        Unread::OverLimit(reason) => (reason, true),
                        Unread::Failed(e) => (e.reason().to_string(), false),
                    };
                    issues.push(ListingIssue {
                        id: Some(rel),
                        uri,
                        reason,
                        skipped,
                    });
                    continue;
                }
            };
            let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
            if paths.get(&rel).is_some_and(|p| p != path) {
                issues.push(ListingIssue::failed(
                    uri,
                    format!("another file already has the document id {rel:?}; rename one"),
                ));
                continue;
            }
            paths.insert(rel.clone(), path.to_path_buf());
            drop(paths);
            docs.push(DocumentRef {
                id: rel.clone(),
                version: sha256_hex(&[&bytes]),
                uri,
                path: Some(rel),
                size: bytes.len() as u64,
            });
        }
        Ok(Listing { docs, issues })
    }

    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError> {
        let known = self
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&doc.id)
            .cloned();
        let path = known.unwrap_or_else(|| self.root.join(doc.path.as_deref().unwrap_or(&doc.id)));
        let bytes = read_limited(&path, &doc.uri, self.max_file_bytes).map_err(|u| match u {
            Unread::OverLimit(reason) => SourceError::permanent(&doc.uri, reason),
            Unread::Failed(e) => e,
        })?;
        Ok(RawDocument {
            boilerplate: Default::default(),
            bytes,
            content_type: None,
            title: None,
            metadata: Default::default(),
            version: None,
        })
    }
}

/// The entry a walk error is about: a loop names the link that closes it.
fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::Loop { child, .. } => Some(child),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

fn escape_non_utf8(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '%' => out.push_str("%25"),
                '\\' => out.push('/'),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a file was not read.
enum Unread {
    /// A deliberate skip: over `sync.max_file_bytes`.
    OverLimit(String),
    Failed(SourceError),
}

/// Reads a whole file, refusing ones over the limit without reading them.
fn read_limited(path: &Path, uri: &str, limit: u64) -> Result<Vec<u8>, Unread> {
    let io = |e: std::io::Error| Unread::Failed(SourceError::io(uri, &e));
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > limit {
        return Err(Unread::OverLimit(format!(
            "file is {len} bytes, over the limit of {limit} (sync.max_file_bytes)"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        // Still being written: the next sync sees its final size.
        return Err(Unread::Failed(SourceError::transient(
            uri,
            format!("file grew past the limit of {limit} bytes while being read"),
        )));
    }
    Ok(bytes)
}
