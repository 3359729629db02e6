//! Shared by the real-model tests: the default model from Quarry's cache.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use quarry_core::EmbedConfig;
use quarry_embed::model::LoadOptions;
use quarry_embed::{Embedder, Model};

pub fn model_dir() -> PathBuf {
    let models = quarry_core::paths::models_dir().unwrap();
    quarry_embed::fetch::resolve(&models, quarry_core::config::DEFAULT_MODEL).unwrap_or_else(|e| {
        panic!(
            "{e}\nThese tests use the real model: run `scripts/test.sh`, which fetches it first."
        )
    })
}

pub fn model() -> Model {
    model_with(LoadOptions::default())
}

pub fn model_with(options: LoadOptions) -> Model {
    Model::load(&model_dir(), &options).unwrap()
}

/// Token ids of the golden texts followed by `mixed_texts(12)`.
pub fn golden_and_mixed_ids(model: &Model) -> Vec<Vec<u32>> {
    let mut texts: Vec<String> = golden().into_iter().map(|(t, _, _)| t).collect();
    texts.extend(mixed_texts(12));
    texts
        .iter()
        .map(|t| model.tokenize(t).unwrap().ids)
        .collect()
}

pub fn embedder(config: EmbedConfig) -> Embedder {
    Embedder::start(model(), config).unwrap()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The largest element-wise difference |a - b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// The committed golden texts (`testdata/golden`, written for this project
/// and embedded by sentence-transformers through `scripts/golden-fixture.sh`).
pub const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/golden/all-MiniLM-L6-v2.jsonl"
);

/// The workspace's shared reference set, an extra check where it exists.
pub const SHARED_GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/golden/all-MiniLM-L6-v2.jsonl"
);

/// The golden texts with their reference vectors: the committed set, then
/// the shared one when this checkout has it.
pub fn golden() -> Vec<(String, usize, Vec<f32>)> {
    let mut all = read_golden(GOLDEN);
    if std::path::Path::new(SHARED_GOLDEN).is_file() {
        all.extend(read_golden(SHARED_GOLDEN));
    } else {
        eprintln!("note: {SHARED_GOLDEN} is absent; checking the committed golden set only");
    }
    all
}

fn read_golden(path: &str) -> Vec<(String, usize, Vec<f32>)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let emb = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (
                v["text"].as_str().unwrap().to_string(),
                v["tokens"].as_u64().unwrap() as usize,
                emb,
            )
        })
        .collect()
}

/// Deterministic texts of varied lengths (a few tokens to past truncation).
pub fn mixed_texts(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "retrieval",
        "index",
        "vector",
        "search",
        "the",
        "of",
        "model",
        "chunk",
        "document",
        "query",
        "latency",
        "grounding",
        "citation",
        "token",
        "budget",
        "shard",
        "embedding",
        "sync",
    ];
    (0..n)
        .map(|i| {
            let len = 1 + (i * 37) % 300;
            (0..len)
                .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
