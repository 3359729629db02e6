//! Search filters, in Quarry's terms, translated to Qdrant's filter JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{EngineError, Result};

/// One value or a list of them (any of which matches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
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
    pub metadata: Option<Map<String, Value>>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Qdrant's filter language (`{"must": [...]}`).
    pub fn to_qdrant(&self) -> Result<Option<Value>> {
        let mut must = Vec::new();
        let any = |key: &str, values: Vec<&str>| {
            if values.len() == 1 {
                json!({"key": key, "match": {"value": values[0]}})
            } else {
                json!({"key": key, "match": {"any": values}})
            }
        };
        if let Some(s) = &self.source {
            must.push(any("source", s.values()));
        }
        if let Some(d) = &self.doc_id {
            must.push(any("doc_id", d.values()));
        }
        if let Some(prefix) = &self.path_prefix {
            let p = prefix.trim_start_matches("./").trim_start_matches('/');
            if p.is_empty() {
                return Err(EngineError::Invalid(
                    "filter.path_prefix must not be empty".into(),
                ));
            }
            // Directory prefixes are indexed with a trailing slash; a full
            // path is indexed as is.
            let dir = if p.ends_with('/') {
                p.to_string()
            } else {
                format!("{p}/")
            };
            must.push(
                json!({"key": "path_prefixes", "match": {"any": [dir, p.trim_end_matches('/')]}}),
            );
        }
        if let Some(tags) = &self.tags {
            if tags.is_empty() {
                return Err(EngineError::Invalid(
                    "filter.tags must list at least one tag".into(),
                ));
            }
            must.push(json!({"key": "tags", "match": {"any": tags}}));
        }
        if let Some(fields) = &self.metadata {
            for (k, v) in fields {
                if k.is_empty() || k.contains(['.', '[', ']', '"']) {
                    return Err(EngineError::Invalid(format!(
                        "filter.metadata key {k:?} is not a plain field name"
                    )));
                }
                match v {
                    Value::String(_) | Value::Bool(_) => {
                        must.push(json!({"key": format!("metadata.{k}"), "match": {"value": v}}))
                    }
                    Value::Number(n) if n.is_i64() => {
                        must.push(json!({"key": format!("metadata.{k}"), "match": {"value": v}}))
                    }
                    Value::Number(n) => {
                        let f = n.as_f64().unwrap_or(0.0);
                        must.push(
                            json!({"key": format!("metadata.{k}"), "range": {"gte": f, "lte": f}}),
                        );
                    }
                    other => {
                        return Err(EngineError::Invalid(format!(
                            "filter.metadata.{k} must be a string, number or boolean, not {other}"
                        )));
                    }
                }
            }
        }
        Ok((!must.is_empty()).then(|| json!({ "must": must })))
    }
}
