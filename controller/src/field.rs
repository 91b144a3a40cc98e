//! Field-by-field comparison of desired and observed resources. Each kind of
//! resource describes itself as a map from field name to a JSON value; drift
//! is any field whose values differ.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::detail::{Detail, details};

/// A resource described field by field.
pub type Fields = BTreeMap<String, Value>;

/// One field whose desired and observed values differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub desired: Value,
    /// `null` when the field is not set in AWS.
    pub observed: Value,
    /// The same difference key by key inside the field ([`details`]).
    pub changes: Vec<Detail>,
}

impl FieldDiff {
    pub fn new(field: &str, observed: Value, desired: Value) -> FieldDiff {
        FieldDiff {
            field: field.to_string(),
            changes: details(field, &observed, &desired),
            desired,
            observed,
        }
    }
}

/// Every field of `desired` that `observed` lacks or holds differently.
pub fn diff_fields(desired: &Fields, observed: &Fields) -> Vec<FieldDiff> {
    desired
        .iter()
        .filter_map(|(field, want)| {
            let have = observed.get(field).cloned().unwrap_or(Value::Null);
            (have != *want).then(|| FieldDiff::new(field, have, want.clone()))
        })
        .collect()
}

/// A policy document in a canonical form, so that statement order, single
/// values versus lists and URL encoding do not count as differences.
pub fn canonical_policy(document: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    let text = if serde_json::from_str::<Value>(document).is_ok() {
        document.to_string()
    } else {
        decoded.into_owned()
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(value) => canonical_value(value),
        Err(_) => Value::String(text),
    }
}

fn canonical_value(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let map = map
                .into_iter()
                .map(|(key, value)| {
                    let value = match key.as_str() {
                        "Action" | "NotAction" | "Resource" | "NotResource" => {
                            as_sorted_list(value)
                        }
                        _ => canonical_value(value),
                    };
                    (key, value)
                })
                .collect();
            Value::Object(map)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(canonical_value).collect();
            items.sort_by_key(|item| item.to_string());
            Value::Array(items)
        }
        other => other,
    }
}

fn as_sorted_list(value: Value) -> Value {
    let mut items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    items.sort_by_key(|item| item.to_string());
    items.dedup();
    Value::Array(items)
}

pub use crate::detail::show;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_compare_as_documents() {
        let a = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:b"},{"Effect":"Allow","Action":["logs:PutLogEvents","logs:CreateLogStream"],"Resource":"arn:a"}]}"#;
        let b = r#"{"Statement":[{"Resource":["arn:a"],"Action":["logs:CreateLogStream","logs:PutLogEvents"],"Effect":"Allow"},{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:b"}],"Version":"2012-10-17"}"#;
        let encoded: String =
            percent_encoding::utf8_percent_encode(b, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(canonical_policy(a), canonical_policy(b));
        assert_eq!(canonical_policy(a), canonical_policy(&encoded));
        let c = a.replace("s3:GetObject", "s3:PutObject");
        assert_ne!(canonical_policy(a), canonical_policy(&c));
    }

    #[test]
    fn diff_names_each_differing_field() {
        let desired: Fields = [
            ("memory_mb".to_string(), json!(1024)),
            ("timeout".to_string(), json!(30)),
        ]
        .into();
        let observed: Fields = [
            ("memory_mb".to_string(), json!(512)),
            ("timeout".to_string(), json!(30)),
        ]
        .into();
        let diffs = diff_fields(&desired, &observed);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].field, "memory_mb");
        assert_eq!(diffs[0].observed, json!(512));
    }
}
