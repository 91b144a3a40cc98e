//! A container-image Lambda function: image, memory, timeout, architecture,
//! ephemeral storage, description, environment, role, reserved concurrency,
//! tags. Handles what real Lambda does and moto does not: a new role that is
//! not yet assumable, and a function that is `Pending` or `InProgress` and
//! refuses updates until it is ready.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_lambda::types::{
    Architecture, Environment, EphemeralStorage, FunctionCode, LastUpdateStatus, PackageType, State,
};
use serde_json::json;

use async_trait::async_trait;

use super::{
    DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceId, ResourceKind,
    confirmed_orphans, owned_by_tags, owned_unless_gone,
};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::wait::{Poll, retry_transient, until};
use super::{
    Context, Observed, Result, aws_error, changed, desired_value, done_or, error_code, sync_tags,
};
use crate::field::{FieldDiff, Fields};
use crate::ownership::{comparable_tags, ownership_of};
use crate::spec::FunctionSpec;

/// How recently a function must have changed for missing tags to be read
/// again rather than taken for an untagged function.
const TAGS_SETTLE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
/// The longest wait for a new function's tags to show.
const TAGS_SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether Lambda's `LastModified` (`2026-12-01T14:56:36.467+0000`, or in
/// RFC 3339) is within `window` of now.
fn modified_within(last_modified: Option<&str>, window: std::time::Duration) -> bool {
    last_modified
        .and_then(|text| {
            chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(text))
                .ok()
        })
        .is_some_and(|modified| {
            (chrono::Utc::now() - modified.with_timezone(&chrono::Utc))
                .to_std()
                .is_ok_and(|age| age < window)
        })
}

/// The fields a version of a function freezes, read from its configuration
/// and its image (`GetFunction`, qualified or not): what
/// [`Desired::version_fields`] gives for the file.
pub fn version_fields(
    configuration: &aws_sdk_lambda::types::FunctionConfiguration,
    image_uri: Option<&str>,
) -> Fields {
    let environment: BTreeMap<String, String> = configuration
        .environment()
        .and_then(|environment| environment.variables())
        .map(|variables| {
            variables
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    Fields::from([
        ("image_uri".into(), json!(image_uri)),
        (
            "architecture".into(),
            json!(
                configuration
                    .architectures()
                    .first()
                    .map(|architecture| architecture.as_str())
            ),
        ),
        ("memory_mb".into(), json!(configuration.memory_size())),
        ("timeout_seconds".into(), json!(configuration.timeout())),
        (
            "ephemeral_storage_mb".into(),
            json!(
                configuration
                    .ephemeral_storage()
                    .map(|storage| storage.size())
            ),
        ),
        (
            "description".into(),
            json!(configuration.description().unwrap_or_default()),
        ),
        ("environment".into(), json!(environment)),
        ("role".into(), json!(configuration.role())),
    ])
}

/// Fields changed by `UpdateFunctionCode`.
const CODE_FIELDS: [&str; 2] = ["image_uri", "architecture"];
/// Fields changed by `UpdateFunctionConfiguration`.
const CONFIGURATION_FIELDS: [&str; 6] = [
    "memory_mb",
    "timeout_seconds",
    "ephemeral_storage_mb",
    "description",
    "environment",
    "role",
];

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: FunctionSpec,
    pub role_arn: String,
    /// The user's variables and the ones the controller sets.
    pub environment: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// The secret the function reads, whose ARN is in its environment.
    pub secret: Option<String>,
}

/// Whether an error is Lambda's "the role cannot be assumed yet", which a
/// just-created IAM role causes for several seconds.
/// CreateFunction and UpdateFunctionConfiguration both answer it.
fn is_role_not_ready<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    error: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> bool {
    error.as_service_error().is_some_and(|service| {
        service.code() == Some("InvalidParameterValueException")
            && service
                .message()
                .is_some_and(|message| message.contains("cannot be assumed"))
    })
}

/// Whether an error is "an update is in progress", which the function's
/// previous change causes until its `LastUpdateStatus` is `Successful`.
fn is_conflict<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    error: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> bool {
    error_code(error) == Some("ResourceConflictException")
}

impl Desired {
    fn arn(&self, ctx: &Context) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{}",
            ctx.partition, ctx.region, ctx.account_id, self.spec.name
        )
    }

    /// A built image must be pushed and pinned by digest before a function
    /// points at it (see `crate::image`); a prebuilt `image_uri` is taken as is.
    fn check_image_pinned(&self) -> Result<()> {
        if self.image_left_to_apply() {
            return Err(super::Error::Failed(format!(
                "function {} does not exist; its image is built and pushed by `controller apply`",
                self.spec.name
            )));
        }
        if self.spec.build.is_some() && !self.spec.image_uri.contains("@sha256:") {
            return Err(super::Error::Failed(format!(
                "the image of function {} is not in the registry yet ({:?}); it is built and pushed by apply",
                self.spec.name, self.spec.image_uri
            )));
        }
        Ok(())
    }

    fn architecture(&self) -> Architecture {
        Architecture::from(self.spec.architecture.as_str())
    }

    /// A built image not resolved against the registry (the daemon does not
    /// build): the image is left to `apply`, every other field is managed.
    fn image_left_to_apply(&self) -> bool {
        self.spec.build.is_some() && self.spec.image_uri.is_empty()
    }

    pub fn fields(&self) -> Fields {
        let mut fields = self.all_fields();
        if self.image_left_to_apply() {
            fields.remove("image_uri");
            fields.remove("architecture");
        }
        fields
    }

    fn all_fields(&self) -> Fields {
        let mut fields = self.version_fields();
        fields.extend([
            (
                "reserved_concurrency".into(),
                json!(self.spec.reserved_concurrency),
            ),
            ("tags".into(), json!(self.tags)),
        ]);
        fields
    }

    /// The fields a published version of the function freezes (its code
    /// and configuration), as the file wants them.
    pub fn version_fields(&self) -> Fields {
        Fields::from([
            ("image_uri".into(), json!(self.spec.image_uri)),
            (
                "architecture".into(),
                json!(self.spec.architecture.as_str()),
            ),
            ("memory_mb".into(), json!(self.spec.memory_mb)),
            ("timeout_seconds".into(), json!(self.spec.timeout_seconds)),
            (
                "ephemeral_storage_mb".into(),
                json!(self.spec.ephemeral_storage_mb),
            ),
            ("description".into(), json!(self.spec.description)),
            ("environment".into(), json!(self.environment)),
            ("role".into(), json!(self.role_arn)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let output = match ctx
            .clients
            .lambda
            .get_function()
            .function_name(&self.spec.name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(aws_error("GetFunction")(error)),
        };
        let Some(configuration) = output.configuration() else {
            return Ok(None);
        };
        let tags: BTreeMap<String, String> = output
            .tags()
            .map(|tags| {
                tags.iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut tags = comparable_tags(tags);
        if tags.is_empty() && modified_within(configuration.last_modified(), TAGS_SETTLE_WINDOW) {
            tags = self.tags_once_visible(ctx).await?;
        }
        let mut fields = version_fields(
            configuration,
            output.code().and_then(|code| code.image_uri()),
        );
        fields.extend([
            (
                "reserved_concurrency".into(),
                json!(
                    output
                        .concurrency()
                        .and_then(|concurrency| concurrency.reserved_concurrent_executions())
                ),
            ),
            ("tags".into(), json!(tags)),
        ]);
        Ok(Some(Observed {
            ownership: ownership_of(&tags, &ctx.deployment),
            fields,
        }))
    }

    /// The tags of a function changed moments ago and showing none: Lambda
    /// shows a new function's tags a moment after its creation (tagging is
    /// eventually consistent), so they are read again for a few seconds
    /// before the function counts as untagged; a daemon requeues it instead.
    async fn tags_once_visible(&self, ctx: &Context) -> Result<BTreeMap<String, String>> {
        let found = std::sync::Mutex::new(BTreeMap::new());
        let settings = super::WaitSettings {
            timeout: ctx.waits.timeout.min(TAGS_SETTLE_WAIT),
            ..ctx.waits
        };
        let arn = self.arn(ctx);
        let waited = until(
            settings,
            &format!("the tags of function {} to show", self.spec.name),
            || async {
                let listed = ctx
                    .clients
                    .lambda
                    .list_tags()
                    .resource(&arn)
                    .send()
                    .await
                    .map_err(aws_error("ListTags"))?;
                let tags = comparable_tags(
                    listed
                        .tags()
                        .map(|tags| tags.clone().into_iter().collect())
                        .unwrap_or_default(),
                );
                if tags.is_empty() {
                    Ok(Poll::Pending("untagged".into()))
                } else {
                    *found.lock().unwrap_or_else(|poison| poison.into_inner()) = tags;
                    Ok(Poll::Ready)
                }
            },
        )
        .await;
        match waited {
            Ok(()) => Ok(found
                .into_inner()
                .unwrap_or_else(|poison| poison.into_inner())),
            // Still none after the wait: an untagged function, not ours.
            Err(super::Error::Timeout { .. }) => Ok(BTreeMap::new()),
            Err(other) => Err(other),
        }
    }

    fn sdk_environment(&self) -> Environment {
        let variables: HashMap<String, String> = self.environment.clone().into_iter().collect();
        Environment::builder()
            .set_variables(Some(variables))
            .build()
    }

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        self.check_image_pinned()?;
        let lambda = &ctx.clients.lambda;
        let storage = EphemeralStorage::builder()
            .size(self.spec.ephemeral_storage_mb as i32)
            .build()?;
        let tags: HashMap<String, String> = self.tags.clone().into_iter().collect();
        let create = || {
            lambda
                .create_function()
                .function_name(&self.spec.name)
                .package_type(PackageType::Image)
                .code(
                    FunctionCode::builder()
                        .image_uri(&self.spec.image_uri)
                        .build(),
                )
                .role(&self.role_arn)
                .memory_size(self.spec.memory_mb as i32)
                .timeout(self.spec.timeout_seconds as i32)
                .architectures(self.architecture())
                .ephemeral_storage(storage.clone())
                .description(&self.spec.description)
                .environment(self.sdk_environment())
                .set_tags(Some(tags.clone()))
                .send()
        };
        match retry_transient(ctx.waits, create, is_role_not_ready).await {
            Ok(_) => {}
            Err(error) if is_conflict(&error) => {
                // A create retried after its answer was lost: the function exists.
            }
            Err(error) => return Err(aws_error("CreateFunction")(error)),
        }
        self.wait_until_ready(ctx).await
    }

    /// Waits until the function is `Active` and no update is `InProgress`.
    pub async fn wait_until_ready(&self, ctx: &Context) -> Result<()> {
        wait_until_ready(ctx, &self.spec.name).await
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        if changed(diffs, "image_uri") {
            self.check_image_pinned()?;
        }
        let lambda = &ctx.clients.lambda;
        let name = &self.spec.name;
        sync_tags(
            diffs,
            |to_set| async move {
                lambda
                    .tag_resource()
                    .resource(self.arn(ctx))
                    .set_tags(Some(to_set.into_iter().collect()))
                    .send()
                    .await
                    .map_err(aws_error("TagResource"))?;
                Ok(())
            },
            |to_remove| async move {
                lambda
                    .untag_resource()
                    .resource(self.arn(ctx))
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagResource"))?;
                Ok(())
            },
        )
        .await?;
        if CONFIGURATION_FIELDS
            .iter()
            .any(|field| changed(diffs, field))
        {
            self.wait_until_ready(ctx).await?;
            // Only what differs is sent: a field left out keeps its value
            // (an ignored field someone else set, among others). The
            // environment is the diff's, where ignored variables carry
            // their observed values.
            let storage = changed(diffs, "ephemeral_storage_mb")
                .then(|| {
                    EphemeralStorage::builder()
                        .size(self.spec.ephemeral_storage_mb as i32)
                        .build()
                })
                .transpose()?;
            let environment = desired_value(diffs, "environment").map(|value| {
                let variables: Option<HashMap<String, String>> =
                    serde_json::from_value(value.clone()).ok();
                Environment::builder().set_variables(variables).build()
            });
            let send = || {
                lambda
                    .update_function_configuration()
                    .function_name(name)
                    .set_memory_size(
                        changed(diffs, "memory_mb").then_some(self.spec.memory_mb as i32),
                    )
                    .set_timeout(
                        changed(diffs, "timeout_seconds")
                            .then_some(self.spec.timeout_seconds as i32),
                    )
                    .set_ephemeral_storage(storage.clone())
                    .set_description(
                        changed(diffs, "description").then(|| self.spec.description.clone()),
                    )
                    .set_environment(environment.clone())
                    .set_role(changed(diffs, "role").then(|| self.role_arn.clone()))
                    .send()
            };
            retry_while_busy(ctx, name, send, "UpdateFunctionConfiguration").await?;
            self.wait_until_ready(ctx).await?;
        }
        if CODE_FIELDS.iter().any(|field| changed(diffs, field)) {
            self.wait_until_ready(ctx).await?;
            let send = || {
                lambda
                    .update_function_code()
                    .function_name(name)
                    .image_uri(&self.spec.image_uri)
                    .architectures(self.architecture())
                    .send()
            };
            retry_while_busy(ctx, name, send, "UpdateFunctionCode").await?;
            self.wait_until_ready(ctx).await?;
        }
        if changed(diffs, "reserved_concurrency") {
            match self.spec.reserved_concurrency {
                Some(reserved) => {
                    lambda
                        .put_function_concurrency()
                        .function_name(name)
                        .reserved_concurrent_executions(reserved as i32)
                        .send()
                        .await
                        .map_err(aws_error("PutFunctionConcurrency"))?;
                }
                None => {
                    lambda
                        .delete_function_concurrency()
                        .function_name(name)
                        .send()
                        .await
                        .map_err(aws_error("DeleteFunctionConcurrency"))?;
                }
            }
        }
        Ok(())
    }
}

/// Sends a change of the function `name`, waiting for the function to
/// settle and sending it again while Lambda answers that another update
/// is in progress, or that the function's (new) role cannot be assumed yet.
pub async fn retry_while_busy<T, E, F, Fut>(
    ctx: &Context,
    name: &str,
    send: F,
    operation: &'static str,
) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
            Output = std::result::Result<
                T,
                aws_smithy_runtime_api::client::result::SdkError<
                    E,
                    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
                >,
            >,
        >,
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    let mut attempts = 0;
    loop {
        match send().await {
            Ok(output) => return Ok(output),
            Err(error) if is_conflict(&error) && attempts < ctx.waits.consistency_attempts => {
                attempts += 1;
                tracing::info!(function = %name, operation, "another update is in progress; waiting");
                wait_until_ready(ctx, name).await?;
                tokio::time::sleep(ctx.waits.poll).await;
            }
            Err(error)
                if is_role_not_ready(&error) && attempts < ctx.waits.consistency_attempts =>
            {
                attempts += 1;
                let pause =
                    (ctx.waits.poll * 2u32.pow(attempts.min(8) as u32)).min(ctx.waits.max_poll);
                tracing::info!(function = %name, operation, ?pause, "the function's role cannot be assumed yet; retrying");
                tokio::time::sleep(pause).await;
            }
            Err(error) => return Err(aws_error(operation)(error)),
        }
    }
}

/// Waits until the function `name` is `Active` and no update of it is
/// `InProgress` (a daemon requeues instead, see [`super::WaitSettings`]).
pub async fn wait_until_ready(ctx: &Context, name: &str) -> Result<()> {
    let lambda = &ctx.clients.lambda;
    until(
        ctx.waits,
        &format!("function {name} to be ready"),
        || async {
            let configuration = lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(aws_error("GetFunctionConfiguration"))?;
            let reason = configuration
                .last_update_status_reason()
                .or(configuration.state_reason())
                .unwrap_or("no reason given")
                .to_string();
            Ok(
                match (configuration.state(), configuration.last_update_status()) {
                    (Some(State::Failed), _) => Poll::Failed(format!("state Failed: {reason}")),
                    (_, Some(LastUpdateStatus::Failed)) => {
                        Poll::Failed(format!("last update failed: {reason}"))
                    }
                    (Some(State::Pending), _) => Poll::Pending("Pending".into()),
                    (_, Some(LastUpdateStatus::InProgress)) => Poll::Pending("InProgress".into()),
                    _ => Poll::Ready,
                },
            )
        },
    )
    .await
}

async fn delete(ctx: &Context, name: &str) -> Result<()> {
    done_or(
        ctx.clients
            .lambda
            .delete_function()
            .function_name(name)
            .send()
            .await,
        "DeleteFunction",
        |e| e.is_resource_not_found_exception(),
    )
}

/// The Lambda function kind.
pub struct FunctionKind;
pub static KIND: FunctionKind = FunctionKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "image_uri",
        doc: "the image, pinned by digest",
    },
    FieldDoc {
        name: "architecture",
        doc: "`x86_64` or `arm64`",
    },
    FieldDoc {
        name: "memory_mb",
        doc: "memory in MB",
    },
    FieldDoc {
        name: "timeout_seconds",
        doc: "timeout in seconds",
    },
    FieldDoc {
        name: "ephemeral_storage_mb",
        doc: "`/tmp` size in MB",
    },
    FieldDoc {
        name: "description",
        doc: "the function's description",
    },
    FieldDoc {
        name: "environment",
        doc: "the user's variables and the controller's",
    },
    FieldDoc {
        name: "role",
        doc: "the execution role's ARN",
    },
    FieldDoc {
        name: "reserved_concurrency",
        doc: "reserved concurrent executions, or none",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for FunctionKind {
    fn kind(&self) -> Kind {
        Kind("function")
    }

    fn adopt_setting(&self) -> &'static str {
        "functions.<name>.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn ignorable(&self) -> &'static [&'static str] {
        &[
            "tags",
            "environment",
            "memory_mb",
            "timeout_seconds",
            "ephemeral_storage_mb",
            "description",
            "reserved_concurrency",
        ]
    }

    fn desired(&self, spec: &Spec, ctx: &Context, refs: &Refs) -> Vec<Box<dyn Resource>> {
        let tags = desired_tags(&spec.deployment.name, &spec.tags);
        let secret_arn = refs
            .secret_arn
            .as_deref()
            .unwrap_or(crate::desired::KNOWN_AFTER_APPLY);
        spec.functions
            .iter()
            .map(|function| {
                Box::new(Desired {
                    spec: function.clone(),
                    role_arn: super::role::role_arn(ctx, &function.role),
                    environment: crate::spec::environment::final_environment(
                        spec, function, secret_arn,
                    ),
                    tags: tags.clone(),
                    secret: crate::spec::environment::reads_secret(spec, function)
                        .map(|secret| secret.name.clone()),
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
            inventory.tagged("lambda", "function:"),
            |name| async move {
                owned_unless_gone(
                    ctx.clients
                        .lambda
                        .get_function()
                        .function_name(name)
                        .send()
                        .await,
                    "GetFunction",
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

    fn dependencies(&self) -> Vec<ResourceId> {
        let mut needs = vec![
            ResourceId::new(super::role::KIND.kind(), &self.spec.role.name),
            ResourceId::new(super::repository::KIND.kind(), &self.spec.repository.name),
            ResourceId::new(super::log_group::KIND.kind(), &self.spec.logs.name),
        ];
        if let Some(secret) = &self.secret {
            needs.push(ResourceId::new(super::secret::KIND.kind(), secret));
        }
        needs
    }
);

#[cfg(test)]
mod last_modified_tests {
    use super::modified_within;
    use std::time::Duration;

    #[test]
    fn lambda_timestamps_are_read_in_both_spellings() {
        let now = chrono::Utc::now();
        let aws = now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
        let rfc3339 = now.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
        for text in [&aws, &rfc3339] {
            assert!(
                modified_within(Some(text), Duration::from_secs(60)),
                "{text}"
            );
        }
        let old = (now - chrono::Duration::hours(2))
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string();
        assert!(!modified_within(Some(&old), Duration::from_secs(600)));
        assert!(!modified_within(
            Some("yesterday"),
            Duration::from_secs(600)
        ));
        assert!(!modified_within(None, Duration::from_secs(600)));
    }
}
