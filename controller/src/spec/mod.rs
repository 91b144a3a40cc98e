//! The desired state: the TOML file read, checked and turned into typed
//! values. Every problem is reported with the file, line and column where it
//! was written, and no AWS call is made before the whole file is valid.

pub mod environment;
mod locate;
mod raw;
mod schedule;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use locate::Position;
pub use validate::RESERVED_TAG_KEYS;

/// The IAM path of execution roles when the file gives none.
pub const DEFAULT_ROLE_PATH: &str = "/anomaly-controller/";

/// Where a deployment lives and what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// Lower-case name every derived resource name starts with.
    pub name: String,
    pub region: String,
    /// When set, the controller refuses to act in any other account.
    pub account_id: Option<String>,
    /// Overrides the AWS API endpoint (a local cloud); otherwise the SDK's own.
    pub endpoint_url: Option<String>,
}

/// Default encryption of the model bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`).
    S3Managed,
    /// SSE-KMS with the AWS-managed key (`aws:kms`).
    Kms,
}

impl Encryption {
    pub fn algorithm(self) -> &'static str {
        match self {
            Encryption::S3Managed => "AES256",
            Encryption::Kms => "aws:kms",
        }
    }
}

/// The S3 bucket that holds the trained models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSpec {
    pub name: String,
    /// Key prefix of the models; the functions' permissions are scoped to it.
    pub model_prefix: String,
    pub versioning: bool,
    pub encryption: Encryption,
    pub block_public_access: bool,
    /// Noncurrent model versions expire after this many days.
    pub noncurrent_version_expiry_days: Option<u32>,
    pub retain_on_destroy: bool,
    pub adopt: bool,
}

/// What a function may do with the models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAccess {
    None,
    Read,
    ReadWrite,
}

/// CPU architecture of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// The ECR repository a function's image lives in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositorySpec {
    pub name: String,
    pub scan_on_push: bool,
    pub immutable_tags: bool,
    /// The lifecycle policy keeps this many most recent images.
    pub keep_last_images: u32,
    pub adopt: bool,
}

/// The execution role of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSpec {
    pub name: String,
    /// IAM path; it cannot be changed in place, so a new path replaces the role.
    pub path: String,
    pub adopt: bool,
}

/// The CloudWatch log group of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogGroupSpec {
    pub name: String,
    pub retention_days: u32,
    pub adopt: bool,
}

/// A container-image Lambda function and what belongs to it.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSpec {
    /// The key under `[functions]` (`detection`, `training`).
    pub key: String,
    pub name: String,
    /// The image the function runs. For a built image (`build` set) this is
    /// empty until [`crate::image`] resolves it to `registry/repo@sha256:...`.
    pub image_uri: String,
    /// Set when `apply` builds the image instead of taking `image_uri` as is.
    pub build: Option<ImageBuild>,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub architecture: Architecture,
    pub ephemeral_storage_mb: u32,
    pub reserved_concurrency: Option<u32>,
    pub description: String,
    pub model_access: ModelAccess,
    pub environment: BTreeMap<String, String>,
    pub adopt: bool,
    pub logs: LogGroupSpec,
    pub role: RoleSpec,
    pub repository: RepositorySpec,
    /// Versions and an alias that every caller invokes; `None`: callers
    /// invoke the function itself (`$LATEST`).
    pub release: Option<ReleaseSpec>,
}

/// How a function's changes reach its callers: each change published as a
/// version, an alias everything invokes, traffic moved to the new version
/// in steps watched by alarms.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSpec {
    /// The alias the API, the permissions and the schedule invoke.
    pub alias: String,
    pub strategy: ReleaseStrategy,
    /// Published versions kept besides those an alias routes traffic to.
    pub keep_versions: u32,
    /// The alarms watched while the new version takes traffic.
    pub alarms: Vec<AlarmSpec>,
    /// An alarm in ALARM during a shift sends all traffic back to the
    /// previous version; otherwise the shift halts where it stands.
    pub rollback_on_alarm: bool,
    /// How often the alarms are read while traffic shifts.
    pub alarm_check: std::time::Duration,
}

/// How traffic moves to a new version.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReleaseStrategy {
    /// All traffic at once.
    AllAtOnce,
    /// `percent` for `step`, then all.
    Canary {
        percent: u32,
        step: std::time::Duration,
    },
    /// `percent` more every `step` until all.
    Linear {
        percent: u32,
        step: std::time::Duration,
    },
}

impl ReleaseStrategy {
    /// The share of traffic the new version takes at each step before it
    /// takes all of it, and how long each step lasts.
    pub fn steps(&self) -> (Vec<f64>, std::time::Duration) {
        match *self {
            ReleaseStrategy::AllAtOnce => (Vec::new(), std::time::Duration::ZERO),
            ReleaseStrategy::Canary { percent, step } => (vec![f64::from(percent) / 100.0], step),
            ReleaseStrategy::Linear { percent, step } => (
                (1..)
                    .map(|index| index * percent)
                    .take_while(|share| *share < 100)
                    .map(|share| f64::from(share) / 100.0)
                    .collect(),
                step,
            ),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ReleaseStrategy::AllAtOnce => "all-at-once",
            ReleaseStrategy::Canary { .. } => "canary",
            ReleaseStrategy::Linear { .. } => "linear",
        }
    }
}

/// What a managed alarm watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlarmMetric {
    /// `AWS/Lambda` `Errors` of the alias (Sum per minute).
    Errors,
    /// `AWS/Lambda` `Throttles` of the alias (Sum per minute).
    Throttles,
    /// `AWS/ApiGateway` `5XXError` of the API's stage (Sum per minute).
    Api5xx,
    /// `AWS/ApiGateway` `Latency` of the API's stage (p99 per minute, ms).
    ApiLatencyP99,
}

impl AlarmMetric {
    pub const ALL: [AlarmMetric; 4] = [
        AlarmMetric::Errors,
        AlarmMetric::Throttles,
        AlarmMetric::Api5xx,
        AlarmMetric::ApiLatencyP99,
    ];

    /// Its name in the file and in alarm names.
    pub fn key(self) -> &'static str {
        match self {
            AlarmMetric::Errors => "errors",
            AlarmMetric::Throttles => "throttles",
            AlarmMetric::Api5xx => "api-5xx",
            AlarmMetric::ApiLatencyP99 => "api-latency-p99",
        }
    }

    /// The threshold when the file gives none.
    pub fn default_threshold(self) -> f64 {
        match self {
            AlarmMetric::Errors | AlarmMetric::Throttles | AlarmMetric::Api5xx => 1.0,
            AlarmMetric::ApiLatencyP99 => 3000.0,
        }
    }

    /// Its key under `thresholds` in the file.
    pub fn threshold_key(self) -> &'static str {
        match self {
            AlarmMetric::Errors => "errors",
            AlarmMetric::Throttles => "throttles",
            AlarmMetric::Api5xx => "api_5xx",
            AlarmMetric::ApiLatencyP99 => "api_latency_p99_ms",
        }
    }

    pub fn watches_api(self) -> bool {
        matches!(self, AlarmMetric::Api5xx | AlarmMetric::ApiLatencyP99)
    }
}

/// One managed CloudWatch alarm of a release.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmSpec {
    pub metric: AlarmMetric,
    /// `<function name>-<metric key>`.
    pub name: String,
    /// In ALARM at or above this value (errors per minute, or ms).
    pub threshold: f64,
}

/// A function image `apply` builds: a Dockerfile and the workspace package
/// whose binary it holds, pushed to the function's repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageBuild {
    /// The Dockerfile; a relative path in the file is resolved against the
    /// directory of the desired-state file.
    pub dockerfile: PathBuf,
    /// The Cargo package whose binary the image holds.
    pub package: String,
    /// More files put in the build context under their file names (the CA
    /// bundle a `FROM scratch` image needs for HTTPS).
    pub include: Vec<PathBuf>,
    /// `[registry] endpoint` (`host:port`, optionally with `http://` or
    /// `https://`); `None` pushes to the account's ECR registry.
    pub registry: Option<String>,
}

/// One route of the REST API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// `GET`, `POST`, ... or `ANY`.
    pub method: String,
    /// `/health`, `/detect`, `/items/{id}`.
    pub path: String,
    /// Key of the function that answers it.
    pub function: String,
}

/// The API Gateway REST API in front of the functions.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiSpec {
    pub name: String,
    pub description: String,
    pub stage: String,
    /// Steady-state requests per second allowed on the stage.
    pub throttle_rate_limit: f64,
    pub throttle_burst_limit: u32,
    /// Origins CORS allows; empty for no CORS at all.
    pub cors_allow_origins: Vec<String>,
    pub api_key_required: bool,
    /// Access logs to the log group `/aws/apigateway/<name>`.
    pub access_logging: bool,
    pub adopt: bool,
    pub routes: Vec<RouteSpec>,
}

/// The EventBridge rule that runs a function on a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub name: String,
    pub description: String,
    /// `rate(...)` or `cron(...)`, checked when the file is read.
    pub expression: String,
    pub enabled: bool,
    pub function: String,
    /// Constant JSON input passed to the function.
    pub input: Option<String>,
    pub adopt: bool,
}

/// The Panther API token, stored in Secrets Manager. The file names only the
/// environment variable the value is read from at apply time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSpec {
    pub name: String,
    pub description: String,
    pub value_from_env: String,
    /// Key of the function allowed to read it (it gets the secret's ARN).
    pub function: String,
    pub adopt: bool,
}

/// A whole desired state, valid by construction.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub path: PathBuf,
    pub deployment: Deployment,
    /// Tags put on every resource, besides the ownership tags.
    pub tags: BTreeMap<String, String>,
    pub bucket: BucketSpec,
    /// Sorted by key.
    pub functions: Vec<FunctionSpec>,
    pub api: Option<ApiSpec>,
    pub schedule: Option<ScheduleSpec>,
    pub panther_secret: Option<SecretSpec>,
    /// Where the daemon sends notifications.
    pub notify: Vec<NotifySpec>,
    /// Fields someone else owns: neither drift nor changed by apply
    /// (top-level `ignore` and each function's own, resolved).
    pub ignore: Vec<crate::ignore::IgnoreRule>,
}

/// What the daemon notifies about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    DriftFound,
    DriftRepaired,
    RepairFailed,
    OrphanFound,
    ReleaseStarted,
    ReleaseCompleted,
    ReleaseRolledBack,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 7] = [
        NotifyEvent::DriftFound,
        NotifyEvent::DriftRepaired,
        NotifyEvent::RepairFailed,
        NotifyEvent::OrphanFound,
        NotifyEvent::ReleaseStarted,
        NotifyEvent::ReleaseCompleted,
        NotifyEvent::ReleaseRolledBack,
    ];

    /// Its name in the file and in payloads.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::DriftFound => "drift_found",
            NotifyEvent::DriftRepaired => "drift_repaired",
            NotifyEvent::RepairFailed => "repair_failed",
            NotifyEvent::OrphanFound => "orphan_found",
            NotifyEvent::ReleaseStarted => "release_started",
            NotifyEvent::ReleaseCompleted => "release_completed",
            NotifyEvent::ReleaseRolledBack => "release_rolled_back",
        }
    }
}

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyTarget {
    /// An HTTP(S) POST of JSON; `url_env` names the variable holding the
    /// URL when the file does not (a Slack URL is a secret).
    Webhook {
        url: Option<String>,
        url_env: Option<String>,
        slack: bool,
    },
    Sns {
        topic_arn: String,
    },
}

/// One `[[notify]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySpec {
    pub target: NotifyTarget,
    pub events: std::collections::BTreeSet<NotifyEvent>,
    /// The environment variable holding the key that signs webhook
    /// payloads (HMAC-SHA256).
    pub secret_env: Option<String>,
}

/// One problem in a desired-state file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// Dotted key path (`functions.detection.memory_mb`), empty for syntax errors.
    pub field: String,
    pub position: Option<Position>,
    pub message: String,
}

/// Why a desired-state file was refused: every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub path: PathBuf,
    pub problems: Vec<SpecProblem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let Some(position) = problem.position {
                write!(f, ":{}:{}", position.line, position.column)?;
            }
            if problem.field.is_empty() {
                write!(f, ": {}", problem.message)?;
            } else {
                write!(f, ": {}: {}", problem.field, problem.message)?;
            }
        }
        Ok(())
    }
}

impl Spec {
    /// Reads and checks a desired-state file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|error| SpecError {
            path: path.to_path_buf(),
            problems: vec![SpecProblem {
                field: String::new(),
                position: None,
                message: format!("cannot read the file: {error}"),
            }],
        })?;
        Spec::parse(path, &text)
    }

    /// Checks desired-state text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
        validate::parse(path, text)
    }

    /// The function with this key.
    pub fn function(&self, key: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|function| function.key == key)
    }
}
