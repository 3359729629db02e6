//! Quarry's filters are Qdrant's JSON filter language, which qdrant-edge
//! reads directly. The server speaks gRPC, so the same JSON is translated
//! here. Only the parts of the language Quarry produces are accepted; any
//! other condition is an error rather than a silently dropped clause, since
//! an ignored filter would leak documents a caller meant to exclude.

use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::{Condition, Filter, Range};
use serde_json::Value;

use crate::{Result, StoreError};

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(format!("filter: {}", msg.into()))
}

pub(crate) fn to_grpc(json: &Value) -> Result<Filter> {
    let obj = json
        .as_object()
        .ok_or_else(|| invalid("must be a JSON object"))?;
    let mut filter = Filter::default();
    for (clause, conds) in obj {
        let list = match conds {
            Value::Array(a) => a.iter().map(condition).collect::<Result<Vec<_>>>()?,
            Value::Object(_) => vec![condition(conds)?],
            Value::Null => vec![],
            _ => return Err(invalid(format!("{clause} must be a list of conditions"))),
        };
        match clause.as_str() {
            "must" => filter.must.extend(list),
            "should" => filter.should.extend(list),
            "must_not" => filter.must_not.extend(list),
            other => return Err(invalid(format!("unknown clause {other:?}"))),
        }
    }
    Ok(filter)
}

fn condition(json: &Value) -> Result<Condition> {
    let obj = json
        .as_object()
        .ok_or_else(|| invalid("a condition must be a JSON object"))?;
    if ["must", "should", "must_not"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Ok(to_grpc(json)?.into());
    }
    if let Some(ids) = obj.get("has_id") {
        let ids = ids
            .as_array()
            .ok_or_else(|| invalid("has_id must be a list"))?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(qdrant_client::qdrant::PointId::from(s.clone())),
                Value::Number(n) => n
                    .as_u64()
                    .map(qdrant_client::qdrant::PointId::from)
                    .ok_or_else(|| invalid("has_id numbers must be unsigned integers")),
                _ => Err(invalid("has_id entries must be strings or integers")),
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Condition::has_id(ids));
    }
    if let Some(inner) = obj.get("is_empty") {
        return Ok(Condition::is_empty(key_of(inner)?));
    }
    if let Some(inner) = obj.get("is_null") {
        return Ok(Condition::is_null(key_of(inner)?));
    }
    let key = key_of(json)?;
    if let Some(m) = obj.get("match") {
        return Ok(Condition::matches(key, match_value(m)?));
    }
    if let Some(r) = obj.get("range") {
        let get = |k: &str| -> Result<Option<f64>> {
            match r.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("range.{k} must be a number"))),
            }
        };
        return Ok(Condition::range(
            key,
            Range {
                lt: get("lt")?,
                gt: get("gt")?,
                gte: get("gte")?,
                lte: get("lte")?,
            },
        ));
    }
    Err(invalid(format!("unsupported condition {json}")))
}

fn key_of(json: &Value) -> Result<String> {
    json.get("key")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("condition {json} has no \"key\"")))
}

fn match_value(m: &Value) -> Result<MatchValue> {
    if let Some(v) = m.get("value") {
        return match v {
            Value::String(s) => Ok(s.clone().into()),
            Value::Bool(b) => Ok((*b).into()),
            Value::Number(n) => n
                .as_i64()
                .map(Into::into)
                .ok_or_else(|| invalid("match.value numbers must be integers; use range")),
            _ => Err(invalid("match.value must be a string, integer or boolean")),
        };
    }
    if let Some(Value::Array(any)) = m.get("any") {
        if any.iter().all(Value::is_string) {
            let v: Vec<String> = any
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            return Ok(v.into());
        }
        if any.iter().all(Value::is_i64) {
            let v: Vec<i64> = any.iter().filter_map(Value::as_i64).collect();
            return Ok(v.into());
        }
        return Err(invalid(
            "match.any must be all strings or all integers".to_string(),
        ));
    }
    Err(invalid(format!("unsupported match {m}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quarry_filters_translate_and_unknown_ones_are_refused() {
        let f = to_grpc(&json!({
            "must": [
                {"key": "doc_id", "match": {"value": "a"}},
                {"key": "tags", "match": {"any": ["x", "y"]}},
                {"key": "metadata.year", "range": {"gte": 2020, "lte": 2020}},
            ],
            "must_not": [{"has_id": ["00000000-0000-0000-0000-000000000001"]}],
        }))
        .unwrap();
        assert_eq!(f.must.len(), 3);
        assert_eq!(f.must_not.len(), 1);
        let err = to_grpc(&json!({"must": [{"key": "a", "geo_radius": {}}]})).unwrap_err();
        assert!(err.to_string().contains("unsupported condition"), "{err}");
        assert!(to_grpc(&json!({"filter": []})).is_err());
    }
}
