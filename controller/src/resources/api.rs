//! The API Gateway REST API: the API itself, its routes (resources, methods
//! and AWS_PROXY integrations), CORS preflight, the stage with its
//! throttling and access logging, and the deployment the stage points at.
//!
//! A deployment is created only when the routes or integrations change: the
//! stage's deployment carries a fingerprint of the routes it was made from
//! in its description, and a new deployment is made when that differs.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_apigateway::types::{
    EndpointConfiguration, EndpointType, IntegrationType, Op, PatchOperation,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use async_trait::async_trait;

use super::{DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceId, ResourceKind};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::{Context, Observed, Result, aws_error, changed, done_or, observed_value, sync_tags};
use crate::field::{FieldDiff, Fields};
use crate::ownership::{Ownership, comparable_tags, ownership_of};
use crate::spec::ApiSpec;

/// Prefix of a deployment description that carries the routes fingerprint.
const FINGERPRINT_PREFIX: &str = "routes ";
/// Access log line format (JSON, one object per request).
const ACCESS_LOG_FORMAT: &str = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","method":"$context.httpMethod","path":"$context.resourcePath","status":"$context.status","latencyMs":"$context.responseLatency"}"#;

/// One route as the API holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The AWS_PROXY integration URI of the function that answers it.
    pub integration_uri: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: ApiSpec,
    pub tags: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    /// ARN of the access log group, when access logging is on.
    pub access_log_group_arn: Option<String>,
}

/// A REST API as `GetRestApis` lists it.
struct Listed {
    id: String,
    name: String,
    description: String,
    created: i64,
    tags: BTreeMap<String, String>,
}

/// Every REST API of the account and Region, every page.
async fn list(ctx: &Context) -> Result<Vec<Listed>> {
    let mut apis = Vec::new();
    let mut position: Option<String> = None;
    loop {
        let page = ctx
            .clients
            .apigateway
            .get_rest_apis()
            .limit(500)
            .set_position(position.clone())
            .send()
            .await
            .map_err(aws_error("GetRestApis"))?;
        for item in page.items() {
            let tags = item
                .tags()
                .map(|tags| {
                    tags.iter()
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect()
                })
                .unwrap_or_default();
            apis.push(Listed {
                id: item.id().unwrap_or_default().to_string(),
                name: item.name().unwrap_or_default().to_string(),
                description: item.description().unwrap_or_default().to_string(),
                created: item
                    .created_date()
                    .map(|date| date.secs())
                    .unwrap_or_default(),
                tags: comparable_tags(tags),
            });
        }
        position = page.position().map(str::to_string);
        if position.is_none() || page.items().is_empty() {
            break;
        }
    }
    Ok(apis)
}

/// The API a name refers to, as found in AWS.
struct Found {
    id: String,
    ownership: Ownership,
    description: String,
    tags: BTreeMap<String, String>,
    /// Other APIs of the same name this deployment owns (left by a retried create).
    duplicates: Vec<String>,
}

impl Desired {
    fn desired_routes(&self) -> BTreeMap<String, Value> {
        let mut routes: BTreeMap<String, Value> = self
            .routes
            .iter()
            .map(|route| {
                (
                    format!("{} {}", route.method, route.path),
                    json!({"type": "AWS_PROXY", "uri": route.integration_uri,
                           "api_key_required": self.spec.api_key_required}),
                )
            })
            .collect();
        // `Access-Control-Allow-Origin` holds one origin or `*` (Fetch
        // standard, CORS protocol): a MOCK preflight can answer with one fixed
        // origin; with several, the function answers the preflight itself and
        // echoes the request's origin when it is listed.
        let origins = &self.spec.cors_allow_origins;
        let mut preflights: BTreeMap<&str, &str> = BTreeMap::new();
        for route in &self.routes {
            preflights
                .entry(route.path.as_str())
                .or_insert(route.integration_uri.as_str());
        }
        for (path, uri) in preflights {
            let route = match origins.as_slice() {
                [] => continue,
                [origin] => json!({"type": "MOCK", "cors_allow_origin": origin}),
                _ => json!({"type": "AWS_PROXY", "uri": uri, "api_key_required": false}),
            };
            routes.insert(format!("OPTIONS {path}"), route);
        }
        routes
    }

    /// Fingerprint of what a deployment is made from.
    fn fingerprint(&self) -> String {
        let routes = serde_json::to_string(&self.desired_routes()).unwrap_or_default();
        format!(
            "{FINGERPRINT_PREFIX}{}",
            &hex::encode(Sha256::digest(routes.as_bytes()))[..16]
        )
    }

    pub fn fields(&self) -> Fields {
        Fields::from([
            ("description".into(), json!(self.spec.description)),
            ("routes".into(), json!(self.desired_routes())),
            ("duplicates".into(), json!([])),
            ("tags".into(), json!(self.tags)),
            ("stage.name".into(), json!(self.spec.stage)),
            ("stage.deployment".into(), json!(self.fingerprint())),
            (
                "stage.throttle".into(),
                json!({"rate_limit": self.spec.throttle_rate_limit, "burst_limit": self.spec.throttle_burst_limit}),
            ),
            (
                "stage.access_log_destination".into(),
                json!(self.access_log_group_arn),
            ),
        ])
    }

    async fn find(&self, ctx: &Context) -> Result<Option<Found>> {
        let mut candidates: Vec<Listed> = list(ctx)
            .await?
            .into_iter()
            .filter(|api| api.name == self.spec.name)
            .collect();
        candidates.sort_by_key(|api| (api.created, api.id.clone()));
        let owned: Vec<&Listed> = candidates
            .iter()
            .filter(|api| ownership_of(&api.tags, &ctx.deployment) == Ownership::Owned)
            .collect();
        let chosen = owned.first().copied().or(candidates.first());
        Ok(chosen.map(|api| Found {
            id: api.id.clone(),
            ownership: ownership_of(&api.tags, &ctx.deployment),
            description: api.description.clone(),
            tags: api.tags.clone(),
            duplicates: owned.iter().skip(1).map(|api| api.id.clone()).collect(),
        }))
    }

    /// The id of this deployment's API, if it exists.
    pub async fn id(&self, ctx: &Context) -> Result<Option<String>> {
        Ok(self.find(ctx).await?.map(|found| found.id))
    }

    /// Access logs need the account's API Gateway CloudWatch Logs role.
    pub async fn preflight(&self, ctx: &Context) -> Result<()> {
        if self.access_log_group_arn.is_some() {
            self.check_account_logging_role(ctx).await?;
        }
        Ok(())
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let Some(found) = self.find(ctx).await? else {
            return Ok(None);
        };
        let routes = self.observe_routes(ctx, &found.id).await?;
        let stage = self.observe_stage(ctx, &found.id).await?;
        let mut fields = Fields::from([
            ("description".into(), json!(found.description)),
            ("routes".into(), json!(routes)),
            ("duplicates".into(), json!(found.duplicates)),
            ("tags".into(), json!(found.tags)),
        ]);
        fields.extend(stage);
        Ok(Some(Observed {
            ownership: found.ownership,
            fields,
        }))
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
        Err(super::Error::Failed(format!(
            "api.access_logging = true needs API Gateway's CloudWatch Logs role for account {} in {}, \
             an account-wide setting this deployment does not own, and none is set. \
             Set it once (a role that apigateway.amazonaws.com may assume, with the permissions of \
             the AWS-managed policy AmazonAPIGatewayPushToCloudWatchLogs): \
             aws apigateway update-account --region {} --patch-operations \
             op=replace,path=/cloudwatchRoleArn,value=ROLE_ARN; or set api.access_logging = false",
            ctx.account_id, ctx.region, ctx.region
        )))
    }

    async fn resources(
        &self,
        ctx: &Context,
        id: &str,
    ) -> Result<Vec<aws_sdk_apigateway::types::Resource>> {
        let output = ctx
            .clients
            .apigateway
            .get_resources()
            .rest_api_id(id)
            .limit(500)
            .send()
            .await
            .map_err(aws_error("GetResources"))?;
        Ok(output.items().to_vec())
    }

    async fn observe_routes(&self, ctx: &Context, id: &str) -> Result<BTreeMap<String, Value>> {
        let api = &ctx.clients.apigateway;
        let mut routes = BTreeMap::new();
        for resource in self.resources(ctx, id).await? {
            let (Some(resource_id), Some(path)) = (resource.id(), resource.path()) else {
                continue;
            };
            let methods: Vec<String> = resource
                .resource_methods()
                .map(|methods| methods.keys().cloned().collect())
                .unwrap_or_default();
            for method in methods {
                let details = api
                    .get_method()
                    .rest_api_id(id)
                    .resource_id(resource_id)
                    .http_method(&method)
                    .send()
                    .await
                    .map_err(aws_error("GetMethod"))?;
                let integration = details.method_integration();
                let kind = integration
                    .and_then(|integration| integration.r#type())
                    .map(|kind| kind.as_str().to_string());
                let value = if kind.as_deref() == Some("MOCK") {
                    let origin = match api
                        .get_integration_response()
                        .rest_api_id(id)
                        .resource_id(resource_id)
                        .http_method(&method)
                        .status_code("200")
                        .send()
                        .await
                    {
                        Ok(response) => response
                            .response_parameters()
                            .and_then(|parameters| {
                                parameters.get("method.response.header.Access-Control-Allow-Origin")
                            })
                            .map(|origin| origin.trim_matches('\'').to_string()),
                        Err(_) => None,
                    };
                    json!({"type": "MOCK", "cors_allow_origin": origin})
                } else {
                    json!({"type": kind, "uri": integration.and_then(|integration| integration.uri()),
                           "api_key_required": details.api_key_required().unwrap_or(false)})
                };
                routes.insert(format!("{method} {path}"), value);
            }
        }
        Ok(routes)
    }

    async fn observe_stage(&self, ctx: &Context, id: &str) -> Result<Fields> {
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

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        if self.find(ctx).await?.is_some() {
            return Ok(());
        }
        let tags: HashMap<String, String> = self.tags.clone().into_iter().collect();
        ctx.clients
            .apigateway
            .create_rest_api()
            .name(&self.spec.name)
            .description(&self.spec.description)
            .endpoint_configuration(
                EndpointConfiguration::builder()
                    .types(EndpointType::Regional)
                    .build(),
            )
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(aws_error("CreateRestApi"))?;
        Ok(())
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let api = &ctx.clients.apigateway;
        let found = self.find(ctx).await?.ok_or_else(|| {
            super::Error::Failed(format!("REST API {} disappeared", self.spec.name))
        })?;
        let id = found.id.as_str();
        for duplicate in &found.duplicates {
            tracing::warn!(api = %self.spec.name, duplicate, "deleting a duplicate REST API of this deployment");
            api.delete_rest_api()
                .rest_api_id(duplicate)
                .send()
                .await
                .map_err(aws_error("DeleteRestApi"))?;
        }
        if changed(diffs, "description") {
            api.update_rest_api()
                .rest_api_id(id)
                .patch_operations(replace("/description", &self.spec.description))
                .send()
                .await
                .map_err(aws_error("UpdateRestApi"))?;
        }
        let arn = format!(
            "arn:{}:apigateway:{}::/restapis/{id}",
            ctx.partition, ctx.region
        );
        let arn = &arn;
        sync_tags(
            &self.tags,
            diffs,
            |to_set| async move {
                api.tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(to_set.into_iter().collect()))
                    .send()
                    .await
                    .map_err(aws_error("TagResource"))?;
                Ok(())
            },
            |to_remove| async move {
                api.untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagResource"))?;
                Ok(())
            },
        )
        .await?;
        if let Some(observed) = observed_value(diffs, "routes") {
            self.converge_routes(ctx, id, observed).await?;
        }
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

    /// Creates missing resources and methods, changes what differs on the
    /// methods that exist, and deletes methods no route asks for.
    ///
    /// PutMethod only creates: on a method that exists AWS answers 409
    /// ConflictException (API Gateway API reference, PutMethod). An existing
    /// method's API-key flag changes through UpdateMethod; its integration is
    /// replaced by PutIntegration, which overwrites.
    async fn converge_routes(&self, ctx: &Context, id: &str, observed: &Value) -> Result<()> {
        let api = &ctx.clients.apigateway;
        let desired = self.desired_routes();
        let observed: BTreeMap<String, Value> =
            serde_json::from_value(observed.clone()).unwrap_or_default();
        let mut paths: BTreeMap<String, String> = self
            .resources(ctx, id)
            .await?
            .iter()
            .filter_map(|resource| Some((resource.path()?.to_string(), resource.id()?.to_string())))
            .collect();
        for (route, want) in &desired {
            if observed.get(route) == Some(want) {
                continue;
            }
            let (method, path) = route.split_once(' ').unwrap_or_default();
            let resource_id = self.ensure_path(ctx, id, path, &mut paths).await?;
            let api_key_required = want["api_key_required"].as_bool().unwrap_or(false);
            let existing = observed.get(route);
            match existing {
                None => {
                    api.put_method()
                        .rest_api_id(id)
                        .resource_id(&resource_id)
                        .http_method(method)
                        .authorization_type("NONE")
                        .api_key_required(api_key_required)
                        .send()
                        .await
                        .map_err(aws_error("PutMethod"))?;
                }
                Some(existing) => {
                    if existing["api_key_required"].as_bool().unwrap_or(false) != api_key_required {
                        api.update_method()
                            .rest_api_id(id)
                            .resource_id(&resource_id)
                            .http_method(method)
                            .patch_operations(replace(
                                "/apiKeyRequired",
                                &api_key_required.to_string(),
                            ))
                            .send()
                            .await
                            .map_err(aws_error("UpdateMethod"))?;
                    }
                }
            }
            let integration_differs = existing.is_none_or(|existing| {
                existing["type"] != want["type"]
                    || existing["uri"] != want["uri"]
                    || existing["cors_allow_origin"] != want["cors_allow_origin"]
            });
            if !integration_differs {
                continue;
            }
            if want["type"] == "MOCK" {
                self.put_cors(ctx, id, &resource_id).await?;
            } else {
                api.put_integration()
                    .rest_api_id(id)
                    .resource_id(&resource_id)
                    .http_method(method)
                    .r#type(IntegrationType::AwsProxy)
                    .integration_http_method("POST")
                    .uri(want["uri"].as_str().unwrap_or_default())
                    .send()
                    .await
                    .map_err(aws_error("PutIntegration"))?;
            }
        }
        for route in observed
            .keys()
            .filter(|route| !desired.contains_key(*route))
        {
            let (method, path) = route.split_once(' ').unwrap_or_default();
            if let Some(resource_id) = paths.get(path) {
                api.delete_method()
                    .rest_api_id(id)
                    .resource_id(resource_id)
                    .http_method(method)
                    .send()
                    .await
                    .map_err(aws_error("DeleteMethod"))?;
            }
        }
        Ok(())
    }

    /// The resource id of `path`, creating the missing parts.
    async fn ensure_path(
        &self,
        ctx: &Context,
        id: &str,
        path: &str,
        paths: &mut BTreeMap<String, String>,
    ) -> Result<String> {
        if let Some(resource_id) = paths.get(path) {
            return Ok(resource_id.clone());
        }
        let mut parent = paths
            .get("/")
            .cloned()
            .ok_or_else(|| super::Error::Failed("the API has no root resource".into()))?;
        let mut current = String::new();
        for part in path.trim_start_matches('/').split('/') {
            current = format!("{current}/{part}");
            parent = match paths.get(&current) {
                Some(existing) => existing.clone(),
                None => {
                    let created = ctx
                        .clients
                        .apigateway
                        .create_resource()
                        .rest_api_id(id)
                        .parent_id(&parent)
                        .path_part(part)
                        .send()
                        .await;
                    let created_id = match created {
                        Ok(created) => created.id().unwrap_or_default().to_string(),
                        // A retried create whose first answer was lost: AWS
                        // refuses a second resource of the same name under
                        // one parent (409); the first one is the one.
                        Err(error)
                            if error
                                .as_service_error()
                                .is_some_and(|service| service.is_conflict_exception()) =>
                        {
                            self.resources(ctx, id)
                                .await?
                                .iter()
                                .find(|resource| resource.path() == Some(current.as_str()))
                                .and_then(|resource| resource.id())
                                .map(str::to_string)
                                .ok_or_else(|| aws_error("CreateResource")(error))?
                        }
                        Err(error) => return Err(aws_error("CreateResource")(error)),
                    };
                    paths.insert(current.clone(), created_id.clone());
                    created_id
                }
            };
        }
        Ok(parent)
    }

    /// A CORS preflight: a MOCK integration answering 200 with the headers.
    async fn put_cors(&self, ctx: &Context, id: &str, resource_id: &str) -> Result<()> {
        let api = &ctx.clients.apigateway;
        let header = |name: &str| format!("method.response.header.{name}");
        let names = [
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
        ];
        // The 200 response stays when the function answered the preflight
        // for a while (several origins): one already there (409) is done.
        done_or(
            api.put_method_response()
                .rest_api_id(id)
                .resource_id(resource_id)
                .http_method("OPTIONS")
                .status_code("200")
                .set_response_parameters(Some(
                    names.iter().map(|name| (header(name), false)).collect(),
                ))
                .send()
                .await,
            "PutMethodResponse",
            |error| error.is_conflict_exception(),
        )?;
        api.put_integration()
            .rest_api_id(id)
            .resource_id(resource_id)
            .http_method("OPTIONS")
            .r#type(IntegrationType::Mock)
            .request_templates("application/json", r#"{"statusCode": 200}"#)
            .send()
            .await
            .map_err(aws_error("PutIntegration"))?;
        let origin = self
            .spec
            .cors_allow_origins
            .first()
            .map_or("*", String::as_str);
        let values = [
            format!("'{origin}'"),
            "'GET,POST,OPTIONS'".to_string(),
            "'Content-Type,Authorization,X-Api-Key'".to_string(),
        ];
        api.put_integration_response()
            .rest_api_id(id)
            .resource_id(resource_id)
            .http_method("OPTIONS")
            .status_code("200")
            .set_response_parameters(Some(
                names
                    .iter()
                    .zip(values)
                    .map(|(name, value)| (header(name), value))
                    .collect(),
            ))
            .send()
            .await
            .map_err(aws_error("PutIntegrationResponse"))?;
        Ok(())
    }

    /// The invoke URL of each route.
    pub fn invoke_urls(&self, ctx: &Context, id: &str) -> Vec<String> {
        self.routes
            .iter()
            .map(|route| {
                format!(
                    "{} https://{id}.execute-api.{}.amazonaws.com/{}{}",
                    route.method, ctx.region, self.spec.stage, route.path
                )
            })
            .collect()
    }
}

fn replace(path: &str, value: &str) -> PatchOperation {
    PatchOperation::builder()
        .op(Op::Replace)
        .path(path)
        .value(value)
        .build()
}

/// The AWS_PROXY integration URI of a function.
pub fn integration_uri(ctx: &Context, function_arn: &str) -> String {
    format!(
        "arn:{}:apigateway:{}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
        ctx.partition, ctx.region
    )
}

/// The REST API kind: the API, its routes, its stage.
pub struct ApiKind;
pub static KIND: ApiKind = ApiKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "description",
        doc: "the API's description",
    },
    FieldDoc {
        name: "routes",
        doc: "method, path, integration type and URI, API key flag; CORS preflight",
    },
    FieldDoc {
        name: "duplicates",
        doc: "other APIs of the same name this deployment owns (deleted)",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
    FieldDoc {
        name: "stage.name",
        doc: "the stage exists",
    },
    FieldDoc {
        name: "stage.deployment",
        doc: "the stage's deployment was made from the current routes",
    },
    FieldDoc {
        name: "stage.throttle",
        doc: "the stage's `*/*` rate and burst limits",
    },
    FieldDoc {
        name: "stage.access_log_destination",
        doc: "the access log group, or none",
    },
];

#[async_trait]
impl ResourceKind for ApiKind {
    fn kind(&self) -> Kind {
        Kind("rest_api")
    }

    fn adopt_setting(&self) -> &'static str {
        "api.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        let Some(api) = &spec.api else {
            return Vec::new();
        };
        let access_log_group_arn = api.access_logging.then(|| {
            format!(
                "arn:{}:logs:{}:{}:log-group:{}",
                ctx.partition,
                ctx.region,
                ctx.account_id,
                crate::desired::access_log_group_name(&api.name)
            )
        });
        let routes = api
            .routes
            .iter()
            .filter_map(|route| {
                let function = spec.function(&route.function)?;
                Some(Route {
                    method: route.method.clone(),
                    path: route.path.clone(),
                    integration_uri: integration_uri(
                        ctx,
                        &crate::desired::function_arn(ctx, &function.name),
                    ),
                })
            })
            .collect();
        vec![Box::new(Desired {
            spec: api.clone(),
            tags: desired_tags(&spec.deployment.name, &spec.tags),
            routes,
            access_log_group_arn,
        })]
    }

    async fn orphans(&self, ctx: &Context, inventory: &Inventory) -> Result<Vec<String>> {
        let mut names: Vec<String> = list(ctx)
            .await?
            .into_iter()
            .filter(|api| ownership_of(&api.tags, &ctx.deployment) == Ownership::Owned)
            .map(|api| api.name)
            .filter(|name| !inventory.is_known(self.kind(), name))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Deletes every API of this name that this deployment owns.
    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        for api in list(ctx).await? {
            if api.name != name || ownership_of(&api.tags, &ctx.deployment) != Ownership::Owned {
                continue;
            }
            match ctx
                .clients
                .apigateway
                .delete_rest_api()
                .rest_api_id(&api.id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_not_found_exception()) => {}
                Err(error) => return Err(aws_error("DeleteRestApi")(error)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for Desired {
    fn kind(&self) -> &'static dyn ResourceKind {
        &KIND
    }

    fn name(&self) -> String {
        self.spec.name.clone()
    }

    fn adopt(&self) -> bool {
        self.spec.adopt
    }

    fn fields(&self) -> Fields {
        Desired::fields(self)
    }

    fn dependencies(&self) -> Vec<ResourceId> {
        let mut needs: Vec<ResourceId> = self
            .routes
            .iter()
            .filter_map(|route| {
                let (_, rest) = route.integration_uri.split_once(":function:")?;
                let function = rest.split('/').next()?;
                Some(ResourceId::new(super::function::KIND.kind(), function))
            })
            .collect();
        if self.access_log_group_arn.is_some() {
            needs.push(ResourceId::new(
                super::log_group::KIND.kind(),
                crate::desired::access_log_group_name(&self.spec.name),
            ));
        }
        needs.sort();
        needs.dedup();
        needs
    }

    async fn lookup(&self, ctx: &Context, refs: &mut Refs) -> Result<()> {
        refs.api_id = self.id(ctx).await?;
        Ok(())
    }

    async fn preflight(&self, ctx: &Context) -> Result<()> {
        Desired::preflight(self, ctx).await
    }

    async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        Desired::observe(self, ctx).await
    }

    async fn create(&self, ctx: &Context) -> Result<()> {
        Desired::create(self, ctx).await
    }

    async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        Desired::update(self, ctx, diffs).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
