pub mod bench;
pub mod bench_rerank;
pub mod bench_search;
pub mod bench_sync;
pub mod embed;
pub mod eval;
pub mod eval_gate;
pub mod eval_sweep;
pub mod eval_tune;
pub mod index;
pub mod mcp;
pub mod migrate;
pub mod model;
mod progress;
pub mod reindex;
pub mod remote;
pub mod rerank;
pub mod serve;

use quarry_core::Config;
use quarry_embed::{Embedder, Model};

/// Loads `model_id` (or the configured model), fetching it first from the
/// configured source when it is not in the cache yet.
pub fn load_model(config: &Config, model_id: Option<&str>) -> anyhow::Result<Model> {
    Ok(quarry_engine::models::load(config, model_id)?)
}

pub fn start_embedder(config: &Config, model_id: Option<&str>) -> anyhow::Result<Embedder> {
    Ok(quarry_engine::models::start(config, model_id)?)
}
