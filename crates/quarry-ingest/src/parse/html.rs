//! HTML to Markdown-like text.
//!
//! The walk over the element tree keeps its own stack instead of
//! recursing: a hostile page nests elements as deep as it likes (10,000
//! `<div>` fit in 110 KB), and a recursive walk would overflow the parser
//! thread's stack, which aborts the whole process rather than failing the
//! one file.

use std::collections::HashSet;

use quarry_core::ParsedDocument;
use scraper::{ElementRef, Html, Node, Selector};
use sha2::{Digest, Sha256};

use super::{Budget, OverBudget, collapse};

/// HTML: the title, and the text of `<main>` or `<article>` (else `<body>`)
/// without scripts, styles, navigation, headers, footers and asides.
/// Headings are kept as Markdown `#` lines, so chunks get the same heading
/// breadcrumbs and splitting as Markdown.
pub fn parse_html(input: &str) -> ParsedDocument {
    // An unlimited budget cannot run out.
    parse_html_within(input, &Budget::unlimited(), &HashSet::new()).unwrap_or_default()
}

/// The key of one line of a page's text, for telling a site's boilerplate
/// (a menu in plain `div`s, a cookie banner) by its repetition across
/// pages: case and spacing do not matter. Stable across runs and versions,
/// since a crawl's state keeps these keys between syncs.
pub fn line_key(line: &str) -> u64 {
    let norm = collapse(line).to_lowercase();
    let digest = Sha256::digest(norm.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The keys of the distinct lines of a parsed page's text, as
/// [`parse_html`] would produce it.
pub fn html_line_keys(html: &Html) -> Vec<u64> {
    let mut out = HtmlText::default();
    if out.walk(content_root(html), &Budget::unlimited()).is_err() {
        return Vec::new();
    }
    out.flush(false);
    let mut seen = HashSet::new();
    let mut fence = Fence::default();
    out.out
        .lines()
        .filter(|l| !fence.inside(l) && !l.trim().is_empty())
        .map(line_key)
        .filter(|k| seen.insert(*k))
        .collect()
}

/// `<main>` or `<article>`, else `<body>`.
fn content_root(html: &Html) -> ElementRef<'_> {
    ["main", "article", "[role=main]", "body"]
        .iter()
        .filter_map(|s| Selector::parse(s).ok())
        .find_map(|s| html.select(&s).next())
        .unwrap_or_else(|| html.root_element())
}

/// [`parse_html`] within `budget`, leaving out the lines whose
/// [`line_key`] is in `boilerplate`.
pub(super) fn parse_html_within(
    input: &str,
    budget: &Budget,
    boilerplate: &HashSet<u64>,
) -> Result<ParsedDocument, OverBudget> {
    let html = Html::parse_document(input);
    budget.check()?;
    let title = Selector::parse("title")
        .ok()
        .and_then(|s| html.select(&s).next())
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let mut out = HtmlText::default();
    out.walk(content_root(&html), budget)?;
    let text = out.finish(boilerplate);
    let mut doc = super::parse_markdown(&text);
    doc.content_type = "text/html".into();
    doc.metadata = serde_json::Map::new();
    doc.tags = Vec::new();
    doc.title = title.or(doc.title);
    Ok(doc)
}

#[derive(Default)]
struct HtmlText {
    out: String,
    line: String,
}

const SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "svg", "form",
    "button", "iframe",
];
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "blockquote",
    "pre",
    "br",
    "hr",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "details",
    "summary",
];

/// One step of the walk: a node to visit, or the end of a block element
/// whose children have all been visited.
enum Step<'a> {
    Visit(ego_tree::NodeRef<'a, Node>),
    Close(&'a str),
}

impl HtmlText {
    fn walk(&mut self, root: ElementRef<'_>, budget: &Budget) -> Result<(), OverBudget> {
        let mut stack: Vec<Step<'_>> = root.children().rev().map(Step::Visit).collect();
        let mut steps = 0usize;
        while let Some(step) = stack.pop() {
            steps += 1;
            if steps.is_multiple_of(4096) {
                budget.check()?;
            }
            let node = match step {
                Step::Visit(node) => node,
                Step::Close(name) => {
                    self.flush(
                        name == "p" || name == "pre" || name == "blockquote" || name == "table",
                    );
                    continue;
                }
            };
            match node.value() {
                Node::Text(t) => self.text(t),
                Node::Element(e) => {
                    let name = e.name();
                    if SKIP.contains(&name) {
                        continue;
                    }
                    let Some(el) = ElementRef::wrap(node) else {
                        continue;
                    };
                    if let Some(level) = heading_level(name) {
                        self.flush(true);
                        let title = collapse(&el.text().collect::<String>());
                        if !title.is_empty() {
                            self.out
                                .push_str(&format!("{} {title}\n\n", "#".repeat(level)));
                        }
                        continue;
                    }
                    if let Some(listing) = Listing::of(el) {
                        self.flush(true);
                        listing.write(&mut self.out);
                        continue;
                    }
                    let block = BLOCK.contains(&name);
                    if block {
                        self.flush(name != "li" && name != "tr" && name != "br");
                        stack.push(Step::Close(name));
                    }
                    if name == "li" {
                        self.line.push_str("- ");
                    }
                    stack.extend(node.children().rev().map(Step::Visit));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn text(&mut self, t: &str) {
        let s = collapse(t);
        if s.is_empty() {
            return;
        }
        if !self.line.is_empty() && t.starts_with(char::is_whitespace) {
            self.line.push(' ');
        }
        self.line.push_str(&s);
        if t.ends_with(char::is_whitespace) {
            self.line.push(' ');
        }
    }

    fn flush(&mut self, paragraph: bool) {
        let line = self.line.trim();
        if !line.is_empty() && line != "-" {
            self.out.push_str(line);
            self.out.push('\n');
            if paragraph {
                self.out.push('\n');
            }
        }
        self.line.clear();
    }

    fn finish(mut self, boilerplate: &HashSet<u64>) -> String {
        self.flush(false);
        let mut s = String::new();
        let mut blank = 0;
        let mut fence = Fence::default();
        for line in self.out.lines() {
            // A listing is kept as it is: its blank lines and its `}` lines
            // are code, not a page's spacing or a site's boilerplate.
            if fence.inside(line) {
                s.push_str(line);
                s.push('\n');
                blank = 0;
                continue;
            }
            if !boilerplate.is_empty()
                && !line.trim().is_empty()
                && boilerplate.contains(&line_key(line))
            {
                continue;
            }
            if line.trim().is_empty() {
                blank += 1;
                if blank > 1 {
                    continue;
                }
            } else {
                blank = 0;
            }
            s.push_str(line);
            s.push('\n');
        }
        s.trim().to_string()
    }
}

fn heading_level(name: &str) -> Option<usize> {
    name.strip_prefix('h')
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| (1..=6).contains(l))
}

/// A code listing: `<pre>`, `<textarea>`, or a `<code>` that spans lines
/// outside a `<pre>`. Its text keeps its line breaks and indentation, and
/// is written as a Markdown fence, so the chunker keeps it whole where it
/// fits and readers of a hit see real code.
struct Listing {
    language: Option<String>,
    text: String,
}

impl Listing {
    fn of(el: ElementRef<'_>) -> Option<Self> {
        let name = el.value().name();
        let text: String = el.text().collect();
        let is_listing = match name {
            "pre" | "textarea" => true,
            "code" => text.trim().contains('\n'),
            _ => false,
        };
        if !is_listing {
            return None;
        }
        // `class="language-rust"` on the `<pre>` or its `<code>`, as
        // highlight.js, Prism and mdBook write it.
        let language = std::iter::once(el)
            .chain(el.children().filter_map(ElementRef::wrap))
            .flat_map(|e| e.value().classes().collect::<Vec<_>>())
            .find_map(|c| c.strip_prefix("language-").or(c.strip_prefix("lang-")))
            .filter(|l| {
                l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-_#".contains(c))
            })
            .map(str::to_string);
        Some(Self { language, text })
    }

    fn write(&self, out: &mut String) {
        // HTML drops the line break right after `<pre>`; trailing blank
        // lines are layout.
        let body = self
            .text
            .strip_prefix("\r\n")
            .or(self.text.strip_prefix('\n'));
        let body = body.unwrap_or(&self.text).trim_end();
        if body.trim().is_empty() {
            return;
        }
        // A fence longer than any run of backticks in the listing, so the
        // listing cannot close it.
        let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        out.push_str(&fence);
        out.push_str(self.language.as_deref().unwrap_or(""));
        out.push('\n');
        for line in body.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&fence);
        out.push_str("\n\n");
    }
}

/// Whether a line of the walk's output is inside (or is a delimiter of) a
/// fence that [`Listing::write`] wrote; fed the lines in order.
#[derive(Default)]
struct Fence {
    open: Option<usize>,
}

impl Fence {
    fn inside(&mut self, line: &str) -> bool {
        let ticks = line.len() - line.trim_start_matches('`').len();
        match self.open {
            Some(n) => {
                if ticks >= n && line[ticks..].trim().is_empty() {
                    self.open = None;
                }
                true
            }
            None if ticks >= 3 => {
                self.open = Some(ticks);
                true
            }
            None => false,
        }
    }
}
