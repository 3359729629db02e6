//! Types shared by every Quarry crate.
//!
//! This crate sits at the bottom of the dependency graph (source → parse → chunk
//! → embed → store → retrieve), so it must stay small and free of heavy
//! dependencies: anything that pulls in Candle, Qdrant or axum belongs in the
//! crate that owns that concern. What lives here is the vocabulary the other
//! crates use to talk to each other: configuration and where Quarry keeps its
//! files.

pub mod config;
pub mod document;
pub mod paths;

pub use config::{ChunkingConfig, Config, EmbedConfig, ModelConfig, SourceConfig, SourceKind};
pub use document::{Chunk, ParsedDocument, PointId};

/// Errors from loading configuration or resolving Quarry's directories.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ParseConfig {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("invalid value for environment variable {var}={value:?}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error(
        "cannot find a home directory for Quarry's cache; set QUARRY_HOME to a writable directory"
    )]
    NoHome,
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
