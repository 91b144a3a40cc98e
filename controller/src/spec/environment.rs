//! A function's environment as Lambda will get it: the variables of the
//! file plus those the controller sets itself, and the rules Lambda applies
//! to them, checked when the file is read instead of failing at apply time.
//!
//! - Names: the Lambda API reference, `Environment`
//!   (<https://docs.aws.amazon.com/lambda/latest/api/API_Environment.html>):
//!   key pattern `[a-zA-Z]([a-zA-Z0-9_])+`, so a letter and at least one
//!   more letter, digit or `_`.
//! - Reserved names: the Lambda developer guide, "Defined runtime
//!   environment variables"
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars-runtime.html>):
//!   the keys Lambda sets itself cannot be set in a function's configuration.
//! - Size: the Lambda developer guide, "Lambda quotas"
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>),
//!   and the API reference, `CreateFunction` / `Environment`: 4 KB for all
//!   environment variables of a function, measured as the JSON of the whole
//!   `Variables` map. The controller's own variables count; the secret's ARN
//!   counts at its longest (a 10-character partition, the 12-digit account
//!   and the 6 characters Secrets Manager appends to the name).

use std::collections::BTreeMap;

use super::{Deployment, FunctionSpec, SecretSpec, Spec};

/// Lambda's limit on the JSON of a function's environment, in bytes.
pub const ENVIRONMENT_LIMIT_BYTES: usize = 4096;

/// The model bucket's name, set on every function.
pub const MODEL_BUCKET_VARIABLE: &str = "MODEL_BUCKET";
/// The model key prefix, set on every function.
pub const MODEL_PREFIX_VARIABLE: &str = "MODEL_PREFIX";
/// The Panther secret's ARN, set on the function that reads it.
pub const SECRET_ARN_VARIABLE: &str = "PANTHER_SECRET_ARN";
/// The origins CORS allows, set on the API's functions when CORS is on.
pub const CORS_VARIABLE: &str = "CORS_ALLOW_ORIGINS";

/// Every variable the controller sets itself: a file may not set them.
pub const CONTROLLER_VARIABLES: [&str; 4] = [
    MODEL_BUCKET_VARIABLE,
    MODEL_PREFIX_VARIABLE,
    SECRET_ARN_VARIABLE,
    CORS_VARIABLE,
];

/// The token itself: it goes in Secrets Manager (`[panther_secret]`), never
/// in a function's environment.
pub const TOKEN_VARIABLE: &str = "PANTHER_API_TOKEN";

/// Keys Lambda sets in the execution environment and refuses in a
/// function's configuration ("Defined runtime environment variables").
pub const LAMBDA_RESERVED: [&str; 20] = [
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// `AWS_LAMBDA_*` keys the same page lists as not reserved.
const LAMBDA_UNRESERVED: [&str; 2] = ["AWS_LAMBDA_EXEC_WRAPPER", "AWS_LAMBDA_DOTNET_PREJIT"];

/// The longest partition an ARN can have (`aws-us-gov`).
const LONGEST_PARTITION: &str = "aws-us-gov";

/// Why a variable of the file cannot be set, if it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return Err(format!(
            "{name:?} is not a valid variable name (a letter, then at least one letter, digit or '_')"
        ));
    }
    let lambda_prefix = name.starts_with("AWS_LAMBDA_") && !LAMBDA_UNRESERVED.contains(&name);
    if LAMBDA_RESERVED.contains(&name) || lambda_prefix {
        return Err(format!(
            "{name:?} is reserved: Lambda sets it in every function and refuses it in the configuration"
        ));
    }
    if CONTROLLER_VARIABLES.contains(&name) {
        return Err(format!(
            "{name:?} is reserved: the controller sets it itself ({})",
            CONTROLLER_VARIABLES.join(", ")
        ));
    }
    if name == TOKEN_VARIABLE {
        return Err(format!(
            "{name:?} would put the Panther token in plain text in the function's configuration; use [panther_secret] (the function gets {SECRET_ARN_VARIABLE})"
        ));
    }
    Ok(())
}

/// The environment `function` gets: the file's variables and the
/// controller's. `secret_arn` is the value of `PANTHER_SECRET_ARN` for the
/// function that reads the secret.
pub fn final_environment(
    spec: &Spec,
    function: &FunctionSpec,
    secret_arn: &str,
) -> BTreeMap<String, String> {
    let mut environment = function.environment.clone();
    environment.insert(MODEL_BUCKET_VARIABLE.into(), spec.bucket.name.clone());
    environment.insert(
        MODEL_PREFIX_VARIABLE.into(),
        spec.bucket.model_prefix.clone(),
    );
    if reads_secret(spec, function).is_some() {
        environment.insert(SECRET_ARN_VARIABLE.into(), secret_arn.to_string());
    }
    if let Some(api) = spec
        .api
        .as_ref()
        .filter(|api| !api.cors_allow_origins.is_empty())
    {
        if api
            .routes
            .iter()
            .any(|route| route.function == function.key)
        {
            environment.insert(CORS_VARIABLE.into(), api.cors_allow_origins.join(","));
        }
    }
    environment
}

/// The secret `function` reads, if it is the one `[panther_secret]` names.
pub fn reads_secret<'a>(spec: &'a Spec, function: &FunctionSpec) -> Option<&'a SecretSpec> {
    spec.panther_secret
        .as_ref()
        .filter(|secret| secret.function == function.key)
}

/// An ARN as long as the secret's can ever be:
/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-XXXXXX`.
pub fn longest_secret_arn(deployment: &Deployment, secret: &SecretSpec) -> String {
    format!(
        "arn:{LONGEST_PARTITION}:secretsmanager:{}:{}:secret:{}-XXXXXX",
        deployment.region,
        deployment.account_id.as_deref().unwrap_or("000000000000"),
        secret.name
    )
}

/// The size Lambda measures: the JSON text of the whole map, in bytes.
pub fn json_size(environment: &BTreeMap<String, String>) -> usize {
    serde_json::to_string(environment).map_or(usize::MAX, |text| text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_lambda_key_pattern() {
        for good in [
            "LOG_LEVEL",
            "ab",
            "a1",
            "Tz_2",
            "AWS_ENDPOINT_URL",
            "AWS_LAMBDA_EXEC_WRAPPER",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, reason) in [
            ("A", "not a valid variable name"),
            ("1BAD", "not a valid variable name"),
            ("_HANDLER", "not a valid variable name"),
            ("BAD-NAME", "not a valid variable name"),
            ("", "not a valid variable name"),
            ("ÉTÉ", "not a valid variable name"),
            ("AWS_REGION", "Lambda sets it"),
            ("AWS_DEFAULT_REGION", "Lambda sets it"),
            ("AWS_SESSION_TOKEN", "Lambda sets it"),
            ("AWS_LAMBDA_FUNCTION_NAME", "Lambda sets it"),
            ("AWS_LAMBDA_ANYTHING_NEW", "Lambda sets it"),
            ("LAMBDA_TASK_ROOT", "Lambda sets it"),
            ("LAMBDA_RUNTIME_DIR", "Lambda sets it"),
            ("MODEL_BUCKET", "the controller sets it"),
            ("MODEL_PREFIX", "the controller sets it"),
            ("PANTHER_SECRET_ARN", "the controller sets it"),
            ("CORS_ALLOW_ORIGINS", "the controller sets it"),
            ("PANTHER_API_TOKEN", "plain text"),
        ] {
            let error = check_name(bad).expect_err(bad);
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn the_size_is_that_of_the_json_map() {
        let environment = BTreeMap::from([
            ("A1".to_string(), "x".to_string()),
            ("B2".to_string(), "say \"hi\"".to_string()),
        ]);
        // {"A1":"x","B2":"say \"hi\""}
        assert_eq!(json_size(&environment), 28);
        assert_eq!(json_size(&BTreeMap::new()), 2);
    }
}
