//! The desired-state file as written: serde structures that mirror the TOML
//! one to one. Unknown keys and wrong types are refused here; ranges and
//! formats are checked in `validate`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub deployment: RawDeployment,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub bucket: RawBucket,
    pub functions: BTreeMap<String, RawFunction>,
    pub api: Option<RawApi>,
    pub schedule: Option<RawSchedule>,
    pub panther_secret: Option<RawSecret>,
    pub registry: Option<RawRegistry>,
    #[serde(default)]
    pub notify: Vec<RawNotify>,
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// One `[[notify]]` target of the daemon's notifications.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub webhook: Option<String>,
    pub webhook_from_env: Option<String>,
    pub format: Option<String>,
    pub sns_topic_arn: Option<String>,
    pub events: Option<Vec<String>>,
    pub secret_from_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub name: String,
    pub region: String,
    pub account_id: Option<String>,
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    pub name: Option<String>,
    pub model_prefix: Option<String>,
    pub versioning: Option<bool>,
    pub encryption: Option<String>,
    pub block_public_access: Option<bool>,
    pub noncurrent_version_expiry_days: Option<i64>,
    pub retain_on_destroy: Option<bool>,
    pub adopt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    pub name: Option<String>,
    /// A prebuilt image; exclusive with `image`.
    pub image_uri: Option<String>,
    /// An image `apply` builds; exclusive with `image_uri`.
    pub image: Option<RawImage>,
    pub memory_mb: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub architecture: Option<String>,
    pub ephemeral_storage_mb: Option<i64>,
    pub reserved_concurrency: Option<i64>,
    pub description: Option<String>,
    pub model_access: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub adopt: Option<bool>,
    #[serde(default)]
    pub logs: RawLogs,
    #[serde(default)]
    pub role: RawRole,
    #[serde(default)]
    pub repository: RawRepository,
    pub release: Option<RawRelease>,
    #[serde(default)]
    pub ignore: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelease {
    pub alias: Option<String>,
    pub strategy: Option<String>,
    pub canary: Option<RawCanary>,
    pub linear: Option<RawLinear>,
    pub keep_versions: Option<i64>,
    pub alarms: Option<Vec<String>>,
    #[serde(default)]
    pub thresholds: RawThresholds,
    pub rollback_on_alarm: Option<bool>,
    pub alarm_check_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    pub percent: i64,
    /// Fractions of a minute are allowed.
    pub minutes: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinear {
    pub percent: i64,
    /// Fractions of a minute are allowed.
    pub every_minutes: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    pub errors: Option<f64>,
    pub throttles: Option<f64>,
    pub api_5xx: Option<f64>,
    pub api_latency_p99_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    pub retention_days: Option<i64>,
    pub adopt: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub name: Option<String>,
    pub path: Option<String>,
    pub adopt: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepository {
    pub name: Option<String>,
    pub scan_on_push: Option<bool>,
    pub immutable_tags: Option<bool>,
    pub keep_last_images: Option<i64>,
    pub adopt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub name: Option<String>,
    pub description: Option<String>,
    pub stage: Option<String>,
    pub throttle_rate_limit: Option<f64>,
    pub throttle_burst_limit: Option<i64>,
    pub cors_allow_origins: Option<Vec<String>>,
    pub api_key_required: Option<bool>,
    pub access_logging: Option<bool>,
    pub adopt: Option<bool>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub method: String,
    pub path: String,
    pub function: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub name: Option<String>,
    pub description: Option<String>,
    pub expression: String,
    pub enabled: Option<bool>,
    pub function: String,
    pub input: Option<String>,
    pub adopt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub name: Option<String>,
    pub description: Option<String>,
    pub value_from_env: String,
    pub function: String,
    pub adopt: Option<bool>,
}

/// An image built from a Dockerfile around one binary of the workspace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    pub dockerfile: String,
    pub package: String,
    /// More files for the build context (the CA bundle), under their names.
    #[serde(default)]
    pub include: Vec<String>,
}

/// Where built images are pushed instead of the ECR registry of the account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    pub endpoint: String,
}
