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

/// Best-score thresholds per mode: their scores are on different scales.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LowScore {
    /// Cosine similarity.
    pub dense: f32,
    /// BM25's score.
    pub bm25: f32,
    /// The fused score, 0 to 1 for `adaptive`, `dbsf` and `convex` fusion
    /// (for `rrf`, about 0.02: 2 / (rrf_k + 1) is a hit first in both lists).
    pub hybrid: f32,
}

impl Default for LowScore {
    fn default() -> Self {
        Self {
            dense: 0.3,
            bm25: 3.0,
            hybrid: 0.3,
        }
    }
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

/// `[retrieval.collections.NAME]`: one collection's own settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionRetrieval {
    pub fusion: Option<Fusion>,
}

/// Checks every collection's override.
pub(crate) fn validate(
    fusion: &Fusion,
    collections: &BTreeMap<String, CollectionRetrieval>,
) -> Result<(), CoreError> {
    fusion
        .validate("retrieval.fusion")
        .map_err(CoreError::Invalid)?;
    for (name, c) in collections {
        if let Some(f) = &c.fusion {
            f.validate(&format!("retrieval.collections.{name}.fusion"))
                .map_err(CoreError::Invalid)?;
        }
    }
    Ok(())
}
