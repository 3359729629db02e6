//! quarry-ingest
