//! Search filters, in Quarry's terms, translated to the store's typed
//! [`Condition`].

use quarry_core::payload::ChunkPayload;
use quarry_store::{Condition, MatchValue, Range};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{EngineError, Result};

/// One value or a list of them (any of which matches).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        match Raw::deserialize(d) {
            Ok(Raw::One(s)) => Ok(Self::One(s)),
            Ok(Raw::Many(v)) => Ok(Self::Many(v)),
            Err(_) => Err(serde::de::Error::custom(
                "source and doc_id take a string or a list of strings",
            )),
        }
    }
}

impl OneOrMany {
    fn values(&self) -> Vec<&str> {
        match self {
            Self::One(v) => vec![v.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Restricts a search. All given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Source name(s).
    pub source: Option<OneOrMany>,
    /// Document id(s).
    pub doc_id: Option<OneOrMany>,
    /// Documents whose path starts with this directory prefix (`guide/` or
    /// `guide`), or equals it.
    pub path_prefix: Option<String>,
    /// Documents with any of these tags.
    pub tags: Option<Vec<String>>,
    /// Exact matches on front-matter / metadata fields (strings, numbers,
    /// booleans).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Map<String, Value>>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The store's condition; `None` when nothing is restricted.
    pub fn to_condition(&self) -> Result<Option<Condition>> {
        let mut all = Vec::new();
        let strings = |v: &OneOrMany| v.values().into_iter().map(str::to_string).collect();
        if let Some(s) = &self.source {
            all.push(Condition::one_or_any(ChunkPayload::SOURCE, strings(s)));
        }
        if let Some(d) = &self.doc_id {
            all.push(Condition::one_or_any(ChunkPayload::DOC_ID, strings(d)));
        }
        if let Some(prefix) = &self.path_prefix {
            let p = prefix.trim_start_matches("./").trim_start_matches('/');
            if p.is_empty() {
                return Err(EngineError::Invalid(
                    "filter.path_prefix must not be empty".into(),
                ));
            }
            all.push(Condition::Prefix {
                key: "path".into(),
                prefix: p.to_string(),
            });
        }
        if let Some(tags) = &self.tags {
            if tags.is_empty() {
                return Err(EngineError::Invalid(
                    "filter.tags must list at least one tag".into(),
                ));
            }
            all.push(Condition::any_of(ChunkPayload::TAGS, tags.clone()));
        }
        if let Some(fields) = &self.metadata {
            for (k, v) in fields {
                all.push(metadata_condition(k, v)?);
            }
        }
        Ok(match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Condition::And(all)),
        })
    }
}

/// An exact match on one metadata field.
fn metadata_condition(k: &str, v: &Value) -> Result<Condition> {
    if k.is_empty() || k.contains(['.', '[', ']', '"']) {
        return Err(EngineError::Invalid(format!(
            "filter.metadata key {k:?} is not a plain field name"
        )));
    }
    let key = format!("{}.{k}", ChunkPayload::METADATA);
    Ok(match v {
        Value::String(s) => Condition::matches(key, s.as_str()),
        Value::Bool(b) => Condition::matches(key, MatchValue::Bool(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Condition::matches(key, MatchValue::Integer(i)),
            None => Condition::Range {
                key,
                range: Range::equal(n.as_f64().unwrap_or(0.0)),
            },
        },
        other => {
            return Err(EngineError::Invalid(format!(
                "filter.metadata.{k} must be a string, number or boolean, not {other}"
            )));
        }
    })
}
