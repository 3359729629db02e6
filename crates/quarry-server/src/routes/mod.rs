//! One file per group of routes; each handler turns its request into the
//! service's types and the service's answer into JSON.

pub(crate) mod collections;
pub(crate) mod documents;
pub(crate) mod jobs;
pub(crate) mod openai;
pub(crate) mod rerank;
pub(crate) mod search;
pub(crate) mod status;

use std::sync::Arc;

use axum::extract::State;

use crate::AppState;

type St = State<Arc<AppState>>;
