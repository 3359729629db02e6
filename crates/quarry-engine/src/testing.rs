//! Test support: the real default model and a real on-disk index, so tests
//! in this crate and the server's exercise the production path without
//! repeating the set-up. Only built with the `testing` feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_core::config::{DEFAULT_MODEL, SourceConfig};
use quarry_core::{Config, EmbedConfig};
use quarry_embed::model::LoadOptions;
use quarry_embed::{Embedder, Model};
use quarry_store::{EdgeStore, VectorStore};

use crate::{Indexer, Retriever, Service, SyncReport, TokenCounter};

/// A model, a store under `data_dir`, and the service over them.
pub struct TestIndex {
    pub model_dir: PathBuf,
    pub embedder: Embedder,
    pub store: Arc<dyn VectorStore>,
    pub indexer: Indexer,
    pub service: Arc<Service>,
    /// What the service was built from.
    pub config: Config,
}

impl std::fmt::Debug for TestIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIndex")
            .field("model_dir", &self.model_dir)
            .finish()
    }
}

/// Writes `files` (relative path, content) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl TestIndex {
    /// Panics with instructions when the model is not in the cache.
    pub fn open(data_dir: &Path, chunk_max_tokens: usize, chunk_overlap: usize) -> Self {
        let model_dir =
            quarry_embed::fetch::resolve(&quarry_core::paths::models_dir().unwrap(), DEFAULT_MODEL)
                .unwrap_or_else(|e| {
                    panic!("{e}\nrun scripts/test.sh, which fetches the model first")
                });
        let model = Model::load(&model_dir, &LoadOptions::default()).unwrap();
        let embedder = Embedder::start(model, EmbedConfig::default()).unwrap();
        let store: Arc<dyn VectorStore> = Arc::new(EdgeStore::open(data_dir).unwrap());
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            ..Config::default()
        };
        config.chunking.max_tokens = chunk_max_tokens;
        config.chunking.overlap = chunk_overlap;
        Self::with_config(&config, model_dir, embedder, store)
    }

    /// Like [`Self::open`], with every setting from `config` (its sources,
    /// limits, data directory).
    pub fn with_config(
        config: &Config,
        model_dir: PathBuf,
        embedder: Embedder,
        store: Arc<dyn VectorStore>,
    ) -> Self {
        let service = Service::from_parts(
            config,
            Arc::clone(&store),
            embedder.clone(),
            &model_dir.join("tokenizer.json"),
        )
        .unwrap();
        Self {
            model_dir,
            embedder,
            store,
            indexer: service.indexer().clone(),
            service: Arc::new(service),
            config: config.clone(),
        }
    }

    /// Syncs directory `tree` as source (and collection) `name`.
    pub async fn sync_dir(&self, name: &str, tree: &Path) -> SyncReport {
        let source = quarry_ingest::open_source(&SourceConfig::fs(name, tree), 1 << 20).unwrap();
        self.indexer.sync(Arc::from(source), name).await.unwrap()
    }

    /// A service over the same model and store that syncs `sources`.
    pub fn service_with(&self, sources: Vec<SourceConfig>, max_file_bytes: u64) -> Arc<Service> {
        let mut config = self.config.clone();
        config.sources = sources;
        config.sync.max_file_bytes = max_file_bytes;
        let service = Service::from_parts(
            &config,
            Arc::clone(&self.store),
            self.embedder.clone(),
            &self.model_dir.join("tokenizer.json"),
        )
        .unwrap();
        Arc::new(service)
    }

    pub fn retriever(&self) -> Retriever {
        Retriever::new(Arc::clone(&self.store), self.embedder.clone())
    }

    pub fn token_counter(&self) -> TokenCounter {
        TokenCounter::from_file(&self.model_dir.join("tokenizer.json")).unwrap()
    }
}
