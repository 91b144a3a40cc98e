//! Checks a parsed file against the limits AWS enforces and the rules of the
//! project, and builds the typed desired state with every default filled in.

use std::collections::BTreeMap;
use std::path::Path;

use super::locate::{position_of, span_of};
use super::raw::{RawFunction, RawSpec};
use super::*;

/// Retention periods CloudWatch Logs accepts, in days.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
/// Lambda's limit on the environment of one function, in bytes.
const ENVIRONMENT_LIMIT_BYTES: usize = 4096;
/// Tag keys the controller writes itself.
pub const RESERVED_TAG_KEYS: [&str; 2] = [
    crate::ownership::MANAGED_BY_TAG,
    crate::ownership::DEPLOYMENT_TAG,
];
/// Environment variables the controller sets on every function.
const RESERVED_ENVIRONMENT: [&str; 2] = ["MODEL_BUCKET", "MODEL_PREFIX"];

struct Checker<'a> {
    text: &'a str,
    problems: Vec<(usize, SpecProblem)>,
}

impl Checker<'_> {
    fn problem(&mut self, path: &[&str], message: impl Into<String>) {
        let offset = span_of(self.text, path).map_or(0, |span| span.start);
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

const DEPLOYMENT_NAME: NameRule = NameRule {
    what: "deployment name",
    min: 1,
    max: 40,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
    allowed_text: "lower-case letters, digits and '-'",
};
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
const BUCKET_NAME: NameRule = NameRule {
    what: "bucket name",
    min: 3,
    max: 63,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.',
    allowed_text: "lower-case letters, digits, '-' and '.'",
};

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
    let deployment = &raw.deployment;
    checker.name(&["deployment", "name"], &deployment.name, &DEPLOYMENT_NAME);
    if deployment.name.starts_with('-') || deployment.name.ends_with('-') {
        checker.problem(
            &["deployment", "name"],
            "the deployment name must not start or end with '-'",
        );
    }
    if !is_region(&deployment.region) {
        checker.problem(
            &["deployment", "region"],
            format!(
                "{:?} is not an AWS region name (like \"us-east-1\")",
                deployment.region
            ),
        );
    }
    if let Some(account) = &deployment.account_id {
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            checker.problem(
                &["deployment", "account_id"],
                format!("{account:?} is not a 12-digit AWS account id"),
            );
        }
    }
    if let Some(endpoint) = &deployment.endpoint_url {
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        if rest.is_none_or(|host| host.is_empty() || host.contains(char::is_whitespace)) {
            checker.problem(
                &["deployment", "endpoint_url"],
                format!("{endpoint:?} is not an http:// or https:// URL"),
            );
        }
    }
    for (key, value) in &raw.tags {
        check_tag(checker, key, value);
    }
    let bucket = build_bucket(&raw, checker);
    if raw.functions.is_empty() {
        checker.problem(&["functions"], "at least one function is required");
    }
    let functions: Vec<FunctionSpec> = raw
        .functions
        .iter()
        .map(|(key, function)| build_function(&raw.deployment.name, key, function, checker))
        .collect();
    check_unique_names(&functions, checker);
    Spec {
        path: path.to_path_buf(),
        deployment: Deployment {
            name: raw.deployment.name.clone(),
            region: raw.deployment.region.clone(),
            account_id: raw.deployment.account_id.clone(),
            endpoint_url: raw.deployment.endpoint_url.clone(),
        },
        tags: raw.tags.clone(),
        bucket,
        functions,
    }
}

fn build_bucket(raw: &RawSpec, checker: &mut Checker) -> BucketSpec {
    let bucket = &raw.bucket;
    let name = bucket
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-models", raw.deployment.name));
    checker.name(&["bucket", "name"], &name, &BUCKET_NAME);
    if name.starts_with(['-', '.']) || name.ends_with(['-', '.']) || name.contains("..") {
        checker.problem(
            &["bucket", "name"],
            format!("{name:?} must start and end with a letter or digit and have no '..'"),
        );
    }
    if name.split('.').count() == 4 && name.split('.').all(|part| part.parse::<u8>().is_ok()) {
        checker.problem(
            &["bucket", "name"],
            format!("{name:?} must not look like an IP address"),
        );
    }
    let model_prefix = bucket
        .model_prefix
        .clone()
        .unwrap_or_else(|| "models/".to_string());
    if model_prefix.is_empty()
        || !model_prefix.ends_with('/')
        || model_prefix.starts_with('/')
        || model_prefix.contains('*')
    {
        checker.problem(
            &["bucket", "model_prefix"],
            format!("{model_prefix:?} must be a key prefix ending in '/', not starting with '/', without '*'"),
        );
    }
    let encryption = match bucket.encryption.as_deref() {
        None | Some("AES256") => Encryption::S3Managed,
        Some("aws:kms") => Encryption::Kms,
        Some(other) => {
            checker.problem(
                &["bucket", "encryption"],
                format!("{other:?} is not \"AES256\" or \"aws:kms\""),
            );
            Encryption::S3Managed
        }
    };
    let noncurrent_version_expiry_days = bucket.noncurrent_version_expiry_days.map(|days| {
        checker.ranged(
            &["bucket", "noncurrent_version_expiry_days"],
            Some(days),
            30,
            1,
            36500,
            " days",
        )
    });
    let versioning = bucket.versioning.unwrap_or(true);
    if !versioning && noncurrent_version_expiry_days.is_some() {
        checker.problem(
            &["bucket", "noncurrent_version_expiry_days"],
            "noncurrent versions exist only with versioning = true",
        );
    }
    BucketSpec {
        name,
        model_prefix,
        versioning,
        encryption,
        block_public_access: bucket.block_public_access.unwrap_or(true),
        noncurrent_version_expiry_days,
        retain_on_destroy: bucket.retain_on_destroy.unwrap_or(true),
        adopt: bucket.adopt.unwrap_or(false),
    }
}

fn build_function(
    deployment: &str,
    key: &str,
    raw: &RawFunction,
    checker: &mut Checker,
) -> FunctionSpec {
    let at = |field: &'static str| ["functions", key, field];
    checker.name(&["functions", key], key, &FUNCTION_NAME);
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("{deployment}-{key}"));
    checker.name(&at("name"), &name, &FUNCTION_NAME);
    if let Err(reason) = check_image_uri(&raw.image_uri) {
        checker.problem(
            &at("image_uri"),
            format!("{:?} is not a container image URI: {reason}", raw.image_uri),
        );
    }
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
    let mut environment_bytes = 0;
    for (variable, value) in &raw.environment {
        let path = ["functions", key, "environment", variable.as_str()];
        environment_bytes += variable.len() + value.len();
        let well_formed = variable
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && variable
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            checker.problem(&path, format!("{variable:?} is not a valid variable name (a letter, then letters, digits and '_')"));
        } else if variable.starts_with("AWS_") || RESERVED_ENVIRONMENT.contains(&variable.as_str())
        {
            checker.problem(&path, format!("{variable:?} is reserved (AWS_* are Lambda's, MODEL_BUCKET and MODEL_PREFIX the controller's)"));
        }
    }
    if environment_bytes > ENVIRONMENT_LIMIT_BYTES {
        checker.problem(
            &at("environment"),
            format!("the environment takes {environment_bytes} bytes; Lambda allows {ENVIRONMENT_LIMIT_BYTES}"),
        );
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
            .unwrap_or_else(|| "/anomaly-controller/".to_string()),
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
    FunctionSpec {
        key: key.to_string(),
        name,
        image_uri: raw.image_uri.clone(),
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
    }
}

fn check_unique_names(functions: &[FunctionSpec], checker: &mut Checker) {
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

fn check_tag(checker: &mut Checker, key: &str, value: &str) {
    let path = ["tags", key];
    let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
    if key.is_empty() || key.chars().count() > 128 || !key.chars().all(allowed) {
        checker.problem(
            &path,
            format!("{key:?} is not a valid tag key (1-128 letters, digits, spaces and _.:/=+-@)"),
        );
    } else if key.to_ascii_lowercase().starts_with("aws:") {
        checker.problem(&path, "tag keys starting with \"aws:\" are reserved by AWS");
    } else if RESERVED_TAG_KEYS.contains(&key) {
        checker.problem(
            &path,
            format!("{key:?} is the controller's ownership tag and cannot be set"),
        );
    }
    if value.chars().count() > 256 || !value.chars().all(allowed) {
        checker.problem(
            &path,
            "a tag value is at most 256 letters, digits, spaces and _.:/=+-@",
        );
    }
}

fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()))
}

/// `registry/repository:tag` or `registry/repository@sha256:<64 hex>`.
fn check_image_uri(uri: &str) -> Result<(), &'static str> {
    let (registry, rest) = uri.split_once('/').ok_or("it has no registry host")?;
    if registry.is_empty() || registry.contains(char::is_whitespace) {
        return Err("the registry host is empty");
    }
    if let Some((repository, digest)) = rest.split_once('@') {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or("the digest must start with sha256:")?;
        if repository.is_empty() || hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("the digest must be sha256: and 64 hex digits");
        }
        return Ok(());
    }
    let (repository, tag) = rest
        .rsplit_once(':')
        .ok_or("it needs a :tag or an @sha256: digest")?;
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if repository.is_empty() || !tag_ok {
        return Err("the tag must be 1-128 letters, digits and _.-");
    }
    Ok(())
}
