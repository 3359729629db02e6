//! Bytes to text: character encodings, binary content, and files that are
//! machine output rather than writing.

/// Text decoded from a file, with the encoding it was in when that was not
/// UTF-8.
#[derive(Debug)]
pub(super) struct Decoded {
    pub text: String,
    pub encoding: Option<&'static str>,
}

/// UTF-8 (with or without a BOM), a UTF-16 file with its BOM, or else the
/// legacy encoding `chardetng` finds most likely (Latin-1 and Windows-1252
/// files are common in old documentation). A NUL anywhere means binary: no
/// text format uses it, and a NUL that reaches the index truncates text in
/// many tools downstream.
pub(super) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes)
        && encoding != encoding_rs::UTF_8
    {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom..]);
        if had_errors {
            return Err(format!("invalid {} text", encoding.name()));
        }
        return checked(text.into_owned(), Some(encoding.name()));
    }
    if let Some(at) = memchr(0, bytes) {
        return Err(format!("binary content (a NUL byte at offset {at})"));
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(t) => checked(t.to_string(), None),
        Err(e) => {
            let mut detector = chardetng::EncodingDetector::new();
            detector.feed(bytes, true);
            let encoding = detector.guess(None, true);
            match encoding.decode_without_bom_handling_and_without_replacement(bytes) {
                Some(text) if encoding != encoding_rs::UTF_8 => {
                    checked(text.into_owned(), Some(encoding.name()))
                }
                _ => Err(format!(
                    "invalid UTF-8 at byte {}, and not text in any other encoding",
                    e.valid_up_to()
                )),
            }
        }
    }
}

/// Text whose characters are mostly control codes is binary that happened
/// to decode (random bytes are valid Windows-1252).
fn checked(text: String, encoding: Option<&'static str>) -> Result<Decoded, String> {
    let sample: Vec<char> = text.chars().take(8192).collect();
    let control = sample
        .iter()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
        .count();
    if !sample.is_empty() && control * 20 > sample.len() {
        return Err(format!(
            "binary content ({}% control characters)",
            control * 100 / sample.len()
        ));
    }
    Ok(Decoded { text, encoding })
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Why a file is machine output not worth indexing, when it is: minified
/// code, source maps, documentation search indexes. Such files are huge
/// single lines that no one reads, and they drown real text in search
/// results.
pub(super) fn generated_reason(name: &str, bytes: &[u8]) -> Option<String> {
    let file = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    let hint = "set sync.skip_generated = false to index it";
    if file.ends_with(".map") || bytes.starts_with(b"{\"version\":3,") {
        return Some(format!("source map, not text; {hint}"));
    }
    let stem = file.split('.').next().unwrap_or("");
    let search_index = matches!(
        stem,
        "searchindex" | "search_index" | "search-index" | "lunr-index" | "elasticlunr"
    );
    let ext = file.rsplit('.').next().unwrap_or("");
    if search_index && matches!(ext, "js" | "json") {
        return Some(format!("generated search index; {hint}"));
    }
    if !matches!(ext, "js" | "mjs" | "cjs" | "css" | "json") {
        return None;
    }
    if file.contains(".min.") {
        return Some(format!("minified file; {hint}"));
    }
    // One long line, or a few: what minifiers write. Hand-written code
    // and data keep lines short.
    if bytes.len() < 4096 {
        return None;
    }
    let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let (count, longest) = lines.fold((0usize, 0usize), |(n, m), l| (n + 1, m.max(l.len())));
    if longest >= 2000 && bytes.len() / count.max(1) >= 500 {
        return Some(format!(
            "minified file ({count} lines, the longest {longest} bytes); {hint}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_encodings_are_decoded_and_named() {
        let latin1 =
            b"Le caf\xe9 na\xeff: d\xe9j\xe0 vu, \xe0 la fran\xe7aise, tr\xe8s \xe9l\xe9gant.";
        let d = decode(latin1).expect("latin-1");
        assert!(
            d.text.contains("café") && d.text.contains("déjà"),
            "{}",
            d.text
        );
        assert_eq!(d.encoding, Some("windows-1252"));
        let cp1252 = b"He said \x93quoted\x94 and paid \x80 20 for the \x96 dash.";
        let d = decode(cp1252).expect("cp1252");
        assert!(
            d.text.contains('\u{201c}') && d.text.contains('€'),
            "{}",
            d.text
        );
        let d = decode("plain ünïcode".as_bytes()).expect("utf-8");
        assert_eq!(d.encoding, None);
    }

    #[test]
    fn nul_anywhere_and_control_soup_are_binary() {
        let mut late = vec![b'a'; 10_000];
        late.push(0);
        late.extend_from_slice(b"tail");
        assert!(
            decode(&late)
                .expect_err("late NUL")
                .contains("NUL byte at offset 10000")
        );
        let soup: Vec<u8> = (0..4000u32).map(|i| (i % 31 + 1) as u8).collect();
        assert!(decode(&soup).expect_err("control").contains("binary"));
    }

    #[test]
    fn generated_files_are_recognised() {
        let one_line = "var a=function(b,c){return b+c};".repeat(400);
        assert!(generated_reason("dist/app.js", one_line.as_bytes()).is_some());
        assert!(generated_reason("a/app.js.map", b"{}").is_some());
        assert!(generated_reason("book/searchindex.js", b"x").is_some());
        assert!(generated_reason("x/jquery.min.js", b"x").is_some());
        let code = "function add(a, b) {\n  return a + b;\n}\n".repeat(400);
        assert!(generated_reason("src/app.js", code.as_bytes()).is_none());
        assert!(generated_reason("notes.md", one_line.as_bytes()).is_none());
    }
}
