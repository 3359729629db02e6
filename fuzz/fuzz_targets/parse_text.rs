//! Arbitrary bytes through the text parser.
#![no_main]
#[path = "common.rs"]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::parse_as("a.txt", data));
