//! Files that change or vanish between a sync's listing and its read: the
//! sync indexes what it actually read, keeps a vanished document's indexed
//! version (a failed read never deletes), and the next sync converges.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use quarry_core::config::SourceConfig;
use quarry_engine::testing::{TestIndex, write_tree};
use quarry_ingest::{DocumentRef, Listing, RawDocument, Source, SourceError};

/// The real directory source, with its listing taken before the files
/// change: the window a slow sync leaves open, made deterministic.
struct ListedEarly {
    inner: Box<dyn Source>,
    listing: Listing,
}

impl Source for ListedEarly {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn list(&self) -> Result<Listing, SourceError> {
        Ok(self.listing.clone())
    }
    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError> {
        self.inner.read(doc)
    }
}

async fn bm25_top(index: &TestIndex, query: &str) -> Option<String> {
    let options = quarry_engine::SearchOptions {
        mode: quarry_engine::Mode::Bm25,
        top_k: 1,
        ..Default::default()
    };
    let hits = index
        .retriever()
        .search("live", query, &options)
        .await
        .unwrap();
    hits.first().map(|h| h.text.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_change_or_vanish_mid_sync_are_handled_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(
        &tree,
        &[
            ("a.md", "# A\n\nThe stable axolotl page.\n"),
            ("b.md", "# B\n\nThe first bison draft.\n"),
            ("c.md", "# C\n\nThe cormorant notes.\n"),
        ],
    );
    let index = TestIndex::open(&dir.path().join("data"), 64, 8);
    let first = index.sync_dir("live", &tree).await;
    assert_eq!(first.added, 3);

    let open = || quarry_ingest::open_source(&SourceConfig::fs("live", &tree), 1 << 20).unwrap();
    std::fs::write(tree.join("b.md"), "# B\n\nThe second bison draft.\n").unwrap();
    std::fs::write(tree.join("c.md"), "# C\n\nThe cormorant notes, revised.\n").unwrap();
    let listing = open().list().unwrap();
    // After the listing: b changes again, c disappears.
    std::fs::write(tree.join("b.md"), "# B\n\nThe third bison draft, final.\n").unwrap();
    std::fs::remove_file(tree.join("c.md")).unwrap();
    let source = ListedEarly {
        inner: open(),
        listing,
    };
    let report = index.indexer.sync(Arc::new(source), "live").await.unwrap();
    assert_eq!((report.updated, report.failed), (1, 1), "{report:?}");
    let vanished = &report.errors[0];
    assert!(
        vanished.uri.ends_with("c.md") && vanished.reason.contains("vanished"),
        "{vanished:?}"
    );
    // What was read is what is indexed; the vanished file keeps its version.
    assert!(
        bm25_top(&index, "third bison")
            .await
            .unwrap()
            .contains("third bison draft")
    );
    assert!(
        bm25_top(&index, "cormorant")
            .await
            .unwrap()
            .contains("cormorant")
    );

    // The next sync sees the truth: c deleted, b already current.
    let next = index.sync_dir("live", &tree).await;
    assert_eq!(
        (next.deleted, next.unchanged, next.updated),
        (1, 2, 0),
        "{next:?}"
    );
    assert_eq!(bm25_top(&index, "cormorant").await, None);
}
