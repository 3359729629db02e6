//! [`Condition`] to qdrant-edge's filter types.

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    AnyVariants, Condition as QCondition, FieldCondition, Filter, HasIdCondition, JsonPath, Match,
    PointId as QPointId, Range as QRange, ValueVariants,
};

use crate::filter::{Condition, MatchValue};
use crate::{Result, StoreError};

fn key(k: &str) -> Result<JsonPath> {
    k.parse()
        .map_err(|_| StoreError::Invalid(format!("filter: {k:?} is not a payload field path")))
}

fn value(v: &MatchValue) -> ValueVariants {
    match v {
        MatchValue::Keyword(s) => ValueVariants::String(s.clone()),
        MatchValue::Integer(i) => ValueVariants::Integer(*i),
        MatchValue::Bool(b) => ValueVariants::Bool(*b),
    }
}

fn any_of(k: &str, values: &[String]) -> Result<QCondition> {
    let any = AnyVariants::Strings(values.iter().cloned().collect());
    Ok(QCondition::Field(FieldCondition::new_match(
        key(k)?,
        Match::new_any(any),
    )))
}

fn condition(c: &Condition) -> Result<QCondition> {
    Ok(match c {
        Condition::Match { key: k, value: v } => QCondition::Field(FieldCondition::new_match(
            key(k)?,
            Match::new_value(value(v)),
        )),
        Condition::AnyOf { key: k, values } => any_of(k, values)?,
        Condition::Prefix { key: k, prefix } => {
            let (field, keys) = Condition::prefix_keys(k, prefix).ok_or_else(|| {
                StoreError::Invalid(format!("filter: the prefix of {k:?} is empty"))
            })?;
            any_of(&field, &keys)?
        }
        Condition::Range { key: k, range } => QCondition::Field(FieldCondition::new_range(
            key(k)?,
            QRange {
                lt: range.lt.map(OrderedFloat),
                gt: range.gt.map(OrderedFloat),
                gte: range.gte.map(OrderedFloat),
                lte: range.lte.map(OrderedFloat),
            },
        )),
        Condition::And(all) => QCondition::Filter(Filter {
            must: Some(all.iter().map(condition).collect::<Result<_>>()?),
            ..Filter::default()
        }),
        Condition::Or(any) => QCondition::Filter(Filter {
            should: Some(any.iter().map(condition).collect::<Result<_>>()?),
            ..Filter::default()
        }),
        Condition::Not(inner) => QCondition::Filter(Filter {
            must_not: Some(vec![condition(inner)?]),
            ..Filter::default()
        }),
    })
}

/// The filter of a read: the caller's condition, with the staged points
/// (`hidden`) excluded. `None` when nothing restricts the read.
pub(super) fn to_edge(
    wanted: Option<&Condition>,
    hidden: impl IntoIterator<Item = QPointId>,
) -> Result<Option<Filter>> {
    let hidden: HasIdCondition = hidden.into_iter().collect();
    let mut filter = Filter::default();
    if let Some(c) = wanted {
        filter.must = Some(vec![condition(c)?]);
    }
    if !hidden.has_id.is_empty() {
        filter.must_not = Some(vec![QCondition::HasId(hidden)]);
    }
    Ok((filter.must.is_some() || filter.must_not.is_some()).then_some(filter))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_converts_and_the_staged_points_are_excluded() {
        let c = crate::filter::every_kind();
        let f = to_edge(Some(&c), [QPointId::NumId(7)]).unwrap().unwrap();
        let json = serde_json::to_value(&f).unwrap();
        let text = json.to_string();
        assert!(
            text.contains("path_prefixes") && text.contains("guide/"),
            "{text}"
        );
        assert_eq!(json["must_not"][0]["has_id"][0], 7, "{text}");
        assert!(to_edge(None, []).unwrap().is_none());
        let empty = Condition::Prefix {
            key: "path".into(),
            prefix: "/".into(),
        };
        assert!(to_edge(Some(&empty), []).is_err());
    }
}
