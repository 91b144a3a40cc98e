//! The S3 bucket that holds the models: versioning, public access block,
//! default encryption, expiry of noncurrent versions, tags.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectIdentifier, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use serde_json::json;

use async_trait::async_trait;

use super::{
    Context, DeleteOptions, FieldDoc, Inventory, Kind, Observed, Resource, ResourceKind, Result,
    aws_error, changed, confirmed_orphans, desired_value, error_code, owned_by_tags,
    owned_unless_gone,
};
use crate::desired::Refs;
use crate::field::{FieldDiff, Fields};
use crate::ownership::{Ownership, comparable_tags, desired_tags, ownership_of};
use crate::spec::{BucketSpec, Spec};

/// The model bucket's kind.
pub struct BucketKind;
pub static KIND: BucketKind = BucketKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "versioning",
        doc: "object versioning on",
    },
    FieldDoc {
        name: "encryption",
        doc: "default encryption (`AES256` or `aws:kms`)",
    },
    FieldDoc {
        name: "public_access_block",
        doc: "all four public access block settings",
    },
    FieldDoc {
        name: "noncurrent_version_expiry_days",
        doc: "lifecycle expiry of noncurrent model versions",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for BucketKind {
    fn kind(&self) -> Kind {
        Kind("bucket")
    }

    fn adopt_setting(&self) -> &'static str {
        "bucket.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, _ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        vec![Box::new(Desired {
            spec: spec.bucket.clone(),
            tags: desired_tags(&spec.deployment.name, &spec.tags),
        })]
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
            inventory.tagged("s3", ""),
            |name| async move { owned_bucket(ctx, &name).await },
        )
        .await
    }

    async fn delete(&self, ctx: &Context, name: &str, options: DeleteOptions) -> Result<()> {
        delete(ctx, name, options.delete_contents).await
    }

    fn keep_orphan(&self, spec: &Spec, _name: &str) -> Option<String> {
        spec.bucket.retain_on_destroy.then(|| {
            "kept with its models (bucket.retain_on_destroy; destroy --delete-bucket removes it)"
                .to_string()
        })
    }

    fn keep_on_destroy(&self, spec: &Spec, name: &str) -> Option<String> {
        self.keep_orphan(spec, name)
    }

    fn orphan_delete_options(&self, _spec: &Spec) -> DeleteOptions {
        DeleteOptions {
            delete_contents: true,
        }
    }
}

/// Whether the bucket exists and carries this deployment's tags.
async fn owned_bucket(ctx: &Context, name: &str) -> Result<bool> {
    owned_unless_gone(
        ctx.clients
            .s3
            .get_bucket_tagging()
            .bucket(name)
            .send()
            .await,
        "GetBucketTagging",
        |error| matches!(error_code(error), Some("NoSuchBucket" | "NoSuchTagSet")),
        |tagging| {
            owned_by_tags(
                ctx,
                tagging
                    .tag_set()
                    .iter()
                    .map(|tag| (tag.key().to_string(), tag.value().to_string())),
            )
        },
    )
}

delegated_resource!(
    Desired,
    name: |this| this.spec.name.clone(),
    fn adopt(&self) -> bool {
        self.spec.adopt
    }
);

/// ID of the lifecycle rule that expires noncurrent model versions.
const EXPIRY_RULE_ID: &str = "expire-noncurrent-models";
/// An untagged, empty bucket younger than this is taken for one an
/// interrupted apply created (S3 cannot tag a bucket in its create call).
const INTERRUPTED_CREATE_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: BucketSpec,
    pub tags: BTreeMap<String, String>,
}

impl Desired {
    pub fn fields(&self) -> Fields {
        let block = self.spec.block_public_access;
        Fields::from([
            ("versioning".into(), json!(self.spec.versioning)),
            ("encryption".into(), json!(self.spec.encryption.algorithm())),
            (
                "public_access_block".into(),
                json!({"block_public_acls": block, "ignore_public_acls": block,
                       "block_public_policy": block, "restrict_public_buckets": block}),
            ),
            (
                "noncurrent_version_expiry_days".into(),
                json!(self.spec.noncurrent_version_expiry_days),
            ),
            ("tags".into(), json!(self.tags)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let s3 = &ctx.clients.s3;
        let name = &self.spec.name;
        match s3.head_bucket().bucket(name).send().await {
            Ok(_) => {}
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Ok(None);
            }
            Err(error)
                if error
                    .raw_response()
                    .is_some_and(|raw| raw.status().as_u16() == 403) =>
            {
                return Err(super::Error::Failed(format!(
                    "the bucket name {name:?} is taken by another AWS account; set bucket.name to another name"
                )));
            }
            Err(error) => return Err(aws_error("HeadBucket")(error)),
        }
        let tags = match s3.get_bucket_tagging().bucket(name).send().await {
            Ok(output) => output
                .tag_set()
                .iter()
                .map(|tag| (tag.key().to_string(), tag.value().to_string()))
                .collect(),
            Err(error) if error_code(&error) == Some("NoSuchTagSet") => BTreeMap::new(),
            Err(error) => return Err(aws_error("GetBucketTagging")(error)),
        };
        let tags = comparable_tags(tags);
        let versioning_status = match s3.get_bucket_versioning().bucket(name).send().await {
            Ok(output) => output.status().cloned(),
            // Some S3-compatible servers name the document's root element
            // `GetBucketVersioningResponse`, which the SDK refuses: read the
            // status from the successful answer itself.
            Err(error)
                if error
                    .raw_response()
                    .is_some_and(|raw| raw.status().is_success()) =>
            {
                error
                    .raw_response()
                    .and_then(|raw| raw.body().bytes())
                    .and_then(|body| versioning_status_in(&String::from_utf8_lossy(body)))
            }
            Err(error) => return Err(aws_error("GetBucketVersioning")(error)),
        };
        let public_access = match s3.get_public_access_block().bucket(name).send().await {
            Ok(output) => output.public_access_block_configuration().cloned(),
            Err(error) if error_code(&error) == Some("NoSuchPublicAccessBlockConfiguration") => {
                None
            }
            Err(error) => return Err(aws_error("GetPublicAccessBlock")(error)),
        };
        let public_access =
            public_access.unwrap_or_else(|| PublicAccessBlockConfiguration::builder().build());
        let encryption = match s3.get_bucket_encryption().bucket(name).send().await {
            Ok(output) => output
                .server_side_encryption_configuration()
                .and_then(|config| config.rules().first())
                .and_then(|rule| rule.apply_server_side_encryption_by_default())
                .map(|default| default.sse_algorithm().as_str().to_string()),
            Err(error)
                if error_code(&error) == Some("ServerSideEncryptionConfigurationNotFoundError") =>
            {
                None
            }
            Err(error) => return Err(aws_error("GetBucketEncryption")(error)),
        };
        let expiry_days = match s3
            .get_bucket_lifecycle_configuration()
            .bucket(name)
            .send()
            .await
        {
            Ok(output) => output
                .rules()
                .iter()
                .find(|rule| {
                    rule.id() == Some(EXPIRY_RULE_ID) && rule.status() == &ExpirationStatus::Enabled
                })
                .and_then(|rule| rule.noncurrent_version_expiration())
                .and_then(|expiration| expiration.noncurrent_days()),
            Err(error) if error_code(&error) == Some("NoSuchLifecycleConfiguration") => None,
            Err(error) => return Err(aws_error("GetBucketLifecycleConfiguration")(error)),
        };
        let mut ownership = ownership_of(&tags, &ctx.deployment);
        if ownership == Ownership::Unmanaged && tags.is_empty() && versioning_status.is_none() {
            ownership = self.claim_interrupted_create(ctx).await?;
        }
        let fields = Fields::from([
            (
                "versioning".into(),
                json!(versioning_status == Some(BucketVersioningStatus::Enabled)),
            ),
            ("encryption".into(), json!(encryption)),
            (
                "public_access_block".into(),
                json!({
                    "block_public_acls": public_access.block_public_acls().unwrap_or(false),
                    "ignore_public_acls": public_access.ignore_public_acls().unwrap_or(false),
                    "block_public_policy": public_access.block_public_policy().unwrap_or(false),
                    "restrict_public_buckets": public_access.restrict_public_buckets().unwrap_or(false),
                }),
            ),
            ("noncurrent_version_expiry_days".into(), json!(expiry_days)),
            ("tags".into(), json!(tags)),
        ]);
        Ok(Some(Observed { ownership, fields }))
    }

    /// A bucket with no tags, no versioning ever set, no object and a
    /// creation time within the last hour is what an apply interrupted
    /// between `CreateBucket` and `PutBucketTagging` leaves behind.
    async fn claim_interrupted_create(&self, ctx: &Context) -> Result<Ownership> {
        let s3 = &ctx.clients.s3;
        let objects = s3
            .list_object_versions()
            .bucket(&self.spec.name)
            .max_keys(1)
            .send()
            .await
            .map_err(aws_error("ListObjectVersions"))?;
        if !objects.versions().is_empty() || !objects.delete_markers().is_empty() {
            return Ok(Ownership::Unmanaged);
        }
        let buckets = s3
            .list_buckets()
            .send()
            .await
            .map_err(aws_error("ListBuckets"))?;
        let created = buckets
            .buckets()
            .iter()
            .find(|bucket| bucket.name() == Some(self.spec.name.as_str()))
            .and_then(|bucket| bucket.creation_date())
            .and_then(|date| SystemTime::try_from(*date).ok());
        let recent = created
            .and_then(|created| SystemTime::now().duration_since(created).ok())
            .is_some_and(|age| age < INTERRUPTED_CREATE_WINDOW);
        if recent {
            tracing::warn!(bucket = %self.spec.name, "claiming an empty, untagged bucket left by an interrupted apply");
            Ok(Ownership::Owned)
        } else {
            Ok(Ownership::Unmanaged)
        }
    }

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        let s3 = &ctx.clients.s3;
        let mut request = s3.create_bucket().bucket(&self.spec.name);
        if ctx.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(ctx.region.as_str()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you()) => {}
            Err(error) => return Err(aws_error("CreateBucket")(error)),
        }
        // Tag at once: the tags are what makes the bucket ours.
        self.put_tags(ctx, &self.tags).await
    }

    async fn put_tags(&self, ctx: &Context, tags: &BTreeMap<String, String>) -> Result<()> {
        let tags = tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ctx.clients
            .s3
            .put_bucket_tagging()
            .bucket(&self.spec.name)
            .tagging(Tagging::builder().set_tag_set(Some(tags)).build()?)
            .send()
            .await
            .map_err(aws_error("PutBucketTagging"))?;
        Ok(())
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let s3 = &ctx.clients.s3;
        let name = &self.spec.name;
        if let Some(tags) = desired_value(diffs, "tags") {
            // The diff's tags: those an ignore rule covers keep their
            // observed values (PutBucketTagging replaces the whole set).
            let tags: BTreeMap<String, String> =
                serde_json::from_value(tags.clone()).unwrap_or_default();
            self.put_tags(ctx, &tags).await?;
        }
        if changed(diffs, "public_access_block") {
            let block = self.spec.block_public_access;
            s3.put_public_access_block()
                .bucket(name)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(block)
                        .ignore_public_acls(block)
                        .block_public_policy(block)
                        .restrict_public_buckets(block)
                        .build(),
                )
                .send()
                .await
                .map_err(aws_error("PutPublicAccessBlock"))?;
        }
        if changed(diffs, "encryption") {
            let default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::from(self.spec.encryption.algorithm()))
                .build()?;
            s3.put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(
                            ServerSideEncryptionRule::builder()
                                .apply_server_side_encryption_by_default(default)
                                .build(),
                        )
                        .build()?,
                )
                .send()
                .await
                .map_err(aws_error("PutBucketEncryption"))?;
        }
        if changed(diffs, "versioning") {
            let status = if self.spec.versioning {
                BucketVersioningStatus::Enabled
            } else {
                BucketVersioningStatus::Suspended
            };
            s3.put_bucket_versioning()
                .bucket(name)
                .versioning_configuration(VersioningConfiguration::builder().status(status).build())
                .send()
                .await
                .map_err(aws_error("PutBucketVersioning"))?;
        }
        if changed(diffs, "noncurrent_version_expiry_days") {
            match self.spec.noncurrent_version_expiry_days {
                Some(days) => {
                    let rule = LifecycleRule::builder()
                        .id(EXPIRY_RULE_ID)
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("").build())
                        .noncurrent_version_expiration(
                            NoncurrentVersionExpiration::builder()
                                .noncurrent_days(days as i32)
                                .build(),
                        )
                        .build()?;
                    s3.put_bucket_lifecycle_configuration()
                        .bucket(name)
                        .lifecycle_configuration(
                            BucketLifecycleConfiguration::builder()
                                .rules(rule)
                                .build()?,
                        )
                        .send()
                        .await
                        .map_err(aws_error("PutBucketLifecycleConfiguration"))?;
                }
                None => {
                    s3.delete_bucket_lifecycle()
                        .bucket(name)
                        .send()
                        .await
                        .map_err(aws_error("DeleteBucketLifecycle"))?;
                }
            }
        }
        Ok(())
    }
}

/// Deletes the bucket; with `delete_contents`, every object version and
/// delete marker goes first (S3 refuses to delete a non-empty bucket).
async fn delete(ctx: &Context, name: &str, delete_contents: bool) -> Result<()> {
    let s3 = &ctx.clients.s3;
    if delete_contents {
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = s3
                .list_object_versions()
                .bucket(name)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(error) if error_code(&error) == Some("NoSuchBucket") => return Ok(()),
                Err(error) => return Err(aws_error("ListObjectVersions")(error)),
            };
            let identifiers = page
                .versions()
                .iter()
                .map(|version| (version.key(), version.version_id()))
                .chain(
                    page.delete_markers()
                        .iter()
                        .map(|marker| (marker.key(), marker.version_id())),
                )
                .filter_map(|(key, version)| {
                    ObjectIdentifier::builder()
                        .set_key(key.map(str::to_string))
                        .set_version_id(version.map(str::to_string))
                        .build()
                        .ok()
                })
                .collect::<Vec<_>>();
            for chunk in identifiers.chunks(1000) {
                s3.delete_objects()
                    .bucket(name)
                    .delete(
                        Delete::builder()
                            .set_objects(Some(chunk.to_vec()))
                            .quiet(true)
                            .build()?,
                    )
                    .send()
                    .await
                    .map_err(aws_error("DeleteObjects"))?;
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
    }
    match s3.delete_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(error) if error_code(&error) == Some("NoSuchBucket") => Ok(()),
        Err(error) if error_code(&error) == Some("BucketNotEmpty") => {
            Err(super::Error::Failed(format!(
                "bucket {name} still holds objects; destroy --delete-bucket removes every version first"
            )))
        }
        Err(error) => Err(aws_error("DeleteBucket")(error)),
    }
}

/// The `<Status>` of a versioning document, if it has one.
fn versioning_status_in(document: &str) -> Option<BucketVersioningStatus> {
    let start = document.find("<Status>")? + "<Status>".len();
    let end = start + document[start..].find("</Status>")?;
    Some(BucketVersioningStatus::from(document[start..end].trim()))
}
