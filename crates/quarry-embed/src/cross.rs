//! Cross-encoders (rerankers): a BERT-family encoder with a
//! sequence-classification head, scoring a query and a passage read
//! together as one input, as sentence-transformers' `CrossEncoder` does.
//!
//! A cross-encoder directory's `config.json` says what it is
//! (`*ForSequenceClassification`) and how many labels it has; the
//! activation `predict` applies is in `config_sentence_transformers.json`
//! (sentence-transformers 6, which also writes a `modules.json` of one
//! Transformer module) or in `config.json` (4 and 5, with no
//! `modules.json`).
//! Everything else is an embedding model's: the same encoder, the same
//! worker (a pair is one input whose second text is token type 1), and
//! the first token's hidden state feeds the head instead of pooling.
//!
//! The head has the same shape in both families that ship rerankers, so it
//! is one type: BERT's pooler (`bert.pooler.dense`, tanh) then `classifier`
//! (ms-marco-MiniLM), or RoBERTa's `classifier.dense` (tanh) then
//! `classifier.out_proj` (bge-reranker).

use std::path::Path;

use candle_nn::VarBuilder;
use serde::Serialize;
use serde_json::Value;

use crate::models::Architecture;
use crate::{EmbedError, Embedder, Priority, Result};

/// What `predict` applies to the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Sigmoid,
    Identity,
}

impl Activation {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Self::Identity => x,
        }
    }
}

/// How a cross-encoder scores, from its `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossEncoderLayout {
    /// Outputs per pair; a reranker has one.
    pub labels: usize,
    pub activation: Activation,
    /// Tokens of query and passage together, after truncation (longest
    /// first, as the tokenizer's `truncation=True` does).
    pub max_length: usize,
    /// Whether the passage is token type 1. transformers passes token
    /// types only where the tokenizer lists `token_type_ids` among its
    /// `model_input_names` (BERT's tokenizers do by default); otherwise
    /// the model sees type 0 throughout.
    pub token_types: bool,
}

impl CrossEncoderLayout {
    /// `None` when `config.json` does not describe a sequence classifier.
    pub(crate) fn read(dir: &Path, architecture: &Architecture) -> Result<Option<Self>> {
        let path = dir.join("config.json");
        let raw: Value = crate::layout::read_json(&path)?;
        let is_classifier = raw
            .get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .any(|a| a.ends_with("ForSequenceClassification"))
            });
        if !is_classifier {
            return Ok(None);
        }
        let bad = |message: String| EmbedError::ModelFile {
            path: path.clone(),
            message,
        };
        // transformers' own rule: `num_labels`, else `id2label`, else 2.
        let labels = match raw.get("num_labels").and_then(Value::as_u64) {
            Some(n) => n as usize,
            None => raw
                .get("id2label")
                .and_then(Value::as_object)
                .map_or(2, |m| m.len()),
        };
        if labels == 0 {
            return Err(bad("a sequence classifier needs at least one label".into()));
        }
        // sentence-transformers 6 keeps it in its own config file; 4 and 5
        // in config.json; before that under another name.
        let st: Value = crate::layout::read_json(&dir.join("config_sentence_transformers.json"))
            .unwrap_or_default();
        let named = st
            .get("activation_fn")
            .or_else(|| raw.pointer("/sentence_transformers/activation_fn"))
            .or_else(|| raw.get("sbert_ce_default_activation_function"))
            .and_then(Value::as_str);
        let activation = match named {
            None if labels == 1 => Activation::Sigmoid,
            None => Activation::Identity,
            Some(name) if name.ends_with("Sigmoid") => Activation::Sigmoid,
            Some(name) if name.ends_with("Identity") => Activation::Identity,
            Some(other) => {
                return Err(bad(format!(
                    "activation_fn {other:?} is not supported; Quarry applies Sigmoid or Identity"
                )));
            }
        };
        let config = architecture.bert();
        let room = config
            .max_position_embeddings
            .saturating_sub(crate::models::position_offset(config));
        // The tokenizer's `model_max_length` is what `truncation=True`
        // cuts at; transformers writes a huge sentinel when it has none.
        let tokenizer_config: Value =
            crate::layout::read_json(&dir.join("tokenizer_config.json")).unwrap_or_default();
        let token_types = config.type_vocab_size > 1
            && match tokenizer_config
                .get("model_input_names")
                .and_then(Value::as_array)
            {
                Some(names) => names.iter().any(|n| n == "token_type_ids"),
                None => tokenizer_config
                    .get("tokenizer_class")
                    .and_then(Value::as_str)
                    .is_none_or(|c| c.starts_with("Bert")),
            };
        let tokenizer_limit = tokenizer_config
            .get("model_max_length")
            .and_then(Value::as_f64)
            .filter(|n| (2.0..1e9).contains(n))
            .map(|n| n as usize);
        let max_length = tokenizer_limit.map_or(room, |n| n.min(room));
        Ok(Some(Self {
            labels,
            activation,
            max_length,
            token_types,
        }))
    }
}

/// The classification head over the first token's hidden state.
#[derive(Debug)]
pub(crate) struct ClassifierHead {
    hidden: usize,
    labels: usize,
    /// `[hidden, hidden]`, row-major by output.
    pool_w: Vec<f32>,
    pool_b: Vec<f32>,
    /// `[labels, hidden]`.
    out_w: Vec<f32>,
    out_b: Vec<f32>,
}

fn vector(vb: &VarBuilder<'_>, shape: &[usize], name: &str) -> candle_core::Result<Vec<f32>> {
    vb.get(shape, name)?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()
}

impl ClassifierHead {
    pub(crate) fn load(vb: &VarBuilder<'_>, hidden: usize, labels: usize) -> Result<Self> {
        let (pool, out) = if vb.contains_tensor("classifier.dense.weight") {
            (vb.pp("classifier.dense"), vb.pp("classifier.out_proj"))
        } else if vb.contains_tensor("bert.pooler.dense.weight") {
            (vb.pp("bert.pooler.dense"), vb.pp("classifier"))
        } else if vb.contains_tensor("pooler.dense.weight") {
            (vb.pp("pooler.dense"), vb.pp("classifier"))
        } else {
            return Err(EmbedError::Unsupported(
                "the classifier has neither a BERT pooler (bert.pooler.dense) nor a RoBERTa \
                 head (classifier.dense); Quarry runs those two cross-encoder heads"
                    .into(),
            ));
        };
        let load = || -> candle_core::Result<Self> {
            Ok(Self {
                hidden,
                labels,
                pool_w: vector(&pool, &[hidden, hidden], "weight")?,
                pool_b: vector(&pool, &[hidden], "bias")?,
                out_w: vector(&out, &[labels, hidden], "weight")?,
                out_b: vector(&out, &[labels], "bias")?,
            })
        };
        load().map_err(|e| EmbedError::Unsupported(format!("cannot load the classifier: {e}")))
    }

    /// Logits from one first-token hidden state.
    pub(crate) fn logits(&self, cls: &[f32]) -> Vec<f32> {
        let h = self.hidden;
        let dot = |w: &[f32], x: &[f32]| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>();
        let pooled: Vec<f32> = (0..h)
            .map(|o| (self.pool_b[o] + dot(&self.pool_w[o * h..(o + 1) * h], cls)).tanh())
            .collect();
        (0..self.labels)
            .map(|l| self.out_b[l] + dot(&self.out_w[l * h..(l + 1) * h], &pooled))
            .collect()
    }
}

/// One pair's cross-encoder score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    pub score: f32,
    /// Tokens of the pair fed to the model, special tokens included.
    pub tokens: usize,
    /// The pair was longer than the model's limit and was cut.
    pub truncated: bool,
}

impl Embedder {
    /// Scores each text against `query` with a cross-encoder, in order:
    /// through the model's activation (sigmoid for one label, as
    /// sentence-transformers' `CrossEncoder.predict`) unless `raw`. Pairs
    /// are inputs to the same queue as embeddings, at `priority`.
    pub async fn rerank<S: AsRef<str>>(
        &self,
        query: &str,
        texts: &[S],
        raw: bool,
        priority: Priority,
    ) -> Result<Vec<Scored>> {
        let model = &self.fingerprint.model_id;
        let Some(cross) = self.cross.as_deref() else {
            return Err(EmbedError::Unsupported(format!(
                "model {model} is an embedding model, not a cross-encoder; rerank with a \
                 sequence-classification model such as cross-encoder/ms-marco-MiniLM-L-6-v2"
            )));
        };
        if cross.labels != 1 {
            return Err(EmbedError::Unsupported(format!(
                "model {model} has {} labels; a reranker has one score per pair",
                cross.labels
            )));
        }
        let mut inputs = Vec::with_capacity(texts.len());
        for text in texts {
            let mut input = self.text.tokenize_pair(query, text.as_ref())?;
            if !cross.token_types {
                input.second = None;
            }
            inputs.push(input);
        }
        let out = self.run_inputs(inputs, priority).await?;
        Ok(out
            .into_iter()
            .map(|e| {
                let logit = e.embedding.first().copied().unwrap_or(f32::NAN);
                Scored {
                    score: if raw {
                        logit
                    } else {
                        cross.activation.apply(logit)
                    },
                    tokens: e.tokens,
                    truncated: e.truncated,
                }
            })
            .collect())
    }
}
