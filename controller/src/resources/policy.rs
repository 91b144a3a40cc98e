//! The IAM and ECR policy documents a deployment needs, written least
//! privilege: named actions only, resources scoped to what each function
//! uses, no AWS-managed policies.

use serde_json::{Value, json};

use crate::spec::{BucketSpec, FunctionSpec, ModelAccess};

/// Lets Lambda assume a function's execution role.
pub fn lambda_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

/// What one function may do: write to its own log group, and read (or read
/// and write) the model prefix of the bucket.
pub fn function_policy(
    partition: &str,
    region: &str,
    account_id: &str,
    function: &FunctionSpec,
    bucket: &BucketSpec,
    secret_name: Option<&str>,
) -> Value {
    let log_group = format!(
        "arn:{partition}:logs:{region}:{account_id}:log-group:{}:*",
        function.logs.name
    );
    let mut statements = vec![json!({
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": log_group
    })];
    let bucket_arn = format!("arn:{partition}:s3:::{}", bucket.name);
    let models = format!("{bucket_arn}/{}*", bucket.model_prefix);
    let object_actions: &[&str] = match function.model_access {
        ModelAccess::None => &[],
        ModelAccess::Read => &["s3:GetObject"],
        ModelAccess::ReadWrite => &["s3:GetObject", "s3:PutObject"],
    };
    if !object_actions.is_empty() {
        // Unconditional: S3 answers a GetObject of a missing key with 404
        // only to a caller that may list the bucket, and a GetObject request
        // carries no `s3:prefix`, so a prefix-conditioned grant does not
        // count and the missing first model pointer would be 403 (S3 API
        // reference, GetObject, "Permissions"). Listing shows key names of
        // the model bucket only, which holds nothing but models and the lease.
        statements.push(json!({
            "Sid": "ListModels",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn
        }));
        statements.push(json!({
            "Sid": "Models",
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": models
        }));
    }
    if let Some(name) = secret_name {
        // Secrets Manager appends six random characters to a secret's name
        // in its ARN; `-??????` matches exactly those and nothing longer.
        statements.push(json!({
            "Sid": "ReadPantherToken",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": format!("arn:{partition}:secretsmanager:{region}:{account_id}:secret:{name}-??????")
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}
