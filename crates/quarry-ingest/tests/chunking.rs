//! Chunks fit the model and point exactly into the parsed text.

#![allow(clippy::unwrap_used)]

use quarry_ingest::{Chunker, Parsed, parse};

fn tokenizer() -> std::path::PathBuf {
    let dir = quarry_core::paths::models_dir()
        .unwrap()
        .join("sentence-transformers--all-MiniLM-L6-v2");
    let path = dir.join("tokenizer.json");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh, which fetches the model first",
        path.display()
    );
    path
}

fn parsed(name: &str, text: &str) -> quarry_core::ParsedDocument {
    match parse(name, text.as_bytes(), None) {
        Parsed::Document(d) => d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn chunks_fit_the_budget_and_slice_the_text_at_their_offsets() {
    let chunker = Chunker::new(&tokenizer(), 40, 8).unwrap();
    let mut md = String::from("# Guide\n\nIntro with ünïcödé — text.\n\n");
    for i in 0..30 {
        md.push_str(&format!("## Section {i}\n\nParagraph {i} explains how café indexes sync and search works in detail.\n\n"));
    }
    let code =
        "fn a() -> u32 {\n    1\n}\n\n".repeat(40) + &"pub struct S { field: u64 }\n".repeat(20);
    let py =
        "def f(x):\n    return x * 2\n\n\nclass C:\n    def m(self):\n        pass\n".repeat(20);
    for (name, text) in [
        ("g.md", md.as_str()),
        ("lib.rs", code.as_str()),
        ("t.py", py.as_str()),
        ("n.txt", &"word ".repeat(2000)),
    ] {
        let doc = parsed(name, text);
        let chunks = chunker.chunk(&doc).unwrap();
        assert!(chunks.len() > 3, "{name}: {} chunks", chunks.len());
        let chars: Vec<char> = doc.text.chars().collect();
        for c in &chunks {
            let slice: String = chars[c.start..c.end].iter().collect();
            assert_eq!(slice, c.text, "{name} chunk {} offsets", c.index);
            assert!(
                chunker.count_tokens(&c.text) <= 40,
                "{name} chunk {} has {} tokens",
                c.index,
                chunker.count_tokens(&c.text)
            );
        }
        assert_eq!(
            chunks.iter().map(|c| c.index).collect::<Vec<_>>(),
            (0..chunks.len()).collect::<Vec<_>>()
        );
    }
    let doc = parsed("g.md", &md);
    let chunks = chunker.chunk(&doc).unwrap();
    let last = chunks.last().unwrap();
    assert_eq!(
        last.headings,
        vec!["Guide".to_string(), "Section 29".to_string()]
    );
}

#[test]
fn a_padding_and_truncating_tokenizer_json_does_not_distort_sizes() {
    // all-MiniLM-L6-v2's tokenizer.json pads to 128 and truncates at 128;
    // chunk sizes must ignore both.
    let chunker = Chunker::new(&tokenizer(), 200, 0).unwrap();
    assert_eq!(chunker.count_tokens("hello world"), 2);
    assert_eq!(chunker.count_tokens(&"word ".repeat(300)), 300);
}

#[test]
fn a_listing_that_fits_stays_whole_in_one_chunk() {
    let chunker = Chunker::new(&tokenizer(), 120, 16).unwrap();
    let code = "fn main() {\n    let total: u32 = (1..10).sum();\n    println!(\"{total}\");\n}";
    let prose = "Quarry keeps listings whole when they fit a chunk. ".repeat(12);
    let md = format!("# Code\n\n{prose}\n\n```rust\n{code}\n```\n\n{prose}\n");
    let mut html =
        format!("<html><body><main><h1>Code</h1><p>{prose}</p><pre><code class=\"language-rust\">");
    // Escaped as an HTML page would have it; the parser unescapes it.
    html.push_str(&code.replace('"', "&quot;"));
    html.push_str(&format!("</code></pre><p>{prose}</p></main></body></html>"));
    for (name, text) in [("c.md", md), ("c.html", html)] {
        let chunks = chunker.chunk(&parsed(name, &text)).unwrap();
        let fenced = format!("```rust\n{code}\n```");
        assert!(
            chunks.iter().any(|c| c.text.contains(&fenced)),
            "{name}: no chunk holds the whole listing: {:#?}",
            chunks.iter().map(|c| &c.text).collect::<Vec<_>>()
        );
    }
}
