//! Test support: the real default model and a real on-disk index, so tests
//! in this crate and the server's exercise the production path without
//! repeating the set-up. Only built with the `testing` feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_core::EmbedConfig;
use quarry_core::config::{DEFAULT_MODEL, SourceConfig};
use quarry_embed::model::LoadOptions;
use quarry_embed::{Embedder, Model};
use quarry_store::{EdgeStore, VectorStore};

use crate::{Indexer, IndexerSettings, Retriever, SyncReport, TokenCounter};

/// A model, a store under `data_dir`, and an indexer over them.
pub struct TestIndex {
    pub model_dir: PathBuf,
    pub embedder: Embedder,
    pub store: Arc<dyn VectorStore>,
    pub indexer: Indexer,
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
        let settings = IndexerSettings {
            data_dir: data_dir.to_path_buf(),
            chunk_max_tokens,
            chunk_overlap,
            whole_documents: false,
            max_parse_secs: quarry_core::config::SyncConfig::default().max_parse_secs,
            skip_generated: true,
        };
        let indexer = Indexer::new(
            Arc::clone(&store),
            embedder.clone(),
            &model_dir.join("tokenizer.json"),
            &settings,
        )
        .unwrap();
        Self {
            model_dir,
            embedder,
            store,
            indexer,
        }
    }

    /// Syncs directory `tree` as source (and collection) `name`.
    pub async fn sync_dir(&self, name: &str, tree: &Path) -> SyncReport {
        let source = quarry_ingest::open_source(&SourceConfig::fs(name, tree), 1 << 20).unwrap();
        self.indexer.sync(Arc::from(source), name).await.unwrap()
    }

    pub fn retriever(&self) -> Retriever {
        Retriever::new(Arc::clone(&self.store), self.embedder.clone())
    }

    pub fn token_counter(&self) -> TokenCounter {
        TokenCounter::from_file(&self.model_dir.join("tokenizer.json")).unwrap()
    }
}
