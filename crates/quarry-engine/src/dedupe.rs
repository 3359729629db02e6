//! Near-duplicate hits, collapsed at query time.
//!
//! Sites publish the same passage more than once: a chapter and the "all
//! chapters on one page" print view, a page and its mirror, a README copied
//! into two repositories. Each copy is a legitimate document, so sync keeps
//! them all; but a result list with the same passage twice wastes an LLM's
//! context. A hit whose text is nearly identical to a better hit's from
//! another document is dropped, and the better hit names the documents it
//! stands for in `duplicates`.
//!
//! "Nearly identical" is word 3-gram Jaccard similarity of at least
//! [`SIMILAR`], over lower-cased alphanumeric words: chunk boundaries of the
//! two copies rarely fall on the same word, so exact equality would miss
//! most copies, while 0.8 keeps two different passages that share a
//! boilerplate sentence apart.

use std::collections::HashSet;

use crate::Hit;

/// Jaccard similarity of word 3-grams above which two hits are one.
const SIMILAR: f64 = 0.8;

/// Hits in order, the near-duplicates of an earlier hit removed and named
/// in its `duplicates`.
pub(crate) fn collapse(hits: Vec<Hit>) -> Vec<Hit> {
    let mut kept: Vec<(Hit, HashSet<u64>)> = Vec::with_capacity(hits.len());
    for hit in hits {
        let grams = shingles(&hit.text);
        let twin = kept
            .iter_mut()
            .find(|(k, g)| k.doc_id != hit.doc_id && jaccard(g, &grams) >= SIMILAR);
        match twin {
            Some((k, _)) => {
                if !k.duplicates.contains(&hit.doc_id) {
                    k.duplicates.push(hit.doc_id);
                }
            }
            None => kept.push((hit, grams)),
        }
    }
    kept.into_iter().map(|(h, _)| h).collect()
}

/// Hashes of the text's word 3-grams (the words themselves when there are
/// fewer than three).
fn shingles(text: &str) -> HashSet<u64> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let hash = |ws: &[String]| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ws.hash(&mut h);
        h.finish()
    };
    if words.len() < 3 {
        return std::iter::once(hash(&words)).collect();
    }
    words.windows(3).map(hash).collect()
}

fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        return 0.0;
    }
    inter as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: &str, text: &str) -> Hit {
        Hit {
            doc_id: doc.into(),
            chunk_id: format!("{doc}-0"),
            score: 1.0,
            relevance: 0.5,
            text: text.into(),
            uri: doc.into(),
            title: None,
            source: "s".into(),
            chunk_index: 0,
            start: 0,
            end: text.len(),
            headings: Vec::new(),
            page: None,
            retrieval_score: None,
            duplicates: Vec::new(),
            gap_before: String::new(),
        }
    }

    #[test]
    fn a_copy_in_another_document_is_folded_into_the_better_hit() {
        let passage = "Rust's ownership rules: each value has an owner, there can only be one owner at a time, and when the owner goes out of scope the value is dropped.";
        // The print view's chunk starts a few words earlier.
        let print_view = format!("Chapter 4. {passage}");
        let other = "Borrowing lets code use a value without taking ownership of it; references are immutable by default.";
        let hits = vec![
            hit("ch04.html", passage),
            hit("print.html", &print_view),
            hit("ch04-02.html", other),
            hit("print.html", passage),
        ];
        let out = collapse(hits);
        let docs: Vec<&str> = out.iter().map(|h| h.doc_id.as_str()).collect();
        assert_eq!(docs, ["ch04.html", "ch04-02.html"]);
        assert_eq!(out[0].duplicates, vec!["print.html".to_string()]);
        assert!(out[1].duplicates.is_empty());
    }

    #[test]
    fn chunks_of_one_document_and_merely_similar_passages_stay() {
        let a = "The sync skips unchanged documents and replaces changed ones atomically.";
        let b = "The sync deletes removed documents and survives a crash at any point.";
        let out = collapse(vec![hit("a", a), hit("a", a), hit("b", b)]);
        assert_eq!(out.len(), 3);
    }
}
