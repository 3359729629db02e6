//! The model against sentence-transformers' own output, and properties that
//! must hold for any input.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use quarry_core::EmbedConfig;
use quarry_embed::model::{Engine, LoadOptions, Precision};
use quarry_embed::{EmbedError, InputKind, Model, Priority};

#[tokio::test]
async fn reproduces_sentence_transformers_golden_vectors() {
    let embedder = embedder(EmbedConfig::default());
    let golden = golden();
    assert!(golden.len() >= 20);
    let texts: Vec<&str> = golden.iter().map(|(t, _, _)| t.as_str()).collect();
    let got = embedder
        .embed(&texts, InputKind::Raw, Priority::Bulk)
        .await
        .unwrap();
    for ((text, tokens, want), got) in golden.iter().zip(&got) {
        let cos = cosine(want, &got.embedding);
        assert!(cos >= 0.99999, "cosine {cos} for {text:?}");
        assert_eq!(got.tokens, *tokens, "token count for {text:?}");
        assert_eq!(got.truncated, *tokens == 256, "truncated flag for {text:?}");
    }
}

#[tokio::test]
async fn batch_invariance_alone_vs_mixed_batch() {
    let embedder = embedder(EmbedConfig::default());
    let mut texts: Vec<String> = golden().into_iter().map(|(t, _, _)| t).collect();
    texts.extend(mixed_texts(12));
    let batched = embedder
        .embed(&texts, InputKind::Raw, Priority::Bulk)
        .await
        .unwrap();
    let stats = embedder.stats();
    assert!(
        stats.largest_batch > 4,
        "inputs were not actually batched: {stats:?}"
    );
    for (text, together) in texts.iter().zip(&batched) {
        let alone = embedder
            .embed(&[text], InputKind::Raw, Priority::Interactive)
            .await
            .unwrap();
        let cos = cosine(&alone[0].embedding, &together.embedding);
        assert!(cos >= 0.99999, "cosine {cos} alone vs batched for {text:?}");
    }
}

#[tokio::test]
async fn degenerate_inputs_have_defined_results() {
    let embedder = embedder(EmbedConfig::default());
    let huge = "lorem ipsum dolor sit amet ".repeat(40_000); // ~1 MB
    assert!(huge.len() >= 1_000_000);
    let texts = ["", "   \t\n ", huge.as_str(), "\u{0}\u{fffd}"];
    let out = embedder
        .embed(&texts, InputKind::Raw, Priority::Bulk)
        .await
        .unwrap();
    assert_eq!(out[0].tokens, 2, "empty text is [CLS] [SEP]");
    assert_eq!(out[1].tokens, 2, "whitespace is stripped by the tokenizer");
    assert_eq!(out[2].tokens, 256, "1 MB text is cut at max_seq_length");
    assert!(out[2].truncated && !out[0].truncated);
    for e in &out {
        assert_eq!(e.embedding.len(), 384);
        let norm: f32 = e.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4 && e.embedding.iter().all(|x| x.is_finite()),
            "norm {norm}"
        );
    }
    assert!(
        cosine(&out[0].embedding, &out[1].embedding) > 0.99999,
        "both reduce to [CLS] [SEP]"
    );
}

#[tokio::test]
async fn interactive_queue_overflow_is_a_distinct_error() {
    let embedder = embedder(EmbedConfig {
        interactive_queue: 2,
        ..EmbedConfig::default()
    });
    let err = embedder
        .embed(&["a", "b", "c"], InputKind::Query, Priority::Interactive)
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Overloaded), "{err:?}");
    // Bulk callers wait for room instead: 20 inputs through a queue of 4.
    let small = embedder_with_bulk_queue(4);
    let texts = mixed_texts(20);
    let out = small
        .embed(&texts, InputKind::Passage, Priority::Bulk)
        .await
        .unwrap();
    assert_eq!(out.len(), 20);
}

fn embedder_with_bulk_queue(n: usize) -> quarry_embed::Embedder {
    embedder(EmbedConfig {
        bulk_queue: n,
        ..EmbedConfig::default()
    })
}

/// The default model on `engine`.
fn model_on(engine: Engine) -> Model {
    model_with(LoadOptions {
        engine,
        ..Default::default()
    })
}

/// The default model in `precision`.
fn model_in(precision: Precision) -> Model {
    model_with(LoadOptions {
        precision,
        ..Default::default()
    })
}

#[test]
fn fast_encoder_matches_the_candle_reference_in_any_batch() {
    let (fast, reference) = (model_on(Engine::Fast), model_on(Engine::Candle));
    assert_eq!((fast.engine(), reference.engine()), ("fast", "candle"));
    let ids = golden_and_mixed_ids(&fast);
    let batch: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    // The reference pads the batch; the fast encoder never pads. Same
    // vectors either way, and the same alone as in company.
    let want = reference.forward(&batch).unwrap();
    let got = fast.forward(&batch).unwrap();
    let mut worst = 1.0f64;
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let alone = fast.forward(&[batch[i]]).unwrap();
        let max_diff = max_abs_diff(w, g);
        assert!(max_diff < 1e-4, "text {i}: max |Δ| {max_diff}");
        worst = worst.min(cosine(w, g)).min(cosine(&alone[0], g));
    }
    assert!(worst >= 0.999_999, "worst cosine {worst}");
}

#[test]
fn bf16_stays_close_to_f32_and_batch_invariant() {
    let bf16 = model_in(Precision::Bf16);
    if bf16.precision() != "bf16" {
        quarry_core::skip_test("this CPU has no AVX-512 BF16 (f32 ran instead)");
        return;
    }
    let f32_model = model_in(Precision::F32);
    let golden = golden();
    let ids = golden_and_mixed_ids(&bf16);
    let batch: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let together = bf16.forward(&batch).unwrap();
    let exact = f32_model.forward(&batch).unwrap();
    for (i, v) in together.iter().enumerate() {
        let alone = bf16.forward(&[batch[i]]).unwrap();
        let (c_alone, c_f32) = (cosine(&alone[0], v), cosine(&exact[i], v));
        // Rows never mix in the bf16 kernels: batching changes nothing.
        assert!(c_alone >= 0.99999, "text {i}: alone vs batched {c_alone}");
        assert!(c_f32 >= 0.999, "text {i}: bf16 vs f32 {c_f32}");
        if let Some((_, _, want)) = golden.get(i) {
            let c = cosine(want, v);
            assert!(c >= 0.999, "golden {i}: {c}");
        }
    }
}

/// Token ids without special tokens (what an OpenAI-style client sends)
/// embed exactly as their text does, truncation and token count included.
#[tokio::test]
async fn token_ids_embed_as_their_text() {
    let embedder = embedder(EmbedConfig::default());
    let tokenizer = tokenizers::Tokenizer::from_file(model_dir().join("tokenizer.json")).unwrap();
    let mut texts: Vec<String> = golden().into_iter().map(|(t, _, _)| t).take(8).collect();
    texts.push("word ".repeat(400));
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            let mut plain = tokenizer.clone();
            // tokenizer.json pads to 128 and truncates; a client's own
            // tokenizer gives the plain ids.
            plain.with_truncation(None).unwrap();
            plain.with_padding(None);
            plain.encode(t.as_str(), false).unwrap().get_ids().to_vec()
        })
        .collect();
    let by_text = embedder
        .embed(&texts, InputKind::Raw, Priority::Bulk)
        .await
        .unwrap();
    let by_ids = embedder
        .embed_token_ids(&ids, Priority::Bulk)
        .await
        .unwrap();
    for ((t, a), b) in texts.iter().zip(&by_text).zip(&by_ids) {
        assert_eq!((a.tokens, a.truncated), (b.tokens, b.truncated), "{t:?}");
        let cos = cosine(&a.embedding, &b.embedding);
        assert!(cos >= 0.99999, "cosine {cos} for {t:?}");
    }
    let vocab = tokenizer.get_vocab_size(true) as u32;
    let err = embedder
        .embed_token_ids(&[vec![vocab + 5]], Priority::Bulk)
        .await;
    assert!(
        matches!(err, Err(EmbedError::Tokenizer(ref m)) if m.contains("vocabulary")),
        "{err:?}"
    );
}

/// Queries that arrive while a bulk batch runs are served between its
/// encoder layers, and neither side's vectors change for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_run_between_the_layers_of_a_bulk_batch() {
    let config = EmbedConfig {
        // Whole budget for bulk even while queries come: long batches.
        busy_bulk_batch_tokens: Some(4096),
        max_batch_tokens: 4096,
        ..EmbedConfig::default()
    };
    let embedder = embedder(config);
    let long: Vec<String> = mixed_texts(48).into_iter().map(|t| t.repeat(8)).collect();
    let alone = embedder
        .embed(&long, InputKind::Passage, Priority::Bulk)
        .await
        .unwrap();
    let query_alone = embedder.embed_query("where is the archive").await.unwrap();
    let bulk = {
        let (e, long) = (embedder.clone(), long.clone());
        tokio::spawn(async move { e.embed(&long, InputKind::Passage, Priority::Bulk).await })
    };
    let before = embedder.stats().queries_between_layers;
    // Queries from the moment the bulk work is queued until it is done.
    while embedder.stats().queued_bulk == 0 && !bulk.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let mut answered_during_bulk = 0;
    while !bulk.is_finished() && answered_during_bulk < 5000 {
        let q = embedder.embed_query("where is the archive").await.unwrap();
        assert_eq!(q.embedding, query_alone.embedding);
        answered_during_bulk += 1;
    }
    let during = bulk.await.unwrap().unwrap();
    for (a, b) in alone.iter().zip(&during) {
        assert_eq!(a.embedding, b.embedding, "a bulk vector changed");
    }
    assert!(
        answered_during_bulk > 0,
        "the bulk work ended before any query"
    );
    assert!(
        embedder.stats().queries_between_layers > before,
        "no query ran between a bulk batch's layers"
    );
}
