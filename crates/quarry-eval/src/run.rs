//! Running a dataset's queries through the production query path.
//!
//! Two ways in, one result shape: the in-process [`Retriever`] (what
//! `quarry search` and the server call), or a running server over HTTP so
//! a deployed service is measured as it is. An enum rather than a trait:
//! there are exactly these two, and both are needed here only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quarry_engine::{Hit, Mode, Retriever, SearchOptions};
use serde::Serialize;

use crate::dataset::Dataset;
use crate::{EvalError, Result};

/// Documents retrieved per query: enough for Recall@100 and MAP@100.
pub const DEPTH: usize = 100;

// One backend lives per evaluation run, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Backend {
    Local {
        retriever: Retriever,
        collection: String,
    },
    Http {
        /// Base URL, e.g. `http://127.0.0.1:7700`.
        endpoint: String,
        collection: String,
        api_key: Option<String>,
    },
}

/// One mode's raw results: rankings and latencies per query.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModeRun {
    /// Document ranking per query: each document once, at its best chunk.
    pub docs: BTreeMap<String, Vec<(String, f64)>>,
    /// Chunk ranking per query (`DOC_ID#INDEX`), when the qrels name chunks.
    pub chunks: BTreeMap<String, Vec<(String, f64)>>,
    /// Wall time of the document query, milliseconds.
    pub latency_ms: BTreeMap<String, f64>,
}

impl Backend {
    async fn search(&self, query: &str, mode: Mode, per_doc: bool) -> Result<Vec<Hit>> {
        let per_doc_limit = per_doc.then_some(1);
        match self {
            Self::Local {
                retriever,
                collection,
            } => {
                // Qrels judge every document, a duplicate included: folding
                // one into another would score as a miss.
                let options = SearchOptions {
                    mode,
                    top_k: DEPTH,
                    per_doc_limit,
                    dedupe: Some(false),
                    ..Default::default()
                };
                Ok(retriever.search(collection, query, &options).await?)
            }
            Self::Http {
                endpoint,
                collection,
                api_key,
            } => {
                let url = format!(
                    "{}/v1/collections/{collection}/search",
                    endpoint.trim_end_matches('/')
                );
                let body = serde_json::json!({
                    "query": query,
                    "top_k": DEPTH,
                    "mode": mode,
                    "per_doc_limit": per_doc_limit,
                    "dedupe": false,
                });
                let key = api_key.clone();
                tokio::task::spawn_blocking(move || http_search(&url, key.as_deref(), &body))
                    .await
                    .map_err(|e| EvalError::Backend(e.to_string()))?
            }
        }
    }
}

fn http_search(url: &str, key: Option<&str>, body: &serde_json::Value) -> Result<Vec<Hit>> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut request = agent.post(url);
    if let Some(k) = key {
        request = request.set("Authorization", &format!("Bearer {k}"));
    }
    let response = match request.send_json(body.clone()) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            return Err(EvalError::Backend(format!("{url}: HTTP {code}: {text}")));
        }
        Err(e) => return Err(EvalError::Backend(format!("{url}: {e}"))),
    };
    let v: serde_json::Value = response
        .into_json()
        .map_err(|e| EvalError::Backend(format!("{url}: unreadable response: {e}")))?;
    let hits = v
        .get("hits")
        .and_then(|h| h.as_array())
        .ok_or_else(|| EvalError::Backend(format!("{url}: the response has no \"hits\" array")))?;
    Ok(hits
        .iter()
        .map(|h| {
            let s = |k: &str| h.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            Hit {
                doc_id: s("doc_id"),
                chunk_id: s("chunk_id"),
                score: h.get("score").and_then(|x| x.as_f64()).unwrap_or(f64::NAN) as f32,
                relevance: h.get("relevance").and_then(|x| x.as_f64()).unwrap_or(0.0) as f32,
                text: String::new(),
                uri: s("uri"),
                title: None,
                source: s("source"),
                chunk_index: h.get("chunk_index").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
                start: 0,
                end: 0,
                headings: Vec::new(),
                page: None,
                retrieval_score: h
                    .get("retrieval_score")
                    .and_then(|x| x.as_f64())
                    .map(|x| x as f32),
                duplicates: Vec::new(),
                gap_before: String::new(),
            }
        })
        .collect())
}

/// Runs every scored query of `dataset` in `mode`, one at a time so the
/// latencies are those of an idle service. `progress` is called after each.
pub async fn run_mode(
    backend: &Backend,
    dataset: &Dataset,
    mode: Mode,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ModeRun> {
    let mut run = ModeRun::default();
    let want_chunks = !dataset.chunk_qrels.is_empty();
    let total = dataset.queries.len();
    for (i, q) in dataset.queries.iter().enumerate() {
        let started = Instant::now();
        let hits = backend
            .search(&q.text, mode, true)
            .await
            .map_err(|e| EvalError::Query {
                id: q.id.clone(),
                message: e.to_string(),
            })?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        run.latency_ms.insert(q.id.clone(), ms);
        run.docs.insert(
            q.id.clone(),
            hits.iter()
                .map(|h| (h.doc_id.clone(), f64::from(h.score)))
                .collect(),
        );
        if want_chunks {
            let hits = backend.search(&q.text, mode, false).await?;
            run.chunks.insert(
                q.id.clone(),
                hits.iter()
                    .map(|h| {
                        (
                            format!("{}#{}", h.doc_id, h.chunk_index),
                            f64::from(h.score),
                        )
                    })
                    .collect(),
            );
        }
        progress(i + 1, total);
    }
    Ok(run)
}
