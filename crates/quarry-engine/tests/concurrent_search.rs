//! Searches running while a sync replaces documents: never an error, never a
//! chunk twice, never a document missing.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quarry_engine::testing::TestIndex;
use quarry_engine::{Filter, Mode, OneOrMany, SearchOptions};

fn doc(i: usize, version: usize) -> String {
    format!(
        "# Topic {i}\n\nShared opening paragraph about topic {i} and its retrieval pipeline.\n\n\
         Edited paragraph, revision {version}, for topic {i} with some changing words.\n\n\
         Closing paragraph {i} that never changes between revisions of the document.\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_during_a_replacing_sync_see_each_document_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let n = 120;
    for i in 0..n {
        std::fs::write(tree.join(format!("d{i:03}.md")), doc(i, 0)).unwrap();
    }
    let index = TestIndex::open(&dir.path().join("data"), 24, 0);
    let first = index.sync_dir("docs", &tree).await;
    assert_eq!(first.added, n);
    let chunks_per_doc = first.points / n;
    assert!(chunks_per_doc >= 3, "{first:?}");

    // Expected chunk texts per document, before and after the edit.
    let retriever = index.retriever();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for worker in 0..3 {
        let (retriever, stop) = (retriever.clone(), Arc::clone(&stop));
        loops.push(tokio::spawn(async move {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) || rounds == 0 {
                let target = format!("d{:03}.md", (rounds * 7 + worker) % 120);
                let options = SearchOptions {
                    mode: if worker == 0 && rounds % 4 == 0 {
                        Mode::Hybrid
                    } else {
                        Mode::Bm25
                    },
                    top_k: 50,
                    filter: Filter {
                        doc_id: Some(OneOrMany::One(target.clone())),
                        ..Default::default()
                    },
                    score_threshold: None,
                    per_doc_limit: None,
                    degrade: None,
                    fusion: None,
                    rerank: None,
                    dedupe: None,
                    min_relevance: None,
                };
                let hits = retriever
                    .search("docs", "topic paragraph revision", &options)
                    .await
                    .unwrap();
                let indexes: Vec<usize> = hits.iter().map(|h| h.chunk_index).collect();
                let unique: HashSet<usize> = indexes.iter().copied().collect();
                assert_eq!(
                    unique.len(),
                    indexes.len(),
                    "a chunk appeared twice for {target}: {indexes:?}"
                );
                assert_eq!(
                    hits.len(),
                    chunks_per_doc,
                    "{target} was not whole: {indexes:?}"
                );
                let texts: HashSet<&str> = hits.iter().map(|h| h.text.as_str()).collect();
                let old = texts.iter().any(|t| t.contains("revision 0"));
                let new = texts.iter().any(|t| t.contains("revision 1"));
                assert!(old ^ new, "{target} mixed two versions: {texts:?}");
                rounds += 1;
            }
            rounds
        }));
    }
    for i in 0..n {
        std::fs::write(tree.join(format!("d{i:03}.md")), doc(i, 1)).unwrap();
    }
    let second = index.sync_dir("docs", &tree).await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(second.updated, n, "{second:?}");
    assert!(second.chunks_reused > 0, "{second:?}");
    let mut total = 0;
    for l in loops {
        total += l.await.unwrap();
    }
    assert!(total > 200, "only {total} searches ran during the sync");
}
