//! The API Gateway REST API kind: the API itself, found by name among the
//! REST APIs of the account and Region, created, its description and tags
//! kept, the duplicates a retried create left behind deleted, and deleted.
//! Its routes live in `routes`, its stage and deployment in `stage`.

mod routes;
mod stage;

pub use routes::{Route, integration_uri};

use std::collections::{BTreeMap, HashMap};

use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType, Op, PatchOperation};
use serde_json::json;

use async_trait::async_trait;

use super::{DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceId, ResourceKind};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::{Context, Observed, Result, aws_error, changed, observed_value, sync_tags};
use crate::field::{FieldDiff, Fields};
use crate::ownership::{Ownership, comparable_tags, ownership_of};
use crate::spec::ApiSpec;

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: ApiSpec,
    pub tags: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    /// ARN of the access log group, when access logging is on.
    pub access_log_group_arn: Option<String>,
}

/// Brings the tags of the API Gateway resource at `path` (`/restapis/<id>`,
/// `/usageplans/<id>`, `/apikeys/<id>`) to the desired tags, when they
/// differ.
pub(crate) async fn sync_api_gateway_tags(
    ctx: &Context,
    path: &str,
    diffs: &[FieldDiff],
) -> Result<()> {
    let api = &ctx.clients.apigateway;
    let arn = format!("arn:{}:apigateway:{}::{path}", ctx.partition, ctx.region);
    let arn = &arn;
    sync_tags(
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
    .await
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
    let items = ctx
        .clients
        .apigateway
        .get_rest_apis()
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error("GetRestApis"))?;
    Ok(items
        .iter()
        .map(|item| Listed {
            id: item.id().unwrap_or_default().to_string(),
            name: item.name().unwrap_or_default().to_string(),
            description: item.description().unwrap_or_default().to_string(),
            created: item
                .created_date()
                .map(|date| date.secs())
                .unwrap_or_default(),
            tags: listed_tags(item.tags()),
        })
        .collect())
}

/// The tags API Gateway lists with a resource, without AWS's own.
pub(crate) fn listed_tags(
    tags: Option<&std::collections::HashMap<String, String>>,
) -> BTreeMap<String, String> {
    comparable_tags(tags.cloned().unwrap_or_default().into_iter().collect())
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
        sync_api_gateway_tags(ctx, &format!("/restapis/{id}"), diffs).await?;
        if let Some(observed) = observed_value(diffs, "routes") {
            self.converge_routes(ctx, id, observed).await?;
        }
        self.converge_stage(ctx, id, diffs).await?;
        Ok(())
    }
}

fn replace(path: &str, value: &str) -> PatchOperation {
    PatchOperation::builder()
        .op(Op::Replace)
        .path(path)
        .value(value)
        .build()
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
                        &crate::desired::InvokeTarget::of(ctx, function).arn,
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

    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
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

delegated_resource!(
    Desired,
    name: |this| this.spec.name.clone(),
    fn adopt(&self) -> bool {
        self.spec.adopt
    }

    fn dependencies(&self) -> Vec<ResourceId> {
        let mut needs: Vec<ResourceId> = self
            .routes
            .iter()
            .filter_map(|route| {
                crate::desired::InvokeTarget::resource_of_arn(&route.integration_uri)
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
);
