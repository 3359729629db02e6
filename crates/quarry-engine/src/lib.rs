//! quarry-engine
