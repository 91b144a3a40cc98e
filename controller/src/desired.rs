//! Turns a checked [`Spec`] into the list of resources a deployment is made
//! of: each registered kind says which of its resources the file implies,
//! with every derived value (ARNs, policies, tags, permissions) filled in.
//! Values AWS chooses (a REST API's id, a secret's ARN suffix) come in as
//! [`Refs`], looked up before a resource that needs them is planned.

use crate::resources::{Context, KINDS, Resource, secret};
use crate::spec::Spec;

/// Name of the one inline policy of each execution role.
pub const FUNCTION_POLICY_NAME: &str = "function-access";
/// Stands for a value AWS chooses when the resource is created.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";
/// Environment variable that tells the API's functions which origins CORS allows.
pub use crate::spec::environment::CORS_VARIABLE;
/// Environment variable that gives the training function the secret's ARN.
pub use crate::spec::environment::SECRET_ARN_VARIABLE;

/// Values AWS chose, read back from AWS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refs {
    pub api_id: Option<String>,
    pub secret_arn: Option<String>,
    /// The secret's value, read from its environment variable at apply time.
    pub secret_value: Option<secret::SecretValue>,
}

/// The ARN of a function of this deployment.
pub fn function_arn(ctx: &Context, name: &str) -> String {
    format!(
        "arn:{}:lambda:{}:{}:function:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

/// The name of the API's access log group.
pub fn access_log_group_name(api_name: &str) -> String {
    format!("/aws/apigateway/{api_name}")
}

/// Every resource of the deployment, kind by kind in creation order.
pub fn desired_resources(spec: &Spec, ctx: &Context, refs: &Refs) -> Vec<Box<dyn Resource>> {
    KINDS
        .iter()
        .flat_map(|kind| kind.desired(spec, ctx, refs))
        .collect()
}
