//! The kinds of AWS object a deployment is made of. Each kind lives in its
//! own module and knows how to observe, create, update and delete itself;
//! this module gives them one shape so that `plan` and `reconcile` can treat
//! every resource alike.

pub mod api;
pub mod bucket;
pub mod function;
pub mod log_group;
pub mod permission;
pub mod policy;
pub mod repository;
pub mod role;
pub mod rule;
pub mod secret;
mod wait;

use std::fmt;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::cloud::Clients;
use crate::field::{FieldDiff, Fields};
use crate::ownership::Ownership;

pub use wait::WaitSettings;

/// The kinds of resource, in the order they are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bucket,
    Repository,
    Role,
    LogGroup,
    Secret,
    Function,
    Api,
    Rule,
    Permission,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bucket => "bucket",
            Kind::Repository => "repository",
            Kind::Role => "role",
            Kind::LogGroup => "log_group",
            Kind::Secret => "secret",
            Kind::Function => "function",
            Kind::Api => "rest_api",
            Kind::Rule => "rule",
            Kind::Permission => "permission",
        }
    }

    /// Creation wave: a resource is created after every resource of an
    /// earlier wave, and deleted before them.
    pub fn wave(self) -> usize {
        match self {
            Kind::Bucket | Kind::Repository | Kind::Role | Kind::LogGroup | Kind::Secret => 0,
            Kind::Function => 1,
            Kind::Api | Kind::Rule => 2,
            Kind::Permission => 3,
        }
    }
}

/// Names one resource: its kind and its AWS name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceId {
    pub kind: Kind,
    pub name: String,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
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
    #[error("{0}")]
    Failed(String),
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
            Error::Failed(_) => ErrorKind::Terminal,
        }
    }

    /// AWS's error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The AWS operation that failed, when an AWS call failed.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            Error::Aws { operation, .. } => Some(operation),
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

/// One resource of the desired state, of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Desired {
    Bucket(bucket::Desired),
    Repository(repository::Desired),
    Role(role::Desired),
    LogGroup(log_group::Desired),
    Function(Box<function::Desired>),
    Secret(secret::Desired),
    Api(Box<api::Desired>),
    Rule(rule::Desired),
    Permission(permission::Desired),
}

impl Desired {
    pub fn id(&self) -> ResourceId {
        let (kind, name) = match self {
            Desired::Bucket(desired) => (Kind::Bucket, &desired.spec.name),
            Desired::Repository(desired) => (Kind::Repository, &desired.spec.name),
            Desired::Role(desired) => (Kind::Role, &desired.spec.name),
            Desired::LogGroup(desired) => (Kind::LogGroup, &desired.spec.name),
            Desired::Function(desired) => (Kind::Function, &desired.spec.name),
            Desired::Secret(desired) => (Kind::Secret, &desired.spec.name),
            Desired::Api(desired) => (Kind::Api, &desired.spec.name),
            Desired::Rule(desired) => (Kind::Rule, &desired.spec.name),
            Desired::Permission(desired) => (Kind::Permission, &desired.id),
        };
        ResourceId {
            kind,
            name: name.clone(),
        }
    }

    /// Whether an existing resource without ownership tags may be taken over.
    pub fn adopt(&self) -> bool {
        match self {
            Desired::Bucket(desired) => desired.spec.adopt,
            Desired::Repository(desired) => desired.spec.adopt,
            Desired::Role(desired) => desired.spec.adopt,
            Desired::LogGroup(desired) => desired.spec.adopt,
            Desired::Function(desired) => desired.spec.adopt,
            Desired::Secret(desired) => desired.spec.adopt,
            Desired::Api(desired) => desired.spec.adopt,
            Desired::Rule(desired) => desired.spec.adopt,
            Desired::Permission(_) => false,
        }
    }

    /// The desired value of every managed field.
    pub fn fields(&self) -> Fields {
        match self {
            Desired::Bucket(desired) => desired.fields(),
            Desired::Repository(desired) => desired.fields(),
            Desired::Role(desired) => desired.fields(),
            Desired::LogGroup(desired) => desired.fields(),
            Desired::Function(desired) => desired.fields(),
            Desired::Secret(desired) => desired.fields(),
            Desired::Api(desired) => desired.fields(),
            Desired::Rule(desired) => desired.fields(),
            Desired::Permission(desired) => desired.fields(),
        }
    }

    /// Fields AWS cannot change in place: a difference replaces the resource.
    pub fn replacement_fields(&self) -> &'static [&'static str] {
        match self {
            Desired::Role(_) => role::REPLACEMENT_FIELDS,
            Desired::Permission(_) => permission::REPLACEMENT_FIELDS,
            _ => &[],
        }
    }

    /// Checks what AWS requires outside the resource before it can be made
    /// as desired (an account-wide setting); run when an apply is planned,
    /// never for destroy. An error stops the plan before any change.
    pub async fn preflight(&self, ctx: &Context) -> Result<()> {
        match self {
            Desired::Api(desired) => desired.preflight(ctx).await,
            _ => Ok(()),
        }
    }

    /// Reads the resource from AWS; `None` when it does not exist.
    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        match self {
            Desired::Bucket(desired) => desired.observe(ctx).await,
            Desired::Repository(desired) => desired.observe(ctx).await,
            Desired::Role(desired) => desired.observe(ctx).await,
            Desired::LogGroup(desired) => desired.observe(ctx).await,
            Desired::Function(desired) => desired.observe(ctx).await,
            Desired::Secret(desired) => desired.observe(ctx).await,
            Desired::Api(desired) => desired.observe(ctx).await,
            Desired::Rule(desired) => desired.observe(ctx).await,
            Desired::Permission(desired) => desired.observe(ctx).await,
        }
    }

    /// Creates the resource with as much of its configuration as the create
    /// call takes; an "already exists" answer (a retried create) is success.
    pub async fn create(&self, ctx: &Context) -> Result<()> {
        match self {
            Desired::Bucket(desired) => desired.create(ctx).await,
            Desired::Repository(desired) => desired.create(ctx).await,
            Desired::Role(desired) => desired.create(ctx).await,
            Desired::LogGroup(desired) => desired.create(ctx).await,
            Desired::Function(desired) => desired.create(ctx).await,
            Desired::Secret(desired) => desired.create(ctx).await,
            Desired::Api(desired) => desired.create(ctx).await,
            Desired::Rule(desired) => desired.create(ctx).await,
            Desired::Permission(desired) => desired.create(ctx).await,
        }
    }

    /// Changes the differing fields in place, one call per group of fields.
    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        match self {
            Desired::Bucket(desired) => desired.update(ctx, diffs).await,
            Desired::Repository(desired) => desired.update(ctx, diffs).await,
            Desired::Role(desired) => desired.update(ctx, diffs).await,
            Desired::LogGroup(desired) => desired.update(ctx, diffs).await,
            Desired::Function(desired) => desired.update(ctx, diffs).await,
            Desired::Secret(desired) => desired.update(ctx, diffs).await,
            Desired::Api(desired) => desired.update(ctx, diffs).await,
            Desired::Rule(desired) => desired.update(ctx, diffs).await,
            Desired::Permission(desired) => desired.update(ctx, diffs).await,
        }
    }

    /// Deletes the resource; "not found" is success. `delete_contents`
    /// applies to the bucket only (every object version goes first).
    pub async fn delete(&self, ctx: &Context, delete_contents: bool) -> Result<()> {
        match self {
            Desired::Bucket(desired) => desired.delete(ctx, delete_contents).await,
            Desired::Repository(desired) => desired.delete(ctx).await,
            Desired::Role(desired) => desired.delete(ctx).await,
            Desired::LogGroup(desired) => desired.delete(ctx).await,
            Desired::Function(desired) => desired.delete(ctx).await,
            Desired::Secret(desired) => desired.delete(ctx).await,
            Desired::Api(desired) => desired.delete(ctx).await,
            Desired::Rule(desired) => desired.delete(ctx).await,
            Desired::Permission(desired) => desired.delete(ctx).await,
        }
    }
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

/// Brings a resource's tags to the desired set with its kind's own calls:
/// `set` adds or changes tags, `unset` removes keys; nothing is called when
/// the tags do not differ.
pub async fn sync_tags<SetFuture, UnsetFuture>(
    desired: &std::collections::BTreeMap<String, String>,
    diffs: &[FieldDiff],
    set: impl FnOnce(std::collections::BTreeMap<String, String>) -> SetFuture,
    unset: impl FnOnce(Vec<String>) -> UnsetFuture,
) -> Result<()>
where
    SetFuture: std::future::Future<Output = Result<()>>,
    UnsetFuture: std::future::Future<Output = Result<()>>,
{
    let Some(observed) = observed_value(diffs, "tags") else {
        return Ok(());
    };
    let (to_set, to_remove) = tag_changes(desired, observed);
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
