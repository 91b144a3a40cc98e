//! Checks a parsed file against the limits AWS enforces and the rules of the
//! project, and builds the typed desired state with every default filled in.
//! Each section of the file has its own module; this one holds what they
//! share (the problem collector, the naming rules, references to functions)
//! and the entry point that runs them and reports the problems in file order.

mod api;
mod bucket;
mod deployment;
mod functions;
mod ignore;
mod image;
mod notify;
mod registry;
mod release;
mod schedule;
mod secret;
mod tags;

use std::path::Path;

use super::locate::{key_span_of, position_of, span_of};
use super::raw::RawSpec;
use super::{FunctionSpec, Spec, SpecError, SpecProblem};

/// Tag keys the controller writes itself.
pub const RESERVED_TAG_KEYS: [&str; 2] = [
    crate::ownership::MANAGED_BY_TAG,
    crate::ownership::DEPLOYMENT_TAG,
];

struct Checker<'a> {
    text: &'a str,
    problems: Vec<(usize, SpecProblem)>,
}

impl Checker<'_> {
    /// Every problem found, in file order.
    fn into_error(mut self, path: &Path) -> SpecError {
        self.problems.sort_by_key(|(offset, _)| *offset);
        SpecError {
            path: path.to_path_buf(),
            problems: self
                .problems
                .into_iter()
                .map(|(_, problem)| problem)
                .collect(),
        }
    }

    /// A problem with the value at `path`.
    fn problem(&mut self, path: &[&str], message: impl Into<String>) {
        let offset = span_of(self.text, path).map_or(0, |span| span.start);
        self.push(path, offset, message);
    }

    /// A problem with the last key of `path` itself (a variable's or a
    /// tag's name): it points at the key, not at its value.
    fn key_problem(&mut self, path: &[&str], message: impl Into<String>) {
        let offset = key_span_of(self.text, path).map_or(0, |span| span.start);
        self.push(path, offset, message);
    }

    fn push(&mut self, path: &[&str], offset: usize, message: impl Into<String>) {
        self.problems.push((
            offset,
            SpecProblem {
                field: path.join("."),
                position: Some(position_of(self.text, offset)),
                message: message.into(),
            },
        ));
    }

    fn ranged(
        &mut self,
        path: &[&str],
        value: Option<i64>,
        default: u32,
        min: u32,
        max: u32,
        unit: &str,
    ) -> u32 {
        let Some(value) = value else { return default };
        if value < i64::from(min) || value > i64::from(max) {
            self.problem(
                path,
                format!("{value} is out of range: it must be {min} to {max}{unit}"),
            );
            return default;
        }
        value as u32
    }

    fn name(&mut self, path: &[&str], value: &str, rule: &NameRule) {
        if let Err(reason) = rule.check(value) {
            self.problem(
                path,
                format!("{value:?} is not a valid {}: {reason}", rule.what),
            );
        }
    }
}

/// The naming rules of one kind of AWS name.
struct NameRule {
    what: &'static str,
    min: usize,
    max: usize,
    allowed: fn(char) -> bool,
    allowed_text: &'static str,
}

impl NameRule {
    fn check(&self, value: &str) -> Result<(), String> {
        let length = value.chars().count();
        if length < self.min || length > self.max {
            return Err(format!(
                "it must be {} to {} characters long",
                self.min, self.max
            ));
        }
        if let Some(bad) = value.chars().find(|c| !(self.allowed)(*c)) {
            return Err(format!(
                "{bad:?} is not allowed (only {})",
                self.allowed_text
            ));
        }
        Ok(())
    }
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
    let mut checker = Checker {
        text,
        problems: Vec::new(),
    };
    let Some(raw) = read_raw(text, &mut checker) else {
        return Err(checker.into_error(path));
    };
    let spec = build(path, raw, &mut checker);
    functions::check_environment_sizes(&spec, &mut checker);
    if checker.problems.is_empty() {
        Ok(spec)
    } else {
        Err(checker.into_error(path))
    }
}

/// The most keys set aside before reading gives up.
const MOST_SET_ASIDE: usize = 100;

/// Reads the file into its raw structure, reporting every unknown key and
/// every value of the wrong type, not only the first: each one is a
/// problem, set aside (removed from a copy of the document) and the rest
/// read again, so that the range checks still run on everything else.
/// `None` after a syntax error or a problem that cannot be set aside (a
/// missing required key).
fn read_raw(text: &str, checker: &mut Checker) -> Option<RawSpec> {
    let mut document: toml_edit::DocumentMut = match text.parse() {
        Ok(document) => document,
        Err(error) => {
            let offset = error.span().map_or(0, |span| span.start);
            checker.push(&[], offset, error.message().trim().to_string());
            return None;
        }
    };
    for _ in 0..MOST_SET_ASIDE {
        let current = document.to_string();
        let error = match toml::from_str::<RawSpec>(&current) {
            Ok(raw) => return Some(raw),
            Err(error) => error,
        };
        let message = error.message().trim().to_string();
        let key_path = error
            .span()
            .and_then(|span| super::locate::path_at(&current, span.start));
        let set_aside = message.starts_with("unknown field") || message.starts_with("invalid type");
        let Some(key_path) = key_path.filter(|_| set_aside) else {
            // Not a key to set aside: said where the text has it (the
            // copy's offsets are the file's until something is set aside).
            let offset = if current == text {
                error.span().map_or(0, |span| span.start)
            } else {
                error
                    .span()
                    .and_then(|span| super::locate::path_at(&current, span.start))
                    .and_then(|found| {
                        let found: Vec<&str> = found.iter().map(String::as_str).collect();
                        span_of(text, &found).map(|span| span.start)
                    })
                    .unwrap_or(0)
            };
            checker.push(&[], offset, message);
            return None;
        };
        let segments: Vec<&str> = key_path.iter().map(String::as_str).collect();
        let offset = if message.starts_with("unknown field") {
            key_span_of(text, &segments)
        } else {
            span_of(text, &segments)
        }
        .map_or(0, |span| span.start);
        let message = match nearest_key(&message) {
            Some(nearest) => format!("{message}; did you mean `{nearest}`?"),
            None => message,
        };
        checker.push(&segments, offset, message);
        if !remove_path(document.as_table_mut(), &segments) {
            return None;
        }
    }
    None
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the expected
/// key nearest `x`, when it is near enough to be a misspelling.
fn nearest_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| (strsim::levenshtein(unknown, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min()
        .map(|(_, candidate)| candidate.to_string())
}

/// Removes the item at `path` (keys, and indexes in arrays of tables).
fn remove_path(table: &mut toml_edit::Table, path: &[&str]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(first).is_some();
    }
    match table.get_mut(first) {
        Some(toml_edit::Item::Table(inner)) => remove_path(inner, rest),
        Some(toml_edit::Item::ArrayOfTables(tables)) => rest
            .split_first()
            .and_then(|(index, rest)| {
                let inner = tables.get_mut(index.parse().ok()?)?;
                Some(remove_path(inner, rest))
            })
            .unwrap_or(false),
        Some(toml_edit::Item::Value(toml_edit::Value::InlineTable(inline))) => {
            remove_from_inline(inline, rest)
        }
        _ => false,
    }
}

fn remove_from_inline(table: &mut toml_edit::InlineTable, path: &[&str]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(first).is_some();
    }
    match table.get_mut(first) {
        Some(toml_edit::Value::InlineTable(inner)) => remove_from_inline(inner, rest),
        _ => false,
    }
}

fn build(path: &Path, raw: RawSpec, checker: &mut Checker) -> Spec {
    let deployment = deployment::build_deployment(&raw.deployment, checker);
    tags::check_tags(&raw.tags, checker);
    let bucket = bucket::build_bucket(&raw, checker);
    if raw.functions.is_empty() {
        checker.problem(&["functions"], "at least one function is required");
    }
    let registry = registry::check_registry(raw.registry.as_ref(), checker);
    let functions: Vec<FunctionSpec> = raw
        .functions
        .iter()
        .map(|(key, function)| {
            let images = image::ImageContext {
                spec_path: path,
                registry: registry.as_deref(),
            };
            functions::build_function(&raw.deployment.name, key, function, &images, checker)
        })
        .collect();
    functions::check_unique_names(&functions, checker);
    let function_keys: Vec<&str> = raw.functions.keys().map(String::as_str).collect();
    let api = raw
        .api
        .as_ref()
        .map(|api| api::build_api(&raw.deployment.name, api, &function_keys, checker));
    for function in &functions {
        if let Some(release) = &function.release {
            release::check_api_alarms(&function.key, release, api.as_ref(), checker);
        }
    }
    let schedule = raw.schedule.as_ref().map(|schedule| {
        schedule::build_schedule(&raw.deployment.name, schedule, &function_keys, checker)
    });
    let panther_secret = raw
        .panther_secret
        .as_ref()
        .map(|secret| secret::build_secret(&raw.deployment.name, secret, &function_keys, checker));
    let notify = raw
        .notify
        .iter()
        .enumerate()
        .map(|(index, entry)| notify::build_notify(index, entry, checker))
        .collect();
    let ignore = ignore::build_ignore(&raw, &functions, checker);
    Spec {
        notify,
        ignore,
        path: path.to_path_buf(),
        deployment,
        tags: raw.tags.clone(),
        bucket,
        functions,
        api,
        schedule,
        panther_secret,
    }
}

fn check_function_reference(checker: &mut Checker, path: &[&str], key: &str, known: &[&str]) {
    if !known.contains(&key) {
        checker.problem(
            path,
            format!(
                "{key:?} is not a function of this file (functions: {})",
                known.join(", ")
            ),
        );
    }
}
