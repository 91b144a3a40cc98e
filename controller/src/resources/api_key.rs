//! The API key of a REST API that requires keys, linked to its usage plan.
//! Its value is AWS's: the controller never reads or prints it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_apigateway::types::{Op, PatchOperation};
use serde_json::json;

use super::{
    Context, DeleteOptions, FieldDoc, Inventory, Kind, Observed, Resource, ResourceId,
    ResourceKind, Result, aws_error, changed, confirmed_orphans,
};
use crate::desired::Refs;
use crate::field::{FieldDiff, Fields};
use crate::ownership::{Ownership, desired_tags, ownership_of};
use crate::spec::Spec;

/// The API key kind.
pub struct ApiKeyKind;
pub static KIND: ApiKeyKind = ApiKeyKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "enabled",
        doc: "the key is accepted",
    },
    FieldDoc {
        name: "usage_plans",
        doc: "linked to the API's usage plan",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub name: String,
    /// The usage plan it is linked to.
    pub usage_plan: String,
    pub tags: BTreeMap<String, String>,
}

/// An API key as listed by API Gateway (never its value).
struct Found {
    id: String,
    enabled: bool,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl ResourceKind for ApiKeyKind {
    fn kind(&self) -> Kind {
        Kind("api_key")
    }

    fn adopt_setting(&self) -> &'static str {
        "api.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, _ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        let Some(api) = spec.api.as_ref().filter(|api| api.api_key_required) else {
            return Vec::new();
        };
        vec![Box::new(Desired {
            name: format!("{}-key", api.name),
            usage_plan: super::usage_plan::usage_plan_name(&api.name),
            tags: desired_tags(&spec.deployment.name, &spec.tags),
        })]
    }

    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        let owned: Vec<String> = list(ctx, None)
            .await?
            .into_iter()
            .filter(|(_, found)| ownership_of(&found.tags, &ctx.deployment) == Ownership::Owned)
            .map(|(name, _)| name)
            .collect();
        // Listed just now with their tags: nothing left to confirm.
        confirmed_orphans(self.kind(), inventory, owned, |_| async { Ok(true) }).await
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        for (_, found) in list(ctx, Some(name)).await? {
            if ownership_of(&found.tags, &ctx.deployment) != Ownership::Owned {
                continue;
            }
            match ctx
                .clients
                .apigateway
                .delete_api_key()
                .api_key(&found.id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_not_found_exception()) => {}
                Err(error) => return Err(aws_error("DeleteApiKey")(error)),
            }
        }
        Ok(())
    }
}

/// The API keys of the account and Region (those named `name` only, when
/// given), by name, without their values.
async fn list(ctx: &Context, name: Option<&str>) -> Result<Vec<(String, Found)>> {
    let items = ctx
        .clients
        .apigateway
        .get_api_keys()
        .set_name_query(name.map(str::to_string))
        .include_values(false)
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error("GetApiKeys"))?;
    Ok(items
        .iter()
        .filter(|key| name.is_none_or(|name| key.name() == Some(name)))
        .map(|key| {
            (
                key.name().unwrap_or_default().to_string(),
                Found {
                    id: key.id().unwrap_or_default().to_string(),
                    enabled: key.enabled(),
                    tags: super::api::listed_tags(key.tags()),
                },
            )
        })
        .collect())
}

impl Desired {
    async fn find(&self, ctx: &Context) -> Result<Option<(Found, Ownership)>> {
        let mut named: Vec<Found> = list(ctx, Some(&self.name))
            .await?
            .into_iter()
            .map(|(_, found)| found)
            .collect();
        named.sort_by_key(|found| ownership_of(&found.tags, &ctx.deployment) != Ownership::Owned);
        Ok(named.into_iter().next().map(|found| {
            let ownership = ownership_of(&found.tags, &ctx.deployment);
            (found, ownership)
        }))
    }

    /// The names of the usage plans this key is linked to, among the one it
    /// should be linked to.
    async fn linked_plans(&self, ctx: &Context, key_id: &str) -> Result<Vec<String>> {
        let Some(plan_id) = super::usage_plan::find_id(ctx, &self.usage_plan).await? else {
            return Ok(Vec::new());
        };
        let linked = ctx
            .clients
            .apigateway
            .get_usage_plan_keys()
            .usage_plan_id(&plan_id)
            .send()
            .await
            .map_err(aws_error("GetUsagePlanKeys"))?
            .items()
            .iter()
            .any(|key| key.id() == Some(key_id));
        Ok(if linked {
            vec![self.usage_plan.clone()]
        } else {
            Vec::new()
        })
    }

    async fn link(&self, ctx: &Context, key_id: &str) -> Result<()> {
        let Some(plan_id) = super::usage_plan::find_id(ctx, &self.usage_plan).await? else {
            return Err(super::Error::Failed(format!(
                "usage plan {} does not exist",
                self.usage_plan
            )));
        };
        super::done_or(
            ctx.clients
                .apigateway
                .create_usage_plan_key()
                .usage_plan_id(plan_id)
                .key_id(key_id)
                .key_type("API_KEY")
                .send()
                .await,
            "CreateUsagePlanKey",
            |error| error.is_conflict_exception(),
        )
    }
}

#[async_trait]
impl Resource for Desired {
    fn kind(&self) -> &'static dyn ResourceKind {
        &KIND
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn fields(&self) -> Fields {
        Fields::from([
            ("enabled".into(), json!(true)),
            ("usage_plans".into(), json!([self.usage_plan])),
            ("tags".into(), json!(self.tags)),
        ])
    }

    fn dependencies(&self) -> Vec<ResourceId> {
        vec![ResourceId::new(
            super::usage_plan::KIND.kind(),
            &self.usage_plan,
        )]
    }

    async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let Some((found, ownership)) = self.find(ctx).await? else {
            return Ok(None);
        };
        let plans = self.linked_plans(ctx, &found.id).await?;
        Ok(Some(Observed {
            ownership,
            fields: Fields::from([
                ("enabled".into(), json!(found.enabled)),
                ("usage_plans".into(), json!(plans)),
                ("tags".into(), json!(found.tags)),
            ]),
        }))
    }

    async fn create(&self, ctx: &Context) -> Result<()> {
        let id = match self.find(ctx).await? {
            Some((found, _)) => found.id,
            None => ctx
                .clients
                .apigateway
                .create_api_key()
                .name(&self.name)
                .enabled(true)
                .set_tags(Some(self.tags.clone().into_iter().collect()))
                .send()
                .await
                .map_err(aws_error("CreateApiKey"))?
                .id()
                .unwrap_or_default()
                .to_string(),
        };
        self.link(ctx, &id).await
    }

    async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let Some((found, _)) = self.find(ctx).await? else {
            return Err(super::Error::Failed(format!(
                "API key {} disappeared",
                self.name
            )));
        };
        let api = &ctx.clients.apigateway;
        if changed(diffs, "enabled") {
            api.update_api_key()
                .api_key(&found.id)
                .patch_operations(
                    PatchOperation::builder()
                        .op(Op::Replace)
                        .path("/enabled")
                        .value("true")
                        .build(),
                )
                .send()
                .await
                .map_err(aws_error("UpdateApiKey"))?;
        }
        if changed(diffs, "usage_plans") {
            self.link(ctx, &found.id).await?;
        }
        super::api::sync_api_gateway_tags(ctx, &format!("/apikeys/{}", found.id), diffs).await?;
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
