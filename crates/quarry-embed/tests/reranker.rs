//! Cross-encoder scores against sentence-transformers' `CrossEncoder.predict`
//! on two random models of the families that ship rerankers (BERT, as
//! ms-marco-MiniLM; XLM-RoBERTa, as bge-reranker), made and scored by
//! `scripts/reranker-fixture.sh` into `testdata/rerankers/`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use quarry_core::EmbedConfig;
use quarry_embed::model::{Engine, LoadOptions};
use quarry_embed::{Activation, EmbedError, Embedder, InputKind, Model, Priority};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/rerankers");
    build_weights(&dir);
    dir
}

/// The fixtures' weights are not tracked: `scripts/reranker_weights.py`
/// builds them from each `weights.json` (standard library only; a no-op
/// when they are current).
fn build_weights(dir: &Path) {
    let script = dir.join("../../scripts/reranker_weights.py");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .status()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(
        status.success(),
        "python3 {} failed: {status}",
        script.display()
    );
}

struct Reference {
    pairs: Vec<(String, String)>,
    tokens: Vec<usize>,
    scores: Vec<f32>,
    raw: Vec<f32>,
}

fn reference(family: &str) -> Reference {
    let text = std::fs::read_to_string(fixture_dir().join("scores.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    let one = &all[family];
    let floats = |key: &str| -> Vec<f32> {
        one[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    Reference {
        pairs: one["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        tokens: one["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect(),
        scores: floats("scores"),
        raw: floats("raw"),
    }
}

fn load(dir: &Path, engine: Engine) -> Model {
    let options = LoadOptions {
        engine,
        ..Default::default()
    };
    Model::load(dir, &options).unwrap()
}

/// Every pair through the worker, one query at a time (as a search asks),
/// both as scores and as logits, against the reference within 1e-4.
async fn check(dir: &Path, family: &str, engine: Engine) {
    let want = reference(family);
    let model = load(dir, engine);
    let cross = model.cross_encoder().cloned().unwrap();
    assert_eq!(cross.labels, 1);
    assert_eq!(cross.activation, Activation::Sigmoid);
    assert_eq!(cross.max_length, 128);
    let reranker = Embedder::start(model, EmbedConfig::default()).unwrap();
    for (i, (query, text)) in want.pairs.iter().enumerate() {
        for raw in [false, true] {
            let got = reranker
                .rerank(query, &[text], raw, Priority::Interactive)
                .await
                .unwrap();
            let expected = if raw { want.raw[i] } else { want.scores[i] };
            assert!(
                (got[0].score - expected).abs() < 1e-4,
                "{family} {engine:?} pair {i} (raw {raw}): {} against {expected}",
                got[0].score
            );
            assert_eq!(got[0].tokens, want.tokens[i], "{family} pair {i} tokens");
            assert_eq!(got[0].truncated, want.tokens[i] == 128, "{family} pair {i}");
        }
    }
    // All pairs of one query at once, as a rerank stage sends them: a
    // pair's score does not depend on its batch-mates.
    let query = &want.pairs[0].0;
    let texts: Vec<&str> = want
        .pairs
        .iter()
        .filter(|(q, _)| q == query)
        .map(|(_, t)| t.as_str())
        .collect();
    let together = reranker
        .rerank(query, &texts, false, Priority::Bulk)
        .await
        .unwrap();
    let alone: Vec<f32> = want
        .pairs
        .iter()
        .zip(&want.scores)
        .filter(|((q, _), _)| q == query)
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(together.len(), alone.len());
    for (g, w) in together.iter().zip(&alone) {
        assert!(
            (g.score - w).abs() < 1e-4,
            "batched {} against {w}",
            g.score
        );
    }
}

#[tokio::test]
async fn bert_cross_encoder_matches_sentence_transformers() {
    let dir = fixture_dir().join("bert");
    check(&dir, "bert", Engine::Fast).await;
    check(&dir, "bert", Engine::Candle).await;
}

#[tokio::test]
async fn xlm_roberta_cross_encoder_matches_sentence_transformers() {
    let dir = fixture_dir().join("xlmr");
    check(&dir, "xlmr", Engine::Fast).await;
    // candle-transformers' BERT counts positions from 0: refused, not wrong.
    let err = Model::load(
        &dir,
        &LoadOptions {
            engine: Engine::Candle,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("RoBERTa"), "{err}");
}

/// sentence-transformers 4 and 5 saved a cross-encoder without
/// `modules.json`, with the activation in `config.json` (as
/// cross-encoder/ms-marco-MiniLM-L-6-v2 is on the Hub): same scores.
#[tokio::test]
async fn the_older_layout_without_modules_json_scores_the_same() {
    let src = fixture_dir().join("bert");
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(name), tmp.path().join(name)).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["sentence_transformers"] = serde_json::json!({"activation_fn": "torch.nn.modules.activation.Sigmoid", "version": "4.0.1"});
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    check(tmp.path(), "bert", Engine::Fast).await;

    // An activation Quarry does not apply is refused by name.
    config["sentence_transformers"]["activation_fn"] = "torch.nn.modules.activation.Tanh".into();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    let err = Model::load(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Tanh") && err.contains("config.json"), "{err}");
}

#[tokio::test]
async fn a_reranker_does_not_embed_and_an_embedder_does_not_rerank() {
    let reranker = Embedder::start(
        load(&fixture_dir().join("bert"), Engine::Fast),
        EmbedConfig::default(),
    )
    .unwrap();
    let err = reranker
        .embed(&["text"], InputKind::Raw, Priority::Bulk)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EmbedError::Unsupported(m) if m.contains("cross-encoder")),
        "{err}"
    );
    let Some(minilm) = quarry_embed::fetch::resolve(
        &quarry_core::paths::models_dir().unwrap(),
        quarry_core::config::DEFAULT_MODEL,
    )
    .ok() else {
        quarry_core::skip_test("the default model is not in the cache (run scripts/test.sh)");
        return;
    };
    let embedder = Embedder::start(load(&minilm, Engine::Fast), EmbedConfig::default()).unwrap();
    let err = embedder
        .rerank("query", &["text"], false, Priority::Interactive)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EmbedError::Unsupported(m) if m.contains("not a cross-encoder")),
        "{err}"
    );
}
