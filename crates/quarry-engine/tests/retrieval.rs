//! Filters, per-document caps, and grounding context on a real index.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use quarry_core::EmbedConfig;
use quarry_core::config::{DEFAULT_MODEL, SourceConfig, SourceKind};
use quarry_embed::model::LoadOptions;
use quarry_embed::{Embedder, Model};
use quarry_engine::context::{self, ContextOptions, TokenCounter};
use quarry_engine::{Filter, Indexer, IndexerSettings, Mode, OneOrMany, Retriever, SearchOptions};
use quarry_ingest::Parsed;
use quarry_store::{EdgeStore, VectorStore};

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
    let files: &[(&str, String)] = &[
        (
            "guide/sync.md",
            format!(
                "---\ntags: [ops]\nteam: storage\nlevel: 2\n---\n# Sync\n\n{}",
                "Incremental sync skips unchanged documents and replaces changed ones atomically. "
                    .repeat(12)
            ),
        ),
        (
            "guide/search.md",
            format!(
                "---\ntags: [api]\nteam: search\n---\n# Search\n\n{}",
                "Hybrid search fuses dense and keyword rankings with reciprocal rank fusion. "
                    .repeat(12)
            ),
        ),
        (
            "notes/misc.txt",
            "Unrelated notes about coffee and weather in spring.".to_string(),
        ),
    ];
    for (path, text) in files {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let model_dir =
        quarry_embed::fetch::resolve(&quarry_core::paths::models_dir().unwrap(), DEFAULT_MODEL)
            .unwrap();
    let embedder = Embedder::start(
        Model::load(&model_dir, &LoadOptions::default()).unwrap(),
        EmbedConfig::default(),
    )
    .unwrap();
    let store: Arc<dyn VectorStore> = Arc::new(EdgeStore::open(&dir.path().join("data")).unwrap());
    let settings = IndexerSettings {
        data_dir: dir.path().join("data"),
        chunk_max_tokens: 32,
        chunk_overlap: 8,
    };
    let indexer = Indexer::new(
        Arc::clone(&store),
        embedder.clone(),
        &model_dir.join("tokenizer.json"),
        &settings,
    )
    .unwrap();
    let source = SourceConfig {
        name: "docs".into(),
        kind: SourceKind::Fs,
        path: tree.clone(),
        collection: None,
        include: vec![],
        exclude: vec![],
        gitignore: true,
        follow_symlinks: false,
        tags: vec![],
    };
    let report = indexer
        .sync(
            Arc::from(quarry_ingest::open_source(&source, 1 << 20).unwrap()),
            "docs",
        )
        .await
        .unwrap();
    assert_eq!(report.added, 3);
    let counter = TokenCounter::from_file(&model_dir.join("tokenizer.json")).unwrap();
    Fixture {
        _dir: dir,
        tree,
        retriever: Retriever::new(store, embedder),
        counter,
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
