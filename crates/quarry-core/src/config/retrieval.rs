//! How hybrid search fuses its two rankings, for the whole index and per
//! collection. The arithmetic lives in the engine (`quarry_engine::fusion`);
//! these are the settings every front end and the configuration share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// Reciprocal rank fusion: Σ w / (k + rank).
    Rrf,
    /// Distribution-based score fusion: scores through mean ± 3 sd onto 0–1.
    Dbsf,
    /// A weighted sum of min-max normalised scores.
    Convex,
    /// Convex, leaning towards dense (0.6), each side's weight scaled per
    /// query by how far its best score stands out from the rest of its list.
    #[default]
    Adaptive,
}

impl FusionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rrf => "rrf",
            Self::Dbsf => "dbsf",
            Self::Convex => "convex",
            Self::Adaptive => "adaptive",
        }
    }
}

impl std::str::FromStr for FusionMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rrf" => Ok(Self::Rrf),
            "dbsf" => Ok(Self::Dbsf),
            "convex" => Ok(Self::Convex),
            "adaptive" => Ok(Self::Adaptive),
            other => Err(format!(
                "unknown fusion method {other:?}; use rrf, dbsf, convex or adaptive"
            )),
        }
    }
}

/// A fusion rule: `{ method = "rrf", k = 60, weights = [0.7, 0.3] }`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Fusion {
    #[serde(default)]
    pub method: FusionMethod,
    /// RRF's k (default `retrieval.rrf_k`).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Dense's weight, then BM25's (default equal; `adaptive`: 0.6, 0.4).
    /// Scaled to sum to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<[f32; 2]>,
}

impl Fusion {
    /// Checks what a request or the configuration asked for; `at` names it.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.k == Some(0) {
            return Err(format!("{at}.k must be at least 1"));
        }
        if let Some(w) = self.weights
            && (w.iter().any(|x| !x.is_finite() || *x < 0.0) || w[0] + w[1] <= 0.0)
        {
            return Err(format!(
                "{at}.weights must be [dense, bm25]: two numbers at least 0, not both 0"
            ));
        }
        Ok(())
    }
}

/// How searches are run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Reciprocal rank fusion's k (hybrid mode).
    pub rrf_k: usize,
    /// Candidates each side of a hybrid query fetches, per requested hit
    /// (at least 50).
    pub hybrid_prefetch_factor: usize,
    /// Query embeddings kept in an LRU cache; 0 disables it.
    pub query_cache: usize,
    /// The server's longest wait for a query embedding; past it a hybrid
    /// search answers from BM25 alone (marked `degraded`).
    pub embed_timeout_ms: u64,
    /// `"bm25"`: dense searches fall back to BM25 too, instead of a 503.
    /// Default `"none"`.
    pub fallback: DenseFallback,
    /// A query whose best hit is under this is one the corpus may not
    /// answer (coverage monitoring, `quarry serve`): a relevance by default.
    pub low_score: LowScore,
    /// How hybrid search fuses dense and BM25 (default `adaptive`).
    pub fusion: Fusion,
    /// A cross-encoder stage after retrieval (default none).
    pub rerank: Option<Rerank>,
    /// Fold near-identical passages of different documents (a page and its
    /// print view) into one hit that names the others (default true).
    pub dedupe: bool,
    /// Per-collection overrides: `[retrieval.collections.NAME]`.
    pub collections: std::collections::BTreeMap<String, CollectionRetrieval>,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            rrf_k: 60,
            hybrid_prefetch_factor: 4,
            query_cache: 1024,
            embed_timeout_ms: 250,
            fallback: DenseFallback::None,
            low_score: LowScore::default(),
            fusion: Fusion::default(),
            rerank: None,
            dedupe: true,
            collections: std::collections::BTreeMap::new(),
        }
    }
}

/// When a query's best hit counts as low (coverage monitoring): a question
/// the corpus may not answer.
///
/// `low_score = 0.07` reads the best hit's `relevance` (0 to 1, the same
/// in every mode; the default). `low_score = { dense = 0.3, bm25 = 3.0,
/// hybrid = 0.3 }` reads each mode's raw score instead, for someone who
/// has fitted thresholds of their own.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LowScore {
    Relevance(f32),
    PerMode(ModeScores),
}

impl<'de> Deserialize<'de> for LowScore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Relevance(f32),
            PerMode(ModeScores),
        }
        let fix = "low_score must be a relevance from 0 to 1 (e.g. 0.07), \
                   or raw scores per mode: { dense = 0.3, bm25 = 3.0, hybrid = 0.3 }";
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(fix))? {
            Raw::Relevance(t) if (0.0..=1.0).contains(&t) => Ok(Self::Relevance(t)),
            Raw::Relevance(_) => Err(serde::de::Error::custom(fix)),
            Raw::PerMode(m) => Ok(Self::PerMode(m)),
        }
    }
}

/// The best hit's relevance under which a query is low. Measured by
/// `scripts/calibrate-low-score.py` on SciFact-train, MS MARCO 5k and the
/// user guide: each set's own queries (which its corpus answers) against
/// the other sets' (which it does not), and the threshold that best tells
/// them apart over every mode (the README has the figures).
pub const LOW_RELEVANCE: f32 = 0.07;

impl Default for LowScore {
    fn default() -> Self {
        Self::Relevance(LOW_RELEVANCE)
    }
}

impl LowScore {
    /// Whether a best hit of raw `score` and `relevance`, served by
    /// `mode` ("dense", "bm25" or "hybrid"), is low.
    pub fn is_low(&self, mode: &str, score: f32, relevance: f32) -> bool {
        match self {
            Self::Relevance(t) => relevance < *t,
            Self::PerMode(m) => {
                let t = match mode {
                    "dense" => m.dense,
                    "bm25" => m.bm25,
                    _ => m.hybrid,
                };
                score < t
            }
        }
    }
}

/// Raw best-score thresholds per mode: their scores are on different
/// scales.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeScores {
    /// Cosine similarity.
    pub dense: f32,
    /// BM25's score.
    pub bm25: f32,
    /// The fused score, 0 to 1 for `adaptive`, `dbsf` and `convex` fusion
    /// (for `rrf`, about 0.02: 2 / (rrf_k + 1) is a hit first in both lists).
    pub hybrid: f32,
}

/// What a dense search does when its query embedding is late or
/// impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenseFallback {
    /// Answer 503.
    #[default]
    None,
    /// Answer from BM25 alone, marked `degraded`.
    Bm25,
}

/// The most candidates one search may rerank.
pub const MAX_RERANK_TOP_N: usize = 1000;

/// A cross-encoder stage after retrieval: `{ model = "...", top_n = 50 }`
/// in `[retrieval]` or a collection's settings; `{"top_n": 50}` in a
/// request (`{"top_n": 0}` turns a configured stage off).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rerank {
    /// The cross-encoder (a Hub id or a directory, like `[model] id`).
    /// A request may only name one the configuration names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How many of the first stage's best hits the cross-encoder rescores
    /// (default 50); the best `top_k` of them are returned.
    #[cfg_attr(feature = "openapi", schema(maximum = 1000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_n: Option<usize>,
}

impl Rerank {
    pub const DEFAULT_TOP_N: usize = 50;

    /// Checks what a request or the configuration asked for; `at` names it.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.top_n.is_some_and(|n| n > MAX_RERANK_TOP_N) {
            return Err(format!("{at}.top_n must be at most {MAX_RERANK_TOP_N}"));
        }
        if self.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(format!("{at}.model must not be empty"));
        }
        Ok(())
    }
}

/// `[retrieval.collections.NAME]`: one collection's own settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionRetrieval {
    pub fusion: Option<Fusion>,
    /// This collection's rerank stage (default `retrieval.rerank`).
    pub rerank: Option<Rerank>,
}

/// Checks every collection's override.
pub(crate) fn validate(
    fusion: &Fusion,
    rerank: Option<&Rerank>,
    collections: &BTreeMap<String, CollectionRetrieval>,
) -> Result<(), CoreError> {
    fusion
        .validate("retrieval.fusion")
        .map_err(CoreError::Invalid)?;
    let needs_model = |r: &Rerank, at: &str| {
        r.validate(at)?;
        if r.model.is_none() && rerank.and_then(|d| d.model.as_ref()).is_none() {
            return Err(format!(
                "{at} has no model: name a cross-encoder, e.g. {at} = {{ model = \
                 \"cross-encoder/ms-marco-MiniLM-L-6-v2\", top_n = 50 }}"
            ));
        }
        Ok(())
    };
    if let Some(r) = rerank {
        needs_model(r, "retrieval.rerank").map_err(CoreError::Invalid)?;
    }
    for (name, c) in collections {
        if let Some(f) = &c.fusion {
            f.validate(&format!("retrieval.collections.{name}.fusion"))
                .map_err(CoreError::Invalid)?;
        }
        if let Some(r) = &c.rerank {
            needs_model(r, &format!("retrieval.collections.{name}.rerank"))
                .map_err(CoreError::Invalid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn low(toml_text: &str) -> Result<LowScore, String> {
        #[derive(Deserialize)]
        struct R {
            low_score: LowScore,
        }
        toml::from_str::<R>(toml_text)
            .map(|r| r.low_score)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn low_score_is_one_relevance_or_raw_scores_per_mode() {
        assert_eq!(
            RetrievalConfig::default().low_score,
            LowScore::Relevance(LOW_RELEVANCE)
        );
        let one = low("low_score = 0.4").unwrap();
        assert_eq!(one, LowScore::Relevance(0.4));
        // The relevance decides in every mode; the raw score is ignored.
        assert!(one.is_low("bm25", 50.0, 0.3) && !one.is_low("dense", 0.1, 0.5));
        let raw = low("low_score = { dense = 0.3, bm25 = 3.0, hybrid = 0.5 }").unwrap();
        assert!(raw.is_low("bm25", 2.9, 0.99) && !raw.is_low("bm25", 3.1, 0.0));
        assert!(raw.is_low("hybrid", 0.4, 0.99) && !raw.is_low("dense", 0.4, 0.0));
        for bad in [
            "low_score = 3.0",
            "low_score = { dense = 0.3 }",
            "low_score = \"x\"",
        ] {
            let err = low(bad).unwrap_err();
            assert!(err.contains("relevance from 0 to 1"), "{bad}: {err}");
        }
    }
}
