//! A loaded model: the tokenizer side, which callers use on their own threads,
//! and the network, which only the embedder's owner thread runs.

use std::path::Path;
use std::sync::Arc;

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::fetch::Manifest;
use crate::layout::{ModelLayout, Pooling};
use crate::{EmbedError, Result};

/// What identifies the vector space a model produces. Two indexes can only be
/// mixed when every field matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    pub model_id: String,
    pub weights_sha256: String,
    pub dimension: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
}

/// Options that change what a model produces, beyond its files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The id recorded in the fingerprint; defaults to the directory name.
    pub model_id: Option<String>,
    pub query_prefix: Option<String>,
    pub passage_prefix: Option<String>,
    /// Lower the truncation length below the model's own.
    pub max_seq_length: Option<usize>,
    pub engine: Engine,
    pub precision: Precision,
}

/// Arithmetic of the encoder's dense layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 throughout: matches sentence-transformers to cosine ≥ 0.99999.
    #[default]
    F32,
    /// bf16 inputs with f32 accumulation (AVX-512 BF16) in the dense layers
    /// and the attention products; softmax, LayerNorm and GELU stay f32.
    /// Where the CPU lacks the instructions, f32 runs instead.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" | "fp32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!("unknown precision {other:?}; use f32 or bf16")),
        }
    }
}

/// Which implementation of the encoder runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// The fast CPU encoder where it supports the architecture, unless
    /// `QUARRY_ENGINE=candle` asks for the reference.
    #[default]
    Auto,
    /// [`crate::fast`]: unpadded batches, fused kernels.
    Fast,
    /// candle-transformers' BERT, the reference implementation.
    Candle,
}

/// Token ids of one input, after prefixing and truncation.
#[derive(Debug, Clone)]
pub struct TokenizedInput {
    pub ids: Vec<u32>,
    /// The input was longer than `max_seq_length` and was cut.
    pub truncated: bool,
}

/// The tokenizer with the model's truncation and prompts.
#[derive(Debug)]
pub(crate) struct TextSide {
    tokenizer: Tokenizer,
    pub(crate) query_prefix: Option<String>,
    pub(crate) passage_prefix: Option<String>,
}

impl TextSide {
    pub(crate) fn tokenize(&self, text: &str, prefix: Option<&str>) -> Result<TokenizedInput> {
        let prefixed;
        let input = match prefix {
            Some(p) => {
                prefixed = format!("{p}{text}");
                prefixed.as_str()
            }
            None => text,
        };
        let enc = self
            .tokenizer
            .encode_fast(input, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(TokenizedInput {
            truncated: !enc.get_overflowing().is_empty(),
            ids: enc.get_ids().to_vec(),
        })
    }
}

/// The network and pooling; owned by exactly one thread at a time.
pub(crate) struct Network {
    bert: Option<BertModel>,
    fast: Option<crate::fast::FastBert>,
    pooling: Pooling,
    normalize: bool,
    pad_id: u32,
    device: Device,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .finish()
    }
}

impl Network {
    /// Embeds a batch of token id sequences. Sequences are right-padded to the
    /// longest; the attention mask keeps padding out of attention and pooling,
    /// so a text's vector does not depend on its batch-mates.
    pub(crate) fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(fast) = &self.fast {
            return Ok(fast.embed(batch, self.pooling, self.normalize));
        }
        let Some(bert) = &self.bert else {
            return Err(EmbedError::Tokenizer("no encoder loaded".into()));
        };
        let len = batch.iter().map(|ids| ids.len()).max().unwrap_or(0).max(1);
        let n = batch.len();
        let mut ids = vec![self.pad_id; n * len];
        let mut mask = vec![0f32; n * len];
        for (row, seq) in batch.iter().enumerate() {
            ids[row * len..row * len + seq.len()].copy_from_slice(seq);
            mask[row * len..row * len + seq.len()].fill(1.0);
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = bert.forward(&ids, &types, Some(&mask))?;
        let mask3 = mask.unsqueeze(2)?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.i((.., 0))?,
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let sum = hidden.broadcast_mul(&mask3)?.sum(1)?;
                let count = mask3.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                let count = if self.pooling == Pooling::MeanSqrtLen {
                    count.sqrt()?
                } else {
                    count
                };
                sum.broadcast_div(&count)?
            }
            Pooling::Max => {
                // Padding gets -1e9, as sentence-transformers does, so it never wins the max.
                let penalty = ((mask3 - 1.0)? * 1e9)?;
                hidden.broadcast_add(&penalty)?.max(1)?
            }
        };
        let pooled = if self.normalize {
            let norm = pooled
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            pooled.broadcast_div(&norm)?
        } else {
            pooled
        };
        Ok(pooled.to_dtype(DType::F32)?.to_vec2()?)
    }
}

/// A model loaded from a sentence-transformers directory.
#[derive(Debug)]
pub struct Model {
    pub(crate) text: Arc<TextSide>,
    pub(crate) net: Network,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) layout: ModelLayout,
}

impl Model {
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Self> {
        let layout = ModelLayout::read(dir)?;
        let max_seq_length = match options.max_seq_length {
            Some(n) if n >= 2 && n <= layout.max_seq_length => n,
            Some(n) => {
                return Err(EmbedError::Fetch(format!(
                    "max_seq_length {n} is out of range: it must be between 2 and the model's own {}",
                    layout.max_seq_length
                )));
            }
            None => layout.max_seq_length,
        };

        let tok_path = dir.join("tokenizer.json");
        let tok_err = |e: Box<dyn std::error::Error + Send + Sync>| EmbedError::ModelFile {
            path: tok_path.clone(),
            message: format!("cannot load tokenizer: {e}"),
        };
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(tok_err)?;
        // tokenizer.json often carries its own fixed padding and a shorter
        // truncation (128 for all-MiniLM-L6-v2); sentence-transformers
        // overrides both, and so must we.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(tok_err)?;
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .unwrap_or(layout.bert.pad_token_id as u32);

        let weights = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).map_err(crate::io_err(&weights))?;
        let weights_sha256 = match Manifest::read(dir) {
            Some(m) => m.weights_sha256,
            None => hex::encode(Sha256::digest(&bytes)),
        };
        let device = Device::Cpu;
        let weights_err = |e: candle_core::Error| EmbedError::ModelFile {
            path: weights.clone(),
            message: format!("cannot load BERT weights: {e}"),
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(weights_err)?;
        let engine = match options.engine {
            Engine::Auto if std::env::var("QUARRY_ENGINE").is_ok_and(|v| v == "candle") => {
                Engine::Candle
            }
            Engine::Auto => Engine::Fast,
            e => e,
        };
        let fast = match engine {
            Engine::Fast => {
                let bf16 = options.precision == Precision::Bf16 && crate::fast::bf16::supported();
                if options.precision == Precision::Bf16 && !bf16 {
                    tracing::warn!("this CPU has no AVX-512 BF16; embedding in f32 instead");
                }
                crate::fast::FastBert::load(vb.clone(), &layout.bert, bf16).map_err(weights_err)?
            }
            _ => None,
        };
        let bert = match fast {
            Some(_) => None,
            None => Some(BertModel::load(vb, &layout.bert).map_err(weights_err)?),
        };

        let model_id = options.model_id.clone().unwrap_or_else(|| {
            Manifest::read(dir).map(|m| m.model_id).unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
        });
        let fingerprint = Fingerprint {
            model_id,
            weights_sha256,
            dimension: layout.bert.hidden_size,
            pooling: layout.pooling,
            normalize: layout.normalize,
            max_seq_length,
        };
        let text = TextSide {
            tokenizer,
            query_prefix: options
                .query_prefix
                .clone()
                .or_else(|| layout.query_prompt.clone()),
            passage_prefix: options
                .passage_prefix
                .clone()
                .or_else(|| layout.passage_prompt.clone()),
        };
        let net = Network {
            bert,
            fast,
            pooling: layout.pooling,
            normalize: layout.normalize,
            pad_id,
            device,
        };
        Ok(Self {
            text: Arc::new(text),
            net,
            fingerprint,
            layout,
        })
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The precision that runs: `"bf16"` only when asked for and supported.
    pub fn precision(&self) -> &'static str {
        match &self.net.fast {
            Some(f) if f.is_bf16() => "bf16",
            _ => "f32",
        }
    }

    /// The encoder that runs: `"fast"` or `"candle"`.
    pub fn engine(&self) -> &'static str {
        if self.net.fast.is_some() {
            "fast"
        } else {
            "candle"
        }
    }

    pub fn layout(&self) -> &ModelLayout {
        &self.layout
    }

    /// Tokenizes without any prefix.
    pub fn tokenize(&self, text: &str) -> Result<TokenizedInput> {
        self.text.tokenize(text, None)
    }

    /// Embeds token id sequences in one forward pass, bypassing the queue:
    /// for tests and benchmarks that need the raw model.
    pub fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        self.net.forward(batch)
    }
}
