//! The fast encoder against candle-transformers' BERT on small random
//! models with shapes MiniLM does not have. The BERT family (MiniLM, BGE,
//! E5, GTE) varies in head size, layer widths, activation and weight
//! prefix, and each variation takes a different path here: heads that are
//! a multiple of 32 run the packed attention, others `gemm`'s; a layer
//! whose width is not a multiple of 32 keeps `gemm`. The real-model tests
//! cover MiniLM itself.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, HiddenAct};

use super::FastBert;

/// Deterministic weights of a given shape.
struct Weights {
    map: HashMap<String, Tensor>,
    state: u64,
    prefix: &'static str,
}

impl Weights {
    /// Uniform values in `offset ± scale`.
    fn put(&mut self, name: &str, shape: &[usize], scale: f32, offset: f32) {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                self.state = self
                    .state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (self.state >> 40) as f32 / (1u64 << 24) as f32;
                offset + (2.0 * u - 1.0) * scale
            })
            .collect();
        let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
        self.map.insert(format!("{}{name}", self.prefix), t);
    }

    /// Variance 1 / n_in, so activations keep their scale through layers.
    fn linear(&mut self, name: &str, n_in: usize, n_out: usize) {
        self.put(
            &format!("{name}.weight"),
            &[n_out, n_in],
            (3.0 / n_in as f32).sqrt(),
            0.0,
        );
        self.put(&format!("{name}.bias"), &[n_out], 0.1, 0.0);
    }

    fn norm(&mut self, name: &str, h: usize) {
        self.put(&format!("{name}.weight"), &[h], 0.2, 1.0);
        self.put(&format!("{name}.bias"), &[h], 0.1, 0.0);
    }
}

fn random_bert(c: &Config, prefix: &'static str) -> HashMap<String, Tensor> {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let mut w = Weights {
        map: HashMap::new(),
        state: h as u64 * 31 + i as u64,
        prefix,
    };
    w.put(
        "embeddings.word_embeddings.weight",
        &[c.vocab_size, h],
        1.0,
        0.0,
    );
    let positions = [c.max_position_embeddings, h];
    w.put(
        "embeddings.position_embeddings.weight",
        &positions,
        0.5,
        0.0,
    );
    let types = [c.type_vocab_size, h];
    w.put("embeddings.token_type_embeddings.weight", &types, 0.5, 0.0);
    w.norm("embeddings.LayerNorm", h);
    for l in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for part in ["query", "key", "value"] {
            w.linear(&format!("{p}.attention.self.{part}"), h, h);
        }
        w.linear(&format!("{p}.attention.output.dense"), h, h);
        w.norm(&format!("{p}.attention.output.LayerNorm"), h);
        w.linear(&format!("{p}.intermediate.dense"), h, i);
        w.linear(&format!("{p}.output.dense"), i, h);
        w.norm(&format!("{p}.output.LayerNorm"), h);
    }
    w.map
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

/// The largest element-wise difference |a - b|.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn other_bert_shapes_match_candle_transformers() {
    // (hidden, heads, intermediate, layers, activation, weight prefix)
    let shapes = [
        (64, 2, 128, 2, HiddenAct::Gelu, ""),
        (96, 4, 200, 2, HiddenAct::GeluApproximate, ""),
        (64, 1, 96, 3, HiddenAct::Relu, "bert."),
    ];
    for (h, heads, inter, layers, act, prefix) in shapes {
        let config = Config {
            vocab_size: 50,
            hidden_size: h,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: inter,
            hidden_act: act,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            model_type: Some("bert".into()),
            ..Config::default()
        };
        let weights = random_bert(&config, prefix);
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let reference = BertModel::load(vb.clone(), &config).unwrap();
        let fast = FastBert::load(vb.clone(), &config, false).unwrap().unwrap();
        let bf16 = super::bf16::supported()
            .then(|| FastBert::load(vb.clone(), &config, true).unwrap().unwrap());
        let seqs: Vec<Vec<u32>> = [1usize, 7, 40]
            .iter()
            .map(|&n| (0..n).map(|j| ((j * 17 + n) % 50) as u32).collect())
            .collect();
        let batch: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let (together, spans) = fast.encode(&batch);
        for (seq, &(start, len)) in seqs.iter().zip(&spans) {
            let ids = Tensor::from_vec(seq.clone(), (1, len), &Device::Cpu).unwrap();
            let mask = Tensor::ones((1, len), DType::F32, &Device::Cpu).unwrap();
            let want: Vec<f32> = reference
                .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = &together[start * h..(start + len) * h];
            let what = format!("hidden {h}, heads {heads}, inter {inter}, {act:?}, len {len}");
            let max_diff = max_abs_diff(&want, got);
            assert!(max_diff < 1e-4, "{what}: max |Δ| {max_diff}");
            // Alone, the sequence gets the same numbers: exactly, where
            // every layer is packed; `gemm` blocks by row count, so a layer
            // it runs may sum in another order.
            let alone = fast.encode(&[seq]).0;
            if inter % 32 == 0 && super::sgemm::supported() {
                assert_eq!(alone, got, "{what}: alone vs batched");
            }
            let drift = max_abs_diff(&alone, got);
            assert!(drift < 1e-5, "{what}: alone vs batched, max |Δ| {drift}");
            if let Some(bf16) = &bf16 {
                let low = bf16.encode(&[seq]).0;
                for (t, (a, b)) in want.chunks(h).zip(low.chunks(h)).enumerate() {
                    let c = cosine(a, b);
                    assert!(c > 0.999, "{what}: bf16 token {t} cosine {c}");
                }
            }
        }
    }
}
