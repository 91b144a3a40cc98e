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
use crate::spec::{LogGroupSpec, Spec};

/// Name of the one inline policy of each execution role.
pub const FUNCTION_POLICY_NAME: &str = "function-access";
/// Stands for a value AWS chooses when the resource is created.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";
/// Environment variable that gives the training function the secret's ARN.
pub const SECRET_ARN_VARIABLE: &str = "PANTHER_SECRET_ARN";
/// Environment variable that tells the API's functions which origins CORS allows.
pub const CORS_VARIABLE: &str = "CORS_ALLOW_ORIGINS";

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
            lifecycle_policy: policy::repository_lifecycle_policy(
                function.repository.keep_last_images,
            )
            .to_string(),
        }));
        let reads_secret = spec
            .panther_secret
            .as_ref()
            .filter(|secret| secret.function == function.key);
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
        let mut environment = function.environment.clone();
        environment.insert("MODEL_BUCKET".into(), spec.bucket.name.clone());
        environment.insert("MODEL_PREFIX".into(), spec.bucket.model_prefix.clone());
        if reads_secret.is_some() {
            environment.insert(
                SECRET_ARN_VARIABLE.into(),
                refs.secret_arn
                    .clone()
                    .unwrap_or_else(|| KNOWN_AFTER_APPLY.to_string()),
            );
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
        for route in &api.routes {
            let Some(function) = spec.function(&route.function) else {
                continue;
            };
            let method = if route.method == "ANY" {
                "*"
            } else {
                route.method.as_str()
            };
            let sanitized: String = format!("{}{}", route.method, route.path)
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let statement_id =
                format!("anomaly-controller-api-{}", sanitized.trim_end_matches('-'));
            resources.push(Desired::Permission(permission::Desired {
                id: format!("{}:{statement_id}", function.name),
                function: function.name.clone(),
                statement_id,
                principal: "apigateway.amazonaws.com".into(),
                source_arn: format!(
                    "arn:{}:execute-api:{}:{}:{api_id}/*/{method}{}",
                    ctx.partition, ctx.region, ctx.account_id, route.path
                ),
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
            let statement_id = format!("anomaly-controller-schedule-{}", schedule.name);
            resources.push(Desired::Permission(permission::Desired {
                id: format!("{}:{statement_id}", function.name),
                function: function.name.clone(),
                statement_id,
                principal: "events.amazonaws.com".into(),
                source_arn: rule.arn(ctx),
            }));
            resources.push(Desired::Rule(rule));
        }
    }
    resources
}
