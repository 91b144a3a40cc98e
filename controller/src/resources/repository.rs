//! The ECR repository of a function image: scan on push, tag immutability,
//! a lifecycle policy keeping the last N images, tags.

use std::collections::BTreeMap;

use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability, Tag};
use serde_json::json;

use super::{Context, Observed, Result, aws_error, changed, done_or, error_code, sync_tags};
use crate::field::{FieldDiff, Fields, canonical_policy};
use crate::ownership::{comparable_tags, ownership_of};
use crate::spec::RepositorySpec;

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: RepositorySpec,
    pub tags: BTreeMap<String, String>,
    pub lifecycle_policy: String,
}

impl Desired {
    fn mutability(&self) -> ImageTagMutability {
        if self.spec.immutable_tags {
            ImageTagMutability::Immutable
        } else {
            ImageTagMutability::Mutable
        }
    }

    fn arn(&self, ctx: &Context) -> String {
        format!(
            "arn:{}:ecr:{}:{}:repository/{}",
            ctx.partition, ctx.region, ctx.account_id, self.spec.name
        )
    }

    pub fn fields(&self) -> Fields {
        Fields::from([
            ("scan_on_push".into(), json!(self.spec.scan_on_push)),
            (
                "image_tag_mutability".into(),
                json!(self.mutability().as_str()),
            ),
            (
                "lifecycle_policy".into(),
                canonical_policy(&self.lifecycle_policy),
            ),
            ("tags".into(), json!(self.tags)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let ecr = &ctx.clients.ecr;
        let found = match ecr
            .describe_repositories()
            .repository_names(&self.spec.name)
            .send()
            .await
        {
            Ok(output) => output.repositories().first().cloned(),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_repository_not_found_exception()) =>
            {
                None
            }
            Err(error) => return Err(aws_error("DescribeRepositories")(error)),
        };
        let Some(repository) = found else {
            return Ok(None);
        };
        let arn = repository
            .repository_arn()
            .map_or_else(|| self.arn(ctx), str::to_string);
        let tags: BTreeMap<String, String> = ecr
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
        let lifecycle = match ecr
            .get_lifecycle_policy()
            .repository_name(&self.spec.name)
            .send()
            .await
        {
            Ok(output) => output.lifecycle_policy_text().map(canonical_policy),
            Err(error) if error_code(&error) == Some("LifecyclePolicyNotFoundException") => None,
            Err(error) => return Err(aws_error("GetLifecyclePolicy")(error)),
        };
        let fields = Fields::from([
            (
                "scan_on_push".into(),
                json!(
                    repository
                        .image_scanning_configuration()
                        .is_some_and(|scan| scan.scan_on_push())
                ),
            ),
            (
                "image_tag_mutability".into(),
                json!(
                    repository
                        .image_tag_mutability()
                        .map(|mutability| mutability.as_str())
                ),
            ),
            ("lifecycle_policy".into(), json!(lifecycle)),
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

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        let result = ctx
            .clients
            .ecr
            .create_repository()
            .repository_name(&self.spec.name)
            .image_tag_mutability(self.mutability())
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(self.spec.scan_on_push)
                    .build(),
            )
            .set_tags(Some(Self::sdk_tags(&self.tags)?))
            .send()
            .await;
        done_or(result, "CreateRepository", |e| {
            e.is_repository_already_exists_exception()
        })
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let ecr = &ctx.clients.ecr;
        let name = &self.spec.name;
        sync_tags(
            &self.tags,
            diffs,
            |to_set| async move {
                ecr.tag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tags(Some(Self::sdk_tags(&to_set)?))
                    .send()
                    .await
                    .map_err(aws_error("TagResource"))?;
                Ok(())
            },
            |to_remove| async move {
                ecr.untag_resource()
                    .resource_arn(self.arn(ctx))
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagResource"))?;
                Ok(())
            },
        )
        .await?;
        if changed(diffs, "scan_on_push") {
            ecr.put_image_scanning_configuration()
                .repository_name(name)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(self.spec.scan_on_push)
                        .build(),
                )
                .send()
                .await
                .map_err(aws_error("PutImageScanningConfiguration"))?;
        }
        if changed(diffs, "image_tag_mutability") {
            ecr.put_image_tag_mutability()
                .repository_name(name)
                .image_tag_mutability(self.mutability())
                .send()
                .await
                .map_err(aws_error("PutImageTagMutability"))?;
        }
        if changed(diffs, "lifecycle_policy") {
            ecr.put_lifecycle_policy()
                .repository_name(name)
                .lifecycle_policy_text(&self.lifecycle_policy)
                .send()
                .await
                .map_err(aws_error("PutLifecyclePolicy"))?;
        }
        Ok(())
    }

    /// Deletes the repository and the images in it.
    pub async fn delete(&self, ctx: &Context) -> Result<()> {
        done_or(
            ctx.clients
                .ecr
                .delete_repository()
                .repository_name(&self.spec.name)
                .force(true)
                .send()
                .await,
            "DeleteRepository",
            |e| e.is_repository_not_found_exception(),
        )
    }
}
