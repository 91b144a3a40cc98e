//! The API Gateway usage plan of a REST API that requires API keys: the
//! stage it covers and its throttling. Its API key is a kind of its own
//! (`api_key`); both exist only while `api.api_key_required` holds, and
//! are pruned when it no longer does.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_apigateway::types::{ApiStage, Op, PatchOperation, ThrottleSettings};
use serde_json::{Value, json};

use super::{
    Context, DeleteOptions, FieldDoc, Inventory, Kind, Observed, Resource, ResourceId,
    ResourceKind, Result, aws_error, changed, confirmed_orphans,
};
use crate::desired::{KNOWN_AFTER_APPLY, Refs};
use crate::field::{FieldDiff, Fields};
use crate::ownership::{Ownership, desired_tags, ownership_of};
use crate::spec::Spec;

/// The usage plan kind.
pub struct UsagePlanKind;
pub static KIND: UsagePlanKind = UsagePlanKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "api_stages",
        doc: "the one `<api id>:<stage>` it covers",
    },
    FieldDoc {
        name: "throttle",
        doc: "rate and burst limits, the stage's",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

/// The name of the usage plan of the API named `api`.
pub fn usage_plan_name(api: &str) -> String {
    format!("{api}-usage-plan")
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub name: String,
    /// The REST API's name (its id is looked up).
    pub api: String,
    /// `<api id>:<stage>`, or the stage behind [`KNOWN_AFTER_APPLY`].
    pub api_stage: String,
    pub rate_limit: f64,
    pub burst_limit: u32,
    pub tags: BTreeMap<String, String>,
}

/// A usage plan as listed by API Gateway.
struct Found {
    id: String,
    api_stages: Vec<String>,
    throttle: Value,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl ResourceKind for UsagePlanKind {
    fn kind(&self) -> Kind {
        Kind("usage_plan")
    }

    fn adopt_setting(&self) -> &'static str {
        "api.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, _ctx: &Context, refs: &Refs) -> Vec<Box<dyn Resource>> {
        let Some(api) = spec.api.as_ref().filter(|api| api.api_key_required) else {
            return Vec::new();
        };
        let api_id = refs.api_id.as_deref().unwrap_or(KNOWN_AFTER_APPLY);
        vec![Box::new(Desired {
            name: usage_plan_name(&api.name),
            api: api.name.clone(),
            api_stage: format!("{api_id}:{}", api.stage),
            rate_limit: api.throttle_rate_limit,
            burst_limit: api.throttle_burst_limit,
            tags: desired_tags(&spec.deployment.name, &spec.tags),
        })]
    }

    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        let owned: Vec<String> = list(ctx)
            .await?
            .into_iter()
            .filter(|(_, found)| ownership_of(&found.tags, &ctx.deployment) == Ownership::Owned)
            .map(|(name, _)| name)
            .collect();
        // Listed just now with their tags: nothing left to confirm.
        confirmed_orphans(self.kind(), inventory, owned, |_| async { Ok(true) }).await
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        for found in find_owned(ctx, name).await? {
            let api = &ctx.clients.apigateway;
            // API Gateway refuses to delete a plan that still covers a stage.
            if !found.api_stages.is_empty() {
                api.update_usage_plan()
                    .usage_plan_id(&found.id)
                    .set_patch_operations(Some(
                        found
                            .api_stages
                            .iter()
                            .map(|stage| stage_operation(Op::Remove, stage))
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(aws_error("UpdateUsagePlan"))?;
            }
            match api
                .delete_usage_plan()
                .usage_plan_id(&found.id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_not_found_exception()) => {}
                Err(error) => return Err(aws_error("DeleteUsagePlan")(error)),
            }
        }
        Ok(())
    }
}

/// Every usage plan of the account and Region, by name.
async fn list(ctx: &Context) -> Result<Vec<(String, Found)>> {
    let items = ctx
        .clients
        .apigateway
        .get_usage_plans()
        .limit(500)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error("GetUsagePlans"))?;
    Ok(items
        .iter()
        .map(|plan| {
            (
                plan.name().unwrap_or_default().to_string(),
                Found {
                    id: plan.id().unwrap_or_default().to_string(),
                    api_stages: plan
                        .api_stages()
                        .iter()
                        .map(|stage| {
                            format!(
                                "{}:{}",
                                stage.api_id().unwrap_or_default(),
                                stage.stage().unwrap_or_default()
                            )
                        })
                        .collect(),
                    throttle: plan.throttle().map_or(Value::Null, |throttle| {
                        json!({"rate_limit": throttle.rate_limit(), "burst_limit": throttle.burst_limit()})
                    }),
                    tags: super::api::listed_tags(plan.tags()),
                },
            )
        })
        .collect())
}

/// The usage plans named `name` that this deployment owns.
async fn find_owned(ctx: &Context, name: &str) -> Result<Vec<Found>> {
    Ok(list(ctx)
        .await?
        .into_iter()
        .filter(|(plan, found)| {
            plan == name && ownership_of(&found.tags, &ctx.deployment) == Ownership::Owned
        })
        .map(|(_, found)| found)
        .collect())
}

/// The id of this deployment's usage plan named `name`, if it exists.
pub async fn find_id(ctx: &Context, name: &str) -> Result<Option<String>> {
    Ok(find_owned(ctx, name)
        .await?
        .into_iter()
        .next()
        .map(|found| found.id))
}

fn stage_operation(op: Op, api_stage: &str) -> PatchOperation {
    PatchOperation::builder()
        .op(op)
        .path("/apiStages")
        .value(api_stage)
        .build()
}

fn replace(path: &str, value: &str) -> PatchOperation {
    PatchOperation::builder()
        .op(Op::Replace)
        .path(path)
        .value(value)
        .build()
}

impl Desired {
    fn throttle(&self) -> Value {
        json!({"rate_limit": self.rate_limit, "burst_limit": self.burst_limit})
    }

    async fn find(&self, ctx: &Context) -> Result<Option<(Found, Ownership)>> {
        let mut named: Vec<Found> = list(ctx)
            .await?
            .into_iter()
            .filter(|(name, _)| *name == self.name)
            .map(|(_, found)| found)
            .collect();
        named.sort_by_key(|found| ownership_of(&found.tags, &ctx.deployment) != Ownership::Owned);
        Ok(named.into_iter().next().map(|found| {
            let ownership = ownership_of(&found.tags, &ctx.deployment);
            (found, ownership)
        }))
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
            ("api_stages".into(), json!([self.api_stage])),
            ("throttle".into(), self.throttle()),
            ("tags".into(), json!(self.tags)),
        ])
    }

    fn dependencies(&self) -> Vec<ResourceId> {
        vec![ResourceId::new(super::api::KIND.kind(), &self.api)]
    }

    async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        Ok(self.find(ctx).await?.map(|(found, ownership)| Observed {
            ownership,
            fields: Fields::from([
                ("api_stages".into(), json!(found.api_stages)),
                ("throttle".into(), found.throttle),
                ("tags".into(), json!(found.tags)),
            ]),
        }))
    }

    async fn create(&self, ctx: &Context) -> Result<()> {
        if self.find(ctx).await?.is_some() {
            return Ok(());
        }
        let (api_id, stage) = self
            .api_stage
            .split_once(':')
            .unwrap_or((&self.api_stage, ""));
        ctx.clients
            .apigateway
            .create_usage_plan()
            .name(&self.name)
            .api_stages(ApiStage::builder().api_id(api_id).stage(stage).build())
            .throttle(
                ThrottleSettings::builder()
                    .rate_limit(self.rate_limit)
                    .burst_limit(self.burst_limit as i32)
                    .build(),
            )
            .set_tags(Some(self.tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(aws_error("CreateUsagePlan"))?;
        Ok(())
    }

    async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let Some((found, _)) = self.find(ctx).await? else {
            return Err(super::Error::Failed(format!(
                "usage plan {} disappeared",
                self.name
            )));
        };
        let api = &ctx.clients.apigateway;
        let mut operations = Vec::new();
        if changed(diffs, "api_stages") {
            for stale in found.api_stages.iter().filter(|s| **s != self.api_stage) {
                operations.push(stage_operation(Op::Remove, stale));
            }
            if !found.api_stages.contains(&self.api_stage) {
                operations.push(stage_operation(Op::Add, &self.api_stage));
            }
        }
        if changed(diffs, "throttle") {
            operations.push(replace("/throttle/rateLimit", &self.rate_limit.to_string()));
            operations.push(replace(
                "/throttle/burstLimit",
                &self.burst_limit.to_string(),
            ));
        }
        if !operations.is_empty() {
            api.update_usage_plan()
                .usage_plan_id(&found.id)
                .set_patch_operations(Some(operations))
                .send()
                .await
                .map_err(aws_error("UpdateUsagePlan"))?;
        }
        super::api::sync_api_gateway_tags(ctx, &format!("/usageplans/{}", found.id), diffs).await?;
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
