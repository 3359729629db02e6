//! Where Quarry keeps files that outlive one process.

use std::path::PathBuf;

use crate::{CoreError, Result};

/// `$QUARRY_HOME`, or `~/.cache/quarry`. Models are shared between projects,
/// so they live here rather than in a project's data directory.
pub fn quarry_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("QUARRY_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(cache).join("quarry"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("quarry"))
        .ok_or(CoreError::NoHome)
}

/// The model cache: `$QUARRY_HOME/models`.
pub fn models_dir() -> Result<PathBuf> {
    Ok(quarry_home()?.join("models"))
}
