//! Arbitrary bytes through the pdf parser.
#![no_main]
#[path = "common.rs"]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::parse_as("a.pdf", data));
