//! Bytes to text, by extension and content sniffing.
//!
//! Every parser returns plain text plus structure (title, headings, pages,
//! front matter) so that chunks can carry a heading path and a page, and
//! citations can point at character offsets in exactly this text.

use std::panic::AssertUnwindSafe;

use quarry_core::ParsedDocument;
use scraper::{ElementRef, Html, Node, Selector};

/// What parsing a file gives.
#[derive(Debug)]
pub enum Parsed {
    Document(ParsedDocument),
    /// Not indexed, with the reason (binary, empty, unsupported).
    Skipped(String),
    /// A parser failed on this file (corrupt PDF, ...).
    Failed(String),
}

/// Languages whose code is split along syntax, by file extension.
pub fn code_language(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "tsx",
        "go" => "go",
        _ => return None,
    })
}

const BINARY_EXTENSIONS: &[&str] = &[
    "png",
    "jpg",
    "jpeg",
    "gif",
    "webp",
    "ico",
    "bmp",
    "tiff",
    "zip",
    "gz",
    "tgz",
    "bz2",
    "xz",
    "zst",
    "7z",
    "tar",
    "jar",
    "exe",
    "dll",
    "so",
    "dylib",
    "o",
    "a",
    "class",
    "wasm",
    "pyc",
    "bin",
    "dat",
    "db",
    "sqlite",
    "mp3",
    "mp4",
    "wav",
    "ogg",
    "flac",
    "mov",
    "avi",
    "mkv",
    "woff",
    "woff2",
    "ttf",
    "otf",
    "eot",
    "psd",
    "doc",
    "docx",
    "xls",
    "xlsx",
    "ppt",
    "pptx",
    "safetensors",
    "onnx",
    "parquet",
    "arrow",
];

/// Parses `bytes`; `name` (a path or id) picks the parser by extension,
/// `content_type` overrides it.
pub fn parse(name: &str, bytes: &[u8], content_type: Option<&str>) -> Parsed {
    let ext = std::path::Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let kind = match content_type {
        Some(ct) => ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
        None => match ext.as_str() {
            "md" | "markdown" | "mdx" => "text/markdown".into(),
            "html" | "htm" | "xhtml" => "text/html".into(),
            "pdf" => "application/pdf".into(),
            e if code_language(e).is_some() => {
                format!("text/x-{}", code_language(e).unwrap_or("code"))
            }
            e if BINARY_EXTENSIONS.contains(&e) => {
                return Parsed::Skipped(format!("binary file type .{e}"));
            }
            _ if bytes.starts_with(b"%PDF-") => "application/pdf".into(),
            _ => "text/plain".into(),
        },
    };
    if bytes.is_empty() {
        return Parsed::Skipped("empty file".into());
    }
    if kind == "application/pdf" {
        return parse_pdf(bytes);
    }
    // Text formats from here on.
    if bytes.iter().take(8192).any(|&b| b == 0) {
        return Parsed::Skipped("binary content (NUL bytes)".into());
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.strip_prefix('\u{feff}').unwrap_or(t),
        Err(e) => return Parsed::Skipped(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
    };
    let doc = match kind.as_str() {
        "text/markdown" => parse_markdown(text),
        "text/html" => parse_html(text),
        "text/plain" => ParsedDocument {
            text: text.to_string(),
            content_type: kind,
            ..Default::default()
        },
        k if k.starts_with("text/x-") => ParsedDocument {
            text: text.to_string(),
            content_type: kind,
            ..Default::default()
        },
        other => return Parsed::Skipped(format!("unsupported content type {other}")),
    };
    if doc.text.trim().is_empty() {
        return Parsed::Skipped("no text content".into());
    }
    Parsed::Document(doc)
}

/// Markdown: YAML front matter becomes metadata (`title` and `tags` are
/// lifted out); ATX headings become the breadcrumb. The front matter stays
/// out of the indexed text.
pub fn parse_markdown(input: &str) -> ParsedDocument {
    let mut metadata = serde_json::Map::new();
    let mut body = input;
    if let Some(rest) = input
        .strip_prefix("---\n")
        .or_else(|| input.strip_prefix("---\r\n"))
        && let Some(end) = rest.find("\n---")
    {
        let yaml = &rest[..end];
        let after = &rest[end + 4..];
        body = after
            .strip_prefix('\n')
            .or_else(|| after.strip_prefix("\r\n"))
            .unwrap_or(after);
        if let Ok(serde_json::Value::Object(map)) =
            serde_yaml_ng::from_str::<serde_json::Value>(yaml)
        {
            metadata = map;
        }
    }
    let mut doc = ParsedDocument {
        text: body.to_string(),
        content_type: "text/markdown".into(),
        ..Default::default()
    };
    let mut offset = 0; // chars
    let mut fence: Option<&str> = None;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
        } else if let Some(h) = atx_heading(line) {
            doc.headings.push((offset, h.0, h.1));
        }
        offset += line.chars().count();
    }
    doc.title = metadata
        .get("title")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .or_else(|| doc.headings.iter().find(|h| h.1 == 1).map(|h| h.2.clone()));
    doc.tags = match metadata.get("tags") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    doc.metadata = metadata;
    doc
}

fn atx_heading(line: &str) -> Option<(u8, String)> {
    if line.starts_with("    ") {
        return None;
    }
    let t = line.trim_start();
    let level = t.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty()
        || rest.starts_with(' ')
        || rest.starts_with('\t')
        || rest.starts_with('\n'))
    {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim().to_string();
    (!title.is_empty()).then_some((level as u8, title))
}

/// HTML: the title, and the text of `<main>` or `<article>` (else `<body>`)
/// without scripts, styles, navigation, headers, footers and asides.
/// Headings are kept as Markdown `#` lines, so chunks get the same heading
/// breadcrumbs and splitting as Markdown.
pub fn parse_html(input: &str) -> ParsedDocument {
    let html = Html::parse_document(input);
    let select = |s: &str| Selector::parse(s).ok();
    let title = select("title")
        .and_then(|s| html.select(&s).next())
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let root = ["main", "article", "[role=main]", "body"]
        .iter()
        .filter_map(|s| select(s))
        .find_map(|s| html.select(&s).next())
        .unwrap_or_else(|| html.root_element());
    let mut out = HtmlText::default();
    out.walk(root);
    let mut text = out.finish();
    if text.is_empty() {
        text = String::new();
    }
    let mut doc = parse_markdown(&text);
    doc.content_type = "text/html".into();
    doc.metadata = serde_json::Map::new();
    doc.tags = Vec::new();
    doc.title = title.or(doc.title);
    doc
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

impl HtmlText {
    fn walk(&mut self, el: ElementRef<'_>) {
        for child in el.children() {
            match child.value() {
                Node::Text(t) => {
                    let s = collapse(t);
                    if !s.is_empty() {
                        if !self.line.is_empty() && (t.starts_with(char::is_whitespace)) {
                            self.line.push(' ');
                        }
                        self.line.push_str(&s);
                        if t.ends_with(char::is_whitespace) {
                            self.line.push(' ');
                        }
                    }
                }
                Node::Element(e) => {
                    let name = e.name();
                    if SKIP.contains(&name) {
                        continue;
                    }
                    let Some(child_el) = ElementRef::wrap(child) else {
                        continue;
                    };
                    if let Some(level) = name
                        .strip_prefix('h')
                        .and_then(|l| l.parse::<usize>().ok())
                        .filter(|l| (1..=6).contains(l))
                    {
                        self.flush(true);
                        let title = collapse(&child_el.text().collect::<String>());
                        if !title.is_empty() {
                            self.out
                                .push_str(&format!("{} {title}\n\n", "#".repeat(level)));
                        }
                        continue;
                    }
                    let block = BLOCK.contains(&name);
                    if block {
                        self.flush(name != "li" && name != "tr" && name != "br");
                    }
                    if name == "li" {
                        self.line.push_str("- ");
                    }
                    self.walk(child_el);
                    if block {
                        self.flush(
                            name == "p" || name == "pre" || name == "blockquote" || name == "table",
                        );
                    }
                }
                _ => {}
            }
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

    fn finish(mut self) -> String {
        self.flush(false);
        let mut s = String::new();
        let mut blank = 0;
        for line in self.out.lines() {
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

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// PDF: text per page, pages joined by blank lines, page starts recorded.
/// The PDF library can panic on malformed files; that is caught and reported
/// as a failure of this one file.
fn parse_pdf(bytes: &[u8]) -> Parsed {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem_by_pages(bytes)
    }));
    let pages = match result {
        Ok(Ok(pages)) => pages,
        Ok(Err(e)) => return Parsed::Failed(format!("cannot read PDF: {e}")),
        Err(_) => return Parsed::Failed("cannot read PDF: the file is malformed".into()),
    };
    let mut doc = ParsedDocument {
        content_type: "application/pdf".into(),
        ..Default::default()
    };
    let mut chars = 0;
    for page in pages {
        let page = page.trim();
        if !doc.text.is_empty() {
            doc.text.push_str("\n\n");
            chars += 2;
        }
        doc.page_starts.push(chars);
        doc.text.push_str(page);
        chars += page.chars().count();
    }
    if doc.text.trim().is_empty() {
        return Parsed::Skipped("PDF has no extractable text (scanned images?)".into());
    }
    Parsed::Document(doc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(p: Parsed) -> ParsedDocument {
        match p {
            Parsed::Document(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn markdown_front_matter_and_headings() {
        let d = doc(parse("a.md", b"---\ntitle: Guide\ntags: [ops, api]\n---\n# Top\ntext\n## Sub\n```\n# not a heading\n```\nmore\n", None));
        assert_eq!(d.title.as_deref(), Some("Guide"));
        assert_eq!(d.tags, vec!["ops", "api"]);
        assert!(d.text.starts_with("# Top"));
        assert_eq!(d.headings.len(), 2);
        assert_eq!(
            d.heading_path(d.text.find("more").unwrap()),
            vec!["Top", "Sub"]
        );
    }

    #[test]
    fn html_drops_chrome_and_keeps_headings() {
        let html = "<html><head><title>T</title><style>x{}</style></head><body><nav>menu</nav><main><h1>Head</h1><p>Para <b>bold</b> text.</p><script>evil()</script><ul><li>one</li><li>two</li></ul></main><footer>foot</footer></body></html>";
        let d = doc(parse("x.html", html.as_bytes(), None));
        assert_eq!(d.title.as_deref(), Some("T"));
        assert!(
            d.text.contains("# Head") && d.text.contains("Para bold text."),
            "{}",
            d.text
        );
        assert!(
            !d.text.contains("menu") && !d.text.contains("evil") && !d.text.contains("foot"),
            "{}",
            d.text
        );
        assert!(d.text.contains("- one\n- two"), "{}", d.text);
    }

    #[test]
    fn bad_inputs_are_skipped_or_failed() {
        assert!(matches!(parse("a.txt", b"", None), Parsed::Skipped(_)));
        assert!(
            matches!(parse("a.txt", b"ok\xff\xfe", None), Parsed::Skipped(r) if r.contains("UTF-8"))
        );
        assert!(matches!(
            parse("a.png", b"\x89PNG", None),
            Parsed::Skipped(_)
        ));
        assert!(matches!(
            parse("a.dat2", b"ab\0cd", None),
            Parsed::Skipped(_)
        ));
        assert!(matches!(
            parse("a.pdf", b"%PDF-1.4 garbage", None),
            Parsed::Failed(_)
        ));
    }
}
