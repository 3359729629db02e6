//! BERT and its family (MiniLM, BGE, E5, GTE): the `config.json` it is
//! read from, and candle-transformers' reference forward pass with
//! sentence-transformers' pooling.

use std::path::Path;

use candle_core::{D, DType, IndexOp, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::Value;

use super::Pass;
use crate::layout::Pooling;
use crate::{EmbedError, Result};

/// Checks and reads a BERT `config.json`, already parsed as `raw`.
pub(super) fn read_config(path: &Path, raw: Value) -> Result<Config> {
    if let Some(kind) = raw.get("position_embedding_type").and_then(Value::as_str)
        && kind != "absolute"
    {
        return Err(EmbedError::ModelFile {
            path: path.to_path_buf(),
            message: format!(
                "unsupported position_embedding_type {kind:?}; only \"absolute\" is supported"
            ),
        });
    }
    let config: Config = serde_json::from_value(raw).map_err(|e| EmbedError::ModelFile {
        path: path.to_path_buf(),
        message: format!("not a valid BERT config: {e}"),
    })?;
    if config.hidden_size == 0
        || config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return Err(EmbedError::ModelFile {
            path: path.to_path_buf(),
            message: format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ),
        });
    }
    Ok(config)
}

/// Embeds a batch with the reference model. Sequences are right-padded to
/// the longest; the attention mask keeps padding out of attention and
/// pooling, so a text's vector does not depend on its batch-mates.
pub(super) fn forward(
    model: &BertModel,
    batch: &[&[u32]],
    segments: Option<&[usize]>,
    pass: &Pass,
) -> Result<Vec<Vec<f32>>> {
    let Pass {
        pooling,
        normalize,
        pad_id,
        ref device,
    } = *pass;
    let len = batch.iter().map(|ids| ids.len()).max().unwrap_or(0).max(1);
    let n = batch.len();
    let mut ids = vec![pad_id; n * len];
    let mut mask = vec![0f32; n * len];
    let mut types = vec![0u32; n * len];
    for (row, seq) in batch.iter().enumerate() {
        ids[row * len..row * len + seq.len()].copy_from_slice(seq);
        mask[row * len..row * len + seq.len()].fill(1.0);
        if let Some(second) = segments.map(|s| s[row].min(seq.len())) {
            types[row * len + second..row * len + seq.len()].fill(1);
        }
    }
    let ids = Tensor::from_vec(ids, (n, len), device)?;
    let mask = Tensor::from_vec(mask, (n, len), device)?;
    let types = Tensor::from_vec(types, (n, len), device)?;
    let hidden = model.forward(&ids, &types, Some(&mask))?;
    let mask3 = mask.unsqueeze(2)?;
    let pooled = match pooling {
        Pooling::Cls => hidden.i((.., 0))?,
        Pooling::Mean | Pooling::MeanSqrtLen => {
            let sum = hidden.broadcast_mul(&mask3)?.sum(1)?;
            let count = mask3.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            let count = if pooling == Pooling::MeanSqrtLen {
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
    let pooled = if normalize {
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
