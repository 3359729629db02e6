//! Bytes to text, by extension and content sniffing.
//!
//! Every parser returns plain text plus structure (title, headings, pages,
//! front matter) so that chunks can carry a heading path and a page, and
//! citations can point at character offsets in exactly this text.

mod html;
mod pdf;
mod text;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use quarry_core::ParsedDocument;

pub use html::{html_line_keys, line_key, parse_html};

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

/// How much a parse may cost, and what it skips.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Skip minified and generated files (see [`text`]).
    pub skip_generated: bool,
    pub budget: Budget,
    /// [`line_key`]s of lines to leave out of an HTML page: its site's
    /// boilerplate, which the web source learns across pages.
    pub boilerplate: HashSet<u64>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            skip_generated: true,
            budget: Budget::unlimited(),
            boilerplate: HashSet::new(),
        }
    }
}

/// A deadline for one file's parse and chunking, checked cooperatively by
/// the parsers and the chunker, so a hostile file fails alone instead of
/// holding a sync (or a request) for minutes.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Option<Instant>,
    secs: f64,
}

/// The budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

impl Budget {
    pub fn unlimited() -> Self {
        Self {
            deadline: None,
            secs: f64::INFINITY,
        }
    }

    /// `secs` from now.
    pub fn secs(secs: f64) -> Self {
        Self {
            deadline: Instant::now().checked_add(Duration::from_secs_f64(secs.max(0.0))),
            secs,
        }
    }

    pub fn check(&self) -> Result<(), OverBudget> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(OverBudget),
            _ => Ok(()),
        }
    }

    /// The report's reason for a file that ran out of budget.
    pub fn exceeded_reason(&self) -> String {
        format!(
            "parsing and chunking took longer than {}s (sync.max_parse_secs); the file is left out",
            self.secs
        )
    }
}

/// Parses `bytes`; `name` (a path or id) picks the parser by extension,
/// `content_type` overrides it.
pub fn parse(name: &str, bytes: &[u8], content_type: Option<&str>) -> Parsed {
    parse_with(name, bytes, content_type, &ParseOptions::default())
}

/// [`parse`] with a budget and the generated-file rule.
pub fn parse_with(
    name: &str,
    bytes: &[u8],
    content_type: Option<&str>,
    options: &ParseOptions,
) -> Parsed {
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
        return pdf::parse_pdf(bytes, &options.budget);
    }
    if content_type.is_none()
        && options.skip_generated
        && let Some(reason) = text::generated_reason(name, bytes)
    {
        return Parsed::Skipped(reason);
    }
    let decoded = match text::decode(bytes) {
        Ok(d) => d,
        Err(reason) => return Parsed::Skipped(reason),
    };
    let text = decoded.text;
    let doc = match kind.as_str() {
        "text/markdown" => parse_markdown(&text),
        "text/html" => {
            match html::parse_html_within(&text, &options.budget, &options.boilerplate) {
                Ok(doc) => doc,
                Err(OverBudget) => return Parsed::Failed(options.budget.exceeded_reason()),
            }
        }
        "text/plain" => ParsedDocument {
            text,
            content_type: kind,
            ..Default::default()
        },
        k if k.starts_with("text/x-") => ParsedDocument {
            text,
            content_type: kind,
            ..Default::default()
        },
        other => return Parsed::Skipped(format!("unsupported content type {other}")),
    };
    if doc.text.trim().is_empty() {
        return Parsed::Skipped("no text content".into());
    }
    let mut doc = doc;
    if let Some(encoding) = decoded.encoding {
        doc.metadata.insert(
            "encoding".into(),
            serde_json::Value::String(encoding.into()),
        );
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
        if front_matter_is_sane(yaml)
            && let Ok(serde_json::Value::Object(map)) =
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
    // The open fence's character and length: as in CommonMark, only a run
    // of the same character at least as long closes it, so a ```` fence
    // can show ``` lines.
    let mut fence: Option<(char, usize)> = None;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let run = |c: char| trimmed.len() - trimmed.trim_start_matches(c).len();
        if let Some((c, n)) = fence {
            if run(c) >= n && trimmed[run(c)..].trim().is_empty() {
                fence = None;
            }
        } else if let Some(c) = ['`', '~'].into_iter().find(|&c| run(c) >= 3) {
            fence = Some((c, run(c)));
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

/// The YAML parser's scanner does work per nesting level for every token,
/// so 50,000 nested `[` take it seconds; real front matter is small and
/// flat. Front matter beyond these bounds is left out of the metadata (the
/// body is still indexed).
fn front_matter_is_sane(yaml: &str) -> bool {
    const MAX_BYTES: usize = 64 * 1024;
    const MAX_DEPTH: usize = 32;
    if yaml.len() > MAX_BYTES {
        return false;
    }
    let mut depth = 0usize;
    for b in yaml.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
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

pub(crate) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
    fn html_listings_keep_their_lines_and_indentation() {
        let html = "<html><body><main><p>Open a file:</p><pre><code class=\"language-rust\">use std::fs::File;\n\nfn main() {\n    let f = File::open(\"a\");\n}\n</code></pre><p>After.</p><pre>```\nnested fence\n```</pre><code>one\n  two</code></main></body></html>";
        let d = doc(parse("x.html", html.as_bytes(), None));
        assert!(
            d.text.contains("```rust\nuse std::fs::File;\n\nfn main() {\n    let f = File::open(\"a\");\n}\n```\n"),
            "{}",
            d.text
        );
        assert!(
            d.text.contains("````\n```\nnested fence\n```\n````"),
            "{}",
            d.text
        );
        assert!(d.text.contains("```\none\n  two\n```"), "{}", d.text);
        // A heading-like line inside a listing is code, not a heading.
        let d = doc(parse(
            "y.html",
            b"<body><pre># not a heading\n</pre><h2>Real</h2></body>",
            None,
        ));
        assert_eq!(
            d.headings.iter().map(|h| h.2.as_str()).collect::<Vec<_>>(),
            ["Real"]
        );
    }

    #[test]
    fn listings_are_not_boilerplate() {
        // `}` closes code on every page of a site; it must not be dropped
        // as a repeated line.
        let boiler: HashSet<u64> = ["}", "Menu"].iter().map(|l| html::line_key(l)).collect();
        let d = html::parse_html_within(
            "<body><p>Menu</p><pre>fn a() {\n}\n</pre></body>",
            &Budget::unlimited(),
            &boiler,
        )
        .unwrap();
        assert_eq!(d.text, "```\nfn a() {\n}\n```");
        let keys = html::html_line_keys(&scraper::Html::parse_document(
            "<body><pre>}\n</pre><p>x</p></body>",
        ));
        assert_eq!(keys, vec![html::line_key("x")]);
    }

    #[test]
    fn bad_inputs_are_skipped_or_failed() {
        assert!(matches!(parse("a.txt", b"", None), Parsed::Skipped(_)));
        // Not UTF-8, but text in a legacy encoding: decoded and named.
        assert!(
            matches!(parse("a.txt", b"ok caf\xe9", None), Parsed::Document(d) if d.text == "ok caf\u{e9}" && d.metadata["encoding"] == "windows-1252")
        );
        assert!(
            matches!(parse("a.txt", &[b"text ".repeat(2000).as_slice(), b"\0tail"].concat(), None), Parsed::Skipped(r) if r.contains("NUL"))
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
