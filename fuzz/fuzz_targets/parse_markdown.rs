//! Arbitrary bytes through the markdown parser: it may skip or fail a file, never panic,
//! hang past its budget or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_ingest::{Budget, ParseOptions, parse_with};

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions {
        skip_generated: true,
        budget: Budget::secs(5.0),
    };
    let _ = parse_with("a.md", data, None, &options);
});
