//! Turns a checked [`Spec`] into the list of resources a deployment is made
//! of, with every derived value (ARNs, policies, tags) filled in.

use std::collections::BTreeMap;

use crate::ownership::desired_tags;
use crate::resources::{Context, Desired, bucket, function, log_group, policy, repository, role};
use crate::spec::Spec;

/// Name of the one inline policy of each execution role.
pub const FUNCTION_POLICY_NAME: &str = "function-access";

/// Every resource of the deployment, in creation order.
pub fn desired_resources(spec: &Spec, ctx: &Context) -> Vec<Desired> {
    let tags = desired_tags(&spec.deployment.name, &spec.tags);
    let mut resources = vec![Desired::Bucket(bucket::Desired {
        spec: spec.bucket.clone(),
        tags: tags.clone(),
    })];
    for function in &spec.functions {
        resources.push(Desired::Repository(repository::Desired {
            spec: function.repository.clone(),
            tags: tags.clone(),
            lifecycle_policy: policy::repository_lifecycle_policy(
                function.repository.keep_last_images,
            )
            .to_string(),
        }));
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
        resources.push(Desired::Function(Box::new(function::Desired {
            spec: function.clone(),
            role_arn,
            environment,
            tags: tags.clone(),
        })));
    }
    resources
}
