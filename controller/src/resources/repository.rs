//! The ECR repository of a function image: scan on push, tag immutability,
//! a lifecycle policy keeping the last N images but never the one a
//! function runs, tags.
//!
//! The image a function is pinned to carries a protected tag,
//! `live-<content tag>` ([`live_tag`]; one per image, so that it works with
//! immutable tags), added by the controller before the function is pointed
//! at it and removed from an image once no function runs it
//! ([`release_live_tags`]). The lifecycle policy ([`lifecycle_policy`]) has
//! a first rule that selects exactly the images with a `live-` tag and can
//! never expire one of them, and a second rule that keeps the last N images
//! of any kind. ECR's documented evaluation makes the first rule a shield
//! ("How lifecycle policies work", "Lifecycle policy evaluation rules",
//! <https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html>):
//!
//! > An image is expired by exactly one or zero rules.
//! > An image that matches the tagging requirements of a higher priority
//! > rule cannot be expired by a rule with a lower priority.
//! > Rules can never mark images that are marked by higher priority rules,
//! > but can still identify them as if they haven't been expired.
//! > Expiration is always ordered by pushed_at_time, and always expires
//! > older images before newer ones.
//! > When using the tagPrefixList, an image is successfully matched if all
//! > of the tags in the tagPrefixList value are matched against any of the
//! > image's tags.
//!
//! and "A rule with a tagStatus value of any must have the highest value for
//! rulePriority and be evaluated last" ("Lifecycle policy properties",
//! <https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_parameters.html>).
//! So the pinned image matches rule 1's tagging requirements; rule 1 does not
//! expire it (its count is above the number of `live-` images the controller
//! ever leaves), and rule 2, of lower priority, cannot. The tests below run
//! this evaluation on lists of images.

use std::collections::BTreeMap;

use aws_sdk_ecr::types::{
    ImageIdentifier, ImageScanningConfiguration, ImageTagMutability, ListImagesFilter, Tag,
    TagStatus,
};
use serde_json::{Value, json};

use async_trait::async_trait;

use super::{
    DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceKind, confirmed_orphans,
    owned_by_tags, owned_unless_gone,
};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::{Context, Observed, Result, aws_error, changed, done_or, error_code, sync_tags};
use crate::field::{FieldDiff, Fields, canonical_policy};
use crate::ownership::{comparable_tags, ownership_of};
use crate::spec::RepositorySpec;

/// The prefix of the protected tag the image a function runs carries.
pub const LIVE_TAG_PREFIX: &str = "live-";

/// How many `live-` images the protecting rule lets be before it would
/// expire the oldest of them. The controller leaves one per repository (the
/// pinned image), plus one per apply interrupted between pinning a new image
/// and releasing the old one, which the next apply releases: this bound is
/// never reached, so the rule never expires anything, it only shields.
pub const LIVE_IMAGES_BOUND: u32 = 1000;

/// The protected tag of the image whose content tag is `content_tag`.
pub fn live_tag(content_tag: &str) -> String {
    format!("{LIVE_TAG_PREFIX}{content_tag}")
}

/// The lifecycle policy of a function's repository: the image a function
/// runs (tagged `live-...`) is never expired; of the others, all but the
/// `keep` most recently pushed images are (the live ones count among those
/// `keep`, as ECR "can still identify them").
pub fn lifecycle_policy(keep: u32) -> Value {
    json!({
        "rules": [
            {
                "rulePriority": 1,
                "description": "Never expire an image a function runs (tagged live- by the controller)",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": [LIVE_TAG_PREFIX],
                    "countType": "imageCountMoreThan",
                    "countNumber": LIVE_IMAGES_BOUND
                },
                "action": {"type": "expire"}
            },
            {
                "rulePriority": 2,
                "description": format!("Keep the last {keep} images"),
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                "action": {"type": "expire"}
            }
        ]
    })
}

/// Removes the `live-` tag from every image of `repository` but those
/// whose digest is in `pinned` (`BatchDeleteImage` with an image tag removes that
/// tag only; the image keeps its content tag, so it stays until the
/// lifecycle policy expires it). Gives the tags removed.
pub async fn release_live_tags(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    pinned: &[&str],
) -> Result<Vec<String>> {
    let mut stale = Vec::new();
    let mut pages = ecr
        .list_images()
        .repository_name(repository)
        .filter(
            ListImagesFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_error("ListImages"))?;
        for id in page.image_ids() {
            let (Some(tag), Some(digest)) = (id.image_tag(), id.image_digest()) else {
                continue;
            };
            if tag.starts_with(LIVE_TAG_PREFIX) && !pinned.contains(&digest) {
                stale.push(tag.to_string());
            }
        }
    }
    for chunk in stale.chunks(100) {
        let ids = chunk
            .iter()
            .map(|tag| ImageIdentifier::builder().image_tag(tag).build())
            .collect();
        let output = ecr
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(ids))
            .send()
            .await
            .map_err(aws_error("BatchDeleteImage"))?;
        if let Some(failure) = output.failures().iter().find(|failure| {
            failure.failure_code().map(|code| code.as_str()) != Some("ImageNotFound")
        }) {
            let code = failure
                .failure_code()
                .map_or("unknown failure", |code| code.as_str());
            return Err(super::Error::Aws {
                operation: "BatchDeleteImage",
                code: Some(code.to_string()),
                kind: super::classify(Some(code), None),
                message: format!("{code}: {}", failure.failure_reason().unwrap_or_default()),
            });
        }
    }
    Ok(stale)
}

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
}

/// Deletes the repository and the images in it.
async fn delete(ctx: &Context, name: &str) -> Result<()> {
    done_or(
        ctx.clients
            .ecr
            .delete_repository()
            .repository_name(name)
            .force(true)
            .send()
            .await,
        "DeleteRepository",
        |e| e.is_repository_not_found_exception(),
    )
}

/// The ECR repository kind.
pub struct RepositoryKind;
pub static KIND: RepositoryKind = RepositoryKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "scan_on_push",
        doc: "scan each pushed image",
    },
    FieldDoc {
        name: "image_tag_mutability",
        doc: "`IMMUTABLE` or `MUTABLE`",
    },
    FieldDoc {
        name: "lifecycle_policy",
        doc: "keeps images a function runs and the last N others",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for RepositoryKind {
    fn kind(&self) -> Kind {
        Kind("repository")
    }

    fn adopt_setting(&self) -> &'static str {
        "functions.<name>.repository.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, _ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        let tags = desired_tags(&spec.deployment.name, &spec.tags);
        spec.functions
            .iter()
            .map(|function| {
                Box::new(Desired {
                    spec: function.repository.clone(),
                    tags: tags.clone(),
                    lifecycle_policy: lifecycle_policy(function.repository.keep_last_images)
                        .to_string(),
                }) as Box<dyn Resource>
            })
            .collect()
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
            inventory.tagged("ecr", "repository/"),
            |name| async move {
                // Exists first: the tags of a deleted repository may still be listed.
                match ctx
                    .clients
                    .ecr
                    .describe_repositories()
                    .repository_names(&name)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(error) if error_code(&error) == Some("RepositoryNotFoundException") => {
                        return Ok(false);
                    }
                    Err(error) => return Err(aws_error("DescribeRepositories")(error)),
                }
                let arn = format!(
                    "arn:{}:ecr:{}:{}:repository/{name}",
                    ctx.partition, ctx.region, ctx.account_id
                );
                owned_unless_gone(
                    ctx.clients
                        .ecr
                        .list_tags_for_resource()
                        .resource_arn(arn)
                        .send()
                        .await,
                    "ListTagsForResource",
                    |error| error_code(error) == Some("RepositoryNotFoundException"),
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
            },
        )
        .await
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        delete(ctx, name).await
    }

    fn keep_orphan(&self, spec: &Spec, name: &str) -> Option<String> {
        spec.functions
            .iter()
            .find(|function| {
                function
                    .image_uri
                    .split_once('/')
                    .is_some_and(|(_, rest)| rest.split([':', '@']).next() == Some(name))
            })
            .map(|function| {
                format!(
                    "kept: function {} still runs an image from it",
                    function.name
                )
            })
    }
}

delegated_resource!(
    Desired,
    name: |this| this.spec.name.clone(),
    fn adopt(&self) -> bool {
        self.spec.adopt
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// An image in a repository, as the lifecycle evaluator sees it.
    #[derive(Clone, Debug)]
    struct Image {
        name: &'static str,
        tags: Vec<String>,
        /// Push time, in days since some origin.
        pushed_at: u32,
    }

    fn selects(selection: &Value, image: &Image) -> bool {
        match selection["tagStatus"].as_str().unwrap() {
            "any" => true,
            "untagged" => image.tags.is_empty(),
            "tagged" => {
                // "an image is successfully matched if all of the tags in
                // the tagPrefixList value are matched against any of the
                // image's tags" (tagPatternList is not used here).
                assert!(selection.get("tagPatternList").is_none());
                let prefixes = selection["tagPrefixList"].as_array().unwrap();
                assert!(!prefixes.is_empty(), "tagged needs a tagPrefixList");
                prefixes.iter().all(|prefix| {
                    let prefix = prefix.as_str().unwrap();
                    image.tags.iter().any(|tag| tag.starts_with(prefix))
                })
            }
            other => panic!("tagStatus {other}"),
        }
    }

    /// ECR's documented lifecycle evaluation: rules in `rulePriority` order;
    /// each identifies the images its selection matches, newest push first,
    /// and picks those past `imageCountMoreThan` (or older than
    /// `sinceImagePushed` days); an image is expired by at most one rule,
    /// and never by a rule of lower priority than one whose tagging
    /// requirements it matches. Gives the names of the expired images.
    fn evaluate(policy: &Value, images: &[Image], today: u32) -> Vec<&'static str> {
        let mut rules = policy["rules"].as_array().unwrap().clone();
        rules.sort_by_key(|rule| rule["rulePriority"].as_u64().unwrap());
        let any_rules = rules
            .iter()
            .filter(|rule| rule["selection"]["tagStatus"] == "any")
            .count();
        assert!(any_rules <= 1);
        if any_rules == 1 {
            assert_eq!(
                rules.last().unwrap()["selection"]["tagStatus"],
                "any",
                "a rule with tagStatus any must have the highest rulePriority"
            );
        }
        let mut by_age: Vec<&Image> = images.iter().collect();
        by_age.sort_by_key(|image| std::cmp::Reverse(image.pushed_at));
        let mut expired: Vec<&'static str> = Vec::new();
        let mut shielded: Vec<&'static str> = Vec::new();
        for rule in &rules {
            let selection = &rule["selection"];
            let count = selection["countNumber"].as_u64().unwrap() as usize;
            let identified: Vec<&&Image> = by_age
                .iter()
                .filter(|image| selects(selection, image))
                .collect();
            let candidates: Vec<&&Image> = match selection["countType"].as_str().unwrap() {
                "imageCountMoreThan" => identified.iter().skip(count).copied().collect(),
                "sinceImagePushed" => identified
                    .iter()
                    .filter(|image| today.saturating_sub(image.pushed_at) as usize > count)
                    .copied()
                    .collect(),
                other => panic!("countType {other}"),
            };
            for image in candidates {
                if !expired.contains(&image.name) && !shielded.contains(&image.name) {
                    expired.push(image.name);
                }
            }
            // Matching this rule's tagging requirements shields an image
            // from every rule of lower priority.
            for image in identified {
                if !shielded.contains(&image.name) {
                    shielded.push(image.name);
                }
            }
        }
        expired.sort();
        expired
    }

    /// Twenty pushes, one a day; the function was rolled back to the image
    /// of day 3, which is the only one with a `live-` tag.
    fn history() -> Vec<Image> {
        let names = [
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
            "d13", "d14", "d15", "d16", "d17", "d18", "d19", "d20",
        ];
        names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let content = format!("{index:016x}");
                let mut tags = vec![content.clone()];
                if *name == "d03" {
                    tags.push(live_tag(&content));
                }
                Image {
                    name,
                    tags,
                    pushed_at: index as u32 + 1,
                }
            })
            .collect()
    }

    #[test]
    fn the_pinned_image_survives_and_the_rest_keeps_the_last_n() {
        let images = history();
        let expired = evaluate(&lifecycle_policy(5), &images, 30);
        assert!(!expired.contains(&"d03"), "{expired:?}");
        // The last five pushes stay; everything else but d03 goes.
        let expected: Vec<&str> = images
            .iter()
            .map(|image| image.name)
            .filter(|name| !["d03", "d16", "d17", "d18", "d19", "d20"].contains(name))
            .collect();
        assert_eq!(expired, expected);
        // Keeping one: still the newest push and the pinned one.
        let expired = evaluate(&lifecycle_policy(1), &images, 30);
        assert_eq!(expired.len(), 18, "{expired:?}");
        assert!(!expired.contains(&"d03") && !expired.contains(&"d20"));
    }

    #[test]
    fn a_keep_last_n_rule_alone_would_expire_the_pinned_image() {
        // The policy before the protected tag: one rule over any image.
        let keep_last = json!({"rules": [{
            "rulePriority": 1,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5},
            "action": {"type": "expire"}
        }]});
        assert!(evaluate(&keep_last, &history(), 30).contains(&"d03"));
    }

    #[test]
    fn stale_live_tags_left_by_interrupted_applies_never_expire_the_pinned_image() {
        // Many images still tagged live- (releases that never ran): the
        // protecting rule's bound is far above them, so nothing live goes.
        let mut images = history();
        for image in images.iter_mut().skip(10) {
            let tag = live_tag(&image.tags[0]);
            image.tags.push(tag);
        }
        let expired = evaluate(&lifecycle_policy(2), &images, 30);
        assert!(
            expired
                .iter()
                .all(|name| !["d03", "d11", "d15", "d20"].contains(name)),
            "{expired:?}"
        );
        assert_eq!(expired.len(), 20 - 11, "{expired:?}");
    }

    #[test]
    fn the_policy_is_valid_by_the_documented_rules() {
        let policy = lifecycle_policy(10);
        let rules = policy["rules"].as_array().unwrap();
        let priorities: Vec<u64> = rules
            .iter()
            .map(|rule| rule["rulePriority"].as_u64().unwrap())
            .collect();
        assert_eq!(priorities, [1, 2]);
        assert_eq!(rules[0]["selection"]["tagPrefixList"], json!(["live-"]));
        assert_eq!(rules[1]["selection"]["tagStatus"], "any");
        assert_eq!(rules[1]["selection"]["countNumber"], 10);
        // Content tags are hex digits: never mistaken for a live- tag.
        assert!(!"0123456789abcdef".starts_with(LIVE_TAG_PREFIX));
        assert_eq!(live_tag("00ff"), "live-00ff");
    }
}
