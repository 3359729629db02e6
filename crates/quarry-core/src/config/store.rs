//! `store`: the embedded store or a Qdrant server.

use serde::{Deserialize, Serialize};

/// The vector store.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StoreConfig {
    /// qdrant-edge shards under `data_dir`: one machine, no server.
    #[default]
    Edge,
    Server(ServerStoreConfig),
}

/// A Qdrant server or cluster, reached over gRPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerStoreConfig {
    /// The gRPC endpoint, e.g. `http://localhost:6334`.
    pub url: String,
    /// Never written back out, like the API keys.
    #[serde(default, skip_serializing)]
    pub api_key: Option<String>,
    /// One request's timeout.
    #[serde(default = "default_store_timeout")]
    pub timeout_secs: u64,
    /// How long writes keep retrying (with backoff) while the server is
    /// unreachable, before the sync fails. Searches do not wait: they
    /// answer 503 at once, so callers see the outage.
    #[serde(default = "default_store_retry")]
    pub retry_secs: u64,
    /// Shards and replicas for new collections (a cluster); 1 and 1 by default.
    #[serde(default)]
    pub shards: Option<u32>,
    #[serde(default)]
    pub replicas: Option<u32>,
}

fn default_store_timeout() -> u64 {
    10
}

fn default_store_retry() -> u64 {
    120
}

impl ServerStoreConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            timeout_secs: default_store_timeout(),
            retry_secs: default_store_retry(),
            shards: None,
            replicas: None,
        }
    }
}

impl StoreConfig {
    /// `edge`, or a server URL (`http://` or `https://`).
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let v = value.trim();
        if v == "edge" {
            Ok(Self::Edge)
        } else if v.starts_with("http://") || v.starts_with("https://") {
            Ok(Self::Server(ServerStoreConfig::new(v)))
        } else {
            Err(format!(
                "store {value:?} is neither \"edge\" nor a Qdrant URL such as http://localhost:6334"
            ))
        }
    }
}

impl Serialize for StoreConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Edge => s.serialize_str("edge"),
            Self::Server(c) => c.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for StoreConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Server(ServerStoreConfig),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "store must be \"edge\", a URL, or { url = \"http://host:6334\", api_key = \"...\" }",
            )
        })? {
            Raw::Name(n) => Self::parse(&n).map_err(serde::de::Error::custom),
            Raw::Server(c) => Ok(Self::Server(c)),
        }
    }
}
