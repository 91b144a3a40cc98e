//! `[schedule]`: the EventBridge rule's name, expression, target and input.

use super::{Checker, check_function_reference};
use crate::spec::ScheduleSpec;
use crate::spec::raw::RawSchedule;
use crate::spec::schedule::check_expression;

/// The longest constant input of an EventBridge target.
const SCHEDULE_INPUT_LIMIT: usize = 8192;

pub(super) fn build_schedule(
    deployment: &str,
    raw: &RawSchedule,
    functions: &[&str],
    checker: &mut Checker,
) -> ScheduleSpec {
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("{deployment}-schedule"));
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !name_ok {
        checker.problem(
            &["schedule", "name"],
            format!("{name:?} is not a rule name (1-64 letters, digits, '.', '_' and '-')"),
        );
    }
    if let Err(reason) = check_expression(&raw.expression) {
        checker.problem(
            &["schedule", "expression"],
            format!(
                "{:?} is not a schedule expression: {reason}",
                raw.expression
            ),
        );
    }
    check_function_reference(checker, &["schedule", "function"], &raw.function, functions);
    if let Some(input) = &raw.input {
        if let Err(error) = serde_json::from_str::<serde_json::Value>(input) {
            checker.problem(
                &["schedule", "input"],
                format!("the input must be JSON: {error}"),
            );
        } else if input.chars().count() > SCHEDULE_INPUT_LIMIT {
            // EventBridge API reference, Target, `Input`: at most 8192 characters.
            checker.problem(
                &["schedule", "input"],
                format!(
                    "the input is {} characters; EventBridge takes at most {SCHEDULE_INPUT_LIMIT}",
                    input.chars().count()
                ),
            );
        }
    }
    ScheduleSpec {
        name,
        description: raw.description.clone().unwrap_or_default(),
        expression: raw.expression.clone(),
        enabled: raw.enabled.unwrap_or(true),
        function: raw.function.clone(),
        input: raw.input.clone(),
        adopt: raw.adopt.unwrap_or(false),
    }
}
