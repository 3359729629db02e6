//! A site's boilerplate: text that most of its pages repeat.
//!
//! The HTML parser drops `nav`, `header`, `footer` and `aside`, but many
//! sites lay out their menus, cookie banners and "was this page helpful"
//! boxes in plain `div`s. What gives them away is repetition: a line of text
//! that more than half of a host's pages carry says nothing about any one
//! of them. The listing keeps each page's line keys (`parse::line_key`),
//! 304s included, counts them per host, and hands each page the lines to
//! leave out; the parser drops exactly those lines.

use std::collections::{HashMap, HashSet};

use quarry_core::document::sha256_hex;
use url::Url;

use super::Seen;
use crate::source::DocumentRef;

pub(super) fn is_html(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|c| c == "text/html" || c == "application/xhtml+xml")
}

/// Text on fewer pages than this is never boilerplate: two pages sharing a
/// paragraph say nothing about a site.
const BOILERPLATE_MIN_PAGES: usize = 3;

/// Each page's boilerplate: the lines that more than half of its host's
/// pages (and at least [`BOILERPLATE_MIN_PAGES`]) have, such as a menu laid
/// out in plain `div`s or a cookie banner, which the parser's structural
/// rules (`nav`, `header`, `footer`, `aside`) cannot see.
pub(super) fn boilerplate(
    docs: &[DocumentRef],
    pages: &HashMap<String, Seen>,
) -> HashMap<String, HashSet<u64>> {
    #[derive(Default)]
    struct Host {
        pages: usize,
        lines: HashMap<u64, usize>,
    }
    let host = |id: &str| {
        Url::parse(id)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default()
    };
    let lines_of = |id: &str| {
        pages
            .get(id)
            .map(|s| s.lines.as_slice())
            .unwrap_or_default()
    };
    let mut hosts: HashMap<String, Host> = HashMap::new();
    for doc in docs {
        let lines = lines_of(&doc.id);
        if lines.is_empty() {
            continue;
        }
        let h = hosts.entry(host(&doc.id)).or_default();
        h.pages += 1;
        for k in lines {
            *h.lines.entry(*k).or_default() += 1;
        }
    }
    let mut out = HashMap::new();
    for doc in docs {
        let Some(h) = hosts.get(&host(&doc.id)) else {
            continue;
        };
        let common: HashSet<u64> = lines_of(&doc.id)
            .iter()
            .copied()
            .filter(|k| {
                let n = h.lines.get(k).copied().unwrap_or(0);
                n >= BOILERPLATE_MIN_PAGES && n * 2 > h.pages
            })
            .collect();
        if !common.is_empty() {
            out.insert(doc.id.clone(), common);
        }
    }
    out
}

/// A page's version: its body's, and which of its lines are left out, so a
/// page is indexed again when its site's boilerplate changes.
pub(super) fn page_version(body_version: &str, boilerplate: &HashSet<u64>) -> String {
    let mut keys: Vec<u64> = boilerplate.iter().copied().collect();
    keys.sort_unstable();
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:016x}")).collect();
    sha256_hex(&[body_version.as_bytes(), keys.join(",").as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str) -> DocumentRef {
        DocumentRef {
            id: id.into(),
            version: "v".into(),
            uri: id.into(),
            path: None,
            size: 1,
        }
    }

    #[test]
    fn lines_on_most_pages_of_a_host_are_boilerplate_and_nothing_else_is() {
        let (menu, cookie, shared_by_two) = (1u64, 2u64, 3u64);
        let mut pages = HashMap::new();
        let mut docs = Vec::new();
        for (i, extra) in [
            vec![menu, cookie, shared_by_two],
            vec![menu, cookie, shared_by_two],
            vec![menu, cookie],
            vec![menu],
            vec![],
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("https://a.example/{i}");
            let mut lines = extra;
            lines.push(100 + i as u64);
            pages.insert(
                id.clone(),
                Seen {
                    lines,
                    ..Default::default()
                },
            );
            docs.push(doc(&id));
        }
        // Another host with the same menu on too few pages.
        for i in 0..2 {
            let id = format!("https://b.example/{i}");
            pages.insert(
                id.clone(),
                Seen {
                    lines: vec![menu, 200 + i],
                    ..Default::default()
                },
            );
            docs.push(doc(&id));
        }
        let found = boilerplate(&docs, &pages);
        // menu: 4 of 5 pages; cookie: 3 of 5; shared_by_two: 2 (too few).
        assert_eq!(found["https://a.example/0"], HashSet::from([menu, cookie]));
        assert_eq!(found["https://a.example/3"], HashSet::from([menu]));
        assert!(!found.contains_key("https://a.example/4"));
        assert!(!found.contains_key("https://b.example/0"));
        let v = page_version("body", &found["https://a.example/0"]);
        assert_ne!(v, page_version("body", &found["https://a.example/3"]));
        assert_eq!(v, page_version("body", &HashSet::from([cookie, menu])));
    }
}
