//! The sentence-transformers layout around a transformer checkpoint.
//!
//! sentence-transformers does not store "how to embed" in one place: the
//! pipeline is `modules.json`, the pooling is `1_Pooling/config.json`, the
//! truncation length is `sentence_bert_config.json` (not the tokenizer's own
//! `truncation`, which often says 128 or 512), and prompts are in
//! `config_sentence_transformers.json`. Getting any of these wrong still
//! produces vectors, just different ones, so every file is read strictly and
//! errors name the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::{EmbedError, Result};

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
        })
    }
}

/// Everything needed to reproduce sentence-transformers' `encode` for one
/// model directory.
#[derive(Debug, Clone)]
pub struct ModelLayout {
    pub dir: PathBuf,
    /// The encoder's architecture and hyperparameters, from `config.json`.
    pub architecture: crate::models::Architecture,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    pub query_prompt: Option<String>,
    pub passage_prompt: Option<String>,
    /// Set for a cross-encoder (a reranker): it scores pairs through a
    /// classifier on the first token instead of pooling a vector.
    pub cross_encoder: Option<crate::cross::CrossEncoderLayout>,
}

/// Files every model needs; the pooling folder comes from `modules.json`.
pub const REQUIRED_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "modules.json",
];
/// A cross-encoder's: no `modules.json`, no pooling.
pub const CROSS_ENCODER_FILES: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];
/// Files read when present.
pub const OPTIONAL_FILES: &[&str] = &[
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

impl ModelLayout {
    pub fn read(dir: &Path) -> Result<Self> {
        if let Some(layout) = Self::read_cross_encoder(dir)? {
            return Ok(layout);
        }
        for name in REQUIRED_FILES {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(EmbedError::ModelFile {
                    path,
                    message: "missing; the model directory is incomplete (fetch it again with \
                              `quarry model fetch --force`)"
                        .into(),
                });
            }
        }
        let architecture = crate::models::Architecture::read(&dir.join("config.json"))?;
        let modules_path = dir.join("modules.json");
        let modules: Vec<Module> = read_json(&modules_path)?;
        let (pooling_dir, normalize) = read_modules(&modules_path, &modules)?;
        let pooling = read_pooling(
            &dir.join(&pooling_dir).join("config.json"),
            architecture.hidden_size(),
        )?;

        let st_path = dir.join("sentence_bert_config.json");
        let st: Value = if st_path.is_file() {
            read_json(&st_path)?
        } else {
            Value::Null
        };
        let max_seq_length = match st.get("max_seq_length") {
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .ok_or_else(|| EmbedError::ModelFile {
                    path: st_path.clone(),
                    message: format!("max_seq_length must be a positive integer, found {v}"),
                })? as usize,
            None => architecture.max_position_embeddings(),
        };
        if max_seq_length > architecture.max_position_embeddings() {
            return Err(EmbedError::ModelFile {
                path: st_path,
                message: format!(
                    "max_seq_length {max_seq_length} exceeds the model's max_position_embeddings {} \
                     in config.json",
                    architecture.max_position_embeddings()
                ),
            });
        }

        let prompts_path = dir.join("config_sentence_transformers.json");
        let prompts: Value = if prompts_path.is_file() {
            read_json(&prompts_path)?
        } else {
            Value::Null
        };
        let prompt = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| prompts.get("prompts")?.get(*k)?.as_str())
                .filter(|p| !p.is_empty())
                .map(str::to_string)
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            architecture,
            pooling,
            normalize,
            max_seq_length,
            query_prompt: prompt(&["query"]),
            passage_prompt: prompt(&["passage", "document", "corpus"]),
            cross_encoder: None,
        })
    }

    /// A cross-encoder directory: `None` when `config.json` is not a
    /// sequence classifier's. Two layouts are in use: before
    /// sentence-transformers 6, no `modules.json` at all; from 6 on, a
    /// `modules.json` whose only module is the Transformer.
    fn read_cross_encoder(dir: &Path) -> Result<Option<Self>> {
        for name in CROSS_ENCODER_FILES {
            if !dir.join(name).is_file() {
                return Ok(None);
            }
        }
        let modules_path = dir.join("modules.json");
        if modules_path.is_file() {
            let modules: Vec<Module> = read_json(&modules_path)?;
            if !lone_transformer(&modules) {
                return Ok(None);
            }
        }
        let architecture = crate::models::Architecture::read(&dir.join("config.json"))?;
        let Some(cross) = crate::cross::CrossEncoderLayout::read(dir, &architecture)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            dir: dir.to_path_buf(),
            max_seq_length: cross.max_length,
            architecture,
            pooling: Pooling::Cls,
            normalize: false,
            query_prompt: None,
            passage_prompt: None,
            cross_encoder: Some(cross),
        }))
    }

    /// The folders named in `modules.json` that hold files (the pooling
    /// config), so fetchers know what to download besides the fixed files.
    pub fn module_files(modules_json: &Path) -> Result<Vec<String>> {
        let modules: Vec<Module> = read_json(modules_json)?;
        if lone_transformer(&modules) {
            // A cross-encoder (sentence-transformers 6): nothing to pool.
            return Ok(Vec::new());
        }
        let (pooling_dir, _) = read_modules(modules_json, &modules)?;
        Ok(vec![format!("{pooling_dir}/config.json")])
    }
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(crate::io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|e| EmbedError::ModelFile {
        path: path.to_path_buf(),
        message: format!("invalid JSON: {e}"),
    })
}

/// A pipeline of one Transformer module at the model's root: how
/// sentence-transformers 6 saves a cross-encoder.
fn lone_transformer(modules: &[Module]) -> bool {
    matches!(modules, [m] if m.kind.ends_with(".Transformer") && m.path.is_empty())
}

/// Returns the pooling folder and whether a Normalize module follows.
fn read_modules(path: &Path, modules: &[Module]) -> Result<(String, bool)> {
    let bad = |message: String| EmbedError::ModelFile {
        path: path.to_path_buf(),
        message,
    };
    let short = |m: &Module| m.kind.rsplit('.').next().unwrap_or("").to_string();
    let kinds: Vec<String> = modules.iter().map(short).collect();
    match kinds.first().map(String::as_str) {
        Some("Transformer") => {}
        _ => {
            return Err(bad(format!(
                "the first module must be a Transformer, found {kinds:?}"
            )));
        }
    }
    let mut pooling = None;
    let mut normalize = false;
    for (module, kind) in modules.iter().zip(&kinds).skip(1) {
        match kind.as_str() {
            "Pooling" if pooling.is_none() && !normalize => pooling = Some(module.path.clone()),
            "Normalize" if pooling.is_some() && !normalize => normalize = true,
            other => {
                return Err(bad(format!(
                    "unsupported module {other:?} in pipeline {kinds:?}; Quarry supports \
                     Transformer → Pooling → optional Normalize"
                )));
            }
        }
    }
    let pooling = pooling.ok_or_else(|| bad(format!("no Pooling module in pipeline {kinds:?}")))?;
    if pooling.is_empty() || pooling.contains("..") || Path::new(&pooling).is_absolute() {
        return Err(bad(format!("invalid Pooling module path {pooling:?}")));
    }
    Ok((pooling, normalize))
}

fn read_pooling(path: &Path, hidden_size: usize) -> Result<Pooling> {
    if !path.is_file() {
        return Err(EmbedError::ModelFile {
            path: path.to_path_buf(),
            message: "missing; modules.json names this pooling folder".into(),
        });
    }
    let raw: Value = read_json(path)?;
    let bad = |message: String| EmbedError::ModelFile {
        path: path.to_path_buf(),
        message,
    };
    if let Some(dim) = raw.get("word_embedding_dimension").and_then(Value::as_u64)
        && dim as usize != hidden_size
    {
        return Err(bad(format!(
            "word_embedding_dimension {dim} does not match hidden_size {hidden_size} in config.json"
        )));
    }
    let on = |key: &str| raw.get(key).and_then(Value::as_bool).unwrap_or(false);
    let modes: Vec<Pooling> = [
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
    ]
    .into_iter()
    .filter(|(key, _)| on(key))
    .map(|(_, mode)| mode)
    .collect();
    for unsupported in ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"] {
        if on(unsupported) {
            return Err(bad(format!(
                "{unsupported} is not supported; use mean, cls or max pooling"
            )));
        }
    }
    match modes.as_slice() {
        [one] => Ok(*one),
        [] => Err(bad("no pooling mode is enabled".into())),
        many => Err(bad(format!(
            "several pooling modes enabled ({many:?}); Quarry supports exactly one"
        ))),
    }
}
