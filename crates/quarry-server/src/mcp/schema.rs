//! Tool input schemas from the HTTP API's own request types.
//!
//! The OpenAPI document already describes every request body (utoipa,
//! from the types the routes deserialize), so a tool's schema is that
//! body's schema with the path parameters added as properties. OpenAPI 3.1
//! schemas are JSON Schema; only their references point into
//! `components`, so the ones a tool needs are copied into its `$defs`.

use serde_json::{Map, Value, json};

/// A property a tool adds to the request body: the collection, say, that
/// HTTP carries in the path.
pub(crate) struct Extra {
    pub name: &'static str,
    pub schema: Value,
    pub required: bool,
}

const PREFIX: &str = "#/components/schemas/";

/// The schema of component `body` in `doc` (an OpenAPI document as JSON),
/// with `extra` properties first, as one self-contained JSON Schema
/// object. `None` when the document has no such component.
pub(crate) fn tool_schema(
    doc: &Value,
    body: Option<&str>,
    extra: Vec<Extra>,
) -> Map<String, Value> {
    let components = &doc["components"]["schemas"];
    let mut schema = match body {
        Some(name) => components[name].clone(),
        None => json!({ "type": "object", "properties": {} }),
    };
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for e in extra {
        properties.insert(e.name.to_string(), e.schema);
        if e.required {
            required.push(Value::String(e.name.to_string()));
        }
    }
    if let Some(own) = schema["properties"].as_object() {
        properties.extend(own.clone());
    }
    if let Some(own) = schema["required"].as_array() {
        required.extend(own.iter().cloned());
    }
    schema["type"] = json!("object");
    schema["properties"] = Value::Object(properties);
    schema["required"] = Value::Array(required);
    // The body's own `deny_unknown_fields`: a misspelt argument is an
    // error, not silently ignored.
    schema["additionalProperties"] = json!(false);

    let mut defs = Map::new();
    let mut pending = Vec::new();
    collect_refs(&schema, &mut pending);
    while let Some(name) = pending.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        let def = components[&name].clone();
        collect_refs(&def, &mut pending);
        defs.insert(name, def);
    }
    rewrite_refs(&mut schema);
    let mut defs = Value::Object(defs);
    rewrite_refs(&mut defs);
    if defs.as_object().is_some_and(|d| !d.is_empty()) {
        schema["$defs"] = defs;
    }
    match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(name) = r.strip_prefix(PREFIX)
            {
                out.push(name.to_string());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix(PREFIX)
            {
                *r = format!("#/$defs/{name}");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_schema_is_self_contained_and_keeps_the_bodys_fields() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let schema = Value::Object(tool_schema(
            &doc,
            Some("SearchBody"),
            vec![Extra {
                name: "collection",
                schema: json!({ "type": "string" }),
                required: true,
            }],
        ));
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["collection", "query"]);
        assert!(schema["properties"]["top_k"].is_object());
        let text = schema.to_string();
        assert!(!text.contains("#/components/"), "{text}");
        // Every reference resolves inside the schema itself.
        for r in text.match_indices("#/$defs/") {
            let name: String = text[r.0 + 8..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(schema["$defs"][&name].is_object(), "{name} missing");
        }
        assert!(schema["$defs"]["Mode"].is_object(), "{text}");
    }
}
