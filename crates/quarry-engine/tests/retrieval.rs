//! Filters, per-document caps, and grounding context on a real index.

#![allow(clippy::unwrap_used)]

use quarry_engine::context::{self, ContextOptions, TokenCounter};
use quarry_engine::testing::{TestIndex, write_tree};
use quarry_engine::{Filter, Mode, OneOrMany, Retriever, SearchOptions};
use quarry_ingest::Parsed;

struct Fixture {
    tree: std::path::PathBuf,
    retriever: Retriever,
    counter: TokenCounter,
    // Last: the store flushes into this directory when dropped.
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let sync = format!(
        "---\ntags: [ops]\nteam: storage\nlevel: 2\n---\n# Sync\n\n{}",
        "Incremental sync skips unchanged documents and replaces changed ones atomically. "
            .repeat(12)
    );
    let search = format!(
        "---\ntags: [api]\nteam: search\n---\n# Search\n\n{}",
        "Hybrid search fuses dense and keyword rankings with reciprocal rank fusion. ".repeat(12)
    );
    write_tree(
        &tree,
        &[
            ("guide/sync.md", &sync),
            ("guide/search.md", &search),
            (
                "notes/misc.txt",
                "Unrelated notes about coffee and weather in spring.",
            ),
        ],
    );
    let index = TestIndex::open(&dir.path().join("data"), 32, 8);
    let report = index.sync_dir("docs", &tree).await;
    assert_eq!(report.added, 3);
    Fixture {
        tree,
        retriever: index.retriever(),
        counter: index.token_counter(),
        _dir: dir,
    }
}

fn opts(mode: Mode, filter: Filter) -> SearchOptions {
    SearchOptions {
        mode,
        top_k: 50,
        filter,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_per_document_caps() {
    let f = fixture().await;
    let docs = |hits: &[quarry_engine::Hit]| {
        let mut d: Vec<String> = hits.iter().map(|h| h.doc_id.clone()).collect();
        d.sort();
        d.dedup();
        d
    };
    for mode in [Mode::Dense, Mode::Bm25, Mode::Hybrid] {
        let all = f
            .retriever
            .search("docs", "sync search notes", &opts(mode, Filter::default()))
            .await
            .unwrap();
        assert!(all.len() > 3, "{mode:?}");
        let cases = [
            (
                Filter {
                    path_prefix: Some("guide".into()),
                    ..Default::default()
                },
                vec!["guide/search.md", "guide/sync.md"],
            ),
            (
                Filter {
                    path_prefix: Some("notes/".into()),
                    ..Default::default()
                },
                vec!["notes/misc.txt"],
            ),
            (
                Filter {
                    tags: Some(vec!["ops".into()]),
                    ..Default::default()
                },
                vec!["guide/sync.md"],
            ),
            (
                Filter {
                    doc_id: Some(OneOrMany::Many(vec![
                        "notes/misc.txt".into(),
                        "guide/search.md".into(),
                    ])),
                    ..Default::default()
                },
                vec!["guide/search.md", "notes/misc.txt"],
            ),
            (
                Filter {
                    metadata: Some(serde_json::from_str(r#"{"team": "search"}"#).unwrap()),
                    ..Default::default()
                },
                vec!["guide/search.md"],
            ),
            (
                Filter {
                    metadata: Some(serde_json::from_str(r#"{"level": 2}"#).unwrap()),
                    ..Default::default()
                },
                vec!["guide/sync.md"],
            ),
            (
                Filter {
                    source: Some(OneOrMany::One("other".into())),
                    ..Default::default()
                },
                vec![],
            ),
        ];
        for (filter, expected) in cases {
            let hits = f
                .retriever
                .search(
                    "docs",
                    "sync search notes coffee",
                    &opts(mode, filter.clone()),
                )
                .await
                .unwrap();
            let expected: Vec<String> = expected.into_iter().map(String::from).collect();
            assert_eq!(docs(&hits), expected, "{mode:?} {filter:?}");
        }
        let capped = f
            .retriever
            .search(
                "docs",
                "sync",
                &SearchOptions {
                    per_doc_limit: Some(1),
                    ..opts(mode, Filter::default())
                },
            )
            .await
            .unwrap();
        assert_eq!(
            capped.len(),
            docs(&capped).len(),
            "{mode:?}: one chunk per document"
        );
    }
    let bad = Filter {
        metadata: Some(serde_json::from_str(r#"{"a": [1]}"#).unwrap()),
        ..Default::default()
    };
    assert!(
        f.retriever
            .search("docs", "x", &opts(Mode::Bm25, bad))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_fits_the_budget_merges_chunks_and_cites_real_offsets() {
    let f = fixture().await;
    for budget in [40, 120, 400, 2000] {
        let options = ContextOptions {
            search: opts(Mode::Hybrid, Filter::default()),
            max_tokens: budget,
            per_doc_limit: None,
        };
        let ctx = context::build(
            &f.retriever,
            &f.counter,
            "docs",
            "how does incremental sync replace documents",
            &options,
        )
        .await
        .unwrap();
        assert!(
            ctx.tokens <= budget && f.counter.count(&ctx.text) <= budget,
            "budget {budget}: {} tokens",
            ctx.tokens
        );
        if budget >= 120 {
            assert!(!ctx.passages.is_empty());
        }
        // The best hit's document is cited whenever one of its chunks fits,
        // even when its merged neighbours together would not.
        let best = f
            .retriever
            .search(
                "docs",
                "how does incremental sync replace documents",
                &opts(Mode::Hybrid, Filter::default()),
            )
            .await
            .unwrap()
            .remove(0);
        if f.counter.count(&best.text) + 20 < budget {
            assert!(
                ctx.passages.iter().any(|p| p.doc_id == best.doc_id),
                "budget {budget}: {} not cited",
                best.doc_id
            );
        }
        for (i, p) in ctx.passages.iter().enumerate() {
            assert_eq!(p.citation, i + 1);
            assert!(ctx.text.contains(&format!("[{}]", p.citation)));
            // The citation points at real offsets of the parsed document.
            let bytes = std::fs::read(f.tree.join(&p.doc_id)).unwrap();
            let Parsed::Document(doc) = quarry_ingest::parse(&p.doc_id, &bytes, None) else {
                panic!()
            };
            let slice: String = doc
                .text
                .chars()
                .skip(p.start)
                .take(p.end - p.start)
                .collect();
            assert_eq!(slice, p.text, "passage {} of {}", p.citation, p.doc_id);
            // No two passages of a document share text.
            for q in &ctx.passages[..i] {
                if q.doc_id == p.doc_id {
                    assert!(
                        q.end <= p.start || p.end <= q.start,
                        "overlapping passages {q:?} {p:?}"
                    );
                }
            }
        }
        if budget == 2000 {
            assert!(
                ctx.passages.iter().any(|p| p.chunk_ids.len() > 1),
                "adjacent chunks were not merged"
            );
        }
    }
}
