//! `ignore = [...]`, at the top of the file and in a function's table:
//! each rule read against the file's functions and the kinds' fields
//! ([`crate::ignore`]), a bad one reported where it is written.

use super::Checker;
use crate::ignore::IgnoreRule;
use crate::spec::FunctionSpec;
use crate::spec::raw::RawSpec;

pub(super) fn build_ignore(
    raw: &RawSpec,
    functions: &[FunctionSpec],
    checker: &mut Checker,
) -> Vec<IgnoreRule> {
    let names: Vec<(&str, &str)> = functions
        .iter()
        .map(|function| (function.key.as_str(), function.name.as_str()))
        .collect();
    let mut rules = Vec::new();
    for (index, text) in raw.ignore.iter().enumerate() {
        let index = index.to_string();
        match IgnoreRule::parse(text, &names) {
            Ok(rule) => rules.push(rule),
            Err(message) => checker.problem(&["ignore", &index], message),
        }
    }
    for (key, function) in &raw.functions {
        let Some(name) = names
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, name)| *name)
        else {
            continue;
        };
        for (index, text) in function.ignore.iter().enumerate() {
            let index = index.to_string();
            let path = ["functions", key.as_str(), "ignore", &index];
            let field = text.split('.').next().unwrap_or_default();
            if field.contains(':') || field == "functions" {
                checker.problem(
                    &path,
                    format!("{text:?}: a function's own rule names a field of it (environment.<key>, tags.<key>, memory_mb, ...)"),
                );
                continue;
            }
            match IgnoreRule::parse(&format!("function/{name}:{text}"), &names) {
                Ok(rule) => rules.push(IgnoreRule {
                    text: format!("functions.{key}.{text}"),
                    ..rule
                }),
                Err(message) => checker.problem(
                    &path,
                    message.replace(&format!("\"function/{name}:{text}\""), &format!("{text:?}")),
                ),
            }
        }
    }
    rules
}
