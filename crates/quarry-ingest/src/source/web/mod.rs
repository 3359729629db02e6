//! `type = "web"`: a site crawled from seed pages, or read from sitemaps.
//!
//! The listing fetches every page (within the seeds' hosts, `robots.txt`,
//! `max_depth` and `max_pages`), conditionally: a page that answers `304`
//! keeps the version and links it had, so an unchanged site costs one small
//! request a page and no body. Redirects are followed to the final URL,
//! which is the document's id, so each page is indexed once. A page that
//! answers 404 or 410 is gone and is deleted; anything that may be
//! temporary (a 5xx, a 429, a timeout, a refused connection) or that says
//! the crawler is not allowed (401, 403) fails the whole listing, so a bad
//! night for the site never empties the index.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use quarry_core::config::WebSourceConfig;
use quarry_core::document::sha256_hex;
use serde::{Deserialize, Serialize};
use url::Url;

mod boilerplate;
mod polite;

use boilerplate::{boilerplate, is_html, page_version};
use polite::{Pacer, Robots, is_sitemap, sitemap_locs};

use super::fs::PathFilter;
use super::{DocumentRef, Listing, ListingIssue, RawDocument, Source, SourceError};
use crate::parse::html_line_keys;
use crate::{IngestError, Result};

const USER_AGENT: &str = concat!("quarry/", env!("CARGO_PKG_VERSION"));
/// What a page looked like at the last successful listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Seen {
    etag: Option<String>,
    last_modified: Option<String>,
    version: String,
    content_type: Option<String>,
    links: Vec<String>,
    /// `parse::line_key`s of the page's text lines, so a page that answers
    /// 304 still counts towards what its site repeats.
    #[serde(default)]
    lines: Vec<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    pages: HashMap<String, Seen>,
    /// Requested URL to the URL it redirected to: the next listing asks
    /// for the target directly, conditionally.
    #[serde(default)]
    redirects: HashMap<String, String>,
}

#[derive(Debug)]
pub struct WebSource {
    config: WebSourceConfig,
    filter: PathFilter,
    max_file_bytes: u64,
    state_path: PathBuf,
    agent: ureq::Agent,
    /// Bodies fetched by the last listing, for the reads that follow it.
    bodies: Mutex<HashMap<String, Held>>,
    /// Each page's boilerplate lines, as the last listing found them.
    boilerplate: Mutex<HashMap<String, HashSet<u64>>>,
}

/// A page body the listing fetched, until it is read.
#[derive(Debug)]
struct Held {
    body: Vec<u8>,
    content_type: Option<String>,
}

/// One answer of the site.
enum Fetched {
    Page {
        url: String,
        body: Vec<u8>,
        seen: Seen,
    },
    Unchanged,
    Gone,
}

impl WebSource {
    pub fn new(config: &WebSourceConfig, max_file_bytes: u64, state_dir: &Path) -> Result<Self> {
        for u in &config.urls {
            Url::parse(u).map_err(|e| IngestError::Source {
                path: u.into(),
                message: format!("source {:?}: not a URL: {e}", config.name),
            })?;
        }
        if config.urls.is_empty() {
            return Err(IngestError::Source {
                path: config.name.clone().into(),
                message: "a web source needs at least one URL in `urls`".into(),
            });
        }
        Ok(Self {
            filter: PathFilter::new(&config.include, &config.exclude)?,
            max_file_bytes,
            state_path: state_dir.join(format!("{}.web.json", config.name)),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(config.timeout_secs.max(1)))
                .user_agent(USER_AGENT)
                .build(),
            config: config.clone(),
            bodies: Mutex::default(),
            boilerplate: Mutex::default(),
        })
    }

    fn load_state(&self) -> State {
        std::fs::read(&self.state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_state(&self, state: &State) -> Result<(), SourceError> {
        let io = |e: std::io::Error| SourceError::io(self.state_path.display().to_string(), &e);
        if let Some(dir) = self.state_path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.state_path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &self.state_path).map_err(io)
    }

    /// GETs `url`, conditionally on what `seen` says.
    fn fetch(&self, url: &str, seen: Option<&Seen>) -> Result<Fetched, SourceError> {
        let mut request = self.agent.get(url);
        if let Some(s) = seen {
            if let Some(e) = &s.etag {
                request = request.set("If-None-Match", e);
            }
            if let Some(m) = &s.last_modified {
                request = request.set("If-Modified-Since", m);
            }
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(404 | 410, _)) => return Ok(Fetched::Gone),
            Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                return Err(SourceError::permanent(
                    url,
                    format!("HTTP {code}: the crawler is not allowed; check the site's access"),
                ));
            }
            Err(ureq::Error::Status(code, _)) => {
                return Err(SourceError::transient(url, format!("HTTP {code}")));
            }
            Err(e) => return Err(SourceError::transient(url, e.to_string())),
        };
        if response.status() == 304 {
            return Ok(Fetched::Unchanged);
        }
        let final_url = response.get_url().to_string();
        let header = |h: &str| response.header(h).map(str::to_string);
        let (etag, last_modified) = (header("etag"), header("last-modified"));
        let content_type = header("content-type").map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let mut body = Vec::new();
        use std::io::Read;
        response
            .into_reader()
            .take(self.max_file_bytes + 1)
            .read_to_end(&mut body)
            .map_err(|e| SourceError::transient(url, format!("reading the body: {e}")))?;
        let seen = Seen {
            etag,
            last_modified,
            version: sha256_hex(&[&body]),
            content_type,
            links: Vec::new(),
            lines: Vec::new(),
        };
        Ok(Fetched::Page {
            url: final_url,
            body,
            seen,
        })
    }

    fn wanted(&self, url: &Url, hosts: &HashSet<String>) -> bool {
        let path = url.path();
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|h| hosts.contains(h))
            && self.filter.allows(path)
    }

    fn robots_for(&self, url: &Url) -> Result<Robots, SourceError> {
        let robots_url = format!("{}://{}/robots.txt", url.scheme(), url.authority());
        match self.fetch(&robots_url, None)? {
            Fetched::Page { body, .. } => Ok(Robots::parse(&String::from_utf8_lossy(&body))),
            _ => Ok(Robots::default()),
        }
    }
}

/// Links of an HTML page, absolute, without fragments.
fn links_of(base: &str, html: &scraper::Html) -> Vec<String> {
    let Ok(base) = Url::parse(base) else {
        return Vec::new();
    };
    let Ok(a) = scraper::Selector::parse("a[href]") else {
        return Vec::new();
    };
    html.select(&a)
        .filter_map(|e| e.value().attr("href"))
        .filter_map(|h| base.join(h).ok())
        .map(|mut u| {
            u.set_fragment(None);
            u.to_string()
        })
        .collect()
}

impl Source for WebSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn list(&self) -> Result<Listing, SourceError> {
        let old = self.load_state();
        let mut state = State::default();
        let mut bodies = HashMap::new();
        let mut robots: HashMap<String, Robots> = HashMap::new();
        let mut pacer = Pacer::new(self.config.requests_per_second);
        let seeds: Vec<Url> = self
            .config
            .urls
            .iter()
            .filter_map(|u| Url::parse(u).ok())
            .collect();
        let hosts: HashSet<String> = seeds
            .iter()
            .filter_map(|u| u.host_str().map(String::from))
            .collect();
        let mut queue: VecDeque<(String, usize)> =
            seeds.iter().map(|u| (u.to_string(), 0)).collect();
        let mut visited: HashSet<String> = HashSet::new();
        let mut docs: Vec<DocumentRef> = Vec::new();
        let mut issues = Vec::new();
        while let Some((requested, depth)) = queue.pop_front() {
            let url = old
                .redirects
                .get(&requested)
                .cloned()
                .unwrap_or(requested.clone());
            if url != requested {
                visited.insert(requested.clone());
                state.redirects.insert(requested, url.clone());
            }
            if !visited.insert(url.clone()) || docs.len() >= self.config.max_pages {
                continue;
            }
            let Ok(parsed) = Url::parse(&url) else {
                continue;
            };
            let authority = parsed.authority().to_string();
            if !robots.contains_key(&authority) {
                pacer.wait(&authority, Duration::ZERO);
                robots.insert(authority.clone(), self.robots_for(&parsed)?);
            }
            let rules = &robots[&authority];
            if !rules.allows(parsed.path()) {
                continue;
            }
            pacer.wait(&authority, rules.delay);
            let sitemap = is_sitemap(&url);
            let seen = if sitemap { None } else { old.pages.get(&url) };
            let (final_url, seen, body) = match self.fetch(&url, seen)? {
                Fetched::Gone => continue,
                Fetched::Unchanged => {
                    let Some(s) = old.pages.get(&url) else {
                        continue;
                    };
                    (url.clone(), s.clone(), None)
                }
                Fetched::Page {
                    url: f,
                    body,
                    mut seen,
                } => {
                    if sitemap {
                        for loc in sitemap_locs(&String::from_utf8_lossy(&body)) {
                            queue.push_front((loc, 0));
                        }
                        continue;
                    }
                    // One parse gives the links and the line keys.
                    let page = scraper::Html::parse_document(&String::from_utf8_lossy(&body));
                    seen.links = links_of(&f, &page);
                    if is_html(seen.content_type.as_deref()) {
                        seen.lines = html_line_keys(&page);
                    }
                    (f, seen, Some(body))
                }
            };
            // A redirect to a page already listed is that page.
            if final_url != url {
                state.redirects.insert(url.clone(), final_url.clone());
                if !visited.insert(final_url.clone()) {
                    continue;
                }
            }
            let Ok(final_parsed) = Url::parse(&final_url) else {
                continue;
            };
            if !self.wanted(&final_parsed, &hosts) {
                continue;
            }
            if depth < self.config.max_depth {
                for link in &seen.links {
                    if Url::parse(link).is_ok_and(|l| self.wanted(&l, &hosts)) {
                        queue.push_back((link.clone(), depth + 1));
                    }
                }
            }
            let size = body.as_ref().map_or(0, |b| b.len() as u64);
            if size > self.max_file_bytes {
                issues.push(ListingIssue {
                    id: Some(final_url.clone()),
                    uri: final_url.clone(),
                    reason: format!(
                        "page is over the limit of {} bytes (sync.max_file_bytes)",
                        self.max_file_bytes
                    ),
                    skipped: true,
                });
                continue;
            }
            let path = format!(
                "{}{}",
                final_parsed.host_str().unwrap_or(""),
                final_parsed.path()
            );
            docs.push(DocumentRef {
                id: final_url.clone(),
                version: seen.version.clone(),
                uri: final_url.clone(),
                path: Some(path),
                size,
            });
            if let Some(b) = body {
                let content_type = seen.content_type.clone();
                bodies.insert(
                    final_url.clone(),
                    Held {
                        body: b,
                        content_type,
                    },
                );
            }
            state.pages.insert(final_url, seen);
        }
        let boilerplate = boilerplate(&docs, &state.pages);
        for doc in &mut docs {
            if let Some(lines) = boilerplate.get(&doc.id) {
                doc.version = page_version(&doc.version, lines);
            }
        }
        self.save_state(&state)?;
        *super::locked(&self.bodies) = bodies;
        *super::locked(&self.boilerplate) = boilerplate;
        Ok(Listing { docs, issues })
    }

    fn read(&self, doc: &DocumentRef) -> Result<RawDocument, SourceError> {
        // Each listed body is read once: taken, not copied.
        let held = super::locked(&self.bodies).remove(&doc.id);
        let (bytes, content_type) = match held {
            Some(h) => (h.body, h.content_type),
            // Listed as unchanged (304) but wanted anyway: fetch it whole.
            None => match self.fetch(&doc.id, None)? {
                Fetched::Page { body, seen, .. } => (body, seen.content_type),
                _ => return Err(SourceError::permanent(&doc.uri, "the page is gone")),
            },
        };
        let mut metadata = serde_json::Map::new();
        metadata.insert("url".into(), doc.id.clone().into());
        let boilerplate = super::locked(&self.boilerplate)
            .get(&doc.id)
            .cloned()
            .unwrap_or_default();
        // As listed: the body's hash, and the lines left out of it.
        let version =
            (!boilerplate.is_empty()).then(|| page_version(&sha256_hex(&[&bytes]), &boilerplate));
        Ok(RawDocument {
            boilerplate,
            bytes,
            content_type: Some(content_type.unwrap_or_else(|| "text/html".into())),
            title: None,
            metadata,
            version,
        })
    }
}
