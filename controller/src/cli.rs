//! The command line: parses arguments, runs one command, prints for people
//! or as JSON, and decides the exit code (0 done or in sync, 1 error,
//! 2 `diff` found differences).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::Action;
use crate::reconcile::{BucketOnDestroy, Controller, Outcome};
use crate::spec::Spec;

/// Exit code: success, or no difference.
pub const EXIT_OK: i32 = 0;
/// Exit code: an error; nothing more was changed.
pub const EXIT_ERROR: i32 = 1;
/// Exit code of `diff`: the deployment differs from the desired state.
pub const EXIT_DIFFERS: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "controller",
    version,
    about = "Converges the anomaly-detection deployment on AWS to a desired-state TOML file"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as JSON (one object per line), on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (`info`, `debug`, `controller=debug,aws_config=warn`...); RUST_LOG also works.
    #[arg(
        long,
        global = true,
        env = "CONTROLLER_LOG",
        default_value = "controller=info,warn"
    )]
    log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The desired-state file.
    #[arg(default_value = "config/prod.toml")]
    config: PathBuf,
    /// Print for people (`text`) or for machines (`json`).
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the file only; no AWS call.
    Validate(ConfigArg),
    /// Show what differs, field by field; read-only. Exit 0 in sync, 2 differs, 1 error.
    Diff(ConfigArg),
    /// Converge the deployment to the file.
    Apply(ConfigArg),
    /// Delete what the deployment owns, in reverse dependency order.
    Destroy {
        #[command(flatten)]
        config: ConfigArg,
        /// Keep the model bucket and its objects, whatever the file says.
        #[arg(long, conflicts_with = "delete_bucket")]
        retain_bucket: bool,
        /// Delete every object version of the model bucket, then the bucket.
        #[arg(long)]
        delete_bucket: bool,
        /// Do not ask for confirmation (for scripts).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return EXIT_ERROR;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            EXIT_ERROR
        }
    }
}

fn init_logging(cli: &Cli) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("controller=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load(config: &ConfigArg) -> Result<Spec> {
    Ok(Spec::load(&config.config)?)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn execute(command: Command) -> Result<i32> {
    match command {
        Command::Validate(config) => {
            let spec = load(&config)?;
            if config.output == Output::Json {
                print_json(
                    &serde_json::json!({"valid": true, "deployment": spec.deployment.name}),
                )?;
            } else {
                println!(
                    "{} is valid: deployment {} in {}, {} function(s)",
                    config.config.display(),
                    spec.deployment.name,
                    spec.deployment.region,
                    spec.functions.len()
                );
            }
            Ok(EXIT_OK)
        }
        Command::Diff(config) => {
            let controller = Controller::connect(load(&config)?).await?;
            let plan = controller.plan().await?;
            let differs = plan.has_changes();
            if config.output == Output::Json {
                print_json(
                    &serde_json::json!({"in_sync": !differs, "plan": plan, "calls": controller.calls()}),
                )?;
            } else {
                println!("{plan}");
                if !differs {
                    println!(
                        "In sync: the deployment matches {}.",
                        config.config.display()
                    );
                }
            }
            Ok(if differs { EXIT_DIFFERS } else { EXIT_OK })
        }
        Command::Apply(config) => {
            let controller = Controller::connect(load(&config)?).await?;
            let plan = controller.plan().await?;
            if config.output == Output::Text {
                println!("{plan}");
            }
            if !plan.has_changes() {
                if config.output == Output::Json {
                    print_json(
                        &serde_json::json!({"changed": false, "plan": plan, "calls": controller.calls()}),
                    )?;
                } else {
                    println!(
                        "No changes: the deployment already matches {}.",
                        config.config.display()
                    );
                }
                return Ok(EXIT_OK);
            }
            let outcome = controller.apply_plan(plan).await?;
            report(&outcome, config.output, "Applied")?;
            Ok(EXIT_OK)
        }
        Command::Destroy {
            config,
            retain_bucket,
            delete_bucket,
            yes,
        } => {
            let spec = load(&config)?;
            let name = spec.deployment.name.clone();
            let controller = Controller::connect(spec).await?;
            let bucket = if delete_bucket {
                BucketOnDestroy::Delete
            } else if retain_bucket {
                BucketOnDestroy::Retain
            } else {
                BucketOnDestroy::AsConfigured
            };
            let plan = controller.plan_destroy(bucket).await?;
            if config.output == Output::Text {
                println!("{plan}");
            }
            if plan.count(Action::Delete) == 0 && plan.refused().is_empty() {
                if config.output == Output::Text {
                    println!("Nothing to delete.");
                } else {
                    print_json(&serde_json::json!({"changed": false, "plan": plan}))?;
                }
                return Ok(EXIT_OK);
            }
            if !yes {
                confirm(&name)?;
            }
            let outcome = controller.destroy_plan(plan).await?;
            report(&outcome, config.output, "Destroyed")?;
            Ok(EXIT_OK)
        }
    }
}

/// Asks on a terminal for the deployment name; refuses without a terminal.
fn confirm(deployment: &str) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "refusing to destroy without confirmation: not on a terminal; pass --yes to confirm"
        );
    }
    print!("Type the deployment name ({deployment}) to destroy it: ");
    std::io::stdout()
        .flush()
        .context("cannot write the prompt")?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if answer.trim() != deployment {
        anyhow::bail!("not confirmed; nothing was deleted");
    }
    Ok(())
}

fn report(outcome: &Outcome, output: Output, verb: &str) -> Result<()> {
    if output == Output::Json {
        return print_json(&serde_json::json!({"changed": true, "outcome": outcome}));
    }
    let plan = &outcome.plan;
    println!(
        "{verb} in {:.1} s: {} created, {} updated, {} replaced, {} deleted ({} API calls, {} mutating).",
        outcome.seconds,
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Replace),
        plan.count(Action::Delete),
        outcome.calls.total,
        outcome.calls.mutating,
    );
    Ok(())
}
