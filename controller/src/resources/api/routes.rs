//! The REST API's routes: the resources and methods that hold them, the
//! AWS_PROXY integrations of the functions that answer them, and the CORS
//! preflight of each path.

use std::collections::BTreeMap;

use aws_sdk_apigateway::types::IntegrationType;
use serde_json::{Value, json};

use super::{Desired, replace};
use crate::resources::{Context, Error, Result, aws_error, done_or};

/// One route as the API holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The AWS_PROXY integration URI of the function that answers it.
    pub integration_uri: String,
}

/// The AWS_PROXY integration URI of a function.
pub fn integration_uri(ctx: &Context, function_arn: &str) -> String {
    format!(
        "arn:{}:apigateway:{}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
        ctx.partition, ctx.region
    )
}

impl Desired {
    pub(super) fn desired_routes(&self) -> BTreeMap<String, Value> {
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

    pub(super) async fn observe_routes(
        &self,
        ctx: &Context,
        id: &str,
    ) -> Result<BTreeMap<String, Value>> {
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

    /// Creates missing resources and methods, changes what differs on the
    /// methods that exist, and deletes methods no route asks for.
    ///
    /// PutMethod only creates: on a method that exists AWS answers 409
    /// ConflictException (API Gateway API reference, PutMethod). An existing
    /// method's API-key flag changes through UpdateMethod; its integration is
    /// replaced by PutIntegration, which overwrites.
    pub(super) async fn converge_routes(
        &self,
        ctx: &Context,
        id: &str,
        observed: &Value,
    ) -> Result<()> {
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
            .ok_or_else(|| Error::Failed("the API has no root resource".into()))?;
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
