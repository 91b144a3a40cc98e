//! Turns a checked [`Spec`] into the list of resources a deployment is made
//! of: each registered kind says which of its resources the file implies,
//! with every derived value (ARNs, policies, tags, permissions) filled in.
//! Values AWS chooses (a REST API's id, a secret's ARN suffix) come in as
//! [`Refs`], looked up before a resource that needs them is planned.

use crate::resources::{Context, KINDS, Resource, ResourceId, ResourceKind, secret};
use crate::spec::{FunctionSpec, Spec};

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

/// What callers (the API's integrations, the invoke permissions, the
/// schedule's target) invoke: the function's release alias when it has
/// one, the function itself otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokeTarget {
    /// The function's name.
    pub function: String,
    /// The alias, when the function has a release.
    pub qualifier: Option<String>,
    /// The function's ARN, qualified by the alias when there is one.
    pub arn: String,
}

impl InvokeTarget {
    pub fn of(ctx: &Context, function: &FunctionSpec) -> InvokeTarget {
        let qualifier = function
            .release
            .as_ref()
            .map(|release| release.alias.clone());
        let unqualified = function_arn(ctx, &function.name);
        InvokeTarget {
            function: function.name.clone(),
            arn: match &qualifier {
                Some(alias) => format!("{unqualified}:{alias}"),
                None => unqualified,
            },
            qualifier,
        }
    }

    /// `function` or `function:alias`: the name of what is invoked, as
    /// Lambda's `FunctionName` takes it and as plans name the alias.
    pub fn name(&self) -> String {
        match &self.qualifier {
            Some(alias) => format!("{}:{alias}", self.function),
            None => self.function.clone(),
        }
    }

    /// The resource that must exist before a caller can invoke it.
    pub fn resource(&self) -> ResourceId {
        match &self.qualifier {
            Some(_) => ResourceId::new(crate::resources::release::KIND.kind(), self.name()),
            None => ResourceId::new(crate::resources::function::KIND.kind(), &self.function),
        }
    }

    /// The resource a function ARN (qualified or not) names: the function,
    /// or the alias of a qualified ARN.
    pub fn resource_of_arn(arn: &str) -> Option<ResourceId> {
        let (_, rest) = arn.split_once(":function:")?;
        let rest = rest.split('/').next().unwrap_or(rest);
        Some(match rest.split_once(':') {
            Some(_) => ResourceId::new(crate::resources::release::KIND.kind(), rest),
            None => ResourceId::new(crate::resources::function::KIND.kind(), rest),
        })
    }
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
