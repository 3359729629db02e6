//! [`Condition`] to the gRPC filter of a Qdrant server.

use qdrant_client::qdrant::r#match::MatchValue as QMatchValue;
use qdrant_client::qdrant::{Condition as QCondition, Filter, Range};

use crate::filter::{Condition, MatchValue};
use crate::{Result, StoreError};

fn condition(c: &Condition) -> Result<QCondition> {
    Ok(match c {
        Condition::Match { key, value } => {
            let v: QMatchValue = match value {
                MatchValue::Keyword(s) => s.clone().into(),
                MatchValue::Integer(i) => (*i).into(),
                MatchValue::Bool(b) => (*b).into(),
            };
            QCondition::matches(key.clone(), v)
        }
        Condition::AnyOf { key, values } => QCondition::matches(key.clone(), values.clone()),
        Condition::Prefix { key, prefix } => {
            let (field, keys) = Condition::prefix_keys(key, prefix).ok_or_else(|| {
                StoreError::Invalid(format!("filter: the prefix of {key:?} is empty"))
            })?;
            QCondition::matches(field, keys)
        }
        Condition::Range { key, range } => QCondition::range(
            key.clone(),
            Range {
                lt: range.lt,
                gt: range.gt,
                gte: range.gte,
                lte: range.lte,
            },
        ),
        Condition::And(all) => {
            Filter::must(all.iter().map(condition).collect::<Result<Vec<_>>>()?).into()
        }
        Condition::Or(any) => {
            Filter::should(any.iter().map(condition).collect::<Result<Vec<_>>>()?).into()
        }
        Condition::Not(inner) => Filter::must_not([condition(inner)?]).into(),
    })
}

/// The filter of a read: the caller's condition, if any, plus `must_not`.
pub(super) fn to_grpc(wanted: Option<&Condition>, must_not: Vec<QCondition>) -> Result<Filter> {
    let mut filter = Filter::default();
    if let Some(c) = wanted {
        filter.must.push(condition(c)?);
    }
    filter.must_not = must_not;
    Ok(filter)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_converts() {
        let c = crate::filter::every_kind();
        let f = to_grpc(Some(&c), vec![QCondition::matches("_staged", true)]).unwrap();
        assert_eq!((f.must.len(), f.must_not.len()), (1, 1));
        let text = format!("{f:?}");
        assert!(
            text.contains("path_prefixes") && text.contains("guide/"),
            "{text}"
        );
        let empty = Condition::Prefix {
            key: "path".into(),
            prefix: String::new(),
        };
        assert!(to_grpc(Some(&empty), vec![]).is_err());
    }
}
