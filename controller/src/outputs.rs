//! What `controller output` shows: where the deployment lives, read from
//! AWS (no state file): the REST API's id, stage and invoke URLs, each
//! function's ARN, image and digest, each release alias's ARN and the
//! version it serves, the bucket, the secret's ARN and the rule's ARN. A
//! resource that does not exist gives no output.

use std::collections::BTreeMap;

use crate::reconcile::{self, Controller};
use crate::resources::{self, aws_error};

/// Why the outputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Api(#[from] reconcile::Error),
    #[error(transparent)]
    Aws(#[from] resources::Error),
}

/// Every output, by name (`invoke_url.detect`, `function_arn.detection`).
pub async fn read(controller: &Controller) -> Result<BTreeMap<String, String>, OutputError> {
    let ctx = &controller.ctx;
    let spec = &controller.spec;
    let mut outputs = BTreeMap::new();
    if let Some(api) = &spec.api {
        if let Some(id) = controller.api_id().await? {
            let base = format!(
                "https://{id}.execute-api.{}.amazonaws.com/{}",
                ctx.region, api.stage
            );
            for route in &api.routes {
                let name = route.path.trim_matches('/').replace('/', ".");
                let name = if name.is_empty() {
                    "root".to_string()
                } else {
                    name
                };
                outputs.insert(
                    format!("invoke_url.{name}"),
                    format!("{base}{}", route.path),
                );
            }
            outputs.insert("api_id".into(), id);
            outputs.insert("api_stage".into(), api.stage.clone());
            outputs.insert("invoke_url".into(), base);
        }
    }
    for function in &spec.functions {
        let found = match ctx
            .clients
            .lambda
            .get_function()
            .function_name(&function.name)
            .send()
            .await
        {
            Ok(found) => found,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                continue;
            }
            Err(error) => return Err(aws_error("GetFunction")(error).into()),
        };
        let key = &function.key;
        if let Some(arn) = found.configuration().and_then(|c| c.function_arn()) {
            outputs.insert(format!("function_arn.{key}"), arn.to_string());
        }
        if let Some(image) = found.code().and_then(|code| code.image_uri()) {
            outputs.insert(format!("image.{key}"), image.to_string());
            if let Some(digest) = resources::release::versions::image_digest(image) {
                outputs.insert(format!("image_digest.{key}"), digest.to_string());
            }
        }
        if let Some(release) = &function.release
            && let Some(alias) =
                resources::release::get_alias(ctx, &function.name, &release.alias).await?
        {
            outputs.insert(
                format!("alias_arn.{key}"),
                format!(
                    "{}:{}",
                    crate::desired::function_arn(ctx, &function.name),
                    release.alias
                ),
            );
            outputs.insert(format!("live_version.{key}"), alias.version);
        }
    }
    let bucket = &spec.bucket.name;
    if ctx
        .clients
        .s3
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .is_ok()
    {
        outputs.insert("bucket".into(), bucket.clone());
        outputs.insert(
            "bucket_arn".into(),
            format!("arn:{}:s3:::{bucket}", ctx.partition),
        );
    }
    if let Some(secret) = &spec.panther_secret
        && let Some(arn) = resources::secret::Desired::arn(ctx, &secret.name).await?
    {
        outputs.insert("secret_arn".into(), arn);
    }
    if let Some(schedule) = &spec.schedule {
        match ctx
            .clients
            .events
            .describe_rule()
            .name(&schedule.name)
            .send()
            .await
        {
            Ok(rule) => {
                if let Some(arn) = rule.arn() {
                    outputs.insert("rule_arn".into(), arn.to_string());
                }
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(error) => return Err(aws_error("DescribeRule")(error).into()),
        }
    }
    Ok(outputs)
}
