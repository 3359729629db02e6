//! Quarry's filter language, typed. Callers say what must hold of a point's
//! payload; each store converts it to its own Qdrant types (`edge/filter.rs`,
//! `server/filter.rs`), so the engine never writes Qdrant's JSON and a
//! condition a store cannot express is a compile error, not a clause that is
//! silently dropped (which would leak documents a caller meant to exclude).

use serde::Serialize;

/// A value a keyword or integer field is matched against.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MatchValue {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

impl From<&str> for MatchValue {
    fn from(s: &str) -> Self {
        Self::Keyword(s.to_string())
    }
}

impl From<String> for MatchValue {
    fn from(s: String) -> Self {
        Self::Keyword(s)
    }
}

/// Bounds on a numeric field; `None` leaves a side open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl Range {
    /// Exactly `value`: how a float is matched.
    pub fn equal(value: f64) -> Self {
        Self {
            gte: Some(value),
            lte: Some(value),
            ..Self::default()
        }
    }
}

/// What must hold of a point. `key` is a payload field (`metadata.year`
/// reaches into an object).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The field equals the value (for a list field: contains it).
    Match {
        key: String,
        value: MatchValue,
    },
    /// The field equals any of the keywords.
    AnyOf {
        key: String,
        values: Vec<String>,
    },
    /// The path-like field equals `prefix` or lies under it as a directory:
    /// `guide` and `guide/` both match `guide/intro.md` and `guide`, never
    /// `guidebook.md`. Stores match the field's `_prefixes` companion, which
    /// the indexer writes, so a prefix filter is one keyword lookup.
    Prefix {
        key: String,
        prefix: String,
    },
    Range {
        key: String,
        range: Range,
    },
    /// Every condition holds (none: always true).
    And(Vec<Condition>),
    /// At least one holds (none: always false).
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn matches(key: impl Into<String>, value: impl Into<MatchValue>) -> Self {
        Self::Match {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn any_of(key: impl Into<String>, values: Vec<String>) -> Self {
        Self::AnyOf {
            key: key.into(),
            values,
        }
    }

    /// One keyword matches as a `Match`; several as an `AnyOf`.
    pub fn one_or_any(key: impl Into<String>, mut values: Vec<String>) -> Self {
        if values.len() == 1 {
            Self::matches(key, values.remove(0))
        } else {
            Self::any_of(key, values)
        }
    }

    /// The keywords a [`Condition::Prefix`] is matched by, on `key_prefixes`:
    /// the directory form and the exact form. `None` for an empty prefix,
    /// which would match everything.
    pub(crate) fn prefix_keys(key: &str, prefix: &str) -> Option<(String, Vec<String>)> {
        let p = prefix
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/');
        if p.is_empty() {
            return None;
        }
        Some((
            format!("{key}_prefixes"),
            vec![format!("{p}/"), p.to_string()],
        ))
    }
}

/// `!condition` holds where `condition` does not.
impl std::ops::Not for Condition {
    type Output = Condition;
    fn not(self) -> Condition {
        Condition::Not(Box::new(self))
    }
}

/// One condition of every kind, for the stores' conversion tests.
#[cfg(test)]
pub(crate) fn every_kind() -> Condition {
    Condition::And(vec![
        Condition::matches("doc_id", "a"),
        Condition::any_of("tags", vec!["x".into(), "y".into()]),
        Condition::Prefix {
            key: "path".into(),
            prefix: "guide".into(),
        },
        Condition::Range {
            key: "metadata.year".into(),
            range: Range::equal(2020.0),
        },
        Condition::Or(vec![Condition::matches(
            "metadata.draft",
            MatchValue::Bool(false),
        )]),
        !Condition::matches("metadata.n", MatchValue::Integer(3)),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_its_directory_form_and_itself() {
        assert_eq!(
            Condition::prefix_keys("path", "./guide/").unwrap(),
            (
                "path_prefixes".into(),
                vec!["guide/".into(), "guide".into()]
            )
        );
        assert_eq!(Condition::prefix_keys("path", "/"), None);
        assert_eq!(
            Condition::one_or_any("source", vec!["a".into()]),
            Condition::matches("source", "a")
        );
    }
}
