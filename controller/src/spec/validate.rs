//! Checks a parsed file against the limits AWS enforces and the rules of the
//! project, and builds the typed desired state with every default filled in.

use std::collections::BTreeMap;
use std::path::Path;

use super::locate::{key_span_of, position_of, span_of};
use super::raw::{RawFunction, RawRegistry, RawSpec};
use super::*;

/// Retention periods CloudWatch Logs accepts, in days.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
/// The longest constant input of an EventBridge target.
const SCHEDULE_INPUT_LIMIT: usize = 8192;
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
    check_environment_sizes(&spec, &mut checker);
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

/// Each function's final environment (the controller's variables included,
/// the secret's ARN at its longest) against Lambda's 4 KB.
fn check_environment_sizes(spec: &Spec, checker: &mut Checker) {
    use super::environment::{
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
    let registry = check_registry(raw.registry.as_ref(), checker);
    let functions: Vec<FunctionSpec> = raw
        .functions
        .iter()
        .map(|(key, function)| {
            let images = ImageContext {
                spec_path: path,
                registry: registry.as_deref(),
            };
            build_function(&raw.deployment.name, key, function, &images, checker)
        })
        .collect();
    check_unique_names(&functions, checker);
    let function_keys: Vec<&str> = raw.functions.keys().map(String::as_str).collect();
    let api = raw
        .api
        .as_ref()
        .map(|api| build_api(&raw.deployment.name, api, &function_keys, checker));
    let schedule = raw
        .schedule
        .as_ref()
        .map(|schedule| build_schedule(&raw.deployment.name, schedule, &function_keys, checker));
    let panther_secret = raw
        .panther_secret
        .as_ref()
        .map(|secret| build_secret(&raw.deployment.name, secret, &function_keys, checker));
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

const HTTP_METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
];

fn build_api(
    deployment: &str,
    raw: &super::raw::RawApi,
    functions: &[&str],
    checker: &mut Checker,
) -> ApiSpec {
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("{deployment}-api"));
    if name.is_empty() || name.len() > 1024 {
        checker.problem(&["api", "name"], "an API name is 1 to 1024 characters");
    }
    let stage = raw.stage.clone().unwrap_or_else(|| "prod".to_string());
    if stage.is_empty()
        || stage.len() > 128
        || !stage
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        checker.problem(
            &["api", "stage"],
            format!("{stage:?} is not a stage name (1-128 letters, digits, '-' and '_')"),
        );
    }
    let throttle_rate_limit = raw.throttle_rate_limit.unwrap_or(100.0);
    if !(throttle_rate_limit > 0.0 && throttle_rate_limit <= 10000.0) {
        checker.problem(
            &["api", "throttle_rate_limit"],
            format!("{throttle_rate_limit} is out of range: it must be above 0 and at most 10000 requests per second"),
        );
    }
    let throttle_burst_limit = checker.ranged(
        &["api", "throttle_burst_limit"],
        raw.throttle_burst_limit,
        200,
        0,
        5000,
        " requests",
    );
    let cors_allow_origins = raw.cors_allow_origins.clone().unwrap_or_default();
    for (index, origin) in cors_allow_origins.iter().enumerate() {
        let ok = origin == "*" || origin.starts_with("https://") || origin.starts_with("http://");
        if !ok || origin.contains(char::is_whitespace) || origin.contains(',') {
            checker.problem(
                &["api", "cors_allow_origins", &index.to_string()],
                format!("{origin:?} is not an origin (\"*\" or a http(s):// URL)"),
            );
        }
    }
    if raw.routes.is_empty() {
        checker.problem(
            &["api", "routes"],
            "an API needs at least one route ([[api.routes]] with method, path, function)",
        );
    }
    let mut routes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut parameters = BTreeMap::new();
    for (index, route) in raw.routes.iter().enumerate() {
        let index_text = index.to_string();
        let path_of = |field: &str| {
            vec![
                "api".to_string(),
                "routes".to_string(),
                index_text.clone(),
                field.to_string(),
            ]
        };
        let method = route.method.to_ascii_uppercase();
        if !HTTP_METHODS.contains(&method.as_str()) {
            let path = path_of("method");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!(
                    "{:?} is not an HTTP method ({})",
                    route.method,
                    HTTP_METHODS.join(", ")
                ),
            );
        }
        if let Err(reason) = check_route_path(&route.path) {
            let path = path_of("path");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!("{:?} is not a route path: {reason}", route.path),
            );
        }
        if let Some((parent, known)) = sibling_parameter_conflict(&mut parameters, &route.path) {
            let path = path_of("path");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!(
                    "{:?}: API Gateway allows one parameter under {parent}, and another route has {known} there",
                    route.path
                ),
            );
        }
        if !seen.insert((method.clone(), route.path.clone())) {
            let path = path_of("path");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(
                &path,
                format!("the route {method} {} is defined twice", route.path),
            );
        }
        let path = path_of("function");
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        check_function_reference(checker, &path, &route.function, functions);
        routes.push(RouteSpec {
            method,
            path: route.path.clone(),
            function: route.function.clone(),
        });
    }
    ApiSpec {
        name,
        description: raw.description.clone().unwrap_or_default(),
        stage,
        throttle_rate_limit,
        throttle_burst_limit,
        cors_allow_origins,
        api_key_required: raw.api_key_required.unwrap_or(false),
        access_logging: raw.access_logging.unwrap_or(false),
        adopt: raw.adopt.unwrap_or(false),
        routes,
    }
}

/// `/`, `/health`, `/items/{id}`, `/files/{proxy+}`. A greedy parameter
/// (`{name+}`) must be the last segment (API Gateway developer guide, "Set
/// up a proxy integration with a proxy resource": the greedy path variable
/// must be at the end of the resource path).
fn check_route_path(path: &str) -> Result<(), &'static str> {
    let rest = path.strip_prefix('/').ok_or("it must start with '/'")?;
    if rest.is_empty() {
        return Ok(());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for (index, segment) in segments.iter().enumerate() {
        let plain = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        let inner = segment
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'));
        let (name, greedy) = match inner {
            Some(inner) => match inner.strip_suffix('+') {
                Some(name) => (Some(name), true),
                None => (Some(inner), false),
            },
            None => (None, false),
        };
        let parameter = name.is_some_and(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !plain && !parameter {
            return Err(
                "segments are letters, digits, '-', '.', '_' or a {parameter}, with no empty segment",
            );
        }
        if greedy && index + 1 != segments.len() {
            return Err("a greedy {parameter+} must be the last segment");
        }
    }
    Ok(())
}

/// API Gateway allows one variable path part among the children of a
/// resource (CreateResource answers "A sibling ({id}) of this resource
/// already has a variable path part -- only one is allowed"): under one
/// parent, every route must name its parameter alike. `None` when `path`
/// agrees with `seen`, else the parent and the parameter already there.
fn sibling_parameter_conflict(
    seen: &mut BTreeMap<String, String>,
    path: &str,
) -> Option<(String, String)> {
    let mut parent = String::new();
    for segment in path.trim_start_matches('/').split('/') {
        if segment.starts_with('{') {
            let known = seen
                .entry(parent.clone())
                .or_insert_with(|| segment.to_string());
            if known != segment {
                let parent = if parent.is_empty() {
                    "/".to_string()
                } else {
                    parent
                };
                return Some((parent, known.clone()));
            }
        }
        parent.push('/');
        parent.push_str(segment);
    }
    None
}

fn build_schedule(
    deployment: &str,
    raw: &super::raw::RawSchedule,
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
    if let Err(reason) = super::schedule::check_expression(&raw.expression) {
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

fn build_secret(
    deployment: &str,
    raw: &super::raw::RawSecret,
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

/// What a function's built image is resolved against.
struct ImageContext<'a> {
    /// The desired-state file: relative Dockerfile paths start at its directory.
    spec_path: &'a Path,
    /// `[registry] endpoint`, when set and valid.
    registry: Option<&'a str>,
}

/// `[registry] endpoint`: `host[:port]`, optionally behind `http://` or `https://`.
fn check_registry(raw: Option<&RawRegistry>, checker: &mut Checker) -> Option<String> {
    let endpoint = &raw?.endpoint;
    let host = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let well_formed = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !well_formed {
        checker.problem(
            &["registry", "endpoint"],
            format!(
                "{endpoint:?} is not a registry host (like \"127.0.0.1:5000\" or \"https://registry.example.com\")"
            ),
        );
        return None;
    }
    Some(endpoint.clone())
}

/// `image_uri` or `[functions.<key>.image]`: exactly one of them.
fn build_image(
    key: &str,
    raw: &RawFunction,
    images: &ImageContext,
    checker: &mut Checker,
) -> (String, Option<ImageBuild>) {
    match (&raw.image_uri, &raw.image) {
        (Some(_), Some(_)) => {
            checker.problem(
                &["functions", key, "image"],
                "set either image_uri (a prebuilt image) or image (built by apply), not both",
            );
            (String::new(), None)
        }
        (None, None) => {
            checker.problem(
                &["functions", key],
                "the function needs an image: image_uri = \"registry/repo@sha256:...\" or image = { dockerfile = \"...\", package = \"...\" }",
            );
            (String::new(), None)
        }
        (Some(uri), None) => {
            if let Err(reason) = check_image_uri(uri) {
                checker.problem(
                    &["functions", key, "image_uri"],
                    format!("{uri:?} is not a container image URI: {reason}"),
                );
            }
            (uri.clone(), None)
        }
        (None, Some(image)) => {
            let base = images.spec_path.parent().unwrap_or(Path::new(""));
            let dockerfile = base.join(&image.dockerfile);
            if !dockerfile.is_file() {
                checker.problem(
                    &["functions", key, "image", "dockerfile"],
                    format!(
                        "{} is not a file (relative paths start at the directory of this file)",
                        dockerfile.display()
                    ),
                );
            }
            let package_ok = !image.package.is_empty()
                && image
                    .package
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !package_ok {
                checker.problem(
                    &["functions", key, "image", "package"],
                    format!("{:?} is not a Cargo package name", image.package),
                );
            }
            let include = image
                .include
                .iter()
                .enumerate()
                .map(|(index, file)| {
                    let path = base.join(file);
                    if !path.is_file() {
                        let index = index.to_string();
                        checker.problem(
                            &["functions", key, "image", "include", &index],
                            format!("{} is not a file", path.display()),
                        );
                    }
                    path
                })
                .collect();
            let build = ImageBuild {
                dockerfile,
                package: image.package.clone(),
                include,
                registry: images.registry.map(str::to_string),
            };
            (String::new(), Some(build))
        }
    }
}

fn build_function(
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
        if let Err(reason) = super::environment::check_name(variable) {
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
        checker.key_problem(
            &path,
            format!("{key:?} is not a valid tag key (1-128 letters, digits, spaces and _.:/=+-@)"),
        );
    } else if key.to_ascii_lowercase().starts_with("aws:") {
        checker.key_problem(&path, "tag keys starting with \"aws:\" are reserved by AWS");
    } else if RESERVED_TAG_KEYS.contains(&key) {
        checker.key_problem(
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

    #[test]
    fn route_paths_and_sibling_parameters() {
        for good in ["/", "/a", "/a/{b}", "/a/{b}/c", "/{proxy+}", "/a/{b_1+}"] {
            assert_eq!(check_route_path(good), Ok(()), "{good}");
        }
        for bad in [
            "", "a", "/a/", "//a", "/{}", "/{+}", "/{a++}", "/{a+}/b", "/{a-b}",
        ] {
            assert!(check_route_path(bad).is_err(), "{bad}");
        }
        let mut seen = BTreeMap::new();
        assert_eq!(sibling_parameter_conflict(&mut seen, "/items/{id}"), None);
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/items/{id}/x/{y}"),
            None
        );
        assert_eq!(sibling_parameter_conflict(&mut seen, "/items/all"), None);
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/items/{name}"),
            Some(("/items".to_string(), "{id}".to_string()))
        );
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/{proxy+}"),
            None,
            "the first parameter under /"
        );
        assert_eq!(
            sibling_parameter_conflict(&mut seen, "/{other}"),
            Some(("/".to_string(), "{proxy+}".to_string()))
        );
    }
}
