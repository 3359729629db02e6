//! Model architectures, one file each, chosen by `config.json`'s
//! `model_type` as text-embeddings-inference does.
//!
//! An [`Architecture`] is what a model directory says it is; an
//! [`Encoder`] is the implementation that runs it: Quarry's own CPU
//! kernels where they cover the architecture ([`crate::fast`]), the
//! candle-transformers reference otherwise. A second model family, or a
//! cross-encoder head, is one new variant of each.

pub(crate) mod bert;

use std::path::Path;

use candle_core::Device;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use serde_json::Value;

use crate::layout::Pooling;
use crate::{EmbedError, Result};

/// What `config.json` describes.
#[derive(Debug, Clone)]
pub enum Architecture {
    /// `model_type = "bert"` (or a `Bert*` architecture with no type).
    Bert(candle_transformers::models::bert::Config),
}

impl Architecture {
    /// Reads `config.json`, refusing a family Quarry cannot run.
    pub fn read(path: &Path) -> Result<Self> {
        let raw: Value = crate::layout::read_json(path)?;
        let model_type = raw.get("model_type").and_then(Value::as_str).unwrap_or("");
        let archs: Vec<String> = raw
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        match model_type {
            // RoBERTa and XLM-RoBERTa (bge-reranker-base) are BERT with
            // offset positions; see [`position_offset`].
            "bert" | "roberta" | "xlm-roberta" => Ok(Self::Bert(bert::read_config(path, raw)?)),
            "" if archs.iter().any(|a| a.starts_with("Bert")) => {
                Ok(Self::Bert(bert::read_config(path, raw)?))
            }
            _ => Err(EmbedError::ModelFile {
                path: path.to_path_buf(),
                message: format!(
                    "unsupported architecture (model_type {model_type:?}, architectures {archs:?}); \
                     Quarry loads BERT-family models (MiniLM, BGE, E5, GTE, XLM-RoBERTa)"
                ),
            }),
        }
    }

    /// The `model_type` it was read as.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bert(_) => "bert",
        }
    }

    /// The embedding dimension.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Bert(c) => c.hidden_size,
        }
    }

    pub fn max_position_embeddings(&self) -> usize {
        match self {
            Self::Bert(c) => c.max_position_embeddings,
        }
    }

    pub fn pad_token_id(&self) -> u32 {
        match self {
            Self::Bert(c) => c.pad_token_id as u32,
        }
    }

    /// The BERT hyperparameters (every architecture so far is BERT).
    pub fn bert(&self) -> &candle_transformers::models::bert::Config {
        match self {
            Self::Bert(c) => c,
        }
    }
}

/// Where a model's positions start. RoBERTa's position ids count from
/// `pad_token_id + 1` (HF's `create_position_ids_from_input_ids`, for
/// unpadded input), so the rows before are never used.
pub(crate) fn position_offset(config: &candle_transformers::models::bert::Config) -> usize {
    match config.model_type.as_deref() {
        Some("roberta" | "xlm-roberta") => config.pad_token_id + 1,
        _ => 0,
    }
}

/// How a batch is laid out and pooled, whichever encoder runs it.
#[derive(Debug, Clone)]
pub(crate) struct Pass {
    pub pooling: Pooling,
    pub normalize: bool,
    pub pad_id: u32,
    pub device: Device,
}

/// The implementation that runs the network.
pub(crate) enum Encoder {
    /// [`crate::fast`]: unpadded batches, fused kernels.
    Fast(crate::fast::FastBert),
    /// candle-transformers' BERT, the reference implementation.
    Candle(BertModel),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Encoder {
    /// The fast encoder when asked for and able to run the architecture,
    /// the reference otherwise.
    pub(crate) fn load(
        architecture: &Architecture,
        vb: VarBuilder<'_>,
        fast: bool,
        bf16: bool,
    ) -> candle_core::Result<Self> {
        let Architecture::Bert(config) = architecture;
        if fast && let Some(f) = crate::fast::FastBert::load(vb.clone(), config, bf16)? {
            return Ok(Self::Fast(f));
        }
        if position_offset(config) > 0 {
            // candle-transformers' BERT counts positions from 0.
            return Err(candle_core::Error::Msg(
                "the reference engine does not run RoBERTa-family models; unset \
                 QUARRY_ENGINE=candle to use the fast one"
                    .into(),
            ));
        }
        Ok(Self::Candle(BertModel::load(vb, config)?))
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Fast(_) => "fast",
            Self::Candle(_) => "candle",
        }
    }

    pub(crate) fn kernels(&self) -> &'static str {
        match self {
            Self::Fast(f) => f.kernels(),
            Self::Candle(_) => "candle",
        }
    }

    pub(crate) fn is_bf16(&self) -> bool {
        matches!(self, Self::Fast(f) if f.is_bf16())
    }

    /// Pooled vectors; with `segments`, sequence `i`'s tokens from
    /// `segments[i]` on are token type 1 (a cross-encoder's second text).
    pub(crate) fn forward(
        &self,
        batch: &[&[u32]],
        segments: Option<&[usize]>,
        pass: &Pass,
        pause: Option<&dyn Fn()>,
    ) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Fast(f) => Ok(f.embed(batch, segments, pass.pooling, pass.normalize, pause)),
            Self::Candle(model) => bert::forward(model, batch, segments, pass),
        }
    }
}
