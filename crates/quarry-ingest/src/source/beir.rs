//! `type = "beir"`: a BEIR `corpus.jsonl`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use quarry_core::document::sha256_hex;

use super::{DocumentRef, Listing, ListingIssue, RawDocument, Source, SourceError};
use crate::{IngestError, Result};

/// One corpus line's text.
#[derive(Debug)]
struct Record {
    title: String,
    text: String,
}

/// A BEIR `corpus.jsonl`: one JSON object per line with `_id`, `title`,
/// `text`. Loaded whole at open, since listing needs every record anyway.
#[derive(Debug)]
pub struct BeirSource {
    name: String,
    path: PathBuf,
    docs: Vec<DocumentRef>,
    records: HashMap<String, Record>,
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
                    issues.push(ListingIssue::failed(
                        uri,
                        format!("line {n}: invalid JSON ({e})"),
                    ));
                    continue;
                }
            };
            let id = match v.get("_id") {
                Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => {
                    issues.push(ListingIssue::failed(uri, format!("line {n}: no \"_id\"")));
                    continue;
                }
            };
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let (title, text) = (field("title"), field("text"));
            if records.contains_key(&id) {
                issues.push(ListingIssue::failed(
                    uri,
                    format!("line {n}: duplicate _id {id:?}; the first one is kept"),
                ));
                continue;
            }
            docs.push(DocumentRef {
                id: id.clone(),
                version: sha256_hex(&[beir_body(&title, &text).as_bytes()]),
                uri: format!("beir://{name}/{id}"),
                path: None,
                size: (title.len() + text.len()) as u64,
            });
            records.insert(id, Record { title, text });
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

    fn list(&self) -> Result<Listing, SourceError> {
        Ok(Listing {
            docs: self.docs.clone(),
            issues: self.issues.clone(),
        })
    }

    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError> {
        let Record { title, text } = self
            .records
            .get(&doc.id)
            .ok_or_else(|| SourceError::permanent(&doc.uri, format!("no record {:?}", doc.id)))?;
        let body = beir_body(title, text);
        Ok(RawDocument {
            boilerplate: Default::default(),
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
