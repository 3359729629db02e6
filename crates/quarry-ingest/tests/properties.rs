//! Properties of every parser and of the chunker, over arbitrary input:
//! no bytes make a parser panic, and chunk offsets always slice the parsed
//! text exactly.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use quarry_ingest::{Chunker, Parsed, parse};

fn tokenizer() -> std::path::PathBuf {
    let path = quarry_core::paths::models_dir()
        .unwrap()
        .join("sentence-transformers--all-MiniLM-L6-v2/tokenizer.json");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh, which fetches the model first",
        path.display()
    );
    path
}

/// One name per parser (and per sniffing rule).
const NAMES: &[&str] = &[
    "a.txt",
    "a.md",
    "a.html",
    "a.pdf",
    "a.rs",
    "a.py",
    "a.js",
    "a.ts",
    "a.tsx",
    "a.go",
    "a.json",
    "a.css",
    "a.min.js",
    "a.js.map",
    "searchindex.js",
    "noext",
];

/// Bytes that look enough like each format to get past its first checks.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    let fragments = prop::sample::select(vec![
        "<div>",
        "</div>",
        "<h1>",
        "</h1>",
        "<p>",
        "<script>",
        "</script>",
        "# ",
        "## ",
        "---\n",
        "title: [",
        "]\n",
        "```",
        "\n",
        "\n\n",
        "(",
        ")",
        "{",
        "}",
        "fn f() ",
        "def f():\n    ",
        "%PDF-1.4\n",
        "stream\n",
        "endstream",
        "obj",
        "<< /Length 5 >>",
        "é",
        "\u{feff}",
        "\r\n",
        "x",
        "word ",
        "- item\n",
        "> quote\n",
        "|a|b|\n",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::collection::vec(fragments, 0..200).prop_map(|f| f.concat().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_bytes_make_a_parser_panic(bytes in shaped(), name in prop::sample::select(NAMES)) {
        let parsed = std::panic::catch_unwind(|| parse(name, &bytes, None));
        prop_assert!(parsed.is_ok(), "{name} panicked on {bytes:?}");
        for ct in ["text/html", "text/markdown", "text/plain"] {
            let parsed = std::panic::catch_unwind(|| parse("x", &bytes, Some(ct)));
            prop_assert!(parsed.is_ok(), "{ct} panicked on {bytes:?}");
        }
    }

    #[test]
    fn chunk_offsets_slice_the_parsed_text_exactly(
        bytes in shaped(),
        name in prop::sample::select(NAMES),
        budget in 8usize..64,
        overlap in 0usize..8,
    ) {
        let Parsed::Document(doc) = parse(name, &bytes, None) else {
            return Ok(());
        };
        let chunker = Chunker::new(&tokenizer(), budget, overlap).unwrap();
        let chunks = chunker.chunk(&doc).unwrap();
        let chars: Vec<char> = doc.text.chars().collect();
        for (i, c) in chunks.iter().enumerate() {
            prop_assert_eq!(c.index, i);
            prop_assert!(c.start < c.end && c.end <= chars.len(), "{:?}", c);
            let slice: String = chars[c.start..c.end].iter().collect();
            prop_assert_eq!(&slice, &c.text);
            prop_assert!(chunker.count_tokens(&c.text) <= budget, "{} tokens > {budget}", chunker.count_tokens(&c.text));
        }
    }
}
