//! The detection function: scores events with the latest anomaly model, behind API
//! Gateway (Lambda) or on a local port (`serve`), with one routing function for both.

pub mod cors;
pub mod lambda;
pub mod routes;
pub mod serve;
pub mod state;

use anomaly::store::{ModelStore, s3_client};
use cors::Cors;
use routes::Limits;
use state::{AppState, Source};
use std::path::PathBuf;
use std::time::Duration;

/// Configuration read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `MODEL_FILE`: a local model file instead of S3.
    pub model_file: Option<PathBuf>,
    /// `MODEL_BUCKET`: the bucket of the model store.
    pub bucket: Option<String>,
    /// `MODEL_PREFIX` (default `models/`).
    pub prefix: String,
    /// `MODEL_REFRESH_SECONDS` (default 60): the least time between two pointer checks.
    pub refresh: Duration,
    /// `MAX_BODY_BYTES` and `MAX_BATCH`.
    pub limits: Limits,
    /// `CORS_ALLOW_ORIGINS`.
    pub cors: Cors,
}

fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}={v} is not valid")),
        Err(_) => Ok(None),
    }
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let d = Limits::default();
        Ok(Config {
            model_file: std::env::var_os("MODEL_FILE").map(PathBuf::from),
            bucket: std::env::var("MODEL_BUCKET").ok().filter(|b| !b.is_empty()),
            prefix: std::env::var("MODEL_PREFIX").unwrap_or_else(|_| "models/".into()),
            refresh: Duration::from_secs(env_parse("MODEL_REFRESH_SECONDS")?.unwrap_or(60)),
            limits: Limits {
                max_body_bytes: env_parse("MAX_BODY_BYTES")?.unwrap_or(d.max_body_bytes),
                max_batch: env_parse("MAX_BATCH")?.unwrap_or(d.max_batch),
            },
            cors: Cors::from_env(),
        })
    }

    /// Builds the state and loads the first model (a failure leaves it unavailable).
    pub async fn state(&self) -> anyhow::Result<AppState> {
        let source = match (&self.model_file, &self.bucket) {
            (Some(path), _) => Source::File(path.clone()),
            (None, Some(bucket)) => {
                let conf = aws_config::load_from_env().await;
                Source::S3(ModelStore::new(
                    s3_client(&conf),
                    bucket.clone(),
                    self.prefix.clone(),
                ))
            }
            (None, None) => {
                anyhow::bail!("set MODEL_BUCKET (models in S3) or MODEL_FILE (a local model file)")
            }
        };
        let state = AppState::new(source, self.limits, self.refresh).with_cors(self.cors.clone());
        state.reload().await;
        Ok(state)
    }
}
