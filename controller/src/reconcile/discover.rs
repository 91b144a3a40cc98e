//! Finds what the deployment owns beyond what the file names: one
//! paginated Resource Groups Tagging API query for every ARN carrying the
//! deployment's tags (GetResources lists every resource type except IAM
//! roles and users: "Services that support the Resource Groups Tagging
//! API", <https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/supported-services.html>),
//! then each kind's own confirmation and the kinds the tagging API does not
//! cover.

use aws_sdk_resourcegroupstagging::types::TagFilter;
use futures::future::join_all;

use super::Error;
use crate::ownership::{DEPLOYMENT_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE};
use crate::resources::{
    self, Context, Inventory, KINDS, Resource, ResourceId, ResourceKind, aws_error,
};
use crate::spec::Spec;

/// Every ARN tagged as this deployment's, every page.
async fn tagged_arns(ctx: &Context) -> resources::Result<Vec<String>> {
    let mappings = ctx
        .clients
        .tagging
        .get_resources()
        .tag_filters(
            TagFilter::builder()
                .key(DEPLOYMENT_TAG)
                .values(&ctx.deployment)
                .build(),
        )
        .tag_filters(
            TagFilter::builder()
                .key(MANAGED_BY_TAG)
                .values(MANAGED_BY_VALUE)
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error("GetResources"))?;
    Ok(mappings
        .iter()
        .filter_map(|mapping| mapping.resource_arn().map(str::to_string))
        .collect())
}

/// The orphans of every kind: owned, existing, not named by the file.
pub(super) async fn orphans(
    ctx: &Context,
    spec: &Spec,
    desired: &[Box<dyn Resource>],
) -> Result<Vec<(&'static dyn ResourceKind, String)>, Error> {
    let tagged_arns = tagged_arns(ctx).await.map_err(|cause| Error::Discover {
        what: "resources tagged as this deployment's".into(),
        cause,
    })?;
    let known: std::collections::BTreeSet<ResourceId> =
        desired.iter().map(|resource| resource.id()).collect();
    let inventory = Inventory { tagged_arns, known };
    let found = join_all(
        KINDS
            .iter()
            .map(|kind| async { (*kind, kind.orphans(ctx, spec, &inventory).await) }),
    )
    .await;
    let mut orphans = Vec::new();
    for (kind, names) in found {
        let names = names.map_err(|cause| Error::Discover {
            what: format!("{} resources", kind.kind()),
            cause,
        })?;
        orphans.extend(names.into_iter().map(|name| (kind, name)));
    }
    Ok(orphans)
}
