//! `training`: the scheduled Lambda function (default) and a CLI for local use.
//!
//! - `training train --source file:PATH|s3://bucket/prefix|panther --bucket B --min-events N`
//! - `training generate --count N --seed S --out PATH` writes the simulated organisation's
//!   normal activity, day after day from its first day, as JSON Lines.
//! - `training lambda` (or no subcommand) runs the Lambda runtime loop.

use anomaly::TrainParams;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use training::sources::Source;
use training::{Job, LambdaError, Outcome, Overrides, PantherSettings, env_parse};

#[derive(Parser)]
#[command(about = "Trains the anomaly model and publishes it")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train once and publish (or write) the model; prints the outcome as JSON.
    Train {
        /// file:PATH, s3://bucket/prefix or panther.
        #[arg(long, env = "TRAINING_SOURCE")]
        source: Source,
        /// Model store bucket.
        #[arg(long, env = "MODEL_BUCKET")]
        bucket: Option<String>,
        /// Model store prefix.
        #[arg(long, env = "MODEL_PREFIX", default_value = "models/")]
        prefix: String,
        /// Fewest events for a model to be promoted.
        #[arg(long, env = "MIN_EVENTS", default_value_t = 1000)]
        min_events: usize,
        /// Also write the model to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Expected share of anomalies; sets the threshold.
        #[arg(long, default_value_t = 0.01)]
        contamination: f64,
        /// The latest share of the events (by time, whole days) the threshold is
        /// calibrated on, each day scored as if it were tomorrow's (0 to 1).
        #[arg(long, default_value_t = 0.5)]
        calibration_share: f64,
    },
    /// Write the simulated organisation's normal activity as JSON Lines.
    Generate {
        /// Number of events.
        #[arg(long)]
        count: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run as the scheduled AWS Lambda function (the default).
    Lambda,
}

fn print(outcome: &Outcome) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(outcome)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anomaly::logging::init(matches!(cli.command, None | Some(Command::Lambda)));
    match cli.command {
        Some(Command::Train {
            source,
            bucket,
            prefix,
            min_events,
            out,
            contamination,
            calibration_share,
        }) => {
            if bucket.is_none() && out.is_none() {
                anyhow::bail!("give --bucket (publish to S3) and/or --out (write a local file)");
            }
            let job = Job {
                source,
                bucket,
                prefix,
                min_events,
                out,
                params: TrainParams {
                    contamination,
                    calibration_share,
                    ..TrainParams::default()
                },
                panther: PantherSettings::from_env()?,
            };
            let outcome = training::run(&job).await?;
            print(&outcome)
        }
        Some(Command::Generate { count, seed, out }) => {
            let organisation = anomaly::organisation::Organisation::new(seed);
            let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
            let mut written = 0;
            let mut day = 0;
            while written < count {
                for record in organisation.normal_events(day, day + 1) {
                    if written == count {
                        break;
                    }
                    serde_json::to_writer(&mut w, &record)?;
                    w.write_all(b"\n")?;
                    written += 1;
                }
                day += 1;
            }
            w.flush()?;
            Ok(())
        }
        Some(Command::Lambda) | None => {
            lambda_runtime::run(lambda_runtime::service_fn(lambda_handler))
                .await
                .map_err(|e| anyhow::anyhow!(e))
        }
    }
}

async fn lambda_handler(
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<Outcome, LambdaError> {
    lambda_train(&event.payload).await.inspect_err(|error| {
        tracing::error!(error_type = error.error_type(), error = %error, "training run failed")
    })
}

fn config_error(e: impl std::fmt::Display) -> LambdaError {
    LambdaError::InvalidConfiguration(e.to_string())
}

/// One scheduled run: configuration from the environment, overrides from the event.
async fn lambda_train(payload: &serde_json::Value) -> Result<Outcome, LambdaError> {
    let o = Overrides::from_event(payload).map_err(LambdaError::InvalidEvent)?;
    let source: Source = match o.training_source {
        Some(s) => s.parse().map_err(LambdaError::InvalidEvent)?,
        None => match std::env::var("TRAINING_SOURCE") {
            Ok(s) => s
                .parse()
                .map_err(|e: String| config_error(format!("TRAINING_SOURCE: {e}")))?,
            Err(_) => Source::Panther,
        },
    };
    let min_events = match o.min_events {
        Some(n) => n,
        None => match env_parse("MIN_EVENTS").map_err(config_error)? {
            Some(n) => n,
            None => env_parse("MIN_TRAINING_EVENTS")
                .map_err(config_error)?
                .unwrap_or(1000),
        },
    };
    let job = Job {
        source,
        bucket: Some(
            std::env::var("MODEL_BUCKET")
                .ok()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| config_error("MODEL_BUCKET is not set"))?,
        ),
        prefix: std::env::var("MODEL_PREFIX").unwrap_or_else(|_| "models/".into()),
        min_events,
        out: None,
        params: TrainParams::default(),
        panther: PantherSettings::from_env().map_err(config_error)?,
    };
    let outcome = training::run(&job).await.map_err(LambdaError::from_run)?;
    tracing::info!(status = %outcome.status, message = %outcome.message, "training finished");
    Ok(outcome)
}
