//! PDF to text, page by page.
//!
//! Three guards stand in front of the PDF library, because a PDF is a
//! program as much as a document:
//!
//! - every Flate stream is inflated once with a bound before the library
//!   sees the file: a 1 MB stream can inflate to 1 GB, and the library
//!   would hold all of it in memory. Caps are per stream and per file, both
//!   relative to the file's size and absolute;
//! - the library can panic on malformed files; that is caught and reported
//!   as this one file's failure (the caller catches, see `prepare`);
//! - a failure is named for what it is: corrupt (cannot be parsed),
//!   encrypted (needs a password), or no text (scanned images).
//!
//! The library ignores the `'` and `"` text operators ("next line, then
//! show"), so pages written with them came out empty; they are rewritten to
//! the equivalent `T*` and `Tj` before extraction.

use std::io::Read;

use pdf_extract::content::{Content, Operation};
use pdf_extract::{Document, Object};
use quarry_core::ParsedDocument;

use super::{Budget, Parsed};

/// Inflated bytes per file may be this many times the file's size...
const MAX_RATIO: u64 = 50;
/// ...but at least this much (small files with legitimately dense fonts)...
const MIN_INFLATED: u64 = 32 << 20;
/// ...and never more than this.
const MAX_INFLATED: u64 = 512 << 20;

pub(super) fn parse_pdf(bytes: &[u8], budget: &Budget) -> Parsed {
    if let Err(reason) = check_inflated_size(bytes) {
        return Parsed::Failed(reason);
    }
    let mut doc = match Document::load_mem(bytes) {
        Ok(d) => d,
        Err(e) => return Parsed::Failed(format!("corrupt PDF: {e}")),
    };
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Parsed::Failed(
            "encrypted PDF: it cannot be read without its password; index a decrypted copy".into(),
        );
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Parsed::Failed("corrupt PDF: it has no page tree".into());
    }
    let mut out = ParsedDocument {
        content_type: "application/pdf".into(),
        ..Default::default()
    };
    let mut chars = 0;
    for (&number, &page_id) in &pages {
        if budget.check().is_err() {
            return Parsed::Failed(budget.exceeded_reason());
        }
        rewrite_quote_operators(&mut doc, page_id);
        let mut text = String::new();
        let result = {
            let mut output = pdf_extract::PlainTextOutput::new(&mut text);
            pdf_extract::output_doc_page(&doc, &mut output, number)
        };
        if let Err(e) = result {
            return Parsed::Failed(format!("corrupt PDF: page {number}: {e}"));
        }
        let page = text.trim();
        if !out.text.is_empty() {
            out.text.push_str("\n\n");
            chars += 2;
        }
        out.page_starts.push(chars);
        out.text.push_str(page);
        chars += page.chars().count();
    }
    if out.text.trim().is_empty() {
        return Parsed::Skipped("PDF has no extractable text (scanned images?)".into());
    }
    Parsed::Document(out)
}

/// Inflates every `stream ... endstream` body that is zlib data, counting
/// bytes and never keeping them, and refuses the file once a cap is passed.
/// The scan is over raw bytes, so it also covers object streams, which the
/// library inflates while it loads the file.
fn check_inflated_size(bytes: &[u8]) -> Result<(), String> {
    let file_cap = (bytes.len() as u64)
        .saturating_mul(MAX_RATIO)
        .clamp(MIN_INFLATED, MAX_INFLATED);
    let mut total = 0u64;
    let mut at = 0;
    while let Some(start) = find(&bytes[at..], b"stream").map(|i| at + i) {
        let mut body = start + b"stream".len();
        // `endstream` also contains `stream`; skip it.
        if start >= 3 && &bytes[start - 3..start] == b"end" {
            at = body;
            continue;
        }
        if bytes.get(body) == Some(&b'\r') {
            body += 1;
        }
        if bytes.get(body) == Some(&b'\n') {
            body += 1;
        }
        let end = find(&bytes[body..], b"endstream").map_or(bytes.len(), |i| body + i);
        let remaining = file_cap - total;
        let inflated = inflated_len(&bytes[body..end], remaining + 1);
        total += inflated;
        if total > file_cap {
            return Err(format!(
                "PDF streams decompress to more than {} MB (a decompression bomb?); the cap is {MAX_RATIO} times the file's size, at least {} MB and at most {} MB",
                file_cap >> 20,
                MIN_INFLATED >> 20,
                MAX_INFLATED >> 20
            ));
        }
        at = end.max(body);
    }
    Ok(())
}

/// Bytes `data` inflates to, reading no further than `limit`; 0 when it is
/// not zlib data (other filters, or none).
fn inflated_len(data: &[u8], limit: u64) -> u64 {
    if data.len() < 2
        || data[0] & 0x0f != 8
        || (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 != 0
    {
        return 0;
    }
    let mut decoder = flate2::read::ZlibDecoder::new(data).take(limit);
    let mut sink = [0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match decoder.read(&mut sink) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += k as u64,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `(s) '` is `T* (s) Tj`; `aw ac (s) "` is `aw Tw ac Tc (s) '`.
fn rewrite_quote_operators(doc: &mut Document, page_id: pdf_extract::ObjectId) {
    let Ok(data) = doc.get_page_content(page_id) else {
        return;
    };
    let Ok(content) = Content::decode(&data) else {
        return;
    };
    if !content
        .operations
        .iter()
        .any(|op| op.operator == "'" || op.operator == "\"")
    {
        return;
    }
    let mut operations = Vec::with_capacity(content.operations.len() + 8);
    for op in content.operations {
        let operands = op.operands;
        match (op.operator.as_str(), operands.len()) {
            ("'", 1) => {
                operations.push(Operation::new("T*", vec![]));
                operations.push(Operation::new("Tj", operands));
            }
            ("\"", 3) => {
                let mut it = operands.into_iter();
                let (aw, ac, s) = (
                    it.next().unwrap_or(Object::Null),
                    it.next().unwrap_or(Object::Null),
                    it.next().unwrap_or(Object::Null),
                );
                operations.push(Operation::new("Tw", vec![aw]));
                operations.push(Operation::new("Tc", vec![ac]));
                operations.push(Operation::new("T*", vec![]));
                operations.push(Operation::new("Tj", vec![s]));
            }
            (operator, _) => operations.push(Operation::new(operator, operands)),
        }
    }
    if let Ok(encoded) = (Content { operations }).encode() {
        let _ = doc.change_page_content(page_id, encoded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flate_bomb_is_refused_before_it_is_inflated() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..200 {
            z.write_all(&zeros).expect("compress");
        }
        let stream = z.finish().expect("finish");
        let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Length 1 /Filter /FlateDecode >>\nstream\n".to_vec();
        pdf.extend_from_slice(&stream);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        let err = check_inflated_size(&pdf).expect_err("a 200 MB stream in a small file");
        assert!(err.contains("decompression bomb"), "{err}");
        // A stream within the cap passes.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&zeros).expect("compress");
        let mut ok = b"%PDF-1.4\nstream\n".to_vec();
        ok.extend_from_slice(&z.finish().expect("finish"));
        ok.extend_from_slice(b"\nendstream\n");
        assert!(check_inflated_size(&ok).is_ok());
    }
}
