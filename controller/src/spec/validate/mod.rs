//! Checks a parsed file against the limits AWS enforces and the rules of the
//! project, and builds the typed desired state with every default filled in.
//! Each section of the file has its own module; this one holds what they
//! share (the problem collector, the naming rules, references to functions)
//! and the entry point that runs them and reports the problems in file order.

mod api;
mod bucket;
mod deployment;
mod functions;
mod image;
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
    let raw: RawSpec = toml::from_str(text).map_err(|error| {
        let position = error.span().map(|span| position_of(text, span.start));
        SpecError {
            path: path.to_path_buf(),
            problems: vec![SpecProblem {
                field: String::new(),
                position,
                message: error.message().trim().to_string(),
            }],
        }
    })?;
    let mut checker = Checker {
        text,
        problems: Vec::new(),
    };
    let spec = build(path, raw, &mut checker);
    functions::check_environment_sizes(&spec, &mut checker);
    if checker.problems.is_empty() {
        Ok(spec)
    } else {
        checker.problems.sort_by_key(|(offset, _)| *offset);
        Err(SpecError {
            path: path.to_path_buf(),
            problems: checker
                .problems
                .into_iter()
                .map(|(_, problem)| problem)
                .collect(),
        })
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
    Spec {
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
