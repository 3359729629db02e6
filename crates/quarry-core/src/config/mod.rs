//! `quarry.toml`: one file, every field optional, each with a documented
//! default, and `QUARRY_*` environment variables on top.
//!
//! Unknown fields are rejected rather than ignored: a misspelt option that is
//! silently dropped is worse than an error naming it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

mod include;
mod index;
mod keys;
mod model;
mod retrieval;
mod source;
mod store;

pub use index::{IndexConfig, IndexOverride, IndexSettings, Quantization};
pub use keys::{KeyConfig, RateConfig, Scope};
pub use model::{ModelConfig, ModelSource, Precision};
pub use retrieval::{
    CollectionRetrieval, DenseFallback, Fusion, FusionMethod, LOW_RELEVANCE, LowScore,
    MAX_RERANK_TOP_N, ModeScores, Rerank, RetrievalConfig,
};
pub use source::{
    BeirSourceConfig, Every, FsSourceConfig, GitSourceConfig, S3SourceConfig, SourceConfig,
    WebSourceConfig,
};
pub use store::{ServerStoreConfig, StoreConfig};

/// The default embedding model.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where indexes and manifests live. Default: `./.quarry`.
    pub data_dir: PathBuf,
    pub model: ModelConfig,
    pub embed: EmbedConfig,
    pub chunking: ChunkingConfig,
    pub sync: SyncConfig,
    pub server: ServerConfig,
    pub retrieval: RetrievalConfig,
    /// How new collections index their dense vectors (HNSW, quantization).
    pub index: IndexConfig,
    /// Where vectors live: `"edge"` (embedded, under `data_dir`) or a Qdrant
    /// server, `{ url = "http://host:6334", api_key = "..." }`. Also
    /// `QUARRY_STORE` (`edge` or a URL) and `QUARRY_STORE_API_KEY`.
    pub store: StoreConfig,
    /// Configured sources, each feeding one collection.
    pub sources: Vec<SourceConfig>,
}

/// `quarry serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: String,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// Requests taking longer get 504.
    pub request_timeout_secs: u64,
    /// Requests in flight at once; more are shed with 503.
    pub max_concurrency: usize,
    /// The largest `top_k` a search may ask for.
    pub max_top_k: usize,
    /// Documents one `POST /v1/collections/{name}/documents` may carry.
    pub max_batch: usize,
    /// Keys allowed to read (search, context, list). With no keys at all,
    /// the API is open. Also `QUARRY_READ_KEYS` (comma-separated). Keys are
    /// never written back out: a dumped configuration carries no secrets.
    #[serde(skip_serializing)]
    pub read_keys: Vec<String>,
    /// Keys allowed to read and write. Also `QUARRY_WRITE_KEYS`.
    #[serde(skip_serializing)]
    pub write_keys: Vec<String>,
    /// Tokenizer that counts context budgets (the LLM's `tokenizer.json`);
    /// default: the embedding model's.
    pub context_tokenizer: Option<PathBuf>,
    /// Named keys, each with scopes, collections and a rate limit.
    pub keys: Vec<KeyConfig>,
    /// `/metrics` without a key (for a scraper inside a trusted network).
    pub public_metrics: bool,
    /// Search and context answers kept, in bytes; 0 turns the cache off.
    pub cache_bytes: usize,
    /// Keep the most recent low-score queries for
    /// `GET /v1/collections/{name}/stats` (their text, in memory only).
    pub query_log: bool,
    /// A token bucket per client address when no keys are configured, and
    /// per key for keys without a `rate` of their own. Default: none.
    pub rate: Option<RateConfig>,
    /// Host names (or `host:port`) `/mcp` answers for while no keys are
    /// configured, besides loopback: an open server checks `Host` against
    /// DNS rebinding from a browser. With keys, any host may.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:7700".into(),
            max_body_bytes: 2 * 1024 * 1024,
            request_timeout_secs: 30,
            max_concurrency: 64,
            max_top_k: 1000,
            max_batch: 100,
            read_keys: Vec::new(),
            write_keys: Vec::new(),
            context_tokenizer: None,
            keys: Vec::new(),
            public_metrics: false,
            cache_bytes: 64 << 20,
            query_log: false,
            rate: None,
            allowed_hosts: Vec::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".quarry"),
            model: ModelConfig::default(),
            embed: EmbedConfig::default(),
            chunking: ChunkingConfig::default(),
            sync: SyncConfig::default(),
            server: ServerConfig::default(),
            retrieval: RetrievalConfig::default(),
            index: IndexConfig::default(),
            store: StoreConfig::default(),
            sources: Vec::new(),
        }
    }
}

/// How documents are split before embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Largest chunk, in the embedding model's tokens. Capped so that a chunk
    /// plus special tokens and the passage prompt fits `max_seq_length`: the
    /// model never silently truncates a chunk.
    pub max_tokens: usize,
    /// Tokens shared by consecutive chunks.
    pub overlap: usize,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            overlap: 32,
        }
    }
}

/// Limits that keep one bad file from hurting a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Files larger than this are skipped (with a reason in the report).
    pub max_file_bytes: u64,
    /// Seconds one file may take to parse and chunk; a file over budget is
    /// reported failed and the sync moves on.
    pub max_parse_secs: f64,
    /// Minified and generated files (one-line JS, CSS or JSON, source maps,
    /// search indexes) are skipped, each with its reason.
    pub skip_generated: bool,
    /// The embedded store refuses writes when the data directory's file
    /// system has less free space than this (0: never).
    pub min_free_bytes: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 20 * 1024 * 1024,
            max_parse_secs: 10.0,
            skip_generated: true,
            min_free_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Settings of the batching worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Upper bound on padded tokens (batch size × longest input) in one
    /// forward pass. Bounds memory and the wait of an interactive query
    /// queued behind a bulk batch: on 2 CPU cores a 1024-token batch takes
    /// about half a second, and larger batches gain no throughput.
    pub max_batch_tokens: usize,
    /// Upper bound on inputs in one forward pass.
    pub max_batch_size: usize,
    /// The bulk batch budget while queries are coming in (one in the last
    /// 2 s): a query waits for at most one such batch. Default: a quarter
    /// of `max_batch_tokens`.
    pub busy_bulk_batch_tokens: Option<usize>,
    /// Bulk inputs that may wait in the queue; further bulk callers wait.
    pub bulk_queue: usize,
    /// Interactive inputs that may wait; further ones fail with `Overloaded`.
    pub interactive_queue: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            max_batch_tokens: 1024,
            max_batch_size: 64,
            busy_bulk_batch_tokens: None,
            bulk_queue: 4096,
            interactive_queue: 512,
        }
    }
}

impl Config {
    /// Load `path`, or `./quarry.toml` when it exists, or the defaults; then
    /// apply the environment.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None if Path::new("quarry.toml").is_file() => {
                Self::from_file(Path::new("quarry.toml"))?
            }
            None => Self::default(),
        };
        config.apply_env(|var| std::env::var(var).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed = match include::resolve(path, &text)? {
            Some(merged) => {
                Self::deserialize(toml::Value::Table(merged)).map_err(|e| e.to_string())
            }
            None => Self::from_toml(&text),
        };
        parsed.map_err(|message| CoreError::ParseConfig {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> std::result::Result<Self, String> {
        // The message keeps its lines: toml draws a caret under the error,
        // which only lines up on a line of its own.
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// `QUARRY_DATA_DIR`, `QUARRY_MODEL`, `QUARRY_MODEL_SOURCE`, `QUARRY_PRECISION`,
    /// `QUARRY_MAX_BATCH_TOKENS`, `QUARRY_CHUNK_MAX_TOKENS`, `QUARRY_CHUNK_OVERLAP`,
    /// `QUARRY_MAX_FILE_BYTES`, `QUARRY_MAX_PARSE_SECS`, `QUARRY_MIN_FREE_BYTES`, `QUARRY_STORE`, `QUARRY_STORE_API_KEY`,
    /// `QUARRY_STORE_SHARDS`, `QUARRY_STORE_REPLICAS`. The lookup is a
    /// parameter so tests need not mutate the process environment.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let set = |var: &str| get(var).filter(|v| !v.is_empty());
        if let Some(v) = set("QUARRY_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = set("QUARRY_MODEL") {
            self.model.id = v;
        }
        if let Some(v) = set("QUARRY_ADDR") {
            self.server.addr = v;
        }
        for (var, keys) in [
            ("QUARRY_READ_KEYS", &mut self.server.read_keys),
            ("QUARRY_WRITE_KEYS", &mut self.server.write_keys),
        ] {
            if let Some(v) = set(var) {
                keys.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(String::from),
                );
            }
        }
        parse_into(&set, "QUARRY_MODEL_SOURCE", &mut self.model.source)?;
        parse_into(&set, "QUARRY_PRECISION", &mut self.model.precision)?;
        parse_into(
            &set,
            "QUARRY_MAX_BATCH_TOKENS",
            &mut self.embed.max_batch_tokens,
        )?;
        parse_into(
            &set,
            "QUARRY_CHUNK_MAX_TOKENS",
            &mut self.chunking.max_tokens,
        )?;
        parse_into(&set, "QUARRY_CHUNK_OVERLAP", &mut self.chunking.overlap)?;
        parse_into(&set, "QUARRY_MAX_FILE_BYTES", &mut self.sync.max_file_bytes)?;
        parse_into(&set, "QUARRY_MAX_PARSE_SECS", &mut self.sync.max_parse_secs)?;
        parse_into(&set, "QUARRY_MIN_FREE_BYTES", &mut self.sync.min_free_bytes)?;
        if let Some(v) = set("QUARRY_STORE") {
            self.store = StoreConfig::parse(&v)
                .map_err(|m| CoreError::Invalid(format!("QUARRY_STORE: {m}")))?;
        }
        for var in [
            "QUARRY_STORE_API_KEY",
            "QUARRY_STORE_SHARDS",
            "QUARRY_STORE_REPLICAS",
        ] {
            let Some(v) = set(var) else { continue };
            let StoreConfig::Server(c) = &mut self.store else {
                return Err(CoreError::Invalid(format!(
                    "{var} is set but the store is edge; set QUARRY_STORE to the server URL"
                )));
            };
            match var {
                "QUARRY_STORE_API_KEY" => c.api_key = Some(v),
                "QUARRY_STORE_SHARDS" => c.shards = Some(parse_env(var, &v)?),
                _ => c.replicas = Some(parse_env(var, &v)?),
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        retrieval::validate(
            &self.retrieval.fusion,
            self.retrieval.rerank.as_ref(),
            &self.retrieval.collections,
        )?;
        self.index.validate().map_err(CoreError::Invalid)?;
        let e = &self.embed;
        if e.max_batch_size == 0 || e.max_batch_tokens == 0 {
            return Err(CoreError::Invalid(
                "embed.max_batch_size and embed.max_batch_tokens must be at least 1".into(),
            ));
        }
        if e.bulk_queue == 0 || e.interactive_queue == 0 {
            return Err(CoreError::Invalid(
                "embed.bulk_queue and embed.interactive_queue must be at least 1".into(),
            ));
        }
        if self.chunking.max_tokens < 8 {
            return Err(CoreError::Invalid(
                "chunking.max_tokens must be at least 8".into(),
            ));
        }
        if self.chunking.overlap >= self.chunking.max_tokens {
            return Err(CoreError::Invalid(format!(
                "chunking.overlap ({}) must be smaller than chunking.max_tokens ({})",
                self.chunking.overlap, self.chunking.max_tokens
            )));
        }
        if !(self.sync.max_parse_secs.is_finite() && self.sync.max_parse_secs > 0.0) {
            return Err(CoreError::Invalid(format!(
                "sync.max_parse_secs ({}) must be a positive number of seconds",
                self.sync.max_parse_secs
            )));
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            crate::config::check_name("sources.name", s.name())?;
            crate::config::check_name("sources.collection", s.collection())?;
            if !names.insert(s.name()) {
                return Err(CoreError::Invalid(format!(
                    "source name {:?} is used twice",
                    s.name()
                )));
            }
        }
        if self.model.id.trim().is_empty() {
            return Err(CoreError::Invalid("model.id must not be empty".into()));
        }
        Ok(())
    }
}

/// Collection and source names become directory names and URL segments.
pub fn check_name(field: &'static str, name: &str) -> Result<()> {
    crate::name::check_name(field, name).map_err(|e| CoreError::Invalid(e.to_string()))
}

/// Sets `slot` from `var` when it is set and not empty.
fn parse_into<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    slot: &mut T,
) -> Result<()>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = get(var) {
        *slot = parse_env(var, &v)?;
    }
    Ok(())
}

fn parse_env<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| CoreError::Env {
        var,
        value: value.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named() {
        let err = Config::from_toml("[model]\nidd = \"x\"\n").unwrap_err();
        // The caret drawing stays under the line it points at.
        assert!(err.contains("\n2 | idd = \"x\"\n  | ^^^\n"), "{err}");
        assert!(err.contains("idd"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let mut c = Config::from_toml("data_dir = \"/a\"\n[model]\nid = \"m\"\n").unwrap();
        c.apply_env(|v| match v {
            "QUARRY_DATA_DIR" => Some("/b".into()),
            "QUARRY_MAX_BATCH_TOKENS" => Some("3".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/b"));
        assert_eq!(c.model.id, "m");
        assert_eq!(c.embed.max_batch_tokens, 3);
    }

    #[test]
    fn bad_env_value_is_named() {
        let mut c = Config::default();
        let err = c
            .apply_env(|v| (v == "QUARRY_MAX_BATCH_TOKENS").then(|| "many".into()))
            .unwrap_err();
        assert!(err.to_string().contains("QUARRY_MAX_BATCH_TOKENS"), "{err}");
    }

    #[test]
    fn the_store_is_edge_a_url_or_a_table_and_bad_values_name_the_fix() {
        assert_eq!(Config::default().store, StoreConfig::Edge);
        let c = Config::from_toml("store = \"http://q:6334\"").unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Server(ServerStoreConfig::new("http://q:6334"))
        );
        let c =
            Config::from_toml("store = { url = \"http://q:6334\", api_key = \"k\", shards = 3 }")
                .unwrap();
        let StoreConfig::Server(s) = &c.store else {
            panic!("{:?}", c.store)
        };
        assert_eq!(
            (s.api_key.as_deref(), s.shards, s.retry_secs),
            (Some("k"), Some(3), 120)
        );
        let err = Config::from_toml("store = \"qdrant\"").unwrap_err();
        assert!(err.contains("edge") && err.contains("6334"), "{err}");
        let err = Config::from_toml("store = { url = \"http://q\", shard = 3 }").unwrap_err();
        assert!(err.contains("store"), "{err}");

        let mut c = Config::default();
        c.apply_env(|v| match v {
            "QUARRY_STORE" => Some("http://h:6334".into()),
            "QUARRY_STORE_REPLICAS" => Some("2".into()),
            _ => None,
        })
        .unwrap();
        let StoreConfig::Server(s) = &c.store else {
            panic!("{:?}", c.store)
        };
        assert_eq!((s.url.as_str(), s.replicas), ("http://h:6334", Some(2)));
        let err = Config::default()
            .apply_env(|v| (v == "QUARRY_STORE_API_KEY").then(|| "k".into()))
            .unwrap_err();
        assert!(err.to_string().contains("QUARRY_STORE"), "{err}");
    }
}
