//! `include = ["tuned/scifact.toml"]`: settings kept in other files, such
//! as the ones `quarry eval --tune` writes for one collection.
//!
//! Paths are relative to the file that names them. Included files are
//! merged first, in order, and the including file last, so what a file
//! says itself wins; tables merge key by key, and any other value
//! (arrays included) is replaced whole. An included file may include
//! others; a cycle is an error that names it.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::CoreError;

/// Deep enough for any real layout, shallow enough to stop a runaway.
const MAX_DEPTH: usize = 8;

fn read(path: &Path) -> Result<Table, CoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| CoreError::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<Table>().map_err(|e| CoreError::ParseConfig {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// `over` onto `base`, key by key for tables.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The file at `path` with everything it includes merged in, and the
/// `include` key removed; `None` when it includes nothing (then the caller
/// parses the text itself, for its line-exact errors).
pub(crate) fn resolve(path: &Path, text: &str) -> Result<Option<Table>, CoreError> {
    let table = text.parse::<Table>().map_err(|e| CoreError::ParseConfig {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    if !table.contains_key("include") {
        return Ok(None);
    }
    let mut chain = vec![path.to_path_buf()];
    expand(path, table, &mut chain).map(Some)
}

fn expand(path: &Path, mut table: Table, chain: &mut Vec<PathBuf>) -> Result<Table, CoreError> {
    let bad = |message: String| CoreError::ParseConfig {
        path: path.to_path_buf(),
        message,
    };
    let names: Vec<String> = match table.remove("include") {
        None => return Ok(table),
        Some(Value::String(one)) => vec![one],
        Some(Value::Array(many)) => many
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(bad(format!(
                    "include must list file paths as strings, found {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(bad(format!(
                "include must be a path or a list of paths, found {other}"
            )));
        }
    };
    if chain.len() > MAX_DEPTH {
        return Err(bad(format!("includes nest deeper than {MAX_DEPTH} files")));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = Table::new();
    for name in names {
        let included = dir.join(&name);
        let key = included.canonicalize().unwrap_or_else(|_| included.clone());
        if chain.contains(&key) {
            return Err(bad(format!(
                "include {name:?} makes a cycle ({})",
                chain
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" → ")
            )));
        }
        if !included.is_file() {
            return Err(bad(format!(
                "include {name:?}: {} does not exist (paths are relative to this file)",
                included.display()
            )));
        }
        chain.push(key);
        let inner = expand(&included, read(&included)?, chain)?;
        chain.pop();
        merge(&mut merged, inner);
    }
    merge(&mut merged, table);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::Config;

    #[test]
    fn included_settings_merge_under_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tuned")).unwrap();
        std::fs::write(
            dir.path().join("tuned/docs.toml"),
            "[retrieval]\nrrf_k = 20\n\n[retrieval.collections.docs]\n\
             fusion = { method = \"convex\", weights = [0.7, 0.3] }\n",
        )
        .unwrap();
        let main = dir.path().join("quarry.toml");
        std::fs::write(
            &main,
            "include = [\"tuned/docs.toml\"]\n\n[retrieval]\nquery_cache = 7\n",
        )
        .unwrap();
        let config = Config::from_file(&main).unwrap();
        assert_eq!(config.retrieval.rrf_k, 20);
        assert_eq!(config.retrieval.query_cache, 7);
        let docs = &config.retrieval.collections["docs"];
        let fusion = docs.fusion.unwrap();
        assert_eq!(fusion.method, crate::config::FusionMethod::Convex);
        assert_eq!(fusion.weights, Some([0.7, 0.3]));

        // The including file wins over what it includes.
        std::fs::write(
            &main,
            "include = \"tuned/docs.toml\"\n[retrieval]\nrrf_k = 60\n",
        )
        .unwrap();
        assert_eq!(Config::from_file(&main).unwrap().retrieval.rrf_k, 60);
    }

    #[test]
    fn a_missing_include_or_a_cycle_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("quarry.toml");
        std::fs::write(&main, "include = [\"nope.toml\"]\n").unwrap();
        let err = Config::from_file(&main).unwrap_err().to_string();
        assert!(
            err.contains("nope.toml") && err.contains("does not exist"),
            "{err}"
        );

        std::fs::write(&main, "include = [\"other.toml\"]\n").unwrap();
        std::fs::write(
            dir.path().join("other.toml"),
            "include = [\"quarry.toml\"]\n",
        )
        .unwrap();
        let err = Config::from_file(&main).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");

        // An unknown key in an included file is still an error.
        std::fs::write(dir.path().join("other.toml"), "[retrieval]\nbogus = 1\n").unwrap();
        let err = Config::from_file(&main).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
