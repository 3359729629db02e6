//! `[index]`: how a new collection's dense vectors are indexed.
//!
//! Qdrant searches a segment by brute force until it passes
//! `indexing_threshold_kb`, then through an HNSW graph. These settings are
//! fixed when a collection is created (they are stored with it, as
//! [`IndexSettings`]); the search-time ones (`ef`,
//! `oversampling`, `rescore`) are read from the collection on each query.
//! `[index.collections.NAME]` overrides any of them for one collection.
//!
//! The defaults were chosen with `quarry bench search --points` (see the
//! README's configuration section for the table behind them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How the dense vectors are compressed for search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// Full f32 vectors only.
    None,
    /// int8 scalar quantization (4× smaller), kept in RAM; candidates are
    /// rescored on the original vectors when `rescore` is on.
    Int8,
}

/// One collection's index, as created. Stored with the collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexSettings {
    /// HNSW edges per node: more is higher recall, more memory.
    pub m: usize,
    /// Candidates considered while building the graph.
    pub ef_construct: usize,
    /// Candidates considered while searching (Qdrant's `hnsw_ef`).
    pub ef: usize,
    /// Segments smaller than this (KiB of vectors) are searched exactly.
    pub full_scan_threshold_kb: usize,
    /// Segments larger than this (KiB of vectors) get an HNSW graph.
    pub indexing_threshold_kb: usize,
    pub quantization: Quantization,
    /// With quantization: how many more candidates than asked for are
    /// fetched from the quantized index, to be rescored.
    pub oversampling: f64,
    /// With quantization: rescore candidates on the original vectors.
    pub rescore: bool,
    /// Keep the original vectors in memory-mapped files rather than RAM
    /// (sensible with quantization, where only rescoring reads them).
    pub on_disk: bool,
}

impl Default for IndexSettings {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construct: 100,
            // 1M points needed 512 for recall@10 ≥ 0.95 (README); under
            // 100k it costs a tenth of a millisecond over 128.
            ef: 512,
            full_scan_threshold_kb: 10_000,
            indexing_threshold_kb: 10_000,
            // A quarter of the RAM for vectors at a recall cost, with
            // rescoring, of under 0.005 at every measured size.
            quantization: Quantization::Int8,
            oversampling: 2.0,
            rescore: true,
            on_disk: false,
        }
    }
}

impl IndexSettings {
    /// A collection created before `[index]` existed: Qdrant's own
    /// defaults, searched at Qdrant's default `ef`.
    pub fn legacy() -> Self {
        Self {
            m: 16,
            ef_construct: 100,
            ef: 100,
            full_scan_threshold_kb: 10_000,
            indexing_threshold_kb: 10_000,
            quantization: Quantization::None,
            oversampling: 2.0,
            rescore: true,
            on_disk: false,
        }
    }

    /// Checks the ranges Qdrant accepts, naming the field at `at`.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.m < 4 || self.m > 128 {
            return Err(format!("{at}.m = {} is outside 4..=128", self.m));
        }
        if self.ef_construct < 4 {
            return Err(format!(
                "{at}.ef_construct = {} must be at least 4",
                self.ef_construct
            ));
        }
        if self.ef == 0 {
            return Err(format!("{at}.ef must be at least 1"));
        }
        if !(self.oversampling.is_finite() && self.oversampling >= 1.0) {
            return Err(format!(
                "{at}.oversampling = {} must be a number of at least 1.0",
                self.oversampling
            ));
        }
        Ok(())
    }
}

/// `[index]`: the settings for new collections, and per-collection
/// overrides under `[index.collections.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    pub m: Option<usize>,
    pub ef_construct: Option<usize>,
    pub ef: Option<usize>,
    pub full_scan_threshold_kb: Option<usize>,
    pub indexing_threshold_kb: Option<usize>,
    pub quantization: Option<Quantization>,
    pub oversampling: Option<f64>,
    pub rescore: Option<bool>,
    pub on_disk: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub collections: BTreeMap<String, IndexOverride>,
}

/// Any of `[index]`'s settings, for one collection or one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IndexOverride {
    pub m: Option<usize>,
    pub ef_construct: Option<usize>,
    pub ef: Option<usize>,
    pub full_scan_threshold_kb: Option<usize>,
    pub indexing_threshold_kb: Option<usize>,
    pub quantization: Option<Quantization>,
    pub oversampling: Option<f64>,
    pub rescore: Option<bool>,
    pub on_disk: Option<bool>,
}

impl IndexOverride {
    /// `base` with whatever this sets.
    pub fn apply(&self, base: IndexSettings) -> IndexSettings {
        IndexSettings {
            m: self.m.unwrap_or(base.m),
            ef_construct: self.ef_construct.unwrap_or(base.ef_construct),
            ef: self.ef.unwrap_or(base.ef),
            full_scan_threshold_kb: self
                .full_scan_threshold_kb
                .unwrap_or(base.full_scan_threshold_kb),
            indexing_threshold_kb: self
                .indexing_threshold_kb
                .unwrap_or(base.indexing_threshold_kb),
            quantization: self.quantization.unwrap_or(base.quantization),
            oversampling: self.oversampling.unwrap_or(base.oversampling),
            rescore: self.rescore.unwrap_or(base.rescore),
            on_disk: self.on_disk.unwrap_or(base.on_disk),
        }
    }
}

impl IndexConfig {
    fn global(&self) -> IndexOverride {
        IndexOverride {
            m: self.m,
            ef_construct: self.ef_construct,
            ef: self.ef,
            full_scan_threshold_kb: self.full_scan_threshold_kb,
            indexing_threshold_kb: self.indexing_threshold_kb,
            quantization: self.quantization,
            oversampling: self.oversampling,
            rescore: self.rescore,
            on_disk: self.on_disk,
        }
    }

    /// The settings a new collection `name` is created with.
    pub fn for_collection(&self, name: &str) -> IndexSettings {
        let base = self.global().apply(IndexSettings::default());
        match self.collections.get(name) {
            Some(o) => o.apply(base),
            None => base,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        self.global()
            .apply(IndexSettings::default())
            .validate("index")?;
        for name in self.collections.keys() {
            self.for_collection(name)
                .validate(&format!("index.collections.{name}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_override_sits_on_top_of_the_global_settings() {
        let c: IndexConfig = toml::from_str(
            "m = 32\nquantization = \"int8\"\n[collections.big]\non_disk = true\nef = 64\n",
        )
        .expect("parse");
        let big = c.for_collection("big");
        assert_eq!(
            (big.m, big.ef, big.on_disk, big.quantization),
            (32, 64, true, Quantization::Int8)
        );
        let other = c.for_collection("other");
        assert_eq!((other.m, other.ef, other.on_disk), (32, 512, false));
        assert_eq!(other.quantization, Quantization::Int8);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn out_of_range_settings_are_refused_with_their_field() {
        let c: IndexConfig = toml::from_str("[collections.x]\nm = 2\n").expect("parse");
        let err = c.validate().unwrap_err();
        assert!(err.contains("index.collections.x.m = 2"), "{err}");
        let err = toml::from_str::<IndexConfig>("quantization = \"int4\"").unwrap_err();
        assert!(err.to_string().contains("int8"), "{err}");
    }
}
