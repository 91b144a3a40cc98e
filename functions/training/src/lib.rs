//! The training function: reads events from a source, trains the anomaly model and
//! publishes it (versioned key first, then the `latest` pointer), unless it was trained
//! on fewer events than the configured minimum.

pub mod panther;
pub mod sources;

use anomaly::store::{ModelStore, error_chain, s3_client};
use anomaly::{Model, TrainParams};
use panther::{Panther, PantherConfig};
use serde::{Deserialize, Serialize};
use sources::{Loaded, Source};
use std::path::PathBuf;
use std::time::Duration;

/// Everything one training run needs.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where events come from.
    pub source: Source,
    /// Model store bucket (`None`: do not publish).
    pub bucket: Option<String>,
    /// Model store prefix.
    pub prefix: String,
    /// Fewest events for a model to be promoted.
    pub min_events: usize,
    /// Also write the model to this local file.
    pub out: Option<PathBuf>,
    /// Training parameters.
    pub params: TrainParams,
    /// Panther settings (used by [`Source::Panther`]).
    pub panther: PantherSettings,
}

/// How to reach Panther. `Debug` never shows the token.
#[derive(Clone)]
pub struct PantherSettings {
    /// GraphQL endpoint (`PANTHER_API_URL`).
    pub url: Option<String>,
    /// Secrets Manager ARN holding the token (`PANTHER_SECRET_ARN`).
    pub secret_arn: Option<String>,
    /// The token itself, for local use (`PANTHER_API_TOKEN`).
    pub token: Option<String>,
    /// SQL (`PANTHER_SQL`; default: Config events of the last `LOOKBACK_DAYS` days,
    /// also read as `TRAINING_DAYS`).
    pub sql: String,
    /// Deadline of the whole query (`PANTHER_TIMEOUT_SECONDS`, default 600).
    pub deadline: Duration,
    /// First poll wait (`PANTHER_POLL_MILLIS`, default 500).
    pub initial_backoff: Duration,
}

impl std::fmt::Debug for PantherSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PantherSettings")
            .field("url", &self.url)
            .field("secret_arn", &self.secret_arn)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("sql", &self.sql)
            .field("deadline", &self.deadline)
            .field("initial_backoff", &self.initial_backoff)
            .finish()
    }
}

impl PantherSettings {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<PantherSettings> {
        let days: u32 = match env_parse("LOOKBACK_DAYS")? {
            Some(d) => d,
            None => env_parse("TRAINING_DAYS")?.unwrap_or(30),
        };
        Ok(PantherSettings {
            url: std::env::var("PANTHER_API_URL")
                .ok()
                .filter(|s| !s.is_empty()),
            secret_arn: std::env::var("PANTHER_SECRET_ARN")
                .ok()
                .filter(|s| !s.is_empty()),
            token: std::env::var("PANTHER_API_TOKEN")
                .ok()
                .filter(|s| !s.is_empty()),
            sql: std::env::var("PANTHER_SQL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| panther::default_sql(days)),
            deadline: Duration::from_secs(env_parse("PANTHER_TIMEOUT_SECONDS")?.unwrap_or(600)),
            initial_backoff: Duration::from_millis(
                env_parse("PANTHER_POLL_MILLIS")?.unwrap_or(500),
            ),
        })
    }
}

/// The log filter (see [`anomaly::logging::filter`]).
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    anomaly::logging::filter()
}

/// Parses an environment variable when set.
pub fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}={v} is not valid")),
        _ => Ok(None),
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `promoted`, `written` (local file only) or `not_promoted`.
    pub status: String,
    /// Whether the `latest` pointer now names the new model.
    pub promoted: bool,
    /// Version of the trained model (`None` when none was trained).
    pub version: Option<String>,
    /// Events trained on.
    pub events: usize,
    /// Records skipped as unreadable.
    pub skipped: usize,
    /// The configured minimum.
    pub min_events: usize,
    /// The model's threshold.
    pub threshold: Option<f64>,
    /// Key of the new model object.
    pub model_key: Option<String>,
    /// The version `latest` named before the run.
    pub previous_version: Option<String>,
    /// Human-readable summary.
    pub message: String,
}

/// Reads the Panther token from Secrets Manager or the environment.
pub async fn panther_token(
    settings: &PantherSettings,
    conf: &aws_config::SdkConfig,
) -> anyhow::Result<String> {
    if let Some(arn) = &settings.secret_arn {
        let client = aws_sdk_secretsmanager::Client::new(conf);
        let out = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading the Panther token from Secrets Manager: {}",
                    error_chain(&e)
                )
            })?;
        let s = out
            .secret_string()
            .ok_or_else(|| anyhow::anyhow!("the secret {arn} has no string value"))?;
        return token_from_secret(s).ok_or_else(|| {
            anyhow::anyhow!(
                "the secret {arn} holds no token (a plain string or JSON with api_key / token)"
            )
        });
    }
    settings.token.clone().ok_or_else(|| {
        anyhow::anyhow!("set PANTHER_SECRET_ARN (Secrets Manager) or PANTHER_API_TOKEN (local use)")
    })
}

/// The token in a secret: the plain string, or a JSON object's `api_key`, `token`,
/// `apiKey` or `PANTHER_API_TOKEN`.
pub fn token_from_secret(s: &str) -> Option<String> {
    let t = s.trim();
    if t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t).ok()?;
        ["api_key", "token", "apiKey", "PANTHER_API_TOKEN"]
            .iter()
            .find_map(|k| v.get(k).and_then(|x| x.as_str()).map(str::to_string))
    } else if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

async fn load_events(job: &Job, conf: &aws_config::SdkConfig) -> anyhow::Result<Loaded> {
    match &job.source {
        Source::File(path) => sources::read_file(path),
        Source::S3 { bucket, prefix } => sources::read_s3(&s3_client(conf), bucket, prefix).await,
        Source::Panther => {
            let url = job.panther.url.clone().ok_or_else(|| {
                anyhow::anyhow!("set PANTHER_API_URL to Panther's GraphQL endpoint")
            })?;
            let token = panther_token(&job.panther, conf).await?;
            let client = Panther::new(PantherConfig {
                url,
                token,
                initial_backoff: job.panther.initial_backoff,
                max_backoff: Duration::from_secs(10).max(job.panther.initial_backoff),
                deadline: job.panther.deadline,
            })?;
            let rows = client.query(&job.panther.sql).await?;
            Ok(sources::from_rows(&rows))
        }
    }
}

/// Runs one training job with the AWS configuration of the environment.
pub async fn run(job: &Job) -> anyhow::Result<Outcome> {
    let needs_aws = job.bucket.is_some() || !matches!(job.source, Source::File(_));
    let conf = if needs_aws {
        aws_config::load_from_env().await
    } else {
        aws_config::SdkConfig::builder().build()
    };
    run_with(job, &conf).await
}

/// Runs one training job with the given AWS configuration.
pub async fn run_with(job: &Job, conf: &aws_config::SdkConfig) -> anyhow::Result<Outcome> {
    let store = job
        .bucket
        .as_ref()
        .map(|b| ModelStore::new(s3_client(conf), b.clone(), job.prefix.clone()));
    let previous = match &store {
        Some(s) => s.latest_pointer().await?.map(|p| p.version),
        None => None,
    };
    let loaded = load_events(job, conf).await?;
    let n = loaded.events.len();
    tracing::info!(events = n, skipped = loaded.skipped, "events read");
    if n < job.min_events || n == 0 {
        let keeps = match &previous {
            Some(v) => format!("model {v} stays the latest"),
            None => "no model is published".to_string(),
        };
        return Ok(Outcome {
            status: "not_promoted".into(),
            promoted: false,
            version: None,
            events: n,
            skipped: loaded.skipped,
            min_events: job.min_events,
            threshold: None,
            model_key: None,
            previous_version: previous,
            message: format!(
                "read {n} events, fewer than the minimum of {}: no model trained; {keeps}",
                job.min_events
            ),
        });
    }
    let events = loaded.events;
    let params = job.params;
    let model = tokio::task::spawn_blocking(move || Model::train(&events, params)).await??;
    if let Some(path) = &job.out {
        write_file_atomically(path, &model.to_json())?;
    }
    let (status, promoted, model_key, message) = match &store {
        Some(s) => {
            let p = s.publish(&model).await?;
            (
                "promoted",
                true,
                Some(p.key.clone()),
                format!(
                    "model {} trained on {n} events and promoted to s3://{}/{}",
                    model.version,
                    s.bucket(),
                    s.pointer_key()
                ),
            )
        }
        None => (
            "written",
            false,
            None,
            format!(
                "model {} trained on {n} events and written to {}",
                model.version,
                job.out
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        ),
    };
    Ok(Outcome {
        status: status.into(),
        promoted,
        version: Some(model.version.clone()),
        events: n,
        skipped: loaded.skipped,
        min_events: job.min_events,
        threshold: Some(model.threshold()),
        model_key,
        previous_version: previous,
        message,
    })
}

/// Writes through a temporary file and a rename, so the file is never seen half written.
pub fn write_file_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("model")
    ));
    std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("renaming to {}: {e}", path.display()))?;
    Ok(())
}

/// The Lambda event: the schedule's event, optionally with overrides at the top level
/// or under `detail`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Source override (`file:`, `s3://`, `panther`). Not `source`, which a scheduled
    /// event already uses for `aws.events`.
    pub training_source: Option<String>,
    /// Minimum override.
    pub min_events: Option<usize>,
}

impl Overrides {
    /// Reads overrides from a Lambda event (a scheduled event has none). An override
    /// of the wrong type is refused, never silently ignored.
    pub fn from_event(v: &serde_json::Value) -> Result<Overrides, String> {
        if !v.is_object() {
            return Err(format!(
                "the event must be a JSON object (an EventBridge event), got {v}"
            ));
        }
        let pick = |v: &serde_json::Value, at: &str| -> Result<Overrides, String> {
            let source = match v.get("training_source") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(format!("{at}training_source must be a string, got {other}"));
                }
            };
            let min = match v.get("min_events") {
                None | Some(serde_json::Value::Null) => None,
                Some(n) => Some(
                    n.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            format!("{at}min_events must be a non-negative integer, got {n}")
                        })?,
                ),
            };
            Ok(Overrides {
                training_source: source,
                min_events: min,
            })
        };
        let top = pick(v, "")?;
        let detail = match v.get("detail") {
            Some(d) if d.is_object() => pick(d, "detail.")?,
            _ => Overrides::default(),
        };
        Ok(Overrides {
            training_source: top.training_source.or(detail.training_source),
            min_events: top.min_events.or(detail.min_events),
        })
    }
}

/// An error reported to Lambda, with a readable `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The event's overrides are malformed.
    #[error("{0}")]
    InvalidEvent(String),
    /// The function's environment is incomplete or wrong.
    #[error("{0}")]
    InvalidConfiguration(String),
    /// S3 refused the model store (a missing permission of the role).
    #[error("{0:#}")]
    ModelStoreAccessDenied(anyhow::Error),
    /// Training or publishing failed.
    #[error("{0:#}")]
    TrainingFailed(anyhow::Error),
}

impl LambdaError {
    /// The `errorType` Lambda reports.
    pub fn error_type(&self) -> &'static str {
        match self {
            LambdaError::InvalidEvent(_) => "InvalidEvent",
            LambdaError::InvalidConfiguration(_) => "InvalidConfiguration",
            LambdaError::ModelStoreAccessDenied(_) => "ModelStoreAccessDenied",
            LambdaError::TrainingFailed(_) => "TrainingFailed",
        }
    }

    /// A failed run, classified: a refused model store is `ModelStoreAccessDenied`.
    pub fn from_run(error: anyhow::Error) -> LambdaError {
        let denied = error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<anomaly::store::StoreError>(),
                Some(anomaly::store::StoreError::AccessDenied { .. })
            )
        });
        if denied {
            LambdaError::ModelStoreAccessDenied(error)
        } else {
            LambdaError::TrainingFailed(error)
        }
    }
}

impl From<LambdaError> for lambda_runtime::Diagnostic {
    fn from(error: LambdaError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_string(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_formats() {
        assert_eq!(token_from_secret("abc"), Some("abc".into()));
        assert_eq!(token_from_secret(r#"{"api_key": "k"}"#), Some("k".into()));
        assert_eq!(token_from_secret(r#"{"other": "k"}"#), None);
        assert_eq!(token_from_secret("  "), None);
    }

    #[test]
    fn scheduled_event_overrides() {
        let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        let o = Overrides::from_event(&scheduled).unwrap();
        assert_eq!((o.training_source, o.min_events), (None, None));
        let o = Overrides::from_event(
            &json!({"detail": {"training_source": "panther", "min_events": 5}}),
        )
        .unwrap();
        assert_eq!(
            (o.training_source.as_deref(), o.min_events),
            (Some("panther"), Some(5))
        );
        let o =
            Overrides::from_event(&json!({"min_events": 7, "detail": {"min_events": 5}})).unwrap();
        assert_eq!(o.min_events, Some(7), "the top level wins");
    }

    #[test]
    fn malformed_overrides_are_refused() {
        for event in [
            json!({"detail": {"min_events": "many"}}),
            json!({"min_events": -1}),
            json!({"detail": {"training_source": 3}}),
            json!("not an object"),
        ] {
            let error = Overrides::from_event(&event).unwrap_err();
            assert!(!error.is_empty(), "{event}");
        }
    }

    #[test]
    fn error_types_are_names() {
        let denied = anyhow::Error::new(anomaly::store::StoreError::AccessDenied {
            operation: "GetObject",
            bucket: "b".into(),
            key: "k".into(),
            needs: anomaly::store::READ_PERMISSIONS,
            message: "AccessDenied".into(),
        })
        .context("reading the pointer");
        let d: lambda_runtime::Diagnostic = LambdaError::from_run(denied).into();
        assert_eq!(d.error_type, "ModelStoreAccessDenied");
        assert!(
            d.error_message.contains("s3:ListBucket"),
            "{}",
            d.error_message
        );
        let d: lambda_runtime::Diagnostic =
            LambdaError::from_run(anyhow::anyhow!("too few events")).into();
        assert_eq!(d.error_type, "TrainingFailed");
        let d: lambda_runtime::Diagnostic = LambdaError::InvalidEvent("x".into()).into();
        assert_eq!(d.error_type, "InvalidEvent");
    }
}
