//! Coverage monitoring: how well each collection answers what is asked.
//!
//! Every search and context request records its best hit, per collection
//! and mode. The histogram and the low-score test read the hit's
//! `relevance`, which means the same in every mode (raw scores do not:
//! cosine for dense, BM25's unbounded sum, a fused score), so one
//! `retrieval.low_score` fits them all; a table of raw thresholds per mode
//! is still accepted. A query whose best hit is low, or that found
//! nothing, is a question the corpus may not answer; with
//! `server.query_log = true` the most recent of them are kept, so data
//! owners can see what is missing. Only the server sees queries; nothing
//! is written to disk.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use quarry_core::config::LowScore;
use quarry_engine::Mode;
use serde::Serialize;
use utoipa::ToSchema;

/// Upper bounds of the best-relevance histogram.
pub(crate) const RELEVANCE_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
];

/// A query's best hit, as coverage reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Best {
    /// The mode's raw score.
    pub score: f32,
    /// 0 to 1, the same in every mode.
    pub relevance: f32,
}

impl Best {
    /// The best of `hits`' (raw score, relevance) pairs; each is taken at
    /// its own maximum, as a reranked list's order need not follow either.
    pub fn of(hits: impl Iterator<Item = (f32, f32)>) -> Option<Self> {
        hits.map(|(score, relevance)| Self { score, relevance })
            .reduce(|a, b| Self {
                score: a.score.max(b.score),
                relevance: a.relevance.max(b.relevance),
            })
    }
}
/// Low-score queries kept per collection.
const RECENT: usize = 100;

/// One low-score query, as the log keeps it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LowQuery {
    pub query: String,
    pub mode: Mode,
    /// The best hit's raw score; none when nothing matched.
    pub best_score: Option<f32>,
    /// The best hit's relevance (0 to 1); none when nothing matched.
    pub best_relevance: Option<f32>,
    pub at_unix: u64,
}

/// One mode's figures for one collection.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ModeCoverage {
    pub queries: u64,
    /// Queries whose best hit was under `retrieval.low_score`.
    pub low: u64,
    /// Best relevances: cumulative counts per upper bound of
    /// `bucket_bounds`.
    pub buckets: Vec<u64>,
    pub relevance_sum: f64,
}

/// What `GET /v1/collections/{name}/stats` answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionStats {
    pub collection: String,
    pub queries: u64,
    pub low_score_queries: u64,
    /// `low_score_queries / queries`; 0 before the first query.
    pub low_share: f64,
    pub bucket_bounds: Vec<f64>,
    pub by_mode: BTreeMap<String, ModeCoverage>,
    /// Recent low-score queries, newest first; empty unless
    /// `server.query_log = true`.
    pub recent_low: Vec<LowQuery>,
    pub query_log: bool,
}

#[derive(Debug, Default)]
struct Collection {
    by_mode: BTreeMap<String, ModeCoverage>,
    recent_low: VecDeque<LowQuery>,
}

#[derive(Debug)]
pub(crate) struct Coverage {
    low: LowScore,
    query_log: bool,
    collections: Mutex<BTreeMap<String, Collection>>,
}

impl Coverage {
    pub fn new(low: LowScore, query_log: bool) -> Self {
        Self {
            low,
            query_log,
            collections: Mutex::default(),
        }
    }

    /// Records one answered query: `served` is the mode that answered (a
    /// degraded hybrid search is a BM25 one), `best` its top hit.
    pub fn observe(&self, collection: &str, served: Mode, query: &str, best: Option<Best>) {
        let low = best.is_none_or(|b| self.low.is_low(served.as_str(), b.score, b.relevance));
        let mut all = self.collections.lock().unwrap_or_else(|e| e.into_inner());
        let c = all.entry(collection.to_string()).or_default();
        let m = c.by_mode.entry(served.as_str().to_string()).or_default();
        if m.buckets.is_empty() {
            // Also for a first query that found nothing.
            m.buckets = vec![0; RELEVANCE_BUCKETS.len()];
        }
        m.queries += 1;
        m.low += u64::from(low);
        if let Some(b) = best {
            let r = f64::from(b.relevance);
            m.relevance_sum += r;
            crate::metrics::fill(&mut m.buckets, RELEVANCE_BUCKETS, r);
        }
        if low && self.query_log {
            c.recent_low.push_front(LowQuery {
                query: query.to_string(),
                mode: served,
                best_score: best.map(|b| b.score),
                best_relevance: best.map(|b| b.relevance),
                at_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default(),
            });
            c.recent_low.truncate(RECENT);
        }
    }

    pub fn stats(&self, collection: &str) -> CollectionStats {
        let all = self.collections.lock().unwrap_or_else(|e| e.into_inner());
        let c = all.get(collection);
        let by_mode = c.map(|c| c.by_mode.clone()).unwrap_or_default();
        let queries: u64 = by_mode.values().map(|m| m.queries).sum();
        let low: u64 = by_mode.values().map(|m| m.low).sum();
        CollectionStats {
            collection: collection.to_string(),
            queries,
            low_score_queries: low,
            low_share: if queries == 0 {
                0.0
            } else {
                low as f64 / queries as f64
            },
            bucket_bounds: RELEVANCE_BUCKETS.to_vec(),
            by_mode,
            recent_low: c
                .map(|c| c.recent_low.iter().cloned().collect())
                .unwrap_or_default(),
            query_log: self.query_log,
        }
    }

    /// Every collection's figures, for `/metrics`.
    pub fn all(&self) -> Vec<CollectionStats> {
        let names: Vec<String> = self
            .collections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.iter().map(|n| self.stats(n)).collect()
    }
}
