//! `[functions.<key>]`: each function's settings and its log group, role,
//! repository and environment, and the names the functions must not share.

use std::collections::BTreeMap;

use super::image::{ImageContext, build_image};
use super::{Checker, NameRule};
use crate::spec::raw::RawFunction;
use crate::spec::{
    Architecture, FunctionSpec, LogGroupSpec, ModelAccess, RepositorySpec, RoleSpec, Spec,
};

/// Retention periods CloudWatch Logs accepts, in days.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
const FUNCTION_NAME: NameRule = NameRule {
    what: "function name",
    min: 1,
    max: 64,
    allowed: |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
    allowed_text: "letters, digits, '-' and '_'",
};
const ROLE_NAME: NameRule = NameRule {
    what: "role name",
    min: 1,
    max: 64,
    allowed: |c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c),
    allowed_text: "letters, digits and +=,.@_-",
};
const REPOSITORY_NAME: NameRule = NameRule {
    what: "repository name",
    min: 2,
    max: 256,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c),
    allowed_text: "lower-case letters, digits and ._-/",
};
const LOG_GROUP_NAME: NameRule = NameRule {
    what: "log group name",
    min: 1,
    max: 512,
    allowed: |c| c.is_ascii_alphanumeric() || "_-/.#".contains(c),
    allowed_text: "letters, digits and _-/.#",
};

/// Each function's final environment (the controller's variables included,
/// the secret's ARN at its longest) against Lambda's 4 KB.
pub(super) fn check_environment_sizes(spec: &Spec, checker: &mut Checker) {
    use crate::spec::environment::{
        ENVIRONMENT_LIMIT_BYTES, final_environment, json_size, longest_secret_arn, reads_secret,
    };
    for function in &spec.functions {
        let secret_arn = reads_secret(spec, function)
            .map(|secret| longest_secret_arn(&spec.deployment, secret))
            .unwrap_or_default();
        let environment = final_environment(spec, function, &secret_arn);
        let size = json_size(&environment);
        if size > ENVIRONMENT_LIMIT_BYTES {
            let added: Vec<&str> = environment
                .keys()
                .map(String::as_str)
                .filter(|name| !function.environment.contains_key(*name))
                .collect();
            checker.problem(
                &["functions", &function.key, "environment"],
                format!(
                    "the environment takes {size} bytes as JSON, with the variables the controller adds ({}); Lambda allows {ENVIRONMENT_LIMIT_BYTES} in all",
                    added.join(", ")
                ),
            );
        }
    }
}

pub(super) fn build_function(
    deployment: &str,
    key: &str,
    raw: &RawFunction,
    images: &ImageContext,
    checker: &mut Checker,
) -> FunctionSpec {
    let at = |field: &'static str| ["functions", key, field];
    checker.name(&["functions", key], key, &FUNCTION_NAME);
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("{deployment}-{key}"));
    checker.name(&at("name"), &name, &FUNCTION_NAME);
    let (image_uri, build) = build_image(key, raw, images, checker);
    let memory_mb = checker.ranged(&at("memory_mb"), raw.memory_mb, 128, 128, 10240, " MB");
    let timeout_seconds = checker.ranged(
        &at("timeout_seconds"),
        raw.timeout_seconds,
        3,
        1,
        900,
        " seconds",
    );
    let ephemeral_storage_mb = checker.ranged(
        &at("ephemeral_storage_mb"),
        raw.ephemeral_storage_mb,
        512,
        512,
        10240,
        " MB",
    );
    let reserved_concurrency = raw
        .reserved_concurrency
        .map(|value| checker.ranged(&at("reserved_concurrency"), Some(value), 0, 0, 10000, ""));
    let architecture = match raw.architecture.as_deref() {
        None | Some("x86_64") => Architecture::X86_64,
        Some("arm64") => Architecture::Arm64,
        Some(other) => {
            checker.problem(
                &at("architecture"),
                format!("{other:?} is not \"x86_64\" or \"arm64\""),
            );
            Architecture::X86_64
        }
    };
    let description = raw.description.clone().unwrap_or_default();
    if description.chars().count() > 256 {
        checker.problem(
            &at("description"),
            "a description is at most 256 characters",
        );
    }
    let model_access = match raw.model_access.as_deref() {
        None | Some("read") => ModelAccess::Read,
        Some("read-write") => ModelAccess::ReadWrite,
        Some("none") => ModelAccess::None,
        Some(other) => {
            checker.problem(
                &at("model_access"),
                format!("{other:?} is not \"none\", \"read\" or \"read-write\""),
            );
            ModelAccess::Read
        }
    };
    for variable in raw.environment.keys() {
        if let Err(reason) = crate::spec::environment::check_name(variable) {
            checker.key_problem(
                &["functions", key, "environment", variable.as_str()],
                reason,
            );
        }
    }
    let logs = LogGroupSpec {
        name: format!("/aws/lambda/{name}"),
        retention_days: match raw.logs.retention_days {
            None => 7,
            Some(days) if days > 0 && LOG_RETENTION_DAYS.contains(&(days as u32)) => days as u32,
            Some(days) => {
                checker.problem(
                    &["functions", key, "logs", "retention_days"],
                    format!(
                        "{days} is not a retention CloudWatch Logs accepts ({LOG_RETENTION_DAYS:?})"
                    ),
                );
                7
            }
        },
        adopt: raw.logs.adopt.unwrap_or(false),
    };
    checker.name(&at("name"), &logs.name, &LOG_GROUP_NAME);
    let role = RoleSpec {
        name: raw
            .role
            .name
            .clone()
            .unwrap_or_else(|| format!("{name}-role")),
        path: raw
            .role
            .path
            .clone()
            .unwrap_or_else(|| crate::spec::DEFAULT_ROLE_PATH.to_string()),
        adopt: raw.role.adopt.unwrap_or(false),
    };
    checker.name(&["functions", key, "role", "name"], &role.name, &ROLE_NAME);
    let path_ok = role.path.starts_with('/')
        && role.path.ends_with('/')
        && role.path.len() <= 512
        && role
            .path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-+=,.@".contains(c));
    if !path_ok {
        checker.problem(
            &["functions", key, "role", "path"],
            format!("{:?} is not an IAM path (like \"/service/\")", role.path),
        );
    }
    let repository = RepositorySpec {
        name: raw
            .repository
            .name
            .clone()
            .unwrap_or_else(|| format!("{deployment}/{key}")),
        scan_on_push: raw.repository.scan_on_push.unwrap_or(true),
        immutable_tags: raw.repository.immutable_tags.unwrap_or(true),
        keep_last_images: checker.ranged(
            &["functions", key, "repository", "keep_last_images"],
            raw.repository.keep_last_images,
            10,
            1,
            1000,
            " images",
        ),
        adopt: raw.repository.adopt.unwrap_or(false),
    };
    checker.name(
        &["functions", key, "repository", "name"],
        &repository.name,
        &REPOSITORY_NAME,
    );
    if REPOSITORY_NAME.check(&repository.name).is_ok() && !is_ecr_repository_name(&repository.name)
    {
        checker.problem(
            &["functions", key, "repository", "name"],
            format!(
                "{:?} is not a repository name ECR accepts: '/'-separated parts, each starting and ending with a letter or digit, with single '.', '_' or '-' between",
                repository.name
            ),
        );
    }
    let release = raw
        .release
        .as_ref()
        .map(|release| super::release::build_release(key, &name, release, checker));
    FunctionSpec {
        key: key.to_string(),
        name,
        image_uri,
        build,
        memory_mb,
        timeout_seconds,
        architecture,
        ephemeral_storage_mb,
        reserved_concurrency,
        description,
        model_access,
        environment: raw.environment.clone(),
        adopt: raw.adopt.unwrap_or(false),
        logs,
        role,
        repository,
        release,
    }
}

pub(super) fn check_unique_names(functions: &[FunctionSpec], checker: &mut Checker) {
    let mut seen: BTreeMap<(&str, String), &str> = BTreeMap::new();
    for function in functions {
        let names = [
            ("name", function.name.clone()),
            ("role", function.role.name.clone()),
            ("repository", function.repository.name.clone()),
        ];
        for (what, name) in names {
            if let Some(other) = seen.insert((what, name.clone()), &function.key) {
                checker.problem(
                    &["functions", &function.key, what],
                    format!("{name:?} is already used by functions.{other}; names must be unique"),
                );
            }
        }
    }
}

/// ECR's repository name pattern (ECR API reference, CreateRepository,
/// `repositoryName`): `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`.
fn is_ecr_repository_name(name: &str) -> bool {
    name.split('/').all(|part| {
        let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let mut previous_separator = true;
        for c in part.chars() {
            let separator = "._-".contains(c);
            if separator && previous_separator {
                return false;
            }
            if !separator && !alphanumeric(c) {
                return false;
            }
            previous_separator = separator;
        }
        !part.is_empty() && !previous_separator
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_repository_names_follow_its_pattern() {
        for good in [
            "a",
            "ab",
            "team/detection",
            "a.b_c-d/e1/f",
            "anomaly-local/training",
        ] {
            assert!(is_ecr_repository_name(good), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "-a", "a-", "a--b", "a._b", "A", "a/.b", "a b",
        ] {
            assert!(!is_ecr_repository_name(bad), "{bad}");
        }
    }
}
