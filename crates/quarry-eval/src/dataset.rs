//! BEIR-format datasets, checked line by line.
//!
//! A dataset directory holds `queries.jsonl` and `qrels/<split>.tsv`, plus
//! its corpus: a BEIR `corpus.jsonl` next to them, or any folder of
//! documents named by a `dataset.toml` (`corpus = "../../corpus"`), in which
//! case qrels name documents by their path relative to that folder.
//!
//! Nothing is dropped silently. Lines that cannot mean anything (bad JSON, a
//! grade that is not an integer, a repeated id) stop the run with their file
//! and line. Lines that are well-formed but suspicious are kept and listed as
//! issues in every report: a qrel naming an unknown document still counts as
//! a relevant document nobody can retrieve, exactly as `trec_eval` counts
//! it, so the figures stay comparable with other tools; a query without
//! relevant documents cannot be scored and is left out, with its line.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_core::config::SourceConfig;
use quarry_ingest::Source;
use serde::{Deserialize, Serialize};

use crate::metrics::Judgments;
use crate::{EvalError, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Query {
    pub id: String,
    pub text: String,
}

/// A problem that does not stop the evaluation but is always reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(n) => write!(f, "{}:{n}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetToml {
    corpus: Option<PathBuf>,
    split: Option<String>,
}

pub struct Dataset {
    pub name: String,
    pub dir: PathBuf,
    pub split: String,
    pub qrels_path: PathBuf,
    /// The corpus as a sync source.
    pub source_config: SourceConfig,
    /// The corpus file or directory.
    pub corpus_path: PathBuf,
    pub source: Arc<dyn Source>,
    pub corpus_size: usize,
    /// Changes whenever any corpus document does.
    pub corpus_hash: String,
    /// Queries that can be scored (at least one relevant document), in file
    /// order.
    pub queries: Vec<Query>,
    /// Document-level judgments per query.
    pub qrels: HashMap<String, Judgments>,
    /// Judgments naming chunks (`DOC_ID#CHUNK_INDEX`), when the qrels have
    /// any: chunk-level metrics are reported for these.
    pub chunk_qrels: HashMap<String, Judgments>,
    pub issues: Vec<Issue>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("name", &self.name)
            .field("split", &self.split)
            .field("queries", &self.queries.len())
            .finish()
    }
}

fn bad(path: &Path, line: usize, message: impl Into<String>) -> EvalError {
    EvalError::Dataset {
        path: path.to_path_buf(),
        line: Some(line),
        message: message.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Dataset {
    /// Loads and checks the dataset in `dir`. `split` defaults to the one
    /// `dataset.toml` names, then `test`, then the only qrels file there is.
    pub fn load(dir: &Path, split: Option<&str>, max_file_bytes: u64) -> Result<Self> {
        if !dir.is_dir() {
            return Err(EvalError::Dataset {
                path: dir.to_path_buf(),
                line: None,
                message: "not a directory; a dataset is a folder with queries.jsonl and qrels/"
                    .into(),
            });
        }
        let toml_path = dir.join("dataset.toml");
        let meta: DatasetToml = if toml_path.exists() {
            let text = std::fs::read_to_string(&toml_path).map_err(io(&toml_path))?;
            toml::from_str(&text).map_err(|e| EvalError::Dataset {
                path: toml_path.clone(),
                line: None,
                message: format!("{e} (allowed keys: corpus, split)"),
            })?
        } else {
            DatasetToml::default()
        };
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into());
        let split = match split.map(str::to_string).or(meta.split) {
            Some(s) => s,
            None => default_split(&dir.join("qrels"))?,
        };
        let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
        let (source_config, corpus_path) = match meta.corpus {
            Some(rel) => (SourceConfig::fs(&name, dir.join(&rel)), dir.join(rel)),
            None => {
                let path = dir.join("corpus.jsonl");
                (SourceConfig::beir(&name, &path), path)
            }
        };
        let source: Arc<dyn Source> =
            Arc::from(quarry_ingest::open_source(&source_config, max_file_bytes)?);
        let listing = source.list().map_err(quarry_ingest::IngestError::from)?;
        let docs = listing.docs;
        let mut issues: Vec<Issue> = listing
            .issues
            .into_iter()
            .map(|i| Issue {
                file: corpus_path.clone(),
                line: None,
                message: format!("corpus: {}: {}", i.uri, i.reason),
            })
            .collect();
        let mut versions: Vec<(&str, &str)> = docs
            .iter()
            .map(|d| (d.id.as_str(), d.version.as_str()))
            .collect();
        versions.sort_unstable();
        let corpus_hash = quarry_core::document::sha256_hex(
            &versions
                .iter()
                .flat_map(|(i, v)| [i.as_bytes(), v.as_bytes()])
                .collect::<Vec<_>>(),
        );
        let corpus_ids: BTreeSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();

        let queries_path = dir.join("queries.jsonl");
        let all_queries = read_queries(&queries_path)?;
        let query_ids: HashMap<&str, usize> = all_queries
            .iter()
            .map(|(q, n)| (q.id.as_str(), *n))
            .collect();
        let (qrels, chunk_qrels) = read_qrels(&qrels_path, &corpus_ids, &query_ids, &mut issues)?;

        let mut queries = Vec::new();
        for (q, line) in &all_queries {
            let positive = |m: &HashMap<String, Judgments>| {
                m.get(&q.id).is_some_and(|j| j.values().any(|g| *g >= 1))
            };
            if positive(&qrels) || positive(&chunk_qrels) {
                queries.push(q.clone());
            } else {
                issues.push(Issue {
                    file: queries_path.clone(),
                    line: Some(*line),
                    message: format!(
                        "query {:?} has no relevant document in {split}.tsv; it is not scored",
                        q.id
                    ),
                });
            }
        }
        if queries.is_empty() {
            return Err(EvalError::Dataset {
                path: qrels_path,
                line: None,
                message: "no query has a relevant document; nothing can be scored".into(),
            });
        }
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            split,
            qrels_path,
            source_config,
            corpus_path,
            source,
            corpus_size: docs.len(),
            corpus_hash,
            queries,
            qrels,
            chunk_qrels,
            issues,
        })
    }
}

fn default_split(qrels_dir: &Path) -> Result<String> {
    let entries = std::fs::read_dir(qrels_dir).map_err(io(qrels_dir))?;
    let mut splits: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".tsv").map(str::to_string)
        })
        .collect();
    splits.sort();
    if splits.iter().any(|s| s == "test") {
        return Ok("test".into());
    }
    match splits.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(EvalError::Dataset {
            path: qrels_dir.to_path_buf(),
            line: None,
            message: "no qrels/<split>.tsv file".into(),
        }),
        many => Err(EvalError::Dataset {
            path: qrels_dir.to_path_buf(),
            line: None,
            message: format!(
                "several splits ({}); choose one with --split",
                many.join(", ")
            ),
        }),
    }
}

/// Queries with their line numbers; any malformed line is an error.
fn read_queries(path: &Path) -> Result<Vec<(Query, usize)>> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| bad(path, n, format!("unreadable: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(path, n, format!("invalid JSON: {e}")))?;
        let id = match v.get("_id") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(serde_json::Value::Number(x)) => x.to_string(),
            _ => return Err(bad(path, n, "missing \"_id\"")),
        };
        let text = match v.get("text").and_then(|t| t.as_str()) {
            Some(t) if !t.trim().is_empty() => t.to_string(),
            _ => return Err(bad(path, n, format!("query {id:?} has no \"text\""))),
        };
        if let Some(first) = first_line.insert(id.clone(), n) {
            return Err(bad(
                path,
                n,
                format!("duplicate query id {id:?} (first at line {first})"),
            ));
        }
        out.push((Query { id, text }, n));
    }
    Ok(out)
}

type QrelMaps = (HashMap<String, Judgments>, HashMap<String, Judgments>);

fn read_qrels(
    path: &Path,
    corpus: &BTreeSet<&str>,
    queries: &HashMap<&str, usize>,
    issues: &mut Vec<Issue>,
) -> Result<QrelMaps> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut docs: HashMap<String, Judgments> = HashMap::new();
    let mut chunks: HashMap<String, Judgments> = HashMap::new();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut warn = |line: usize, message: String| {
        issues.push(Issue {
            file: path.to_path_buf(),
            line: Some(line),
            message,
        })
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| bad(path, n, format!("unreadable: {e}")))?;
        if line.trim().is_empty() || (n == 1 && line.starts_with("query-id")) {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
        // BEIR has three columns; TREC qrels have four (query, 0, doc, grade).
        let (q, d, g) = match cols.as_slice() {
            [q, d, g] => (*q, *d, *g),
            [q, _, d, g] => (*q, *d, *g),
            _ => {
                return Err(bad(
                    path,
                    n,
                    format!(
                        "expected 3 tab-separated columns (query-id, corpus-id, score), found {}",
                        cols.len()
                    ),
                ));
            }
        };
        let grade: i32 = g
            .parse()
            .map_err(|_| bad(path, n, format!("score {g:?} is not an integer")))?;
        if let Some(first) = seen.insert((q.to_string(), d.to_string()), n) {
            return Err(bad(
                path,
                n,
                format!("query {q:?} judges document {d:?} twice (first at line {first})"),
            ));
        }
        if !queries.contains_key(q) {
            warn(n, format!("query {q:?} is not in queries.jsonl; ignored"));
            continue;
        }
        let chunk_of = d
            .rsplit_once('#')
            .filter(|(doc, idx)| corpus.contains(doc) && idx.parse::<usize>().is_ok());
        if !corpus.contains(d) && chunk_of.is_some() {
            chunks.entry(q.into()).or_default().insert(d.into(), grade);
            continue;
        }
        if !corpus.contains(d) {
            warn(
                n,
                format!(
                    "document {d:?} is not in the corpus; it still counts as relevant (as in trec_eval), so no run can reach full recall for query {q:?}"
                ),
            );
        }
        docs.entry(q.into()).or_default().insert(d.into(), grade);
    }
    Ok((docs, chunks))
}
