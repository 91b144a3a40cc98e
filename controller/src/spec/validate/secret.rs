//! `[panther_secret]`: the Panther token's secret name, the variable its
//! value is read from, and the function that may read it.

use super::{Checker, check_function_reference};
use crate::spec::SecretSpec;
use crate::spec::raw::RawSecret;

pub(super) fn build_secret(
    deployment: &str,
    raw: &RawSecret,
    functions: &[&str],
    checker: &mut Checker,
) -> SecretSpec {
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("{deployment}/panther-api-token"));
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if !name_ok {
        checker.problem(
            &["panther_secret", "name"],
            format!("{name:?} is not a secret name (1-512 letters, digits and /_+=.@-)"),
        );
    }
    let variable = &raw.value_from_env;
    let variable_ok = variable
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && variable
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !variable_ok {
        checker.problem(
            &["panther_secret", "value_from_env"],
            format!("{variable:?} is not an environment variable name; the value itself never goes in this file"),
        );
    }
    check_function_reference(
        checker,
        &["panther_secret", "function"],
        &raw.function,
        functions,
    );
    SecretSpec {
        name,
        description: raw.description.clone().unwrap_or_default(),
        value_from_env: variable.clone(),
        function: raw.function.clone(),
        adopt: raw.adopt.unwrap_or(false),
    }
}
