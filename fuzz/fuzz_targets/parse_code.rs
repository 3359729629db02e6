//! Arbitrary bytes as source code of each language the chunker splits along
//! its syntax tree, parsed and then chunked in the real model's tokens (the
//! tokenizer comes from the model cache: run `quarry model fetch` first).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quarry_ingest::{Budget, Chunker, ParseOptions, Parsed, parse_with};

fn chunker() -> &'static Chunker {
    static CHUNKER: OnceLock<Chunker> = OnceLock::new();
    CHUNKER.get_or_init(|| {
        let tokenizer = quarry_core::paths::models_dir()
            .expect("a model cache")
            .join("sentence-transformers--all-MiniLM-L6-v2/tokenizer.json");
        Chunker::new(&tokenizer, 64, 8).expect("the cached model's tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions {
        skip_generated: true,
        budget: Budget::secs(5.0),
    };
    for name in ["a.rs", "a.py", "a.js", "a.ts", "a.go"] {
        if let Parsed::Document(doc) = parse_with(name, data, None, &options) {
            let _ = chunker().chunk_within(&doc, &options.budget);
        }
    }
});
