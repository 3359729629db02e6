//! What every parser target shares: the options a sync parses with.

use quarry_ingest::{Budget, ParseOptions, parse_with};

/// Parses `data` as a file called `name`. The parser may skip or fail the
/// file; the fuzzer finds panics, hangs past the budget and stack overflows.
pub fn parse_as(name: &str, data: &[u8]) {
    let options = ParseOptions {
        skip_generated: true,
        budget: Budget::secs(5.0),
    };
    let _ = parse_with(name, data, None, &options);
}
