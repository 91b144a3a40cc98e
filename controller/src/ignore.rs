//! Ignore rules: fields, or keys inside a field (one tag, one environment
//! variable), that someone else owns. Planning takes their observed value
//! as the desired one, so they are neither drift nor changed by apply, and
//! it counts the differences it set aside; a release's configuration
//! fingerprint leaves them out on both sides.
//!
//! A rule is written `FIELD[.KEY]` (every resource with that field),
//! `functions.<key>.FIELD[.KEY]` (that function), or
//! `KIND[/NAME]:FIELD[.KEY]` (resources of a kind, as the selectors name
//! them). A trailing `*` in KEY or NAME matches any rest. Keys the
//! controller relies on (its ownership tags, the variables it sets) are
//! never ignored.

use serde_json::Value;

use crate::field::Fields;
use crate::resources::{KINDS, Kind, ResourceId, ResourceKind};

/// Fields whose value is a map from names to values: a rule may name one
/// key of them (and must).
const MAP_FIELDS: [&str; 2] = ["tags", "environment"];

/// One ignore rule, resolved against the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoreRule {
    /// As written in the file.
    pub text: String,
    /// The kind it applies to; `None`: every kind that has the field.
    pub kind: Option<Kind>,
    /// The resource name it applies to (a trailing `*` matches any rest).
    pub name: Option<String>,
    pub field: String,
    /// The key inside a map field (a trailing `*` matches any rest).
    pub key: Option<String>,
}

/// A name or key against a pattern with an optional trailing `*`.
fn matches(pattern: &str, text: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => text.starts_with(prefix),
        None => text == pattern,
    }
}

/// Keys of a map field that the controller sets and relies on.
fn protected(field: &str, key: &str) -> bool {
    match field {
        "tags" => {
            crate::spec::RESERVED_TAG_KEYS.contains(&key)
                || key.to_ascii_lowercase().starts_with("aws:")
        }
        "environment" => crate::spec::environment::CONTROLLER_VARIABLES.contains(&key),
        _ => false,
    }
}

impl IgnoreRule {
    /// Reads one rule; `functions` gives each function's key and name.
    pub fn parse(text: &str, functions: &[(&str, &str)]) -> Result<IgnoreRule, String> {
        let (kind, name, path) = if let Some((selector, path)) = text
            .split_once(':')
            .filter(|(selector, _)| !selector.contains('.'))
        {
            let (kind, name) = match selector.split_once('/') {
                Some((kind, name)) if !name.is_empty() => (kind, Some(name.to_string())),
                Some(_) => return Err(format!("{text:?}: a name after `/`")),
                None => (selector, None),
            };
            let kind = KINDS
                .iter()
                .find(|registered| registered.kind().as_str() == kind)
                .ok_or_else(|| format!("{text:?}: {kind:?} is not a kind ({})", kind_names()))?;
            (Some(*kind), name, path)
        } else if let Some(rest) = text.strip_prefix("functions.") {
            let (key, path) = rest
                .split_once('.')
                .ok_or_else(|| format!("{text:?}: write functions.<key>.<field>"))?;
            let (_, name) = functions
                .iter()
                .find(|(known, _)| *known == key)
                .ok_or_else(|| {
                    let keys: Vec<&str> = functions.iter().map(|(key, _)| *key).collect();
                    format!(
                        "{text:?}: {key:?} is not a function of this file (functions: {})",
                        keys.join(", ")
                    )
                })?;
            let function: &dyn ResourceKind = &crate::resources::function::KIND;
            (Some(function), Some(name.to_string()), path)
        } else {
            (None, None, text)
        };
        let (field, key) = match path.split_once('.') {
            Some((field, key)) => (field, Some(key.to_string())),
            None => (path, None),
        };
        let ignorable = |kind: &dyn ResourceKind| kind.ignorable().contains(&field);
        match kind {
            Some(kind) if !ignorable(kind) => {
                return Err(format!(
                    "{text:?}: {field:?} is not a field {} can ignore (it can ignore: {})",
                    kind.kind().as_str(),
                    listed(kind.ignorable())
                ));
            }
            None if !KINDS.iter().any(|kind| ignorable(*kind)) => {
                let mut every: Vec<&str> = KINDS
                    .iter()
                    .flat_map(|kind| kind.ignorable().iter().copied())
                    .collect();
                every.sort_unstable();
                every.dedup();
                return Err(format!(
                    "{text:?}: {field:?} is not a field that can be ignored (fields: {})",
                    every.join(", ")
                ));
            }
            _ => {}
        }
        match (&key, MAP_FIELDS.contains(&field)) {
            (None, true) => {
                return Err(format!(
                    "{text:?}: name the key: {field}.<key> (or {field}.* for every key but the controller's)"
                ));
            }
            (Some(_), false) => {
                return Err(format!(
                    "{text:?}: {field:?} has no keys; write {field:?} alone"
                ));
            }
            (Some(key), true) if key.is_empty() => {
                return Err(format!("{text:?}: name the key after `{field}.`"));
            }
            (Some(key), true) if protected(field, key) => {
                return Err(format!(
                    "{text:?}: {key:?} is set by the controller and cannot be ignored"
                ));
            }
            _ => {}
        }
        Ok(IgnoreRule {
            text: text.to_string(),
            kind: kind.map(|kind| kind.kind()),
            name,
            field: field.to_string(),
            key,
        })
    }

    /// Whether the rule applies to this resource.
    pub fn applies_to(&self, resource: &ResourceId) -> bool {
        self.kind.is_none_or(|kind| kind == resource.kind)
            && self
                .name
                .as_deref()
                .is_none_or(|name| matches(name, &resource.name))
    }

    fn covers_key(&self, key: &str) -> bool {
        !protected(&self.field, key)
            && self
                .key
                .as_deref()
                .is_some_and(|pattern| matches(pattern, key))
    }
}

fn listed(fields: &[&str]) -> String {
    if fields.is_empty() {
        "nothing".to_string()
    } else {
        fields.join(", ")
    }
}

fn kind_names() -> String {
    KINDS
        .iter()
        .map(|kind| kind.kind().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rules of `rules` that apply to `resource`.
pub fn rules_for<'a>(rules: &'a [IgnoreRule], resource: &ResourceId) -> Vec<&'a IgnoreRule> {
    rules
        .iter()
        .filter(|rule| rule.applies_to(resource))
        .collect()
}

/// Takes the observed value as the desired one wherever a rule applies,
/// and gives the paths (`tags.team`, `memory_mb`) that differed there.
pub fn mask(desired: &mut Fields, observed: &Fields, rules: &[&IgnoreRule]) -> Vec<String> {
    let mut ignored = Vec::new();
    for rule in rules {
        let Some(wanted) = desired.get_mut(&rule.field) else {
            continue;
        };
        let have = observed.get(&rule.field).unwrap_or(&Value::Null);
        if rule.key.is_none() {
            if wanted != have {
                ignored.push(rule.field.clone());
                *wanted = have.clone();
            }
            continue;
        }
        let empty = serde_json::Map::new();
        let have = have.as_object().unwrap_or(&empty);
        let Some(wanted) = wanted.as_object_mut() else {
            continue;
        };
        let mut keys: Vec<String> = wanted.keys().chain(have.keys()).cloned().collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys.iter().filter(|key| rule.covers_key(key)) {
            if wanted.get(key) == have.get(key) {
                continue;
            }
            ignored.push(format!("{}.{key}", rule.field));
            match have.get(key) {
                Some(value) => {
                    wanted.insert(key.clone(), value.clone());
                }
                None => {
                    wanted.remove(key);
                }
            }
        }
    }
    ignored.sort_unstable();
    ignored.dedup();
    ignored
}

/// `fields` without what the rules cover: how both sides of a comparison
/// that must not see ignored values (a release's configuration
/// fingerprint, a saved plan's observed digest) read.
pub fn strip(fields: &Fields, rules: &[&IgnoreRule]) -> Fields {
    let mut fields = fields.clone();
    for rule in rules {
        if rule.key.is_none() {
            fields.remove(&rule.field);
        } else if let Some(Value::Object(map)) = fields.get_mut(&rule.field) {
            map.retain(|key, _| !rule.covers_key(key));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FUNCTIONS: [(&str, &str); 1] = [("detection", "anomaly-prod-detection")];

    fn rule(text: &str) -> IgnoreRule {
        IgnoreRule::parse(text, &FUNCTIONS).unwrap()
    }

    fn function(name: &str) -> ResourceId {
        ResourceId::new(Kind("function"), name)
    }

    #[test]
    fn rules_are_read_in_their_three_forms() {
        let everywhere = rule("tags.team");
        assert_eq!((everywhere.kind, everywhere.name), (None, None));
        assert_eq!(
            (everywhere.field.as_str(), everywhere.key.as_deref()),
            ("tags", Some("team"))
        );
        let function_rule = rule("functions.detection.environment.FEATURE_FLAG");
        assert_eq!(function_rule.kind, Some(Kind("function")));
        assert_eq!(
            function_rule.name.as_deref(),
            Some("anomaly-prod-detection")
        );
        assert!(function_rule.applies_to(&function("anomaly-prod-detection")));
        assert!(!function_rule.applies_to(&function("anomaly-prod-training")));
        let selected = rule("bucket:tags.cost-centre");
        assert_eq!(selected.kind, Some(Kind("bucket")));
        assert!(!selected.applies_to(&function("anomaly-prod-detection")));
        let by_name = rule("function/anomaly-prod-*:memory_mb");
        assert!(by_name.applies_to(&function("anomaly-prod-training")));
        assert_eq!(rule("tags.app:tier").key.as_deref(), Some("app:tier"));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (text, says) in [
            ("functions.nope.memory_mb", "not a function of this file"),
            ("functions.detection", "write functions.<key>.<field>"),
            ("lambda:memory_mb", "is not a kind"),
            ("bucket:memory_mb", "not a field bucket can ignore"),
            ("function:image_uri", "not a field function can ignore"),
            ("colour", "not a field that can be ignored"),
            ("tags", "name the key"),
            ("memory_mb.high", "has no keys"),
            (
                "tags.anomaly-controller:deployment",
                "set by the controller",
            ),
            (
                "functions.detection.environment.MODEL_BUCKET",
                "set by the controller",
            ),
            ("function/:memory_mb", "a name after"),
        ] {
            let error = IgnoreRule::parse(text, &FUNCTIONS).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn masking_keeps_the_observed_value_and_names_what_differed() {
        let rules = [
            rule("tags.team"),
            rule("environment.FEATURE_*"),
            rule("memory_mb"),
        ];
        let rules: Vec<&IgnoreRule> = rules.iter().collect();
        let mut desired = Fields::from([
            ("memory_mb".into(), json!(1024)),
            ("timeout_seconds".into(), json!(30)),
            (
                "tags".into(),
                json!({"team": "mine", "anomaly-controller:deployment": "prod"}),
            ),
            (
                "environment".into(),
                json!({"LOG_LEVEL": "info", "FEATURE_A": "on", "MODEL_BUCKET": "b"}),
            ),
        ]);
        let observed = Fields::from([
            ("memory_mb".into(), json!(2048)),
            ("timeout_seconds".into(), json!(60)),
            ("tags".into(), json!({"anomaly-controller:deployment": "x"})),
            (
                "environment".into(),
                json!({"LOG_LEVEL": "debug", "FEATURE_B": "1", "MODEL_BUCKET": "b"}),
            ),
        ]);
        let ignored = mask(&mut desired, &observed, &rules);
        assert_eq!(
            ignored,
            [
                "environment.FEATURE_A",
                "environment.FEATURE_B",
                "memory_mb",
                "tags.team"
            ]
        );
        assert_eq!(desired["memory_mb"], json!(2048));
        assert_eq!(desired["timeout_seconds"], json!(30), "not ignored");
        assert_eq!(
            desired["tags"],
            json!({"anomaly-controller:deployment": "prod"}),
            "the ownership tag is never ignored"
        );
        assert_eq!(
            desired["environment"],
            json!({"LOG_LEVEL": "info", "FEATURE_B": "1", "MODEL_BUCKET": "b"})
        );
        let stripped = strip(&observed, &rules);
        assert!(!stripped.contains_key("memory_mb"));
        assert_eq!(
            stripped["environment"],
            json!({"LOG_LEVEL": "debug", "MODEL_BUCKET": "b"})
        );
    }
}
