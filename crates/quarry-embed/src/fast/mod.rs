//! A BERT encoder for the CPU, over plain `f32` buffers.
//!
//! candle-transformers' BERT is a faithful port of the PyTorch module, and on
//! the CPU it pays for that: every sequence is padded to the batch's
//! longest, attention goes through batched 4-D tensors that are copied to
//! make heads contiguous, and each of softmax, GELU and LayerNorm is several
//! tensor ops, each allocating its output. This module runs the same
//! weights (loaded through Candle) a different way:
//!
//! - **No padding at all.** The batch is one `[tokens, hidden]` matrix of
//!   every sequence's tokens back to back; the dense layers see only real
//!   tokens, and attention runs per sequence and head. A text's vector
//!   does not depend on its batch-mates: bit for bit with the packed
//!   kernels, within rounding where `gemm` (which blocks by row count) runs.
//! - **Fused projections.** Q, K and V are one matrix multiply against a
//!   `[hidden, 3 × hidden]` weight transposed and packed once at load.
//! - **Fused epilogues.** Biases are written into the output before the
//!   multiply accumulates onto them; residual + LayerNorm and GELU are single
//!   passes ([`kernels`]), vectorised for the CPU at run time.
//! - **Weights packed at load, both cores.** With AVX2 or AVX-512, every
//!   dense layer and both attention products run on [`sgemm`]'s f32
//!   micro-tiles over weights packed once into the order they are streamed
//!   (or on [`bf16`]'s, in that precision), split across cores by row
//!   blocks, or by columns for a single query. Elsewhere they use `gemm`,
//!   the kernels Candle itself calls. Attention is spread over
//!   (sequence, head) pairs.
//!
//! The candle-transformers model stays as the reference: the tests hold this
//! one to it, and `QUARRY_ENGINE=candle` selects it.

pub mod amx;
pub mod bf16;
pub mod kernels;
mod matmul;
pub mod sgemm;
#[cfg(test)]
mod tests;

pub(crate) use matmul::{SendPtr, encoder_flops, split_blocks, split_product};
pub use matmul::{matmul_peak_gflops, matmul_peak_gflops_bf16};

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
use rayon::prelude::*;

use crate::layout::Pooling;

/// A dense layer, `y = x Wᵀ + b`, with `W` stored transposed (`[in, out]`,
/// row-major) so the multiply streams it in order.
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
    /// The same weight packed for the bf16 kernels, when that precision
    /// was asked for and the CPU has them.
    bf16: Option<bf16::PackedWeight>,
    /// Otherwise packed for the AVX2/AVX-512 f32 kernels, when the CPU has
    /// them. `w` is dropped once either is there.
    f32p: Option<sgemm::PackedF32>,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    ln1: Norm,
    up: Dense,
    down: Dense,
    ln2: Norm,
}

#[derive(Clone, Copy)]
enum Act {
    GeluErf,
    GeluTanh,
    Relu,
}

pub(crate) struct FastBert {
    hidden: usize,
    heads: usize,
    inter: usize,
    eps: f32,
    act: Act,
    max_positions: usize,
    /// Where positions start: 0 for BERT, `pad_token_id + 1` for the
    /// RoBERTa family, whose position table reserves the rows before it.
    position_offset: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    /// Every token type's row, `[type_vocab_size, hidden]`: a
    /// cross-encoder's second text is type 1.
    token_types: Vec<f32>,
    emb_ln: Norm,
    layers: Vec<Layer>,
}

fn tensor_vec(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

fn dense(vb: &VarBuilder<'_>, n_in: usize, n_out: usize) -> candle_core::Result<Dense> {
    let w = vb.get((n_out, n_in), "weight")?.t()?.contiguous()?;
    Ok(Dense {
        w: tensor_vec(w)?,
        b: tensor_vec(vb.get(n_out, "bias")?)?,
        n_in,
        n_out,
        bf16: None,
        f32p: None,
    })
}

/// Q, K and V stacked into one `[hidden, 3 × hidden]` layer.
fn fused_qkv(vb: &VarBuilder<'_>, h: usize) -> candle_core::Result<Dense> {
    let parts = ["query", "key", "value"]
        .iter()
        .map(|n| vb.pp(*n).get((h, h), "weight"))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let w = Tensor::cat(&parts, 0)?.t()?.contiguous()?;
    let biases = ["query", "key", "value"]
        .iter()
        .map(|n| vb.pp(*n).get(h, "bias"))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Dense {
        w: tensor_vec(w)?,
        b: tensor_vec(Tensor::cat(&biases, 0)?)?,
        n_in: h,
        n_out: 3 * h,
        bf16: None,
        f32p: None,
    })
}

fn norm(vb: &VarBuilder<'_>, h: usize) -> candle_core::Result<Norm> {
    let pick = |names: [&str; 2]| {
        let name = names
            .into_iter()
            .find(|n| vb.contains_tensor(n))
            .unwrap_or(names[0]);
        vb.get(h, name).and_then(tensor_vec)
    };
    Ok(Norm {
        gamma: pick(["weight", "gamma"])?,
        beta: pick(["bias", "beta"])?,
    })
}

impl FastBert {
    /// Loads from the same variables candle-transformers' `BertModel` reads.
    /// `None` when the architecture has something this encoder does not
    /// implement (relative positions), so the caller falls back.
    pub(crate) fn load(
        vb: VarBuilder<'_>,
        config: &Config,
        use_bf16: bool,
    ) -> candle_core::Result<Option<Self>> {
        if config.position_embedding_type != PositionEmbeddingType::Absolute
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Ok(None);
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else if vb.contains_tensor("roberta.embeddings.word_embeddings.weight") {
            vb.pp("roberta")
        } else if let Some(mt) = config
            .model_type
            .as_ref()
            .filter(|mt| vb.contains_tensor(&format!("{mt}.embeddings.word_embeddings.weight")))
        {
            vb.pp(mt)
        } else {
            vb
        };
        let h = config.hidden_size;
        let emb = vb.pp("embeddings");
        let word = tensor_vec(
            emb.pp("word_embeddings")
                .get((config.vocab_size, h), "weight")?,
        )?;
        let position = tensor_vec(
            emb.pp("position_embeddings")
                .get((config.max_position_embeddings, h), "weight")?,
        )?;
        let token_types = tensor_vec(
            emb.pp("token_type_embeddings")
                .get((config.type_vocab_size.max(1), h), "weight")?,
        )?;
        let emb_ln = norm(&emb.pp("LayerNorm"), h)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        let pack = |mut d: Dense| {
            if use_bf16 {
                d.bf16 = bf16::PackedWeight::pack(&d.w, d.n_in, d.n_out);
            }
            if d.bf16.is_none() {
                d.f32p = sgemm::PackedF32::pack(&d.w, d.n_in, d.n_out);
            }
            if d.bf16.is_some() || d.f32p.is_some() {
                // Only `gemm` reads the plain copy.
                d.w = Vec::new();
            }
            d
        };
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let att = l.pp("attention");
            layers.push(Layer {
                qkv: pack(fused_qkv(&att.pp("self"), h)?),
                attn_out: pack(dense(&att.pp("output").pp("dense"), h, h)?),
                ln1: norm(&att.pp("output").pp("LayerNorm"), h)?,
                up: pack(dense(
                    &l.pp("intermediate").pp("dense"),
                    h,
                    config.intermediate_size,
                )?),
                down: pack(dense(
                    &l.pp("output").pp("dense"),
                    config.intermediate_size,
                    h,
                )?),
                ln2: norm(&l.pp("output").pp("LayerNorm"), h)?,
            });
        }
        Ok(Some(Self {
            hidden: h,
            heads: config.num_attention_heads,
            inter: config.intermediate_size,
            eps: config.layer_norm_eps as f32,
            act: match config.hidden_act {
                HiddenAct::Gelu => Act::GeluErf,
                HiddenAct::GeluApproximate => Act::GeluTanh,
                HiddenAct::Relu => Act::Relu,
            },
            max_positions: config.max_position_embeddings,
            position_offset: crate::models::position_offset(config),
            word,
            position,
            token_types,
            emb_ln,
            layers,
        }))
    }

    /// `out = x Wᵀ + b` for `rows` rows of `x`.
    fn linear(&self, d: &Dense, x: &[f32], rows: usize, out: &mut [f32]) {
        debug_assert_eq!(x.len(), rows * d.n_in);
        debug_assert_eq!(out.len(), rows * d.n_out);
        for r in out.chunks_exact_mut(d.n_out) {
            r.copy_from_slice(&d.b);
        }
        if let Some(packed) = &d.bf16 {
            bf16::matmul_add(x, rows, d.n_in, packed, out);
            return;
        }
        if let Some(packed) = &d.f32p {
            sgemm::matmul_add(x, rows, packed, out);
            return;
        }
        matmul::gemm_add(x, rows, d.n_in, &d.w, d.n_out, out);
    }

    /// Multi-head self-attention of every sequence: `qkv` is
    /// `[tokens, 3 × hidden]`, `ctx` receives `[tokens, hidden]`.
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)], ctx: &mut [f32]) {
        let (h, heads) = (self.hidden, self.heads);
        let dh = h / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let out = SendPtr(ctx.as_mut_ptr());
        let tasks: Vec<(usize, usize)> = spans
            .iter()
            .enumerate()
            .flat_map(|(s, _)| (0..heads).map(move |hd| (s, hd)))
            .collect();
        let head = self.head_attention(dh);
        let run = |&(s, hd): &(usize, usize)| {
            // The whole wrapper, not its raw field, so the closure is Send.
            #[allow(clippy::redundant_locals)]
            let out = out;
            let (start, len) = spans[s];
            let rows = &qkv[start * 3 * h..(start + len) * 3 * h];
            // SAFETY: `head` suits this CPU (chosen above); this task's
            // head columns of rows start..start+len in `ctx` are written by
            // this task only.
            unsafe {
                let one = matmul::Head {
                    qkv: rows,
                    len,
                    h,
                    off: hd * dh,
                    dh,
                    scale,
                };
                head(one, out.0.add(start * h + hd * dh), h)
            };
        };
        if tasks.len() > 1 && rayon::current_num_threads() > 1 {
            tasks.par_iter().for_each(run);
        } else {
            tasks.iter().for_each(run);
        }
    }

    /// The attention kernel for heads of `dh` on this CPU: the bf16 or
    /// packed f32 one where they apply, `gemm` elsewhere.
    fn head_attention(&self, dh: usize) -> matmul::HeadAttention {
        #[cfg(target_arch = "x86_64")]
        if dh.is_multiple_of(32) {
            if self.is_bf16() {
                return bf16::head_attention;
            }
            if sgemm::supported() {
                return sgemm::head_attention;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = dh;
        matmul::gemm_head_attention
    }

    fn activate(&self, x: &mut [f32]) {
        let f = match self.act {
            Act::GeluErf => kernels::gelu_erf,
            Act::GeluTanh => kernels::gelu_tanh,
            Act::Relu => kernels::relu,
        };
        par_rows(x, self.inter, f);
    }

    /// The kernels the dense layers run on: `"amx"`, `"avx512-bf16"`,
    /// `"avx512"`, `"avx2"` or `"gemm"`.
    pub(crate) fn kernels(&self) -> &'static str {
        match self.layers.first().map(|l| &l.qkv) {
            Some(Dense { bf16: Some(p), .. }) if bf16::uses_amx(p) => "amx",
            Some(Dense { bf16: Some(_), .. }) => "avx512-bf16",
            Some(Dense { f32p: Some(_), .. }) if kernels::level() >= 2 => "avx512",
            Some(Dense { f32p: Some(_), .. }) => "avx2",
            _ => "gemm",
        }
    }

    /// Whether the dense layers run in bf16.
    pub(crate) fn is_bf16(&self) -> bool {
        self.layers.first().is_some_and(|l| l.qkv.bf16.is_some())
    }

    /// Hidden states of every token, `[tokens, hidden]`, and each
    /// sequence's `(start, len)` in it.
    #[cfg(test)]
    pub(crate) fn encode(&self, batch: &[&[u32]]) -> (Vec<f32>, Vec<(usize, usize)>) {
        self.encode_typed(batch, None, None)
    }

    /// [`Self::encode`] where sequence `i`'s tokens from `segments[i]` on
    /// are of token type 1 (the second text of a pair; `None`: all type
    /// 0), calling `pause` after each layer.
    pub(crate) fn encode_typed(
        &self,
        batch: &[&[u32]],
        segments: Option<&[usize]>,
        pause: Option<&dyn Fn()>,
    ) -> (Vec<f32>, Vec<(usize, usize)>) {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(batch.len());
        let mut total = 0;
        let room = self
            .max_positions
            .saturating_sub(self.position_offset)
            .max(1);
        for ids in batch {
            let len = ids.len().clamp(1, room);
            spans.push((total, len));
            total += len;
        }
        let mut x = vec![0f32; total * h];
        let mut type_rows = vec![0f32; total * h];
        let vocab = self.word.len() / h;
        let types = self.token_types.len() / h;
        for (i, (ids, &(start, len))) in batch.iter().zip(&spans).enumerate() {
            let second = segments.map_or(len, |s| s[i]);
            for p in 0..len {
                // An out-of-vocabulary id (a mismatched tokenizer) maps to 0
                // rather than reading out of bounds.
                let id = ids.get(p).map_or(0, |&i| i as usize).min(vocab - 1);
                let row = &mut x[(start + p) * h..(start + p + 1) * h];
                let pos = &self.position[(p + self.position_offset) * h..][..h];
                let w = &self.word[id * h..][..h];
                for j in 0..h {
                    row[j] = w[j] + pos[j];
                }
                let kind = usize::from(p >= second).min(types - 1);
                type_rows[(start + p) * h..(start + p + 1) * h]
                    .copy_from_slice(&self.token_types[kind * h..(kind + 1) * h]);
            }
        }
        par_rows2(&mut x, &type_rows, h, |a, b| {
            kernels::add_layer_norm(a, b, h, &self.emb_ln.gamma, &self.emb_ln.beta, self.eps)
        });

        let mut qkv = vec![0f32; total * 3 * h];
        let mut ctx = vec![0f32; total * h];
        let mut tmp = vec![0f32; total * h];
        let mut up = vec![0f32; total * self.inter];
        for layer in &self.layers {
            self.linear(&layer.qkv, &x, total, &mut qkv);
            self.attention(&qkv, &spans, &mut ctx);
            self.linear(&layer.attn_out, &ctx, total, &mut tmp);
            par_rows2(&mut x, &tmp, h, |a, b| {
                kernels::add_layer_norm(a, b, h, &layer.ln1.gamma, &layer.ln1.beta, self.eps)
            });
            self.linear(&layer.up, &x, total, &mut up);
            self.activate(&mut up);
            self.linear(&layer.down, &up, total, &mut tmp);
            par_rows2(&mut x, &tmp, h, |a, b| {
                kernels::add_layer_norm(a, b, h, &layer.ln2.gamma, &layer.ln2.beta, self.eps)
            });
            if let Some(pause) = pause {
                pause();
            }
        }
        (x, spans)
    }

    /// Pooled (and optionally normalised) sentence vectors.
    pub(crate) fn embed(
        &self,
        batch: &[&[u32]],
        segments: Option<&[usize]>,
        pooling: Pooling,
        normalize: bool,
        pause: Option<&dyn Fn()>,
    ) -> Vec<Vec<f32>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let h = self.hidden;
        let (x, spans) = self.encode_typed(batch, segments, pause);
        spans
            .iter()
            .map(|&(start, len)| {
                let rows = &x[start * h..(start + len) * h];
                let mut v = match pooling {
                    Pooling::Cls => rows[..h].to_vec(),
                    Pooling::Max => {
                        let mut m = vec![f32::NEG_INFINITY; h];
                        for r in rows.chunks_exact(h) {
                            for (a, b) in m.iter_mut().zip(r) {
                                *a = a.max(*b);
                            }
                        }
                        m
                    }
                    Pooling::Mean | Pooling::MeanSqrtLen => {
                        let mut s = vec![0f32; h];
                        for r in rows.chunks_exact(h) {
                            for (a, b) in s.iter_mut().zip(r) {
                                *a += *b;
                            }
                        }
                        let d = if pooling == Pooling::Mean {
                            len as f32
                        } else {
                            (len as f32).sqrt()
                        };
                        s.iter_mut().for_each(|a| *a /= d);
                        s
                    }
                };
                if normalize {
                    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|a| *a /= n);
                }
                v
            })
            .collect()
    }
}

/// Rows per parallel task for the element-wise passes.
const ROW_BLOCK: usize = 64;

fn par_rows(x: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    if x.len() >= 2 * ROW_BLOCK * width && rayon::current_num_threads() > 1 {
        x.par_chunks_mut(ROW_BLOCK * width).for_each(f);
    } else {
        f(x);
    }
}

fn par_rows2(x: &mut [f32], y: &[f32], width: usize, f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if x.len() >= 2 * ROW_BLOCK * width && rayon::current_num_threads() > 1 {
        x.par_chunks_mut(ROW_BLOCK * width)
            .zip(y.par_chunks(ROW_BLOCK * width))
            .for_each(|(a, b)| f(a, b));
    } else {
        f(x, y);
    }
}
