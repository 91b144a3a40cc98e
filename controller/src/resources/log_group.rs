//! The CloudWatch log group of a function (`/aws/lambda/<name>`), created
//! before the function so that Lambda never creates it without retention.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use async_trait::async_trait;

use super::{
    DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceKind, confirmed_orphans,
    owned_by_tags, owned_unless_gone,
};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::{Context, Observed, Result, aws_error, changed, done_or, sync_tags};
use crate::field::{FieldDiff, Fields};
use crate::ownership::{comparable_tags, ownership_of};
use crate::spec::LogGroupSpec;

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: LogGroupSpec,
    pub tags: BTreeMap<String, String>,
}

impl Desired {
    fn arn(&self, ctx: &Context) -> String {
        format!(
            "arn:{}:logs:{}:{}:log-group:{}",
            ctx.partition, ctx.region, ctx.account_id, self.spec.name
        )
    }

    pub fn fields(&self) -> Fields {
        Fields::from([
            ("retention_days".into(), json!(self.spec.retention_days)),
            ("tags".into(), json!(self.tags)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let logs = &ctx.clients.logs;
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(&self.spec.name)
            .send()
            .await
            .map_err(aws_error("DescribeLogGroups"))?;
        let Some(group) = groups
            .log_groups()
            .iter()
            .find(|group| group.log_group_name() == Some(self.spec.name.as_str()))
        else {
            return Ok(None);
        };
        let tags: BTreeMap<String, String> = logs
            .list_tags_for_resource()
            .resource_arn(self.arn(ctx))
            .send()
            .await
            .map_err(aws_error("ListTagsForResource"))?
            .tags
            .unwrap_or_default()
            .into_iter()
            .collect();
        let tags = comparable_tags(tags);
        let fields = Fields::from([
            ("retention_days".into(), json!(group.retention_in_days())),
            ("tags".into(), json!(tags)),
        ]);
        Ok(Some(Observed {
            ownership: ownership_of(&tags, &ctx.deployment),
            fields,
        }))
    }

    fn sdk_tags(tags: &BTreeMap<String, String>) -> HashMap<String, String> {
        tags.iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        let result = ctx
            .clients
            .logs
            .create_log_group()
            .log_group_name(&self.spec.name)
            .set_tags(Some(Self::sdk_tags(&self.tags)))
            .send()
            .await;
        done_or(result, "CreateLogGroup", |e| {
            e.is_resource_already_exists_exception()
        })
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let logs = &ctx.clients.logs;
        sync_tags(
            diffs,
            |to_set| async move {
                logs.tag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tags(Some(Self::sdk_tags(&to_set)))
                    .send()
                    .await
                    .map_err(aws_error("TagResource"))?;
                Ok(())
            },
            |to_remove| async move {
                logs.untag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagResource"))?;
                Ok(())
            },
        )
        .await?;
        if changed(diffs, "retention_days") {
            logs.put_retention_policy()
                .log_group_name(&self.spec.name)
                .retention_in_days(self.spec.retention_days as i32)
                .send()
                .await
                .map_err(aws_error("PutRetentionPolicy"))?;
        }
        Ok(())
    }
}

async fn delete(ctx: &Context, name: &str) -> Result<()> {
    done_or(
        ctx.clients
            .logs
            .delete_log_group()
            .log_group_name(name)
            .send()
            .await,
        "DeleteLogGroup",
        |e| e.is_resource_not_found_exception(),
    )
}

/// The CloudWatch log group kind.
pub struct LogGroupKind;
pub static KIND: LogGroupKind = LogGroupKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "retention_days",
        doc: "days the log events are kept",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for LogGroupKind {
    fn kind(&self) -> Kind {
        Kind("log_group")
    }

    fn adopt_setting(&self) -> &'static str {
        "functions.<name>.logs.adopt (api.adopt for the access log group)"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, _ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        let tags = desired_tags(&spec.deployment.name, &spec.tags);
        let mut groups: Vec<Box<dyn Resource>> = spec
            .functions
            .iter()
            .map(|function| {
                Box::new(Desired {
                    spec: function.logs.clone(),
                    tags: tags.clone(),
                }) as Box<dyn Resource>
            })
            .collect();
        if let Some(api) = spec.api.as_ref().filter(|api| api.access_logging) {
            groups.push(Box::new(Desired {
                spec: LogGroupSpec {
                    name: crate::desired::access_log_group_name(&api.name),
                    retention_days: 7,
                    adopt: api.adopt,
                },
                tags,
            }));
        }
        groups
    }

    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        confirmed_orphans(
            self.kind(),
            inventory,
            inventory.tagged("logs", "log-group:"),
            |name| async move {
                // Exists first: the tags of a deleted group may still be listed.
                let groups = ctx
                    .clients
                    .logs
                    .describe_log_groups()
                    .log_group_name_prefix(&name)
                    .send()
                    .await
                    .map_err(aws_error("DescribeLogGroups"))?;
                if !groups
                    .log_groups()
                    .iter()
                    .any(|group| group.log_group_name() == Some(name.as_str()))
                {
                    return Ok(false);
                }
                let arn = format!(
                    "arn:{}:logs:{}:{}:log-group:{name}",
                    ctx.partition, ctx.region, ctx.account_id
                );
                owned_unless_gone(
                    ctx.clients
                        .logs
                        .list_tags_for_resource()
                        .resource_arn(arn)
                        .send()
                        .await,
                    "ListTagsForResource",
                    |error| {
                        error
                            .as_service_error()
                            .is_some_and(|e| e.is_resource_not_found_exception())
                    },
                    |output| owned_by_tags(ctx, output.tags().cloned().unwrap_or_default()),
                )
            },
        )
        .await
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        delete(ctx, name).await
    }
}

delegated_resource!(
    Desired,
    name: |this| this.spec.name.clone(),
    fn adopt(&self) -> bool {
        self.spec.adopt
    }
);
