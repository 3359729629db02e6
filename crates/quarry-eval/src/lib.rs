//! quarry-eval
