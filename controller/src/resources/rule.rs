//! The EventBridge rule that runs the training function on a schedule: its
//! expression, state, description, target and tags.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use serde_json::{Value, json};

use async_trait::async_trait;

use super::{
    DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceId, ResourceKind,
    confirmed_orphans, owned_by_tags, owned_unless_gone,
};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::{Context, Observed, Result, aws_error, changed, done_or, observed_value, sync_tags};
use crate::field::{FieldDiff, Fields};
use crate::ownership::{comparable_tags, ownership_of};
use crate::spec::ScheduleSpec;

/// Id of the rule's one target.
pub const TARGET_ID: &str = "function";

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: ScheduleSpec,
    pub tags: BTreeMap<String, String>,
    pub function_arn: String,
}

impl Desired {
    /// The ARN the rule has (or will have).
    pub fn arn(&self, ctx: &Context) -> String {
        rule_arn(ctx, &self.spec.name)
    }

    fn state(&self) -> RuleState {
        if self.spec.enabled {
            RuleState::Enabled
        } else {
            RuleState::Disabled
        }
    }

    fn target(&self) -> Value {
        json!([{"id": TARGET_ID, "arn": self.function_arn, "input": self.spec.input}])
    }

    pub fn fields(&self) -> Fields {
        Fields::from([
            ("schedule_expression".into(), json!(self.spec.expression)),
            ("state".into(), json!(self.state().as_str())),
            ("description".into(), json!(self.spec.description)),
            ("targets".into(), self.target()),
            ("tags".into(), json!(self.tags)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let events = &ctx.clients.events;
        let rule = match events.describe_rule().name(&self.spec.name).send().await {
            Ok(output) => output,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(aws_error("DescribeRule")(error)),
        };
        let arn = rule.arn().map_or_else(|| self.arn(ctx), str::to_string);
        let tags: BTreeMap<String, String> = events
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(aws_error("ListTagsForResource"))?
            .tags()
            .iter()
            .map(|tag| (tag.key().to_string(), tag.value().to_string()))
            .collect();
        let tags = comparable_tags(tags);
        let targets: Vec<Value> = events
            .list_targets_by_rule()
            .rule(&self.spec.name)
            .send()
            .await
            .map_err(aws_error("ListTargetsByRule"))?
            .targets()
            .iter()
            .map(|target| json!({"id": target.id(), "arn": target.arn(), "input": target.input()}))
            .collect();
        let fields = Fields::from([
            (
                "schedule_expression".into(),
                json!(rule.schedule_expression()),
            ),
            (
                "state".into(),
                json!(rule.state().map(|state| state.as_str())),
            ),
            (
                "description".into(),
                json!(rule.description().unwrap_or_default()),
            ),
            ("targets".into(), Value::Array(targets)),
            ("tags".into(), json!(tags)),
        ]);
        Ok(Some(Observed {
            ownership: ownership_of(&tags, &ctx.deployment),
            fields,
        }))
    }

    fn sdk_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
        Ok(tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect::<std::result::Result<Vec<_>, _>>()?)
    }

    async fn put_rule(&self, ctx: &Context, with_tags: bool) -> Result<()> {
        let mut request = ctx
            .clients
            .events
            .put_rule()
            .name(&self.spec.name)
            .schedule_expression(&self.spec.expression)
            .state(self.state())
            .description(&self.spec.description);
        if with_tags {
            request = request.set_tags(Some(Self::sdk_tags(&self.tags)?));
        }
        request.send().await.map_err(aws_error("PutRule"))?;
        Ok(())
    }

    async fn put_target(&self, ctx: &Context) -> Result<()> {
        let target = Target::builder()
            .id(TARGET_ID)
            .arn(&self.function_arn)
            .set_input(self.spec.input.clone())
            .build()?;
        let output = ctx
            .clients
            .events
            .put_targets()
            .rule(&self.spec.name)
            .targets(target)
            .send()
            .await
            .map_err(aws_error("PutTargets"))?;
        if output.failed_entry_count() > 0 {
            let reasons: Vec<String> = output
                .failed_entries()
                .iter()
                .map(|entry| {
                    entry
                        .error_message()
                        .unwrap_or("no reason given")
                        .to_string()
                })
                .collect();
            return Err(super::Error::Failed(format!(
                "PutTargets refused the target: {}",
                reasons.join("; ")
            )));
        }
        Ok(())
    }

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        self.put_rule(ctx, true).await?;
        self.put_target(ctx).await
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let events = &ctx.clients.events;
        if ["schedule_expression", "state", "description"]
            .iter()
            .any(|field| changed(diffs, field))
        {
            self.put_rule(ctx, false).await?;
        }
        if let Some(observed) = observed_value(diffs, "targets") {
            let stale: Vec<String> = observed
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|target| target["id"].as_str())
                .filter(|id| *id != TARGET_ID)
                .map(str::to_string)
                .collect();
            if !stale.is_empty() {
                events
                    .remove_targets()
                    .rule(&self.spec.name)
                    .set_ids(Some(stale))
                    .send()
                    .await
                    .map_err(aws_error("RemoveTargets"))?;
            }
            self.put_target(ctx).await?;
        }
        sync_tags(
            diffs,
            |to_set| async move {
                events
                    .tag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tags(Some(Self::sdk_tags(&to_set)?))
                    .send()
                    .await
                    .map_err(aws_error("TagResource"))?;
                Ok(())
            },
            |to_remove| async move {
                events
                    .untag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagResource"))?;
                Ok(())
            },
        )
        .await?;
        Ok(())
    }
}

/// The ARN of a rule on the default event bus.
pub fn rule_arn(ctx: &Context, name: &str) -> String {
    format!(
        "arn:{}:events:{}:{}:rule/{}",
        ctx.partition, ctx.region, ctx.account_id, name
    )
}

/// Removes the targets, then the rule.
async fn delete(ctx: &Context, name: &str) -> Result<()> {
    let events = &ctx.clients.events;
    let targets = match events.list_targets_by_rule().rule(name).send().await {
        Ok(output) => output
            .targets()
            .iter()
            .map(|target| target.id().to_string())
            .collect::<Vec<_>>(),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(());
        }
        Err(error) => return Err(aws_error("ListTargetsByRule")(error)),
    };
    if !targets.is_empty() {
        events
            .remove_targets()
            .rule(name)
            .set_ids(Some(targets))
            .send()
            .await
            .map_err(aws_error("RemoveTargets"))?;
    }
    done_or(
        events.delete_rule().name(name).send().await,
        "DeleteRule",
        |e| e.is_resource_not_found_exception(),
    )
}

/// The EventBridge schedule rule kind.
pub struct RuleKind;
pub static KIND: RuleKind = RuleKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "schedule_expression",
        doc: "`rate(...)` or `cron(...)`",
    },
    FieldDoc {
        name: "state",
        doc: "`ENABLED` or `DISABLED`",
    },
    FieldDoc {
        name: "description",
        doc: "the rule's description",
    },
    FieldDoc {
        name: "targets",
        doc: "exactly one target: the function, with its input",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for RuleKind {
    fn kind(&self) -> Kind {
        Kind("rule")
    }

    fn adopt_setting(&self) -> &'static str {
        "schedule.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        let Some(schedule) = &spec.schedule else {
            return Vec::new();
        };
        let Some(function) = spec.function(&schedule.function) else {
            return Vec::new();
        };
        vec![Box::new(Desired {
            spec: schedule.clone(),
            tags: desired_tags(&spec.deployment.name, &spec.tags),
            function_arn: crate::desired::InvokeTarget::of(ctx, function).arn,
        })]
    }

    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        // Rules of the default event bus only: `rule/<name>`.
        let names = inventory
            .tagged("events", "rule/")
            .into_iter()
            .filter(|name| !name.contains('/'))
            .collect();
        confirmed_orphans(self.kind(), inventory, names, |name| async move {
            // Exists first: the tags of a deleted rule may still be listed.
            match ctx.clients.events.describe_rule().name(&name).send().await {
                Ok(_) => {}
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    return Ok(false);
                }
                Err(error) => return Err(aws_error("DescribeRule")(error)),
            }
            owned_unless_gone(
                ctx.clients
                    .events
                    .list_tags_for_resource()
                    .resource_arn(rule_arn(ctx, &name))
                    .send()
                    .await,
                "ListTagsForResource",
                |error| {
                    error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception())
                },
                |output| {
                    owned_by_tags(
                        ctx,
                        output
                            .tags()
                            .iter()
                            .map(|tag| (tag.key().to_string(), tag.value().to_string())),
                    )
                },
            )
        })
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

    fn dependencies(&self) -> Vec<ResourceId> {
        crate::desired::InvokeTarget::resource_of_arn(&self.function_arn)
            .into_iter()
            .collect()
    }
);
