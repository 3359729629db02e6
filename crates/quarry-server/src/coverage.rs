//! Coverage monitoring: how well each collection answers what is asked.
//!
//! Every search and context request records its best hit's score, per
//! collection and mode (scores of different modes are on different
//! scales: cosine for dense, BM25's for bm25, reciprocal-rank fusion's for
//! hybrid, so each mode has its own `retrieval.low_score` threshold). A
//! query whose best score is under its threshold, or that found nothing, is
//! a question the corpus may not answer; with `server.query_log = true`
//! the most recent of them are kept, so data owners can see what is
//! missing. Only the server sees queries; nothing is written to disk.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use quarry_core::config::LowScore;
use quarry_engine::Mode;
use serde::Serialize;
use utoipa::ToSchema;

/// Upper bounds of the best-score histogram: wide enough for all three
/// scales.
pub(crate) const SCORE_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0, 10.0, 20.0,
    50.0,
];
/// Low-score queries kept per collection.
const RECENT: usize = 100;

/// One low-score query, as the log keeps it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LowQuery {
    pub query: String,
    pub mode: Mode,
    /// The best hit's score; none when nothing matched.
    pub best_score: Option<f32>,
    pub at_unix: u64,
}

/// One mode's figures for one collection.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ModeCoverage {
    pub queries: u64,
    /// Queries whose best score was under the mode's `retrieval.low_score`.
    pub low: u64,
    /// Cumulative counts per upper bound of `bucket_bounds`.
    pub buckets: Vec<u64>,
    pub score_sum: f64,
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

    fn threshold(&self, mode: Mode) -> f32 {
        match mode {
            Mode::Dense => self.low.dense,
            Mode::Bm25 => self.low.bm25,
            Mode::Hybrid => self.low.hybrid,
        }
    }

    /// Records one answered query: `served` is the mode that answered (a
    /// degraded hybrid search is a BM25 one), `best` its top score.
    pub fn observe(&self, collection: &str, served: Mode, query: &str, best: Option<f32>) {
        let low = best.is_none_or(|s| s < self.threshold(served));
        let mut all = self.collections.lock().unwrap_or_else(|e| e.into_inner());
        let c = all.entry(collection.to_string()).or_default();
        let m = c.by_mode.entry(served.as_str().to_string()).or_default();
        if m.buckets.is_empty() {
            // Also for a first query that found nothing.
            m.buckets = vec![0; SCORE_BUCKETS.len()];
        }
        m.queries += 1;
        m.low += u64::from(low);
        if let Some(s) = best {
            let s = f64::from(s);
            m.score_sum += s;
            crate::metrics::fill(&mut m.buckets, SCORE_BUCKETS, s);
        }
        if low && self.query_log {
            c.recent_low.push_front(LowQuery {
                query: query.to_string(),
                mode: served,
                best_score: best,
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
            bucket_bounds: SCORE_BUCKETS.to_vec(),
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
