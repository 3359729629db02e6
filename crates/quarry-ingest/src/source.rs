//! Document sources.
//!
//! A source lists documents cheaply and reads one on demand. Git, web and
//! object-store sources fit the same trait: an id stable across syncs, a
//! version that changes whenever the content does, and a read.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use quarry_core::config::{SourceConfig, SourceKind};
use quarry_core::document::sha256_hex;

use crate::{IngestError, Result};

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

pub trait Source: Send + Sync {
    fn name(&self) -> &str;
    /// Lists every document, plus entries that could not be listed.
    fn list(&self) -> Result<(Vec<DocumentRef>, Vec<ListingIssue>)>;
    /// Reads one listed document. The content may have changed since the
    /// listing; the caller re-hashes what it reads.
    fn read(&self, doc: &DocumentRef) -> std::result::Result<RawDocument, String>;
}

/// Builds the source a `[[sources]]` entry describes.
pub fn open_source(config: &SourceConfig, max_file_bytes: u64) -> Result<Box<dyn Source>> {
    Ok(match config.kind {
        SourceKind::Fs => Box::new(FsSource::new(config, max_file_bytes)?),
        SourceKind::Beir => Box::new(BeirSource::open(&config.name, &config.path)?),
    })
}

/// A directory tree.
#[derive(Debug)]
pub struct FsSource {
    name: String,
    root: PathBuf,
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
    gitignore: bool,
    follow_symlinks: bool,
    max_file_bytes: u64,
    /// `root`, resolved: what followed links must stay inside.
    canonical_root: PathBuf,
    /// The file behind each listed id: ids are text, and a file name that
    /// is not UTF-8 cannot be rebuilt from its id.
    paths: std::sync::Mutex<HashMap<String, PathBuf>>,
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
    pub fn new(config: &SourceConfig, max_file_bytes: u64) -> Result<Self> {
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
            include: globs(&config.include)?,
            exclude: globs(&config.exclude)?,
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

    fn list(&self) -> Result<(Vec<DocumentRef>, Vec<ListingIssue>)> {
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
                    issues.push(ListingIssue {
                        id: None,
                        uri,
                        reason: e.to_string(),
                        skipped: false,
                    });
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
                    issues.push(ListingIssue {
                        id: None,
                        uri: format!("file://{}", path.display()),
                        reason: "not a regular file (a FIFO, socket or device)".into(),
                        skipped: true,
                    });
                }
                continue;
            }
            let rel = self.rel(path);
            if self.include.as_ref().is_some_and(|g| !g.is_match(&rel))
                || self.exclude.as_ref().is_some_and(|g| g.is_match(&rel))
            {
                continue;
            }
            let canonical = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
            let uri = format!("file://{}", canonical.display());
            if self.follow_symlinks && !canonical.starts_with(&self.canonical_root) {
                issues.push(ListingIssue {
                    id: None,
                    uri: format!("file://{}", path.display()),
                    reason: format!(
                        "a link to {}, outside the source root; links are followed only inside it",
                        canonical.display()
                    ),
                    skipped: true,
                });
                continue;
            }
            let bytes = match read_limited(path, self.max_file_bytes) {
                Ok(b) => b,
                Err(reason) => {
                    let skipped = reason.contains("over the limit");
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
                issues.push(ListingIssue {
                    id: None,
                    uri,
                    reason: format!("another file already has the document id {rel:?}; rename one"),
                    skipped: false,
                });
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
        Ok((docs, issues))
    }

    fn read(&self, doc: &DocumentRef) -> std::result::Result<RawDocument, String> {
        let known = self
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&doc.id)
            .cloned();
        let path = known.unwrap_or_else(|| self.root.join(doc.path.as_deref().unwrap_or(&doc.id)));
        let bytes = read_limited(&path, self.max_file_bytes)?;
        Ok(RawDocument {
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

/// Reads a whole file, refusing ones over the limit without reading them.
fn read_limited(path: &Path, limit: u64) -> std::result::Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| describe_io(&e))?;
    let len = file.metadata().map_err(|e| describe_io(&e))?.len();
    if len > limit {
        return Err(format!(
            "file is {len} bytes, over the limit of {limit} (sync.max_file_bytes)"
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| describe_io(&e))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "file grew past the limit of {limit} bytes while being read"
        ));
    }
    Ok(bytes)
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotFound => "file vanished before it could be read".into(),
        _ => e.to_string(),
    }
}

/// A BEIR `corpus.jsonl`: one JSON object per line with `_id`, `title`,
/// `text`. Loaded whole at open, since listing needs every record anyway.
#[derive(Debug)]
pub struct BeirSource {
    name: String,
    path: PathBuf,
    docs: Vec<DocumentRef>,
    records: HashMap<String, (String, String)>,
    issues: Vec<ListingIssue>,
}

impl BeirSource {
    /// `path` is a `corpus.jsonl` or a dataset directory containing one.
    pub fn open(name: &str, path: &Path) -> Result<Self> {
        let path = if path.is_dir() {
            path.join("corpus.jsonl")
        } else {
            path.to_path_buf()
        };
        let file = std::fs::File::open(&path).map_err(|source| IngestError::Io {
            path: path.clone(),
            source,
        })?;
        let mut docs = Vec::new();
        let mut records = HashMap::new();
        let mut issues = Vec::new();
        for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let n = i + 1;
            let line = line.map_err(|source| IngestError::Io {
                path: path.clone(),
                source,
            })?;
            let uri = format!("{}#L{n}", path.display());
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: serde_json::Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(e) => {
                    issues.push(ListingIssue {
                        id: None,
                        uri,
                        reason: format!("line {n}: invalid JSON ({e})"),
                        skipped: false,
                    });
                    continue;
                }
            };
            let id = match v.get("_id") {
                Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => {
                    issues.push(ListingIssue {
                        id: None,
                        uri,
                        reason: format!("line {n}: no \"_id\""),
                        skipped: false,
                    });
                    continue;
                }
            };
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let (title, text) = (field("title"), field("text"));
            if records.contains_key(&id) {
                issues.push(ListingIssue {
                    id: None,
                    uri,
                    reason: format!("line {n}: duplicate _id {id:?}; the first one is kept"),
                    skipped: false,
                });
                continue;
            }
            docs.push(DocumentRef {
                id: id.clone(),
                version: sha256_hex(&[beir_body(&title, &text).as_bytes()]),
                uri: format!("beir://{name}/{id}"),
                path: None,
                size: (title.len() + text.len()) as u64,
            });
            records.insert(id, (title, text));
        }
        Ok(Self {
            name: name.to_string(),
            path,
            docs,
            records,
            issues,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Source for BeirSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn list(&self) -> Result<(Vec<DocumentRef>, Vec<ListingIssue>)> {
        Ok((self.docs.clone(), self.issues.clone()))
    }

    fn read(&self, doc: &DocumentRef) -> std::result::Result<RawDocument, String> {
        let (title, text) = self
            .records
            .get(&doc.id)
            .ok_or_else(|| format!("no record {:?}", doc.id))?;
        let body = beir_body(title, text);
        Ok(RawDocument {
            bytes: body.into_bytes(),
            content_type: Some("text/plain".into()),
            title: (!title.is_empty()).then(|| title.clone()),
            metadata: Default::default(),
            version: None,
        })
    }
}

/// Title and text are embedded together, as BEIR evaluations do.
fn beir_body(title: &str, text: &str) -> String {
    if title.is_empty() {
        text.to_string()
    } else {
        format!("{title} {text}")
    }
}

/// Documents handed over directly (the HTTP API's `PUT`), so they go through
/// exactly the parse, chunk and embed path a sync uses.
#[derive(Debug)]
pub struct MemorySource {
    name: String,
    docs: Vec<(DocumentRef, RawDocument)>,
}

impl MemorySource {
    /// One document; its version covers the text, content type, title, URI
    /// and metadata, so changing any of them re-indexes it. `updated_at` is
    /// stored in the metadata but is not part of the version, so re-sending
    /// the same document changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn single(
        name: &str,
        id: &str,
        text: String,
        content_type: &str,
        title: Option<String>,
        uri: Option<String>,
        metadata: serde_json::Map<String, serde_json::Value>,
        updated_at_unix: Option<u64>,
    ) -> Self {
        let meta = serde_json::Value::Object(metadata.clone()).to_string();
        let uri = uri.unwrap_or_else(|| format!("quarry://{name}/{id}"));
        let version = sha256_hex(&[
            text.as_bytes(),
            content_type.as_bytes(),
            title.as_deref().unwrap_or("").as_bytes(),
            uri.as_bytes(),
            meta.as_bytes(),
        ]);
        let doc = DocumentRef {
            id: id.to_string(),
            version: version.clone(),
            uri,
            path: None,
            size: text.len() as u64,
        };
        let mut metadata = metadata;
        if let Some(t) = updated_at_unix {
            metadata.insert("updated_at_unix".into(), serde_json::json!(t));
        }
        let raw = RawDocument {
            bytes: text.into_bytes(),
            content_type: Some(content_type.to_string()),
            title,
            metadata,
            version: Some(version),
        };
        Self {
            name: name.to_string(),
            docs: vec![(doc, raw)],
        }
    }
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn list(&self) -> Result<(Vec<DocumentRef>, Vec<ListingIssue>)> {
        Ok((
            self.docs.iter().map(|(d, _)| d.clone()).collect(),
            Vec::new(),
        ))
    }

    fn read(&self, doc: &DocumentRef) -> std::result::Result<RawDocument, String> {
        self.docs
            .iter()
            .find(|(d, _)| d.id == doc.id)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| format!("no document {:?}", doc.id))
    }
}
