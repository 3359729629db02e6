//! One score scale for every mode.
//!
//! Each mode's raw score lives on its own scale: cosine similarity for
//! dense (a good hit near 0.7), BM25's unbounded sum (30 for a long query,
//! 5 for a short one), and a fused score whose range depends on the fusion
//! (about 0.03 at best for RRF). A threshold picked for one is meaningless
//! for another. `relevance` maps each to an estimate of the probability
//! that the hit is relevant: a logistic curve per mode, fitted on the shared
//! labelled sets (SciFact-train and MS MARCO 5k, the top 10 hits of every
//! query, each set weighted equally) by `scripts/calibrate-relevance.py`
//! from `quarry eval --sweep fusion=...` runs.
//!
//! BM25 is divided by the number of distinct content words of the query
//! first: its score grows with every matching term, so the same evidence
//! per term must read the same for a two-word and a ten-word question. The
//! word rule here is the fitting script's, so the two cannot drift apart.
//!
//! A hybrid hit is not judged by its fused score: fusion normalises each
//! side over the query's own candidates, so an off-topic query's best hit
//! still fuses near the top of the range. Its relevance reads both sides'
//! own scores (a side that did not return the hit counts as 0), whichever
//! fusion ordered the hits.

/// `relevance = 1 / (1 + e^-(a·x + b))` for one mode's feature `x`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Curve {
    a: f32,
    b: f32,
}

const DENSE: Curve = Curve {
    a: 16.8842,
    b: -10.2431,
};
const BM25_PER_WORD: Curve = Curve {
    a: 2.082,
    b: -7.7667,
};
/// Hybrid: weights of the cosine and of BM25 per content word, and bias.
const HYBRID: [f32; 3] = [12.2757, 1.125, -11.0184];

/// Words a question carries no evidence in.
const STOP: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "how",
    "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "what",
    "when", "where", "which", "who", "why", "will", "with", "does", "do", "did", "can",
];

/// Distinct lower-cased alphanumeric words of `query` outside [`STOP`],
/// at least 1.
pub(crate) fn content_words(query: &str) -> usize {
    let words: std::collections::HashSet<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect();
    words.len().max(1)
}

/// What searches need to turn raw scores into a relevance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    /// 1 / the query's content words.
    per_word: f32,
}

impl Scale {
    pub(crate) fn new(query: &str) -> Self {
        Self {
            per_word: 1.0 / content_words(query) as f32,
        }
    }

    pub(crate) fn dense(self, cosine: f32) -> f32 {
        sigmoid(DENSE.a * cosine + DENSE.b)
    }

    pub(crate) fn bm25(self, score: f32) -> f32 {
        sigmoid(BM25_PER_WORD.a * score * self.per_word + BM25_PER_WORD.b)
    }

    /// A hybrid hit from its two sides' scores (0 for a side that did not
    /// return it).
    pub(crate) fn hybrid(self, cosine: f32, bm25: f32) -> f32 {
        let [wd, wb, bias] = HYBRID;
        sigmoid(wd * cosine + wb * bm25 * self.per_word + bias)
    }
}

/// A cross-encoder's score as a relevance: already a probability when the
/// model ends in a sigmoid, a logit otherwise.
pub(crate) fn of_cross_encoder(score: f32) -> f32 {
    if (0.0..=1.0).contains(&score) {
        score
    } else {
        sigmoid(score)
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_reads_on_one_scale() {
        let q = "how does the sync keep collections in step";
        // sync, keep, collections, step: the rest are stop words.
        assert_eq!(content_words(q), 4);
        let scale = Scale::new(q);
        // A strong hit in each mode's own terms reads as likely relevant,
        // a weak one as unlikely, whatever the raw scale.
        for (strong, weak) in [
            (scale.dense(0.8), scale.dense(0.3)),
            (scale.bm25(30.0), scale.bm25(4.0)),
            (scale.hybrid(0.8, 20.0), scale.hybrid(0.3, 4.0)),
        ] {
            assert!(strong > 0.6 && weak < 0.05, "strong {strong}, weak {weak}");
        }
        // Hybrid agrees with either side alone when the other is silent.
        assert!(scale.hybrid(0.95, 0.0) > 0.5 && scale.hybrid(0.0, 40.0) > 0.5);
        // The same evidence per word for a longer question.
        let long = format!("{q} with every replica and shard");
        let per_word = 30.0 / content_words(q) as f32;
        let words = content_words(&long) as f32;
        assert!((Scale::new(&long).bm25(per_word * words) - scale.bm25(30.0)).abs() < 1e-6);
        assert_eq!(of_cross_encoder(0.42), 0.42);
        assert!(of_cross_encoder(-3.0) < 0.05);
    }
}
