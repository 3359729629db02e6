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
pub mod name;
pub mod paths;
pub mod payload;

pub use config::{ChunkingConfig, Config, EmbedConfig, ModelConfig, SourceConfig};
pub use document::{Chunk, ParsedDocument, PointId};
pub use name::{CollectionName, NameError};
pub use payload::ChunkPayload;

/// For tests that cannot run on this machine (no Qdrant server, no AVX-512
/// BF16): says so, and appends the test's name to the file named by
/// `QUARRY_TEST_SKIPS`, so `scripts/test.sh` reports them as skipped rather
/// than passed. It lives here because every test crate depends on this one.
#[doc(hidden)]
pub fn skip_test(reason: &str) {
    use std::io::Write;
    eprintln!("skipped: {reason}");
    let Some(path) = std::env::var_os("QUARRY_TEST_SKIPS") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path);
    // One write per line, so parallel tests do not interleave.
    let _ = file.and_then(|mut f| f.write_all(format!("{test}\t{reason}\n").as_bytes()));
}

/// Errors from loading configuration or resolving Quarry's directories.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}:\n{message}")]
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
