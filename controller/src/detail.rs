//! A differing field broken down for people: nested values (routes,
//! environment, tags, policies, targets, alias weights) compared key by key,
//! so that a plan says `routes["GET /health"]: removed` or
//! `environment.LOG_LEVEL: "info" -> "debug"` instead of two whole values.
//! Lists of policy statements are matched by `Sid`, lists of targets by
//! their id; other lists of plain values by what was added and removed.
//! Long values are shortened around the part that differs.

use serde::Serialize;
use serde_json::{Map, Value};

/// One difference at one place inside a field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detail {
    /// `field`, `field.key`, `field["key with spaces"]`, `field[Sid]`.
    pub path: String,
    /// `null` when the desired state adds it.
    pub observed: Value,
    /// `null` when the desired state removes it.
    pub desired: Value,
}

/// Every difference between `observed` and `desired` inside `field`.
pub fn details(field: &str, observed: &Value, desired: &Value) -> Vec<Detail> {
    let mut found = Vec::new();
    walk(field.to_string(), observed, desired, &mut found);
    found
}

fn walk(path: String, observed: &Value, desired: &Value, found: &mut Vec<Detail>) {
    if observed == desired {
        return;
    }
    match (observed, desired) {
        (Value::Object(have), Value::Object(want)) => {
            let mut keys: Vec<&String> = have.keys().chain(want.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                walk(
                    child(&path, key),
                    have.get(key).unwrap_or(&Value::Null),
                    want.get(key).unwrap_or(&Value::Null),
                    found,
                );
            }
        }
        (Value::Array(have), Value::Array(want)) => {
            if let (Some(have), Some(want)) = (keyed(have), keyed(want)) {
                walk(path, &Value::Object(have), &Value::Object(want), found);
            } else if have
                .iter()
                .chain(want)
                .all(|item| !item.is_object() && !item.is_array())
            {
                for item in have.iter().filter(|item| !want.contains(item)) {
                    found.push(Detail {
                        path: path.clone(),
                        observed: item.clone(),
                        desired: Value::Null,
                    });
                }
                for item in want.iter().filter(|item| !have.contains(item)) {
                    found.push(Detail {
                        path: path.clone(),
                        observed: Value::Null,
                        desired: item.clone(),
                    });
                }
            } else {
                found.push(Detail {
                    path,
                    observed: observed.clone(),
                    desired: desired.clone(),
                });
            }
        }
        _ => found.push(Detail {
            path,
            observed: observed.clone(),
            desired: desired.clone(),
        }),
    }
}

/// A list of objects that each carry a distinct identifying key (`Sid` of
/// a policy statement, `id` / `Id` of a target), as an object by that key.
fn keyed(items: &[Value]) -> Option<Map<String, Value>> {
    for key in ["Sid", "id", "Id"] {
        let mut map = Map::new();
        for item in items {
            let id = item.get(key)?.as_str()?;
            if map.insert(id.to_string(), item.clone()).is_some() {
                return None;
            }
        }
        if map.len() == items.len() {
            return Some(map);
        }
    }
    None
}

/// The path of `key` inside `path`: `.key` for a plain name, `["key"]`
/// for anything else (a route like `GET /health`).
fn child(path: &str, key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!("{path}.{key}")
    } else {
        format!("{path}[{key:?}]")
    }
}

/// The longest rendering of one value in a plan line.
const LONGEST_VALUE: usize = 60;
/// Characters kept on each side of the part that differs.
const CONTEXT: usize = 12;

/// A value as a plan line shows it.
pub fn show(value: &Value) -> String {
    match value {
        Value::Null => "(not set)".to_string(),
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

/// `text` cut to `LONGEST_VALUE` characters.
fn cut(text: &str) -> String {
    if text.chars().count() <= LONGEST_VALUE {
        return text.to_string();
    }
    let head: String = text.chars().take(LONGEST_VALUE - 1).collect();
    format!("{head}…")
}

/// Two long renderings shortened to the part where they differ, with a
/// little context, so the difference stays visible.
fn shorten_pair(observed: &str, desired: &str) -> (String, String) {
    if observed.chars().count() <= LONGEST_VALUE && desired.chars().count() <= LONGEST_VALUE {
        return (observed.to_string(), desired.to_string());
    }
    let a: Vec<char> = observed.chars().collect();
    let b: Vec<char> = desired.chars().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    let start = prefix.saturating_sub(CONTEXT);
    let window = |chars: &[char]| {
        let end = (chars.len() - suffix + CONTEXT).min(chars.len());
        let mut text = String::new();
        if start > 0 {
            text.push('…');
        }
        text.extend(&chars[start..end]);
        if end < chars.len() {
            text.push('…');
        }
        cut_middle(&text)
    };
    (window(&a), window(&b))
}

/// A window still too long: its start and end kept.
fn cut_middle(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= LONGEST_VALUE * 2 {
        return text.to_string();
    }
    let head: String = chars[..LONGEST_VALUE].iter().collect();
    let tail: String = chars[chars.len() - LONGEST_VALUE / 2..].iter().collect();
    format!("{head}…{tail}")
}

/// How one detail reads in a plan: `path: observed -> desired`,
/// `path: added value`, `path: removed`.
pub fn render(detail: &Detail, top_level: bool) -> (String, Option<String>, Option<String>) {
    let (observed, desired) = (&detail.observed, &detail.desired);
    if !top_level && observed.is_null() {
        return (
            format!("{}: added", detail.path),
            None,
            Some(cut(&show(desired))),
        );
    }
    if !top_level && desired.is_null() {
        return (
            format!("{}: removed", detail.path),
            Some(cut(&show(observed))),
            None,
        );
    }
    let (have, want) = shorten_pair(&show(observed), &show(desired));
    (detail.path.clone(), Some(have), Some(want))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(found: &[Detail]) -> Vec<&str> {
        found.iter().map(|detail| detail.path.as_str()).collect()
    }

    #[test]
    fn a_removed_route_is_named_by_its_key() {
        let route = json!({"type": "AWS_PROXY", "uri": "arn:aws:apigateway:...:function:detect/invocations"});
        let observed = json!({"GET /health": route, "POST /detect": route});
        let desired = json!({"POST /detect": route});
        let found = details("routes", &observed, &desired);
        assert_eq!(paths(&found), [r#"routes["GET /health"]"#]);
        assert_eq!(found[0].desired, Value::Null);
        let (line, _, _) = render(&found[0], false);
        assert_eq!(line, r#"routes["GET /health"]: removed"#);
    }

    #[test]
    fn environment_and_tags_diff_by_name() {
        let found = details(
            "environment",
            &json!({"LOG_LEVEL": "info", "KEEP": "1", "OLD": "x"}),
            &json!({"LOG_LEVEL": "debug", "KEEP": "1", "NEW": "y"}),
        );
        assert_eq!(
            paths(&found),
            [
                "environment.LOG_LEVEL",
                "environment.NEW",
                "environment.OLD"
            ]
        );
        assert_eq!(found[0].observed, json!("info"));
        assert_eq!(found[0].desired, json!("debug"));
        assert_eq!(render(&found[1], false).0, "environment.NEW: added");
    }

    #[test]
    fn policy_statements_match_by_sid() {
        let statement =
            |sid: &str, action: &str| json!({"Sid": sid, "Effect": "Allow", "Action": [action]});
        let observed = json!({"function-access": {"Statement": [statement("Logs", "logs:PutLogEvents"), statement("Old", "s3:GetObject")]}});
        let desired = json!({"function-access": {"Statement": [statement("Logs", "logs:PutLogEvents"), statement("Models", "s3:PutObject")]}});
        let found = details("inline_policies", &observed, &desired);
        assert_eq!(
            paths(&found),
            [
                "inline_policies.function-access.Statement.Models",
                "inline_policies.function-access.Statement.Old"
            ]
        );
    }

    #[test]
    fn plain_lists_say_what_was_added_and_removed() {
        let found = details("origins", &json!(["a", "b"]), &json!(["b", "c"]));
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].observed.clone(), found[0].desired.clone()),
            (json!("a"), Value::Null)
        );
        assert_eq!(
            (found[1].observed.clone(), found[1].desired.clone()),
            (Value::Null, json!("c"))
        );
    }

    #[test]
    fn long_values_keep_the_difference_visible() {
        let observed = format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}:live",
            "a".repeat(80)
        );
        let desired = observed.replace(":live", ":prod");
        let (have, want) = shorten_pair(&show(&json!(observed)), &show(&json!(desired)));
        assert!(have.len() < observed.len() && want.len() < desired.len());
        assert!(
            have.contains("live") && want.contains("prod"),
            "{have} {want}"
        );
        assert!(have.starts_with('…'));
    }

    #[test]
    fn equal_values_have_no_details_and_scalars_one() {
        assert!(details("memory_mb", &json!(128), &json!(128)).is_empty());
        let found = details("memory_mb", &json!(128), &json!(256));
        assert_eq!(paths(&found), ["memory_mb"]);
        assert_eq!(render(&found[0], true).0, "memory_mb");
        let unset = details("reserved_concurrency", &Value::Null, &json!(1));
        assert_eq!(render(&unset[0], true).1.as_deref(), Some("(not set)"));
    }
}
