//! A CloudWatch metric alarm that watches a function's release: `Errors`
//! and `Throttles` of the function's release alias (`AWS/Lambda`,
//! dimensions `FunctionName` and `Resource` = `function:alias`), or
//! `5XXError` and p99 `Latency` of the REST API's stage (`AWS/ApiGateway`,
//! dimensions `ApiName` and `Stage`). A shift of traffic to a new version
//! reads them at every check (see `release`).
//!
//! Calls follow the CloudWatch API reference: `PutMetricAlarm` creates or
//! wholly overwrites an alarm, leaving an existing alarm's state as it is,
//! and applies `Tags` only when it creates one
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html>);
//! `DescribeAlarms` pages with `NextToken`
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html>);
//! tags are read with `ListTagsForResource` and changed with `TagResource`
//! / `UntagResource` on the alarm's ARN, since `PutMetricAlarm` ignores
//! `Tags` for an existing alarm.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};
use serde_json::json;

use super::{
    Context, DeleteOptions, FieldDoc, Inventory, Kind, Observed, Resource, ResourceKind, Result,
    aws_error, owned_by_tags, sync_tags,
};
use crate::desired::Refs;
use crate::field::{FieldDiff, Fields};
use crate::ownership::{comparable_tags, desired_tags, ownership_of};
use crate::spec::{AlarmMetric, AlarmSpec, Spec};

/// Every alarm the controller writes has a description starting with this,
/// which is how its own alarms are told apart when listing them.
pub const DESCRIPTION_PREFIX: &str = "anomaly-controller:";
/// One datapoint a minute.
const PERIOD_SECONDS: i32 = 60;

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: AlarmSpec,
    /// The function whose release it watches.
    pub function: String,
    pub namespace: &'static str,
    pub metric_name: &'static str,
    pub dimensions: BTreeMap<String, String>,
    /// `Sum` or `p99`.
    pub statistic: &'static str,
    pub tags: BTreeMap<String, String>,
}

impl Desired {
    fn new(
        spec: &Spec,
        function: &crate::spec::FunctionSpec,
        alarm: &AlarmSpec,
    ) -> Option<Desired> {
        let release = function.release.as_ref()?;
        let (namespace, metric_name, statistic, dimensions) = match alarm.metric {
            AlarmMetric::Errors | AlarmMetric::Throttles => (
                "AWS/Lambda",
                if alarm.metric == AlarmMetric::Errors {
                    "Errors"
                } else {
                    "Throttles"
                },
                "Sum",
                BTreeMap::from([
                    ("FunctionName".to_string(), function.name.clone()),
                    (
                        "Resource".to_string(),
                        format!("{}:{}", function.name, release.alias),
                    ),
                ]),
            ),
            AlarmMetric::Api5xx | AlarmMetric::ApiLatencyP99 => {
                let api = spec.api.as_ref()?;
                (
                    "AWS/ApiGateway",
                    if alarm.metric == AlarmMetric::Api5xx {
                        "5XXError"
                    } else {
                        "Latency"
                    },
                    if alarm.metric == AlarmMetric::Api5xx {
                        "Sum"
                    } else {
                        "p99"
                    },
                    BTreeMap::from([
                        ("ApiName".to_string(), api.name.clone()),
                        ("Stage".to_string(), api.stage.clone()),
                    ]),
                )
            }
        };
        Some(Desired {
            spec: alarm.clone(),
            function: function.name.clone(),
            namespace,
            metric_name,
            dimensions,
            statistic,
            tags: desired_tags(&spec.deployment.name, &spec.tags),
        })
    }

    fn arn(&self, ctx: &Context) -> String {
        alarm_arn(ctx, &self.spec.name)
    }

    fn description(&self) -> String {
        format!(
            "{DESCRIPTION_PREFIX} {} of {} while a release shifts traffic",
            self.metric_name, self.function
        )
    }

    pub fn fields(&self) -> Fields {
        Fields::from([
            ("namespace".into(), json!(self.namespace)),
            ("metric".into(), json!(self.metric_name)),
            ("dimensions".into(), json!(self.dimensions)),
            ("statistic".into(), json!(self.statistic)),
            ("period_seconds".into(), json!(PERIOD_SECONDS)),
            ("evaluation_periods".into(), json!(1)),
            ("threshold".into(), json!(self.spec.threshold)),
            ("comparison".into(), json!("GreaterThanOrEqualToThreshold")),
            ("treat_missing_data".into(), json!("notBreaching")),
            ("tags".into(), json!(self.tags)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let Some(alarm) = describe(ctx, &self.spec.name).await? else {
            return Ok(None);
        };
        let tags = comparable_tags(alarm_tags(ctx, &self.arn(ctx)).await?);
        let mut fields = observed_fields(&alarm);
        fields.insert("tags".into(), json!(tags));
        Ok(Some(Observed {
            ownership: ownership_of(&tags, &ctx.deployment),
            fields,
        }))
    }

    /// Creates the alarm, or overwrites every setting of an existing one
    /// (its state stays as it is).
    async fn put(&self, ctx: &Context, with_tags: bool) -> Result<()> {
        let dimensions = self
            .dimensions
            .iter()
            .map(|(name, value)| Dimension::builder().name(name).value(value).build())
            .collect();
        let mut request = ctx
            .clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(&self.spec.name)
            .alarm_description(self.description())
            .namespace(self.namespace)
            .metric_name(self.metric_name)
            .set_dimensions(Some(dimensions))
            .period(PERIOD_SECONDS)
            .evaluation_periods(1)
            .datapoints_to_alarm(1)
            .threshold(self.spec.threshold)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .treat_missing_data("notBreaching");
        request = if self.statistic == "Sum" {
            request.statistic(Statistic::Sum)
        } else {
            request.extended_statistic(self.statistic)
        };
        if with_tags {
            request = request.set_tags(Some(sdk_tags(&self.tags)));
        }
        request.send().await.map_err(aws_error("PutMetricAlarm"))?;
        Ok(())
    }

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        self.put(ctx, true).await
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let cloudwatch = &ctx.clients.cloudwatch;
        if diffs.iter().any(|diff| diff.field != "tags") {
            self.put(ctx, false).await?;
        }
        sync_tags(
            diffs,
            |to_set| async move {
                cloudwatch
                    .tag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tags(Some(sdk_tags(&to_set)))
                    .send()
                    .await
                    .map_err(aws_error("TagResource"))?;
                Ok(())
            },
            |to_remove| async move {
                cloudwatch
                    .untag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagResource"))?;
                Ok(())
            },
        )
        .await
    }
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

/// The ARN of the alarm `name` in the context's account and region.
pub fn alarm_arn(ctx: &Context, name: &str) -> String {
    format!(
        "arn:{}:cloudwatch:{}:{}:alarm:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

/// The metric alarm `name`, if it exists.
async fn describe(ctx: &Context, name: &str) -> Result<Option<MetricAlarm>> {
    let output = ctx
        .clients
        .cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(aws_error("DescribeAlarms"))?;
    Ok(output
        .metric_alarms()
        .iter()
        .find(|alarm| alarm.alarm_name() == Some(name))
        .cloned())
}

async fn alarm_tags(ctx: &Context, arn: &str) -> Result<BTreeMap<String, String>> {
    let output = ctx
        .clients
        .cloudwatch
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(aws_error("ListTagsForResource"))?;
    Ok(output
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
        .collect())
}

fn observed_fields(alarm: &MetricAlarm) -> Fields {
    let dimensions: BTreeMap<&str, &str> = alarm
        .dimensions()
        .iter()
        .filter_map(|dimension| Some((dimension.name()?, dimension.value()?)))
        .collect();
    let statistic = alarm
        .statistic()
        .map(|statistic| statistic.as_str().to_string())
        .or_else(|| alarm.extended_statistic().map(str::to_string));
    Fields::from([
        ("namespace".into(), json!(alarm.namespace())),
        ("metric".into(), json!(alarm.metric_name())),
        ("dimensions".into(), json!(dimensions)),
        ("statistic".into(), json!(statistic)),
        ("period_seconds".into(), json!(alarm.period())),
        (
            "evaluation_periods".into(),
            json!(alarm.evaluation_periods()),
        ),
        ("threshold".into(), json!(alarm.threshold())),
        (
            "comparison".into(),
            json!(
                alarm
                    .comparison_operator()
                    .map(|operator| operator.as_str())
            ),
        ),
        (
            "treat_missing_data".into(),
            json!(alarm.treat_missing_data()),
        ),
    ])
}

/// The alarms among `names` that are in ALARM now, with the reason
/// CloudWatch gives (one `DescribeAlarms` call per 100 names).
pub async fn firing(ctx: &Context, names: &[String]) -> Result<Vec<(String, String)>> {
    let mut firing = Vec::new();
    for chunk in names.chunks(100) {
        let output = ctx
            .clients
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(aws_error("DescribeAlarms"))?;
        for alarm in output.metric_alarms() {
            if alarm.state_value() == Some(&aws_sdk_cloudwatch::types::StateValue::Alarm) {
                firing.push((
                    alarm.alarm_name().unwrap_or_default().to_string(),
                    alarm.state_reason().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    Ok(firing)
}

/// The managed alarm kind.
pub struct AlarmKind;
pub static KIND: AlarmKind = AlarmKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "namespace",
        doc: "`AWS/Lambda` or `AWS/ApiGateway`",
    },
    FieldDoc {
        name: "metric",
        doc: "`Errors`, `Throttles`, `5XXError` or `Latency`",
    },
    FieldDoc {
        name: "dimensions",
        doc: "the function and its alias, or the API and its stage",
    },
    FieldDoc {
        name: "statistic",
        doc: "`Sum`, or `p99` for latency",
    },
    FieldDoc {
        name: "period_seconds",
        doc: "60",
    },
    FieldDoc {
        name: "evaluation_periods",
        doc: "1",
    },
    FieldDoc {
        name: "threshold",
        doc: "in ALARM at or above it (`release.thresholds`)",
    },
    FieldDoc {
        name: "comparison",
        doc: "`GreaterThanOrEqualToThreshold`",
    },
    FieldDoc {
        name: "treat_missing_data",
        doc: "`notBreaching`: no traffic is not an alarm",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for AlarmKind {
    fn kind(&self) -> Kind {
        Kind("alarm")
    }

    fn adopt_setting(&self) -> &'static str {
        "functions.<name>.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, _ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        spec.functions
            .iter()
            .flat_map(|function| {
                function
                    .release
                    .iter()
                    .flat_map(|release| release.alarms.iter())
                    .filter_map(|alarm| Desired::new(spec, function, alarm))
                    .map(|desired| Box::new(desired) as Box<dyn Resource>)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The alarms tagged as this deployment's (the tagging API lists
    /// `cloudwatch:alarm`) that still exist, carry the tags and that the
    /// file no longer names.
    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        super::confirmed_orphans(
            self.kind(),
            inventory,
            inventory.tagged("cloudwatch", "alarm:"),
            |name| async move {
                if describe(ctx, &name).await?.is_none() {
                    return Ok(false);
                }
                let tags = alarm_tags(ctx, &alarm_arn(ctx, &name)).await?;
                Ok(owned_by_tags(ctx, tags))
            },
        )
        .await
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        // DeleteAlarms takes missing names; a ResourceNotFound, if any, is
        // done too.
        super::done_or(
            ctx.clients
                .cloudwatch
                .delete_alarms()
                .alarm_names(name)
                .send()
                .await,
            "DeleteAlarms",
            |e| e.is_resource_not_found(),
        )
    }
}

delegated_resource!(
    Desired,
    name: |this| this.spec.name.clone(),
);
