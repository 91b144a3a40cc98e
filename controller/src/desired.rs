//! Turns a checked [`Spec`] into the list of resources a deployment is made
//! of, with every derived value (ARNs, policies, tags, permissions) filled
//! in. Values AWS chooses (a REST API's id, a secret's ARN suffix) come in
//! as [`Refs`], looked up before each wave of an apply.

use std::collections::BTreeMap;

use crate::ownership::desired_tags;
use crate::resources::{
    Context, Desired, api, bucket, function, log_group, permission, policy, repository, role, rule,
    secret,
};
use crate::spec::{LogGroupSpec, Spec, environment};

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

/// Every resource of the deployment, in creation order.
pub fn desired_resources(spec: &Spec, ctx: &Context, refs: &Refs) -> Vec<Desired> {
    let tags = desired_tags(&spec.deployment.name, &spec.tags);
    let mut resources = vec![Desired::Bucket(bucket::Desired {
        spec: spec.bucket.clone(),
        tags: tags.clone(),
    })];
    if let Some(secret) = &spec.panther_secret {
        resources.push(Desired::Secret(secret::Desired {
            spec: secret.clone(),
            tags: tags.clone(),
            value: refs.secret_value.clone(),
        }));
    }
    for function in &spec.functions {
        resources.push(Desired::Repository(repository::Desired {
            spec: function.repository.clone(),
            tags: tags.clone(),
            lifecycle_policy: repository::lifecycle_policy(function.repository.keep_last_images)
                .to_string(),
        }));
        let reads_secret = environment::reads_secret(spec, function);
        let role = role::Desired {
            spec: function.role.clone(),
            tags: tags.clone(),
            trust_policy: policy::lambda_trust_policy().to_string(),
            policies: BTreeMap::from([(
                FUNCTION_POLICY_NAME.to_string(),
                policy::function_policy(
                    &ctx.partition,
                    &ctx.region,
                    &ctx.account_id,
                    function,
                    &spec.bucket,
                    reads_secret.map(|secret| secret.name.as_str()),
                )
                .to_string(),
            )]),
        };
        let role_arn = role.arn(ctx);
        resources.push(Desired::Role(role));
        resources.push(Desired::LogGroup(log_group::Desired {
            spec: function.logs.clone(),
            tags: tags.clone(),
        }));
        let secret_arn = refs.secret_arn.as_deref().unwrap_or(KNOWN_AFTER_APPLY);
        let environment = environment::final_environment(spec, function, secret_arn);
        resources.push(Desired::Function(Box::new(function::Desired {
            spec: function.clone(),
            role_arn,
            environment,
            tags: tags.clone(),
        })));
    }
    if let Some(api) = &spec.api {
        let access_log_group_arn = api.access_logging.then(|| {
            let name = access_log_group_name(&api.name);
            resources.push(Desired::LogGroup(log_group::Desired {
                spec: LogGroupSpec {
                    name: name.clone(),
                    retention_days: 7,
                    adopt: api.adopt,
                },
                tags: tags.clone(),
            }));
            format!(
                "arn:{}:logs:{}:{}:log-group:{name}",
                ctx.partition, ctx.region, ctx.account_id
            )
        });
        let routes = api
            .routes
            .iter()
            .filter_map(|route| {
                let function = spec.function(&route.function)?;
                Some(api::Route {
                    method: route.method.clone(),
                    path: route.path.clone(),
                    integration_uri: api::integration_uri(ctx, &function_arn(ctx, &function.name)),
                })
            })
            .collect();
        resources.push(Desired::Api(Box::new(api::Desired {
            spec: api.clone(),
            tags: tags.clone(),
            routes,
            access_log_group_arn,
        })));
        let api_id = refs
            .api_id
            .clone()
            .unwrap_or_else(|| KNOWN_AFTER_APPLY.to_string());
        // With several CORS origins the function answers each path's
        // preflight itself (see `api`): the first route of the path names it,
        // and its `OPTIONS` call needs an invoke permission of its own.
        let mut invoked: Vec<(&str, &crate::spec::RouteSpec)> = api
            .routes
            .iter()
            .map(|route| (route.method.as_str(), route))
            .collect();
        if api.cors_allow_origins.len() > 1 {
            let mut preflights: Vec<&str> = Vec::new();
            for route in &api.routes {
                if !preflights.contains(&route.path.as_str()) {
                    preflights.push(&route.path);
                    invoked.push(("OPTIONS", route));
                }
            }
        }
        for (method, route) in invoked {
            let Some(function) = spec.function(&route.function) else {
                continue;
            };
            let statement_id = permission::route_statement_id(method, &route.path);
            resources.push(Desired::Permission(permission::Desired {
                id: format!("{}:{statement_id}", function.name),
                function: function.name.clone(),
                statement_id,
                principal: "apigateway.amazonaws.com".into(),
                source_arn: permission::route_source_arn(
                    &ctx.partition,
                    &ctx.region,
                    &ctx.account_id,
                    &api_id,
                    method,
                    &route.path,
                ),
                legacy_statement_id: Some(permission::legacy_route_statement_id(
                    method,
                    &route.path,
                )),
            }));
        }
    }
    if let Some(schedule) = &spec.schedule {
        if let Some(function) = spec.function(&schedule.function) {
            let rule = rule::Desired {
                spec: schedule.clone(),
                tags: tags.clone(),
                function_arn: function_arn(ctx, &function.name),
            };
            let statement_id = permission::schedule_statement_id(&schedule.name);
            resources.push(Desired::Permission(permission::Desired {
                id: format!("{}:{statement_id}", function.name),
                function: function.name.clone(),
                statement_id,
                principal: "events.amazonaws.com".into(),
                source_arn: rule.arn(ctx),
                legacy_statement_id: Some(permission::legacy_schedule_statement_id(&schedule.name)),
            }));
            resources.push(Desired::Rule(rule));
        }
    }
    resources
}
