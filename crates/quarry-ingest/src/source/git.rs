//! `type = "git"`: a repository read at the head of one branch.
//!
//! A bare mirror under the data directory (`sources/NAME.git`) is fetched
//! into, never cloned again. Listing is one fetch and a walk of the head
//! commit's tree, with each file's blob id as its version: an unchanged
//! repository costs one fetch, and an unchanged file is never read. A file
//! is read from the mirror's object database, at the commit it was listed
//! at, so a push during a sync cannot mix two commits into one run. A failed
//! fetch fails the listing, and a failed listing deletes nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use gix::ObjectId;
use quarry_core::config::GitSourceConfig;

use super::fs::PathFilter;
use super::{DocumentRef, Listing, ListingIssue, RawDocument, Source, SourceError};
use crate::{IngestError, Result};

/// Where the mirror keeps what it fetched.
const TRACKING: &str = "refs/remotes/origin/";

#[derive(Debug)]
pub struct GitSource {
    config: GitSourceConfig,
    filter: PathFilter,
    max_file_bytes: u64,
    mirror: PathBuf,
    /// What the last listing saw, shared by the reads that follow it.
    listed: Mutex<Option<Arc<Snapshot>>>,
}

/// The listed commit and each path's blob.
#[derive(Debug)]
struct Snapshot {
    commit: ObjectId,
    blobs: HashMap<String, ObjectId>,
}

impl GitSource {
    /// `state_dir` holds the mirror; nothing is fetched until the listing.
    pub fn new(config: &GitSourceConfig, max_file_bytes: u64, state_dir: &Path) -> Result<Self> {
        if config.url.trim().is_empty() {
            return Err(IngestError::Source {
                path: state_dir.to_path_buf(),
                message: format!("source {:?}: url is empty", config.name),
            });
        }
        Ok(Self {
            filter: PathFilter::new(&config.include, &config.exclude)?,
            max_file_bytes,
            mirror: state_dir.join(format!("{}.git", config.name)),
            config: config.clone(),
            listed: Mutex::new(None),
        })
    }

    fn transient(&self, what: &str, e: impl std::fmt::Display) -> SourceError {
        SourceError::transient(&self.config.url, format!("{what}: {e}"))
    }

    /// The mirror, created (atomically, by a rename) on first use.
    fn open_mirror(&self) -> Result<gix::Repository, SourceError> {
        if self.mirror.join("HEAD").is_file() {
            return gix::open(&self.mirror).map_err(|e| self.transient("opening the mirror", e));
        }
        let parent = self.mirror.parent().unwrap_or(Path::new("."));
        let io = |e: std::io::Error| SourceError::io(self.mirror.display().to_string(), &e);
        std::fs::create_dir_all(parent).map_err(io)?;
        // A creation a crash interrupted leaves its temporary folder.
        let suffix = format!("-{}", self.config.name);
        for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let ours = n
                .strip_prefix(".creating-")
                .and_then(|rest| rest.split_once('-'))
                .is_some_and(|(pid, source)| {
                    pid.bytes().all(|b| b.is_ascii_digit()) && source == self.config.name
                });
            if ours {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let tmp = parent.join(format!(".creating-{}{suffix}", std::process::id()));
        gix::init_bare(&tmp).map_err(|e| self.transient("creating the mirror", e))?;
        std::fs::rename(&tmp, &self.mirror).map_err(io)?;
        gix::open(&self.mirror).map_err(|e| self.transient("opening the mirror", e))
    }

    /// Fetches every branch; returns the commit the configured branch (or
    /// the remote's default branch) points to.
    fn fetch(&self, repo: &gix::Repository) -> Result<ObjectId, SourceError> {
        let interrupt = AtomicBool::new(false);
        let remote = repo
            .remote_at(self.config.url.as_str())
            .and_then(|r| {
                // HEAD too: which branch is the default is learnt from it.
                r.with_refspecs(
                    [
                        format!("+refs/heads/*:{TRACKING}*"),
                        format!("+HEAD:{TRACKING}HEAD"),
                    ]
                    .iter()
                    .map(String::as_str),
                    gix::remote::Direction::Fetch,
                )
            })
            .map_err(|e| SourceError::permanent(&self.config.url, format!("not a git URL: {e}")))?;
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| self.transient("connecting", e))?;
        let prepare = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| self.transient("listing the remote's branches", e))?;
        let wanted = self.wanted_ref(&prepare.ref_map().remote_refs)?;
        prepare
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| self.transient("fetching", e))?;
        Ok(wanted)
    }

    /// The commit of the configured branch, or of what the remote's `HEAD`
    /// points to.
    fn wanted_ref(&self, refs: &[gix::protocol::handshake::Ref]) -> Result<ObjectId, SourceError> {
        use gix::protocol::handshake::Ref;
        let branch = self.config.branch.as_deref();
        for r in refs {
            match (r, branch) {
                (
                    Ref::Direct {
                        full_ref_name,
                        object,
                    },
                    Some(b),
                )
                | (
                    Ref::Peeled {
                        full_ref_name,
                        object,
                        ..
                    },
                    Some(b),
                ) if full_ref_name == format!("refs/heads/{b}").as_str() => {
                    return Ok(*object);
                }
                (
                    Ref::Symbolic {
                        full_ref_name,
                        object,
                        ..
                    },
                    None,
                ) if full_ref_name == "HEAD" => {
                    return Ok(*object);
                }
                _ => {}
            }
        }
        Err(SourceError::permanent(
            &self.config.url,
            match branch {
                Some(b) => format!("the remote has no branch {b:?}; check `branch`"),
                None => {
                    "the remote has no default branch (an empty repository?); set `branch`".into()
                }
            },
        ))
    }

    fn uri(&self, commit: &ObjectId, path: &str) -> String {
        match &self.config.web_url {
            Some(t) => t
                .replace("{sha}", &commit.to_string())
                .replace("{path}", path),
            None => format!("{}#{path}@{commit}", self.config.url),
        }
    }
}

impl Source for GitSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn list(&self) -> Result<Listing, SourceError> {
        let repo = self.open_mirror()?;
        let commit = self.fetch(&repo)?;
        let tree = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.transient(&format!("reading commit {commit}"), e))?;
        let mut recorder = gix::traverse::tree::Recorder::default();
        tree.traverse()
            .breadthfirst(&mut recorder)
            .map_err(|e| self.transient(&format!("walking the tree of {commit}"), e))?;
        let mut docs = Vec::new();
        let mut issues = Vec::new();
        let mut blobs = HashMap::new();
        for entry in recorder.records {
            if !entry.mode.is_blob() {
                // Trees are walked; links and submodules are not documents.
                if entry.mode.is_link() || entry.mode.is_commit() {
                    let path = entry.filepath.to_string();
                    issues.push(ListingIssue::skipped(
                        self.uri(&commit, &path),
                        "a symbolic link or submodule, not a file",
                    ));
                }
                continue;
            }
            let path = entry.filepath.to_string();
            if !self.filter.allows(&path) {
                continue;
            }
            let size = repo
                .find_header(entry.oid)
                .map(|h| h.size())
                .map_err(|e| self.transient(&format!("reading {path}"), e))?;
            if size > self.max_file_bytes {
                issues.push(ListingIssue {
                    id: Some(path.clone()),
                    uri: self.uri(&commit, &path),
                    reason: format!(
                        "file is {size} bytes, over the limit of {} (sync.max_file_bytes)",
                        self.max_file_bytes
                    ),
                    skipped: true,
                });
                continue;
            }
            docs.push(DocumentRef {
                id: path.clone(),
                version: entry.oid.to_string(),
                uri: self.uri(&commit, &path),
                path: Some(path.clone()),
                size,
            });
            blobs.insert(path, entry.oid);
        }
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        *super::locked(&self.listed) = Some(Arc::new(Snapshot { commit, blobs }));
        Ok(Listing { docs, issues })
    }

    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError> {
        let snapshot = super::locked(&self.listed)
            .clone()
            .ok_or_else(|| SourceError::permanent(&doc.uri, "read before the source was listed"))?;
        let oid = snapshot
            .blobs
            .get(&doc.id)
            .ok_or_else(|| SourceError::permanent(&doc.uri, "not in the listed commit"))?;
        // A repository handle is not Send without gix's `parallel`
        // feature, so each read opens the mirror (a few small files).
        let repo = gix::open(&self.mirror).map_err(|e| self.transient("opening the mirror", e))?;
        let blob = repo
            .find_blob(*oid)
            .map_err(|e| SourceError::permanent(&doc.uri, format!("reading blob {oid}: {e}")))?;
        let mut metadata = serde_json::Map::new();
        metadata.insert("git_commit".into(), snapshot.commit.to_string().into());
        Ok(RawDocument {
            boilerplate: Default::default(),
            bytes: blob.detach().data,
            content_type: None,
            title: None,
            metadata,
            // The blob id is the content's version, as listed.
            version: Some(oid.to_string()),
        })
    }
}
