//! One contract, two stores. Every check runs against a real qdrant-edge
//! shard on disk and, when `QDRANT_URL` names a Qdrant server's gRPC
//! endpoint (e.g. `http://127.0.0.1:6334`), against that server too; the
//! last test also requires both to answer every query identically.

#![allow(clippy::unwrap_used)]

use quarry_core::ChunkPayload;
use quarry_core::PointId;
use quarry_core::config::ServerStoreConfig;
use quarry_store::{
    CollectionSpec, Condition, EdgeStore, Fields, IndexSettings, MatchValue, Point, Quantization,
    Query, Range, ScrollRequest, SearchRequest, ServerStore, StoreError, VectorStore,
};
use serde_json::json;

const DIM: usize = 8;

fn spec(model: &str) -> CollectionSpec {
    CollectionSpec {
        dimension: DIM,
        model: json!({"id": model, "dimension": DIM}),
        index: None,
    }
}

fn server() -> Option<ServerStore> {
    match std::env::var("QDRANT_URL") {
        Ok(url) if !url.is_empty() => {
            let mut c = ServerStoreConfig::new(url);
            c.retry_secs = 5;
            Some(ServerStore::connect(&c).expect("client"))
        }
        _ => {
            quarry_core::skip_test("server store (set QDRANT_URL=http://127.0.0.1:6334 to run it)");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A unit vector leaning towards axis `i % DIM`.
fn vector(i: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|d| 0.05 * ((i * 7 + d * 3) % 5) as f32)
        .collect();
    v[i % DIM] += 1.0;
    // Break symmetries, so no two points tie for any query below.
    v[(i + 1) % DIM] += 0.013 * i as f32;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

const WORDS: &[&str] = &[
    "qdrant shards replicate vectors",
    "candle embeds sentences on the cpu",
    "bm25 weighs rare terms higher",
    "hybrid search fuses ranked lists",
    "atomic replacement keeps readers consistent",
    "token budgets bound the grounding context",
];

fn point(i: usize, doc: &str) -> Point {
    // Points sharing words differ in length, so BM25 never ties them.
    let text = format!(
        "{} number{i}{}",
        WORDS[i % WORDS.len()],
        " filler".repeat(i / WORDS.len())
    );
    let metadata = json!({"year": 2000 + (i % 4) as i64, "draft": i.is_multiple_of(2)});
    let payload = ChunkPayload {
        doc_id: doc.into(),
        source: "contract".into(),
        path_prefixes: vec![format!("dir{}", i % 2)],
        tags: vec![format!("t{}", i % 3)],
        chunk_index: i,
        chunk_count: 12,
        text: text.clone(),
        metadata: metadata.as_object().cloned().unwrap_or_default(),
        ..ChunkPayload::default()
    };
    Point {
        id: PointId(0x1000 + i as u128),
        dense: vector(i),
        text,
        payload,
    }
}

fn ids(hits: &[quarry_store::ScoredPoint]) -> Vec<u128> {
    hits.iter().map(|h| h.id.0).collect()
}

fn search(
    store: &dyn VectorStore,
    name: &str,
    query: Query,
    filter: Option<Condition>,
) -> Vec<quarry_store::ScoredPoint> {
    store
        .search(
            name,
            &SearchRequest {
                query,
                limit: 5,
                filter,
                score_threshold: None,
                exact: false,
                ef: None,
            },
        )
        .expect("search")
}

/// Fills a collection: docs a (points 0..6) and b (6..12), published.
fn fill(store: &dyn VectorStore, name: &str) {
    store.open_collection(name, &spec("m1")).expect("create");
    let pts: Vec<Point> = (0..12)
        .map(|i| point(i, if i < 6 { "a" } else { "b" }))
        .collect();
    let staged: Vec<PointId> = pts.iter().map(|p| p.id).collect();
    store.upsert_staged(name, pts).expect("upsert");
    store.publish(name, &staged, &[]).expect("publish");
}

fn contract(store: &dyn VectorStore, label: &str) {
    let name = unique("contract");
    // Collections are bound to their spec.
    assert_eq!(store.collection_spec(&name).expect("spec"), None, "{label}");
    fill(store, &name);
    assert_eq!(
        store.collection_spec(&name).expect("spec"),
        Some(spec("m1"))
    );
    store.open_collection(&name, &spec("m1")).expect("reopen");
    let err = store.open_collection(&name, &spec("m2")).unwrap_err();
    assert!(matches!(err, StoreError::Mismatch { .. }), "{label}: {err}");
    assert!(
        store.list_collections().expect("list").contains(&name),
        "{label}"
    );
    assert_eq!(store.count(&name).expect("count"), 12, "{label}");

    // Dense search: the exact vector is first, with cosine 1.
    let hits = search(store, &name, Query::Dense(vector(3)), None);
    assert_eq!(hits[0].id, PointId(0x1003), "{label}");
    assert!(
        (hits[0].score - 1.0).abs() < 1e-4,
        "{label}: {}",
        hits[0].score
    );
    assert_eq!(hits[0].payload.doc_id, "a", "{label}");
    // BM25: a rare term finds its point.
    let hits = search(store, &name, Query::Bm25("number7".into()), None);
    assert_eq!(ids(&hits), vec![0x1007], "{label}");
    // Ids only: the same hits and scores as a full search, for each kind.
    for query in [
        Query::Dense(vector(3)),
        Query::Bm25("number7 number2".into()),
    ] {
        let request = SearchRequest {
            query: query.clone(),
            limit: 5,
            filter: None,
            score_threshold: None,
            exact: false,
            ef: None,
        };
        let full = store.search(&name, &request).expect("search");
        let bare = store.search_ids(&name, &request).expect("search_ids");
        let full: Vec<(PointId, f32)> = full.iter().map(|h| (h.id, h.score)).collect();
        let bare: Vec<(PointId, f32)> = bare.iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(full, bare, "{label}");
    }
    // Filters: keyword, any, nested metadata, must_not.
    let only_b = Condition::matches("doc_id", "b");
    let hits = search(store, &name, Query::Dense(vector(3)), Some(only_b));
    assert!(
        hits.iter().all(|h| h.payload.doc_id == "b") && hits.len() == 5,
        "{label}"
    );
    let f = Condition::And(vec![
        Condition::any_of("tags", vec!["t0".into()]),
        Condition::Range {
            key: "metadata.year".into(),
            range: Range {
                gte: Some(2000.0),
                lte: Some(2001.0),
                ..Range::default()
            },
        },
        !Condition::matches("path_prefixes", MatchValue::from("dir1")),
    ]);
    let hits = search(
        store,
        &name,
        Query::Bm25("number0 number6 number3 number9".into()),
        Some(f),
    );
    // tags t0: 0,3,6,9; year 2000|2001: i%4 in {0,1}: 0,9; dir0 (even): 0.
    assert_eq!(ids(&hits), vec![0x1000], "{label}");
    // Hybrid fuses both lists.
    let hits = search(
        store,
        &name,
        Query::Hybrid {
            dense: vector(2),
            text: "number5".into(),
            prefetch: 20,
            rrf_k: 60,
        },
        None,
    );
    let top2: std::collections::HashSet<u128> = ids(&hits[..2]).into_iter().collect();
    assert_eq!(top2, [0x1002, 0x1005].into_iter().collect(), "{label}");
    // A score threshold drops weak hits.
    let strong = store
        .search(
            &name,
            &SearchRequest {
                query: Query::Dense(vector(3)),
                limit: 12,
                filter: None,
                score_threshold: Some(0.99),
                exact: false,
                ef: None,
            },
        )
        .expect("threshold search");
    assert_eq!(ids(&strong), vec![0x1003], "{label}");

    // Staged points are invisible until publish; existing ones stay visible.
    let mut new = point(20, "a");
    new.dense = vector(3);
    let mut same = point(3, "a");
    same.payload.chunk_count = 13;
    store.upsert_staged(&name, vec![new, same]).expect("stage");
    let hits = search(store, &name, Query::Dense(vector(3)), None);
    assert!(
        !ids(&hits).contains(&0x1014),
        "{label}: staged point visible"
    );
    assert!(
        ids(&hits).contains(&0x1003),
        "{label}: existing point hidden"
    );
    let old: Vec<PointId> = (0..6).map(|i| PointId(0x1000 + i)).collect();
    store
        .publish(&name, &[PointId(0x1014), PointId(0x1003)], &old)
        .expect("publish");
    let hits = search(store, &name, Query::Dense(vector(3)), None);
    assert!(
        ids(&hits).contains(&0x1014) && ids(&hits).contains(&0x1003),
        "{label}"
    );
    assert!(!ids(&hits).contains(&0x1000), "{label}");
    assert_eq!(store.count(&name).expect("count"), 8, "{label}");

    // Retrieve: payloads exactly as written, no internal markers, vectors.
    let got = store
        .retrieve(&name, &[PointId(0x1014)], true)
        .expect("retrieve");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, point(20, "a").payload, "{label}");
    let dense = got[0].dense.as_ref().expect("vector");
    let expected = vector(3);
    assert!(
        dense
            .iter()
            .zip(&expected)
            .all(|(a, b)| (a - b).abs() < 1e-6),
        "{label}"
    );

    // Scroll: every point once, in id order, over pages; field selection.
    let mut seen = Vec::new();
    let only_ids = ScrollRequest::fields(Fields::Only(vec!["doc_id"]), 3);
    for page in store.scroll_all(&name, only_ids) {
        let page = page.expect("scroll").points;
        assert!(
            page.iter().all(|p| p.payload
                == ChunkPayload {
                    doc_id: p.payload.doc_id.clone(),
                    ..ChunkPayload::default()
                }
                && !p.payload.doc_id.is_empty()
                && p.dense.is_none()),
            "{label}"
        );
        seen.extend(page.iter().map(|p| p.id.0));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "{label}");
    assert_eq!(seen.len(), 8, "{label}");
    let doc_a = ScrollRequest::fields(Fields::All, 100).filter(Condition::matches("doc_id", "a"));
    let page = store.scroll(&name, &doc_a).expect("filtered scroll").points;
    assert_eq!(page.len(), 2, "{label}");

    store.delete(&name, &[PointId(0x1014)]).expect("delete");
    assert_eq!(store.count(&name).expect("count"), 7, "{label}");
    let err = store
        .search(
            "no-such-collection",
            &SearchRequest {
                query: Query::Bm25("x".into()),
                limit: 1,
                filter: None,
                score_threshold: None,
                exact: false,
                ef: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NoCollection(_)), "{label}: {err}");

    // Aliases: a rebuilt collection takes over the name in one switch.
    let old = store.resolve(&name).expect("resolve");
    let next = unique("contract-next");
    store
        .open_collection(&next, &spec("m2"))
        .expect("create next");
    let next_physical = store.resolve(&next).expect("resolve next");
    store
        .upsert_staged(&next_physical, vec![point(30, "c")])
        .expect("upsert next");
    store
        .publish(&next_physical, &[PointId(0x1000 + 30)], &[])
        .expect("publish next");
    store.switch_alias(&name, &next_physical).expect("switch");
    assert_eq!(
        store.resolve(&name).expect("resolve"),
        next_physical,
        "{label}"
    );
    assert_eq!(
        store.collection_spec(&name).expect("spec"),
        Some(spec("m2")),
        "{label}"
    );
    assert_eq!(store.count(&name).expect("count"), 1, "{label}");
    let hits = search(store, &name, Query::Bm25("number30".into()), None);
    assert_eq!(ids(&hits), vec![0x1000 + 30], "{label}");
    assert!(
        store.list_collections().expect("list").contains(&name),
        "{label}"
    );
    assert!(
        store.drop_collection(&next_physical).is_err(),
        "{label}: dropped the collection an alias points to"
    );
    store.drop_collection(&old).expect("drop old");
    // The name still works; the old collection, if it had its own name, is gone.
    assert_eq!(store.count(&name).expect("count"), 1, "{label}");
    if old != name {
        assert_eq!(store.collection_spec(&old).expect("spec"), None, "{label}");
    }
    store.switch_alias(&name, &old).unwrap_err();
    // Back to the original contents for the last checks.
}

#[test]
fn edge_store_meets_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    contract(&EdgeStore::open(dir.path()).expect("open"), "edge");
}

#[test]
fn server_store_meets_the_contract() {
    if let Some(store) = server() {
        contract(&store, "server");
    }
}

/// A pseudo-random unit vector: unlike `vector`, thousands of these have
/// no near-ties, so exact and graph search can be told apart.
fn scattered(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<f32> = (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// A collection keeps the index it was created with; once optimized its
/// vectors are in an HNSW graph, and graph search finds what exact search
/// finds, which is what brute force in this test finds.
fn indexed(store: &dyn VectorStore, label: &str) {
    const N: usize = 3000;
    let name = unique("indexed");
    // 3000 × 8 dimensions × 4 bytes = 94 KiB, past a 16 KiB threshold.
    let settings = IndexSettings {
        m: 8,
        indexing_threshold_kb: 16,
        full_scan_threshold_kb: 1,
        quantization: Quantization::Int8,
        ..IndexSettings::default()
    };
    let with_index = CollectionSpec {
        index: Some(settings.clone()),
        ..spec("m1")
    };
    store.create_collection(&name, &with_index).expect("create");
    // Reopening under other (or no) index settings keeps the stored ones.
    store.open_collection(&name, &spec("m1")).expect("reopen");
    let stored = store.collection_spec(&name).expect("spec").expect("exists");
    assert_eq!(stored.index, Some(settings), "{label}");
    let vectors: Vec<Vec<f32>> = (0..N as u64).map(scattered).collect();
    for batch in (0..N).collect::<Vec<_>>().chunks(500) {
        let pts: Vec<Point> = batch
            .iter()
            .map(|&i| Point {
                id: PointId(0x1_0000 + i as u128),
                dense: vectors[i].clone(),
                ..point(i, &format!("d{i}"))
            })
            .collect();
        let staged: Vec<PointId> = pts.iter().map(|p| p.id).collect();
        store.upsert_staged(&name, pts).expect("upsert");
        store.publish(&name, &staged, &[]).expect("publish");
    }
    store.flush(&name).expect("flush");
    let before = store
        .index_info(&name)
        .expect("info")
        .expect("edge and server report it");
    assert_eq!(before.points, N, "{label}");
    if label == "edge" {
        assert!(
            before.indexed_vectors < 2 * N,
            "edge: the graph waits for optimize: {before:?}"
        );
    }
    store.optimize(&name).expect("optimize");
    // The edge store builds in `optimize`; a server builds by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let after = loop {
        let info = store.index_info(&name).expect("info").expect("reported");
        if info.indexed_vectors >= 2 * N || std::time::Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        after.indexed_vectors >= 2 * N,
        "{label}: {before:?} then {after:?}"
    );
    let (mut found, mut exact_right) = (0, 0);
    const Q: usize = 50;
    for q in 0..Q as u64 {
        let query = scattered(1_000_000 + q);
        let mut truth: Vec<(f32, u128)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    v.iter().zip(&query).map(|(a, b)| a * b).sum(),
                    0x1_0000 + i as u128,
                )
            })
            .collect();
        truth.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<u128> = truth.iter().take(10).map(|t| t.1).collect();
        let ask = |exact| SearchRequest {
            query: Query::Dense(query.clone()),
            limit: 10,
            filter: None,
            score_threshold: None,
            exact,
            ef: None,
        };
        let exact = ids(&store.search(&name, &ask(true)).expect("exact"));
        exact_right += usize::from(exact == truth);
        let graph = store.search_ids(&name, &ask(false)).expect("graph");
        found += graph.iter().filter(|h| truth.contains(&h.id.0)).count();
    }
    assert_eq!(exact_right, Q, "{label}: exact search is brute force");
    let recall = found as f64 / (Q * 10) as f64;
    assert!(recall >= 0.95, "{label}: recall@10 {recall}");
    store.drop_collection(&name).expect("drop");
}

#[test]
fn edge_store_builds_the_configured_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path()).expect("open");
    indexed(&store, "edge");
}

#[test]
fn server_store_builds_the_configured_index() {
    if let Some(store) = server() {
        indexed(&store, "server");
    }
}

#[test]
fn both_stores_answer_alike() {
    let Some(server) = server() else { return };
    // Exact score ties (equal texts) may be broken differently by the two
    // engines, so the queries below avoid them; real corpora rarely tie.
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = EdgeStore::open(dir.path()).expect("open");
    let name = unique("alike");
    fill(&edge, &name);
    fill(&server, &name);
    let all = |s: &dyn VectorStore| {
        s.scroll(
            &name,
            &ScrollRequest::fields(Fields::All, 100).with_vectors(true),
        )
        .expect("scroll")
        .points
    };
    assert_eq!(all(&edge), all(&server));
    for i in 0..12 {
        for q in [
            Query::Dense(vector(i)),
            Query::Bm25(format!("{} number{i}", WORDS[i % WORDS.len()])),
            Query::Hybrid {
                dense: vector(i),
                text: format!("number{i} {}", WORDS[(i + 1) % WORDS.len()]),
                prefetch: 12,
                rrf_k: 60,
            },
        ] {
            // Every point, so RRF's inherent ties (equal rank patterns)
            // cannot push different members past the limit.
            let all_hits = |st: &dyn VectorStore| {
                let mut hits = st
                    .search(
                        &name,
                        &SearchRequest {
                            query: q.clone(),
                            limit: 12,
                            filter: None,
                            score_threshold: None,
                            exact: false,
                            ef: None,
                        },
                    )
                    .expect("search");
                // Scores equal up to f32 summation order count as tied.
                let key = |h: &quarry_store::ScoredPoint| (-(h.score * 1e5).round() as i64, h.id.0);
                hits.sort_by_key(key);
                hits
            };
            let (e, s) = (all_hits(&edge), all_hits(&server));
            assert_eq!(ids(&e), ids(&s), "{q:?}");
            for (a, b) in e.iter().zip(&s) {
                assert!(
                    (a.score - b.score).abs() < 1e-4,
                    "{q:?}: {} vs {}",
                    a.score,
                    b.score
                );
            }
        }
    }
}

#[test]
fn an_unreachable_server_is_named_in_the_error() {
    let mut c = ServerStoreConfig::new("http://127.0.0.1:9");
    c.retry_secs = 1;
    let store = ServerStore::connect(&c).expect("client");
    let err = store.list_collections().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains("127.0.0.1:9") && err.to_string().contains("unreachable"),
        "{err}"
    );
}
