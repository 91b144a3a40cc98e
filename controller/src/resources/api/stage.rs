//! The REST API's stage: the deployment it points at, its throttling and
//! access logging, and the account's CloudWatch Logs role that access logs
//! need.
//!
//! A deployment is created only when the routes or integrations change: the
//! stage's deployment carries a fingerprint of the routes it was made from
//! in its description, and a new deployment is made when that differs.

use aws_sdk_apigateway::types::{Op, PatchOperation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Desired, replace};
use crate::field::{FieldDiff, Fields};
use crate::resources::{Context, Error, Result, aws_error, changed, done_or, observed_value};

/// Prefix of a deployment description that carries the routes fingerprint.
const FINGERPRINT_PREFIX: &str = "routes ";
/// Access log line format (JSON, one object per request).
const ACCESS_LOG_FORMAT: &str = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","method":"$context.httpMethod","path":"$context.resourcePath","status":"$context.status","latencyMs":"$context.responseLatency"}"#;

impl Desired {
    /// Fingerprint of what a deployment is made from.
    pub(super) fn fingerprint(&self) -> String {
        let routes = serde_json::to_string(&self.desired_routes()).unwrap_or_default();
        format!(
            "{FINGERPRINT_PREFIX}{}",
            &hex::encode(Sha256::digest(routes.as_bytes()))[..16]
        )
    }

    /// Access logs need the account's API Gateway CloudWatch Logs role.
    pub async fn preflight(&self, ctx: &Context) -> Result<()> {
        if self.access_log_group_arn.is_some() {
            self.check_account_logging_role(ctx).await?;
        }
        Ok(())
    }

    /// Access logs need API Gateway's account-wide CloudWatch Logs role
    /// (`cloudwatchRoleArn`): without it, AWS refuses any stage update that
    /// sets access-log settings with 400 BadRequestException (API Gateway
    /// developer guide, "Set up CloudWatch logging for REST APIs in API
    /// Gateway"). The setting belongs to the account and Region, not to a
    /// deployment, so it is checked when an apply is planned (not for
    /// destroy), and a missing one stops the plan before any change.
    async fn check_account_logging_role(&self, ctx: &Context) -> Result<()> {
        let account = ctx
            .clients
            .apigateway
            .get_account()
            .send()
            .await
            .map_err(aws_error("GetAccount"))?;
        if account
            .cloudwatch_role_arn()
            .is_some_and(|arn| !arn.is_empty())
        {
            return Ok(());
        }
        Err(Error::Failed(format!(
            "api.access_logging = true needs API Gateway's CloudWatch Logs role for account {} in {}, \
             an account-wide setting this deployment does not own, and none is set. \
             Set it once (a role that apigateway.amazonaws.com may assume, with the permissions of \
             the AWS-managed policy AmazonAPIGatewayPushToCloudWatchLogs): \
             aws apigateway update-account --region {} --patch-operations \
             op=replace,path=/cloudwatchRoleArn,value=ROLE_ARN; or set api.access_logging = false",
            ctx.account_id, ctx.region, ctx.region
        )))
    }

    pub(super) async fn observe_stage(&self, ctx: &Context, id: &str) -> Result<Fields> {
        let api = &ctx.clients.apigateway;
        let stage = match api
            .get_stage()
            .rest_api_id(id)
            .stage_name(&self.spec.stage)
            .send()
            .await
        {
            Ok(stage) => stage,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) =>
            {
                return Ok(Fields::from([
                    ("stage.name".into(), Value::Null),
                    ("stage.deployment".into(), Value::Null),
                    ("stage.throttle".into(), Value::Null),
                    ("stage.access_log_destination".into(), Value::Null),
                ]));
            }
            Err(error) => return Err(aws_error("GetStage")(error)),
        };
        let deployment = match stage.deployment_id() {
            Some(deployment_id) => api
                .get_deployment()
                .rest_api_id(id)
                .deployment_id(deployment_id)
                .send()
                .await
                .map_err(aws_error("GetDeployment"))?
                .description()
                .map(str::to_string),
            None => None,
        };
        let throttle = stage
            .method_settings()
            .and_then(|settings| settings.get("*/*"))
            .map(|setting| json!({"rate_limit": setting.throttling_rate_limit(), "burst_limit": setting.throttling_burst_limit()}));
        let access_log = stage
            .access_log_settings()
            .and_then(|settings| settings.destination_arn())
            .map(str::to_string);
        Ok(Fields::from([
            ("stage.name".into(), json!(stage.stage_name())),
            ("stage.deployment".into(), json!(deployment)),
            ("stage.throttle".into(), json!(throttle)),
            ("stage.access_log_destination".into(), json!(access_log)),
        ]))
    }

    /// Deploys the routes when they or the stage's deployment changed
    /// (creating the stage when it is missing), then sets the stage's
    /// throttling and access logs.
    pub(super) async fn converge_stage(
        &self,
        ctx: &Context,
        id: &str,
        diffs: &[FieldDiff],
    ) -> Result<()> {
        let api = &ctx.clients.apigateway;
        let stage_missing = observed_value(diffs, "stage.name").is_some_and(Value::is_null);
        if changed(diffs, "routes") || changed(diffs, "stage.deployment") {
            let deployment = api
                .create_deployment()
                .rest_api_id(id)
                .description(self.fingerprint())
                .send()
                .await
                .map_err(aws_error("CreateDeployment"))?;
            let deployment_id = deployment.id().unwrap_or_default().to_string();
            if stage_missing {
                // A retried create whose first answer was lost finds the stage
                // it made, already on this deployment (409): done.
                done_or(
                    api.create_stage()
                        .rest_api_id(id)
                        .stage_name(&self.spec.stage)
                        .deployment_id(&deployment_id)
                        .send()
                        .await,
                    "CreateStage",
                    |error| error.is_conflict_exception(),
                )?;
            } else {
                api.update_stage()
                    .rest_api_id(id)
                    .stage_name(&self.spec.stage)
                    .patch_operations(replace("/deploymentId", &deployment_id))
                    .send()
                    .await
                    .map_err(aws_error("UpdateStage"))?;
            }
        }
        // Throttling and access logs are separate calls: a refused access-log
        // setting must never take the throttling with it.
        if changed(diffs, "stage.throttle") || stage_missing {
            self.update_stage(
                ctx,
                id,
                vec![
                    replace(
                        "/*/*/throttling/rateLimit",
                        &self.spec.throttle_rate_limit.to_string(),
                    ),
                    replace(
                        "/*/*/throttling/burstLimit",
                        &self.spec.throttle_burst_limit.to_string(),
                    ),
                ],
            )
            .await?;
        }
        if changed(diffs, "stage.access_log_destination") {
            let operations = match &self.access_log_group_arn {
                Some(arn) => vec![
                    replace("/accessLogSettings/destinationArn", arn),
                    replace("/accessLogSettings/format", ACCESS_LOG_FORMAT),
                ],
                None => vec![
                    PatchOperation::builder()
                        .op(Op::Remove)
                        .path("/accessLogSettings")
                        .build(),
                ],
            };
            self.update_stage(ctx, id, operations).await?;
        }
        Ok(())
    }

    async fn update_stage(
        &self,
        ctx: &Context,
        id: &str,
        operations: Vec<PatchOperation>,
    ) -> Result<()> {
        ctx.clients
            .apigateway
            .update_stage()
            .rest_api_id(id)
            .stage_name(&self.spec.stage)
            .set_patch_operations(Some(operations))
            .send()
            .await
            .map_err(aws_error("UpdateStage"))?;
        Ok(())
    }
}
