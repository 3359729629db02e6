//! Retrieval evaluation on the production query path.
//!
//! Quality numbers are only worth gating on if they describe what users
//! get, so this crate never scores a private copy of the pipeline: queries
//! go through the same [`quarry_engine::Retriever`] the server calls (or
//! through a running server over HTTP), against an index built by the
//! normal sync path. What it adds is the bookkeeping around that:
//!
//! - [`dataset`]: BEIR-format datasets, with every suspicious line reported
//!   by file and line rather than dropped;
//! - [`metrics`]: nDCG, recall, MRR, MAP and precision with `trec_eval`'s
//!   exact semantics, checked against `pytrec_eval` in the tests;
//! - [`stats`]: a seeded paired randomisation test, so a gate can tell a
//!   real regression from a few queries flipping;
//! - [`report`] and [`html`]: the run directory (JSON, TREC run files,
//!   Markdown, a script-free HTML report);
//! - [`compare`]: per-metric deltas and the baseline gate.

pub mod compare;
pub mod dataset;
pub mod html;
pub mod metrics;
pub mod report;
pub mod run;
pub mod stats;

use std::path::PathBuf;

pub use dataset::{Dataset, Issue, Query};
pub use report::{Evaluation, Summary};
pub use run::{Backend, ModeRun};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}{}: {message}", path.display(), line.map(|n| format!(":{n}")).unwrap_or_default())]
    Dataset {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the corpus: {0}")]
    Ingest(#[from] quarry_ingest::IngestError),
    #[error(transparent)]
    Engine(#[from] quarry_engine::EngineError),
    #[error("query {id:?}: {message}")]
    Query { id: String, message: String },
    #[error("{0}")]
    Backend(String),
    #[error("writing the report: {0}")]
    Report(String),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
