//! Many callers at once: every caller gets its own vectors back, and
//! interactive work overtakes bulk work.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use quarry_core::EmbedConfig;
use quarry_embed::{InputKind, Priority};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_callers_get_correct_vectors() {
    let embedder = embedder(EmbedConfig::default());
    let texts = mixed_texts(64);
    let mut reference = Vec::new();
    for t in &texts {
        reference.push(
            embedder
                .embed(&[t], InputKind::Raw, Priority::Interactive)
                .await
                .unwrap()
                .remove(0),
        );
    }
    let mut tasks = Vec::new();
    for (i, text) in texts.iter().cloned().enumerate() {
        let e = embedder.clone();
        let priority = if i % 2 == 0 {
            Priority::Bulk
        } else {
            Priority::Interactive
        };
        tasks.push(tokio::spawn(async move {
            e.embed(&[text], InputKind::Raw, priority).await
        }));
    }
    let before = embedder.stats().batches;
    for (i, task) in tasks.into_iter().enumerate() {
        let got = task.await.unwrap().unwrap().remove(0);
        assert_eq!(got.tokens, reference[i].tokens);
        let cos = cosine(&got.embedding, &reference[i].embedding);
        assert!(cos >= 0.99999, "caller {i}: cosine {cos}");
    }
    let batches = embedder.stats().batches - before;
    assert!(
        batches < 64,
        "64 callers ran in {batches} batches: nothing was batched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interactive_queries_finish_ahead_of_a_bulk_stream() {
    // Small batches so the bulk stream is many batches long.
    let embedder = embedder(EmbedConfig {
        max_batch_tokens: 1024,
        ..EmbedConfig::default()
    });
    let bulk_texts: Vec<String> = (0..48)
        .map(|i| format!("document {i} ") + &"long passage text ".repeat(40))
        .collect();
    let bulk = {
        let e = embedder.clone();
        tokio::spawn(async move {
            e.embed(&bulk_texts, InputKind::Passage, Priority::Bulk)
                .await
                .unwrap();
            Instant::now()
        })
    };
    while embedder.stats().batches == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    for q in ["what is a shard", "hybrid search", "token budget"] {
        let out = embedder
            .embed(&[q], InputKind::Query, Priority::Interactive)
            .await
            .unwrap();
        assert_eq!(out.len(), 1);
        done.lock()
            .unwrap()
            .push((Instant::now(), embedder.stats().queued_bulk));
    }
    let bulk_done = bulk.await.unwrap();
    for (at, queued_bulk) in done.lock().unwrap().iter() {
        assert!(
            *at < bulk_done,
            "an interactive query finished after the bulk stream"
        );
        assert!(
            *queued_bulk > 0,
            "bulk work was not still queued when the query finished"
        );
    }
}
