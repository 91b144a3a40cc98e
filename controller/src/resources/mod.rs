//! The kinds of AWS object a deployment is made of. Each kind lives in its
//! own module and knows how to observe, create, update and delete itself;
//! this module gives them one shape so that `plan` and `reconcile` can treat
//! every resource alike.

/// Implements [`Resource`] for a kind's `Desired` through its own inherent
/// `fields`, `observe`, `create` and `update` and the module's `KIND`;
/// the kind's further items (`adopt`, `dependencies`, `lookup`, ...)
/// follow its name.
macro_rules! delegated_resource {
    ($desired:ty, name: |$this:ident| $name:expr $(, $($item:item)*)?) => {
        #[async_trait::async_trait]
        impl $crate::resources::Resource for $desired {
            fn kind(&self) -> &'static dyn $crate::resources::ResourceKind {
                &KIND
            }

            fn name(&self) -> String {
                let $this = self;
                $name
            }

            fn fields(&self) -> $crate::field::Fields {
                <$desired>::fields(self)
            }

            async fn observe(
                &self,
                ctx: &$crate::resources::Context,
            ) -> $crate::resources::Result<Option<$crate::resources::Observed>> {
                <$desired>::observe(self, ctx).await
            }

            async fn create(&self, ctx: &$crate::resources::Context) -> $crate::resources::Result<()> {
                <$desired>::create(self, ctx).await
            }

            async fn update(
                &self,
                ctx: &$crate::resources::Context,
                diffs: &[$crate::field::FieldDiff],
            ) -> $crate::resources::Result<()> {
                <$desired>::update(self, ctx, diffs).await
            }

            fn as_any(&self) -> &dyn std::any::Any {
                self
            }

            $($($item)*)?
        }
    };
}

pub mod alarm;
pub mod api;
pub mod api_key;
pub mod bucket;
pub mod function;
pub mod log_group;
pub mod permission;
pub mod policy;
pub mod release;
pub mod repository;
mod resource;
pub mod role;
pub mod rule;
pub mod secret;
pub mod usage_plan;
mod wait;

use std::time::Duration;

use crate::cloud::Clients;
use crate::field::{FieldDiff, Fields};
use crate::ownership::Ownership;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use resource::{DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceId, ResourceKind};
pub use wait::WaitSettings;

/// Every kind of resource, in creation order: a plan lists resources in
/// this order, and an orphan (a resource the file no longer names) is
/// deleted after the orphans of the kinds that follow it. Adding a kind is
/// its module and one line here.
pub static KINDS: &[&dyn ResourceKind] = &[
    &bucket::KIND,
    &secret::KIND,
    &repository::KIND,
    &role::KIND,
    &log_group::KIND,
    &function::KIND,
    &alarm::KIND,
    &release::KIND,
    &api::KIND,
    &usage_plan::KIND,
    &api_key::KIND,
    &rule::KIND,
    &permission::KIND,
];

/// The registered kind named `kind`.
pub fn kind_named(kind: Kind) -> Option<&'static dyn ResourceKind> {
    KINDS
        .iter()
        .copied()
        .find(|registered| registered.kind() == kind)
}

/// What the controller knows about the account it acts in.
#[derive(Clone, Debug)]
pub struct Context {
    pub clients: Clients,
    pub deployment: String,
    pub region: String,
    pub account_id: String,
    pub partition: String,
    pub waits: WaitSettings,
}

impl Context {
    pub fn new(clients: Clients, deployment: &str, region: &str, account_id: &str) -> Context {
        Context {
            clients,
            deployment: deployment.to_string(),
            region: region.to_string(),
            account_id: account_id.to_string(),
            partition: partition_of(region).to_string(),
            waits: WaitSettings::default(),
        }
    }
}

/// The ARN partition a region belongs to.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// A resource as found in AWS.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub ownership: Ownership,
    pub fields: Fields,
}

/// Why an AWS operation on a resource failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed; `message` is `CODE: text` (or the transport's
    /// error), `code` AWS's error code when it sent one, `kind` what a retry
    /// can do about it.
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        code: Option<String>,
        kind: ErrorKind,
        message: String,
    },
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },
    /// Something is still settling and the caller asked not to wait.
    #[error("{what}: still {state}; requeued")]
    NotReady { what: String, state: String },
    #[error("{0}")]
    Failed(String),
    /// A release that does not go on: rolled back on an alarm, held after
    /// a rollback, halted while an alarm fires. `code` names which.
    #[error("{message}")]
    Release {
        code: &'static str,
        kind: ErrorKind,
        message: String,
    },
}

/// What kind of failure an error is, which decides what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The resource is not there (404, `NoSuchEntity`, `...NotFound...`).
    NotFound,
    /// Goes away by itself: throttling, a 5xx answer, a dropped connection
    /// or a timeout; retried with backoff.
    Transient,
    /// Another change is under way (`ResourceConflictException`,
    /// `ConflictException`, a failed precondition); retried later.
    Conflict,
    /// No retry can fix it: access denied, a refused value, a refused
    /// resource; not retried until the file or the observed state changes.
    Terminal,
}

impl Error {
    /// What a retry can do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Aws { kind, .. } => *kind,
            Error::Timeout { .. } => ErrorKind::Transient,
            Error::NotReady { .. } => ErrorKind::Conflict,
            Error::Failed(_) => ErrorKind::Terminal,
            Error::Release { kind, .. } => *kind,
        }
    }

    /// AWS's error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            Error::Release { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The AWS operation that failed, when an AWS call failed.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            Error::Aws { operation, .. } => Some(operation),
            Error::Release { .. } => Some("Release"),
            _ => None,
        }
    }
}

/// The kind of an AWS answer: by its error code first, then by its HTTP
/// status. Codes are those the services document for throttling (the SDK's
/// own list), missing resources and concurrent changes.
pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    const THROTTLING: [&str; 12] = [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
    ];
    const TRANSIENT: [&str; 6] = [
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    ];
    const CONFLICT: [&str; 6] = [
        "ResourceConflictException",
        "ConflictException",
        "ConcurrentModificationException",
        "OperationAbortedException",
        "PreconditionFailed",
        "ResourceInUseException",
    ];
    if let Some(code) = code {
        if THROTTLING.contains(&code) || TRANSIENT.contains(&code) {
            return ErrorKind::Transient;
        }
        if CONFLICT.contains(&code) {
            return ErrorKind::Conflict;
        }
        if code.contains("NotFound") || code.starts_with("NoSuch") {
            return ErrorKind::NotFound;
        }
    }
    match status {
        Some(404) => ErrorKind::NotFound,
        Some(409 | 412) => ErrorKind::Conflict,
        Some(429) => ErrorKind::Transient,
        Some(status) if status >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Terminal,
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The error code of an SDK error (`NoSuchEntity`, `ThrottlingException`, ...).
pub fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Turns an SDK error into an [`Error`] naming the operation.
pub fn aws_error<E>(operation: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |error| {
        let (code, kind, message) = match &error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let status = service.raw().status().as_u16();
                let message = match (err.code(), err.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_string(),
                    _ => format!("unexpected answer (HTTP {status}): {}", error_chain(err)),
                };
                (
                    err.code().map(str::to_string),
                    classify(err.code(), Some(status)),
                    message,
                )
            }
            // No answer to classify: a timeout, a dropped connection, a
            // failed dispatch, or an answer that could not be read.
            SdkError::ResponseError(response) => (
                None,
                classify(None, Some(response.raw().status().as_u16())),
                error_chain(&error),
            ),
            SdkError::ConstructionFailure(_) => (None, ErrorKind::Terminal, error_chain(&error)),
            other => (None, ErrorKind::Transient, error_chain(other)),
        };
        Error::Aws {
            operation,
            code,
            kind,
            message,
        }
    }
}

/// An error and its sources, one line, without the raw response.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The names among `candidates` that the file does not name and that
/// `owned` confirms (exists, carries this deployment's ownership tags).
pub async fn confirmed_orphans<F, Fut>(
    kind: Kind,
    inventory: &Inventory,
    candidates: Vec<String>,
    owned: F,
) -> Result<Vec<String>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let mut unknown: Vec<String> = candidates
        .into_iter()
        .filter(|name| !inventory.is_known(kind, name))
        .collect();
    unknown.sort();
    unknown.dedup();
    let checks = futures::future::join_all(unknown.iter().cloned().map(&owned)).await;
    let mut orphans = Vec::new();
    for (name, owned) in unknown.into_iter().zip(checks) {
        match owned {
            Ok(true) => orphans.push(name),
            Ok(false) => {}
            // The controller's policy lets it read only what carries its
            // deployment's tag: a refused read is someone else's resource.
            Err(error)
                if error
                    .code()
                    .is_some_and(|code| code.starts_with("AccessDenied")) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(orphans)
}

/// The answer to a read of a candidate orphan: what `owned` says of it, or
/// not ours when `gone` says the resource is not there (any other error
/// names the operation).
pub fn owned_unless_gone<T, E>(
    result: std::result::Result<T, SdkError<E, HttpResponse>>,
    operation: &'static str,
    gone: impl FnOnce(&SdkError<E, HttpResponse>) -> bool,
    owned: impl FnOnce(T) -> bool,
) -> Result<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(owned(output)),
        Err(error) if gone(&error) => Ok(false),
        Err(error) => Err(aws_error(operation)(error)),
    }
}

/// Whether a tag set read from AWS marks a resource as this deployment's.
pub fn owned_by_tags<K, V>(ctx: &Context, tags: impl IntoIterator<Item = (K, V)>) -> bool
where
    K: Into<String>,
    V: Into<String>,
{
    let tags: std::collections::BTreeMap<String, String> = tags
        .into_iter()
        .map(|(key, value)| (key.into(), value.into()))
        .collect();
    crate::ownership::ownership_of(&tags, &ctx.deployment) == crate::ownership::Ownership::Owned
}

/// Whether a field differs, by name.
pub fn changed(diffs: &[FieldDiff], field: &str) -> bool {
    diffs.iter().any(|diff| diff.field == field)
}

/// Tags to add (or change) and keys to remove to go from `observed` to `desired`.
pub fn tag_changes(
    desired: &std::collections::BTreeMap<String, String>,
    observed: &serde_json::Value,
) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let observed: std::collections::BTreeMap<String, String> =
        serde_json::from_value(observed.clone()).unwrap_or_default();
    let to_set = desired
        .iter()
        .filter(|(key, value)| observed.get(*key) != Some(value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let to_remove = observed
        .keys()
        .filter(|key| !desired.contains_key(*key))
        .cloned()
        .collect();
    (to_set, to_remove)
}

/// The observed value of a differing field.
pub fn observed_value<'a>(diffs: &'a [FieldDiff], field: &str) -> Option<&'a serde_json::Value> {
    diffs
        .iter()
        .find(|diff| diff.field == field)
        .map(|diff| &diff.observed)
}

impl From<aws_smithy_types::error::operation::BuildError> for Error {
    fn from(error: aws_smithy_types::error::operation::BuildError) -> Self {
        Error::Failed(format!("cannot build the request: {error}"))
    }
}

/// The tags to add (or change) and the keys to remove, when the tags
/// differ: from the observed tags to the diff's desired ones (where tags an
/// ignore rule covers keep their observed values).
pub fn tag_diff(
    diffs: &[FieldDiff],
) -> Option<(std::collections::BTreeMap<String, String>, Vec<String>)> {
    let diff = diffs.iter().find(|diff| diff.field == "tags")?;
    let desired: std::collections::BTreeMap<String, String> =
        serde_json::from_value(diff.desired.clone()).unwrap_or_default();
    Some(tag_changes(&desired, &diff.observed))
}

/// The desired value of a differing field, as planning left it (ignored
/// parts carry their observed values).
pub fn desired_value<'a>(diffs: &'a [FieldDiff], field: &str) -> Option<&'a serde_json::Value> {
    diffs
        .iter()
        .find(|diff| diff.field == field)
        .map(|diff| &diff.desired)
}

/// Brings a resource's tags to the desired set with its kind's own calls:
/// `set` adds or changes tags, `unset` removes keys; nothing is called when
/// the tags do not differ.
pub async fn sync_tags<SetFuture, UnsetFuture>(
    diffs: &[FieldDiff],
    set: impl FnOnce(std::collections::BTreeMap<String, String>) -> SetFuture,
    unset: impl FnOnce(Vec<String>) -> UnsetFuture,
) -> Result<()>
where
    SetFuture: std::future::Future<Output = Result<()>>,
    UnsetFuture: std::future::Future<Output = Result<()>>,
{
    let Some((to_set, to_remove)) = tag_diff(diffs) else {
        return Ok(());
    };
    if !to_set.is_empty() {
        set(to_set).await?;
    }
    if !to_remove.is_empty() {
        unset(to_remove).await?;
    }
    Ok(())
}

/// The result of an idempotent call: success, or the service error that
/// means the work is already done ("already exists" after a retried create
/// whose answer was lost, "not found" on delete), is `Ok`; any other error
/// names the operation.
pub fn done_or<T, E>(
    result: std::result::Result<T, SdkError<E, HttpResponse>>,
    operation: &'static str,
    already_done: impl FnOnce(&E) -> bool,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.as_service_error().is_some_and(already_done) => Ok(()),
        Err(error) => Err(aws_error(operation)(error)),
    }
}

#[cfg(test)]
mod tag_tests {
    use super::tag_changes;
    use std::collections::BTreeMap;

    #[test]
    fn tags_are_set_changed_and_removed_by_key() {
        let desired = BTreeMap::from([
            ("team".to_string(), "sec".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]);
        let observed = serde_json::json!({"team": "ops", "old": "x"});
        let (set, remove) = tag_changes(&desired, &observed);
        assert_eq!(
            set,
            BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "sec".to_string()),
            ])
        );
        assert_eq!(remove, ["old"]);
        let (set, remove) = tag_changes(&desired, &serde_json::json!(desired));
        assert!(set.is_empty() && remove.is_empty());
        // Nothing observed (a resource without tags): every tag is set.
        let (set, remove) = tag_changes(&desired, &serde_json::Value::Null);
        assert_eq!((set.len(), remove.len()), (2, 0));
    }
}

#[cfg(test)]
mod error_kind_tests {
    use super::{ErrorKind, classify};

    #[test]
    fn aws_answers_are_classified_by_code_then_status() {
        for (code, status, kind) in [
            (Some("ThrottlingException"), Some(400), ErrorKind::Transient),
            (Some("Throttling"), Some(400), ErrorKind::Transient),
            (
                Some("TooManyRequestsException"),
                Some(429),
                ErrorKind::Transient,
            ),
            (Some("SlowDown"), Some(503), ErrorKind::Transient),
            (Some("ServiceException"), Some(500), ErrorKind::Transient),
            (None, Some(502), ErrorKind::Transient),
            (
                Some("ResourceConflictException"),
                Some(409),
                ErrorKind::Conflict,
            ),
            (Some("ConflictException"), Some(409), ErrorKind::Conflict),
            (None, Some(412), ErrorKind::Conflict),
            (Some("NoSuchEntity"), Some(404), ErrorKind::NotFound),
            (
                Some("ResourceNotFoundException"),
                Some(404),
                ErrorKind::NotFound,
            ),
            (
                Some("RepositoryNotFoundException"),
                Some(400),
                ErrorKind::NotFound,
            ),
            (Some("NoSuchBucket"), Some(404), ErrorKind::NotFound),
            (None, Some(404), ErrorKind::NotFound),
            (Some("AccessDenied"), Some(403), ErrorKind::Terminal),
            (
                Some("AccessDeniedException"),
                Some(400),
                ErrorKind::Terminal,
            ),
            (
                Some("InvalidParameterValueException"),
                Some(400),
                ErrorKind::Terminal,
            ),
            (Some("ValidationException"), Some(400), ErrorKind::Terminal),
            (None, Some(400), ErrorKind::Terminal),
        ] {
            assert_eq!(classify(code, status), kind, "{code:?} {status:?}");
        }
    }
}
