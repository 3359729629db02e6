//! Arbitrary bytes through the html parser.
#![no_main]
#[path = "common.rs"]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::parse_as("a.html", data));
