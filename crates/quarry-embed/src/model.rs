//! A loaded model: the tokenizer side, which callers use on their own threads,
//! and the network, which only the embedder's owner thread runs.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::cross::ClassifierHead;
use crate::fetch::Manifest;
use crate::layout::{ModelLayout, Pooling};
use crate::models::{Encoder, Pass};
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

pub use quarry_core::config::Precision;

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
    /// For a pair (a cross-encoder's query and passage): where the second
    /// text's tokens, token type 1, begin.
    pub second: Option<usize>,
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
            second: None,
        })
    }

    /// A query and a passage as one input, with the tokenizer's pair
    /// template (`[CLS] q [SEP] p [SEP]`) and longest-first truncation,
    /// exactly as the tokenizer sentence-transformers calls does.
    /// An empty passage is still a pair (`[CLS] q [SEP] [SEP]`), as
    /// sentence-transformers 6 encodes it.
    pub(crate) fn tokenize_pair(&self, query: &str, text: &str) -> Result<TokenizedInput> {
        let enc = self
            .tokenizer
            .encode_fast((query, text), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let types = enc.get_type_ids();
        Ok(TokenizedInput {
            truncated: !enc.get_overflowing().is_empty(),
            second: Some(types.iter().position(|&t| t != 0).unwrap_or(types.len())),
            ids: enc.get_ids().to_vec(),
        })
    }

    /// Token ids a caller tokenized itself (as OpenAI's API accepts them),
    /// without special tokens: truncated and wrapped in the model's special
    /// tokens exactly as text would be. An id outside the vocabulary would
    /// index past the embedding table, so it is refused here.
    pub(crate) fn wrap_ids(&self, ids: &[u32]) -> Result<TokenizedInput> {
        let vocab = self.tokenizer.get_vocab_size(true);
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(EmbedError::Tokenizer(format!(
                "token id {bad} is outside the model's vocabulary of {vocab} tokens"
            )));
        }
        let tokens = ids
            .iter()
            .map(|&id| {
                let value = self.tokenizer.id_to_token(id).unwrap_or_default();
                tokenizers::Token::new(id, value, (0, 0))
            })
            .collect();
        let enc = self
            .tokenizer
            .post_process(tokenizers::Encoding::from_tokens(tokens, 0), None, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(TokenizedInput {
            truncated: !enc.get_overflowing().is_empty(),
            ids: enc.get_ids().to_vec(),
            second: None,
        })
    }
}

/// The network and pooling; owned by exactly one thread at a time.
#[derive(Debug)]
pub(crate) struct Network {
    encoder: Encoder,
    pass: Pass,
    /// A cross-encoder's classifier, fed the first token's hidden state.
    head: Option<ClassifierHead>,
}

impl Network {
    /// Embeds a batch of token id sequences (a cross-encoder: their
    /// logits); an input's output does not depend on its batch-mates.
    /// `segments` gives where each pair's second text begins.
    pub(crate) fn forward(
        &self,
        batch: &[&[u32]],
        segments: Option<&[usize]>,
    ) -> Result<Vec<Vec<f32>>> {
        self.forward_pausing(batch, segments, None)
    }

    /// [`Self::forward`], calling `pause` between encoder layers (the fast
    /// encoder only), where the worker runs waiting queries.
    pub(crate) fn forward_pausing(
        &self,
        batch: &[&[u32]],
        segments: Option<&[usize]>,
        pause: Option<&dyn Fn()>,
    ) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.encoder.forward(batch, segments, &self.pass, pause)?;
        Ok(match &self.head {
            Some(head) => out.iter().map(|cls| head.logits(cls)).collect(),
            None => out,
        })
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
            .unwrap_or(layout.architecture.pad_token_id());

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
        let bf16 = options.precision == Precision::Bf16 && crate::fast::bf16::supported();
        if engine == Engine::Fast && options.precision == Precision::Bf16 && !bf16 {
            tracing::warn!("this CPU has no AVX-512 BF16; embedding in f32 instead");
        }
        let head = match &layout.cross_encoder {
            Some(cross) => Some(
                ClassifierHead::load(&vb, layout.architecture.hidden_size(), cross.labels)
                    .map_err(|e| EmbedError::ModelFile {
                        path: weights.clone(),
                        message: e.to_string(),
                    })?,
            ),
            None => None,
        };
        let encoder = Encoder::load(&layout.architecture, vb, engine == Engine::Fast, bf16)
            .map_err(weights_err)?;

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
            dimension: layout.architecture.hidden_size(),
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
            encoder,
            head,
            pass: Pass {
                pooling: layout.pooling,
                normalize: layout.normalize,
                pad_id,
                device,
            },
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
        if self.net.encoder.is_bf16() {
            "bf16"
        } else {
            "f32"
        }
    }

    /// The kernels its dense layers run on: `"amx"`, `"avx512-bf16"`,
    /// `"avx512"`, `"avx2"`, `"gemm"` (the fast encoder) or `"candle"`.
    pub fn kernels(&self) -> &'static str {
        self.net.encoder.kernels()
    }

    /// The encoder that runs: `"fast"` or `"candle"`.
    pub fn engine(&self) -> &'static str {
        self.net.encoder.name()
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
        self.net.forward(batch, None)
    }

    /// Set for a cross-encoder (a reranker).
    pub fn cross_encoder(&self) -> Option<&crate::cross::CrossEncoderLayout> {
        self.layout.cross_encoder.as_ref()
    }

    /// A cross-encoder's logits for (query, text) pairs in one forward
    /// pass, bypassing the queue.
    pub fn forward_pairs(&self, query: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let inputs = texts
            .iter()
            .map(|t| self.text.tokenize_pair(query, t))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<&[u32]> = inputs.iter().map(|i| i.ids.as_slice()).collect();
        let typed = self.cross_encoder().is_some_and(|c| c.token_types);
        let segments: Vec<usize> = inputs
            .iter()
            .map(|i| i.second.filter(|_| typed).unwrap_or(i.ids.len()))
            .collect();
        self.net.forward(&ids, Some(&segments))
    }
}
