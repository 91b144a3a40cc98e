//! The command line: parses arguments, runs one command, prints for people
//! or as JSON, and decides the exit code (0 done or in sync, 1 error,
//! 2 `diff` found differences).

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::daemon::{self, Mode};
use crate::image::{self, Images, Progress};
use crate::lease::{self, Lease};
use crate::plan::{Action, Plan};
use crate::reconcile::{self, BucketOnDestroy, Controller, Outcome, Status};
use crate::resources::{ResourceKind, bucket};
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
    /// Print the least-privilege IAM policy the controller needs for this
    /// deployment (JSON), to give the credentials that run it.
    Policy {
        /// The desired-state file.
        #[arg(default_value = "config/prod.toml")]
        config: PathBuf,
        /// The AWS account id; default: `deployment.account_id`, else the
        /// account of the current credentials.
        #[arg(long)]
        account: Option<String>,
    },
    /// Show what differs, field by field, and what the deployment owns that
    /// the file no longer names; read-only. Exit 0 in sync, 2 differs, 1 error.
    Diff {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        prune: PruneArgs,
        #[command(flatten)]
        select: SelectArgs,
        /// Also save the plan to this file, for `apply --plan`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Converge the deployment to the file, deleting what it no longer names.
    Apply {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        lease: LeaseArgs,
        #[command(flatten)]
        prune: PruneArgs,
        #[command(flatten)]
        select: SelectArgs,
        /// Do not ask for confirmation before deleting or replacing (for scripts).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Start a canary or linear release and return; the next apply or
        /// the daemon moves it on, reading where it stands from the alias.
        #[arg(long)]
        no_wait: bool,
        /// Carry out exactly the plan `diff --out FILE` saved, or refuse if
        /// the file or anything it observed changed since (no question
        /// asked: the plan was reviewed).
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Point a function's release alias back at the previous version (or
    /// `--to`) at once; the version taken out is not released again until
    /// the file or the image changes.
    Rollback {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        lease: LeaseArgs,
        /// The function (its key in the file, or its name); default: every
        /// function with a release.
        #[arg(long)]
        function: Option<String>,
        /// The version to go back to; default: the one the last release replaced.
        #[arg(long, requires = "function")]
        to: Option<String>,
    },
    /// Print where the deployment lives, read from AWS: invoke URLs, API
    /// id and stage, function and alias ARNs, image digests, bucket,
    /// secret and rule ARNs. With NAME, only that value (for the shell:
    /// `curl "$(controller output invoke_url.detect)"`).
    Output {
        /// `[CONFIG] [NAME]`: a path to the desired-state file (default
        /// `config/prod.toml`) and/or an output's name.
        #[arg(num_args = 0..=2, value_name = "CONFIG | NAME")]
        args: Vec<String>,
        /// All outputs as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a completion script for a shell (`controller completions bash
    /// > /etc/bash_completion.d/controller`).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff; `controller man | man -l -`).
    Man,
    /// List each function's published versions (digest, when published)
    /// and which alias sends each what share of traffic; read-only.
    Releases(ConfigArg),
    /// Delete what the deployment owns, in reverse dependency order.
    Destroy {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        lease: LeaseArgs,
        /// Keep the model bucket and its objects, whatever the file says.
        #[arg(long, conflicts_with = "delete_bucket")]
        retain_bucket: bool,
        /// Delete every object version of the model bucket, then the bucket.
        #[arg(long)]
        delete_bucket: bool,
        #[command(flatten)]
        select: SelectArgs,
        /// List what would be deleted and what kept, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation (for scripts).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Run until stopped: reconcile every interval and on edits of the file;
    /// report the drift, or repair it with `--mode enforce`.
    Run {
        /// The desired-state file, watched for edits.
        #[arg(default_value = "config/prod.toml")]
        config: PathBuf,
        /// Time between reconciles (`30s`, `5m`, `1h`), give or take a tenth.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        interval: Duration,
        /// `report` logs and exposes drift; `enforce` repairs it.
        #[arg(long, value_enum, default_value_t = Mode::Report)]
        mode: Mode,
        /// Address of the HTTP endpoints (/healthz, /readyz, /metrics, /status).
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Time to live of the writers' lease (renewed every third of it).
        #[arg(
            long,
            hide = true,
            env = "CONTROLLER_LEASE_TTL",
            default_value = "60s",
            value_parser = parse_duration
        )]
        lease_ttl: Duration,
    },
}

/// Which resources a command acts on.
#[derive(Debug, Args)]
struct SelectArgs {
    /// Act on these only: `KIND` or `KIND/NAME` (a trailing `*` in NAME
    /// matches any rest), repeatable; `function/anomaly-prod-detection`.
    #[arg(long = "only", value_name = "KIND[/NAME]")]
    only: Vec<String>,
    /// Leave these alone: `KIND` or `KIND/NAME`, repeatable.
    #[arg(long = "exclude", value_name = "KIND[/NAME]")]
    exclude: Vec<String>,
}

impl SelectArgs {
    fn selector(&self) -> Result<reconcile::select::Selector> {
        Ok(reconcile::select::Selector::new(&self.only, &self.exclude)?)
    }
}

/// What happens to resources the file no longer names.
#[derive(Debug, Args)]
struct PruneArgs {
    /// Keep the deployment's resources the file no longer names (they are
    /// listed as orphans) instead of deleting them.
    #[arg(long)]
    no_prune: bool,
}

/// The writers' lease, held while apply or destroy changes the deployment.
#[derive(Debug, Args)]
struct LeaseArgs {
    /// How long to wait for another writer's lease before giving up (`0s`: fail at once).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    wait_lease: Duration,
    /// Time to live of the writers' lease (renewed every third of it).
    #[arg(
        long,
        hide = true,
        env = "CONTROLLER_LEASE_TTL",
        default_value = "60s",
        value_parser = parse_duration
    )]
    lease_ttl: Duration,
}

/// Colours for plans: on a terminal, unless `NO_COLOR` is set
/// (<https://no-color.org>).
fn plan_colours() -> crate::plan::Colours {
    use std::io::IsTerminal;
    crate::plan::Colours {
        on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error} (write e.g. 10s, 5m, 1h)"))
}

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    // Generated from the command line's own definition; no AWS, no logs.
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "controller",
                &mut std::io::stdout(),
            );
            return EXIT_OK;
        }
        Command::Man => {
            use clap::CommandFactory;
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => EXIT_OK,
                Err(error) => {
                    eprintln!("error: cannot write the manual page: {error}");
                    EXIT_ERROR
                }
            };
        }
        _ => {}
    }
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
        .with_writer(|| crate::image::LogWriter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load(config: &ConfigArg) -> Result<Spec> {
    Ok(Spec::load(&config.config)?)
}

/// `output`'s arguments: a desired-state file (an existing path, or one
/// ending in `.toml`) and an output name, in either order, both optional.
fn output_arguments(args: &[String]) -> Result<(PathBuf, Option<String>)> {
    let mut config = None;
    let mut name = None;
    for arg in args {
        let is_file = arg.ends_with(".toml") || std::path::Path::new(arg).is_file();
        let slot = if is_file { &mut config } else { &mut name };
        if slot.replace(arg.clone()).is_some() {
            anyhow::bail!(
                "give at most one desired-state file and one output name (got {})",
                args.join(" ")
            );
        }
    }
    Ok((
        PathBuf::from(config.unwrap_or_else(|| "config/prod.toml".into())),
        name,
    ))
}

/// The file's spec and the text it was read from (saved plans carry a
/// digest of that text).
fn load_with_text(config: &ConfigArg) -> Result<(Spec, String)> {
    let text = std::fs::read_to_string(&config.config)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", config.config.display()))?;
    Ok((Spec::parse(&config.config, &text)?, text))
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
        Command::Policy { config, account } => {
            let spec = load(&ConfigArg {
                config,
                output: Output::Json,
            })?;
            let account = match account.or_else(|| spec.deployment.account_id.clone()) {
                Some(account) => account,
                None => Controller::connect(spec.clone())
                    .await?
                    .ctx
                    .account_id
                    .clone(),
            };
            let partition = crate::resources::partition_of(&spec.deployment.region);
            print_json(&crate::access::controller_policy(
                &spec, partition, &account,
            ))?;
            Ok(EXIT_OK)
        }
        Command::Rollback {
            config,
            lease,
            function,
            to,
        } => {
            let controller = Controller::connect(load(&config)?).await?;
            let held = take_lease(&controller, &lease, "rollback", false).await?;
            let result =
                crate::rollback::rollback(&controller, function.as_deref(), to.as_deref()).await;
            release(held).await;
            let rolled_back = result?;
            if config.output == Output::Json {
                print_json(&serde_json::json!({"rolled_back": rolled_back}))?;
            } else {
                for done in &rolled_back {
                    println!("{done}");
                }
            }
            Ok(EXIT_OK)
        }
        // Handled in `run`, before logging and the runtime start.
        Command::Completions { .. } | Command::Man => Ok(EXIT_OK),
        Command::Output { args, json } => {
            let (config, name) = output_arguments(&args)?;
            let controller = Controller::connect(Spec::load(&config)?).await?;
            let outputs = crate::outputs::read(&controller).await?;
            match name {
                Some(name) => match outputs.get(&name) {
                    Some(value) => println!("{value}"),
                    None => anyhow::bail!(
                        "no output {name:?} in {}: it is not one this deployment has, or it is not deployed (outputs: {})",
                        config.display(),
                        outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                },
                None if json => print_json(&outputs)?,
                None => {
                    for (name, value) in &outputs {
                        println!("{name} = {value}");
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Command::Releases(config) => {
            let controller = Controller::connect(load(&config)?).await?;
            let releases = crate::releases::list(&controller).await?;
            if config.output == Output::Json {
                print_json(&serde_json::json!({"functions": releases}))?;
            } else {
                for function in &releases {
                    print!("{function}");
                }
            }
            Ok(EXIT_OK)
        }
        Command::Diff {
            config,
            prune,
            select,
            out,
        } => {
            let selector = select.selector()?;
            let (spec, text) = load_with_text(&config)?;
            let mut controller = Controller::connect(spec).await?;
            controller.set_prune(!prune.no_prune);
            let images = Images::prepare(
                &controller.spec,
                &controller.ctx.clients,
                &Progress::detect(),
            )
            .await?;
            let plan = image::plan(&mut controller, &images).await?;
            let plan = controller.select(plan, &selector, false).await?;
            let differs = plan.has_changes();
            if let Some(out) = &out {
                crate::saved_plan::SavedPlan::new(&plan, &config.config, &text).write(out)?;
                tracing::info!(file = %out.display(), "plan saved; carry it out with apply --plan");
            }
            if config.output == Output::Json {
                print_json(
                    &serde_json::json!({"in_sync": !differs, "plan": plan, "calls": controller.calls(), "images": images.report()}),
                )?;
            } else {
                println!("{}", plan.render(plan_colours()));
                if !differs {
                    println!(
                        "In sync: the deployment matches {}.",
                        config.config.display()
                    );
                }
            }
            Ok(if differs { EXIT_DIFFERS } else { EXIT_OK })
        }
        Command::Apply {
            config,
            lease,
            prune,
            yes,
            no_wait,
            plan: saved,
            select,
        } => {
            let selector = select.selector()?;
            let saved = saved
                .map(|path| crate::saved_plan::SavedPlan::read(&path).map(|plan| (path, plan)))
                .transpose()?;
            let (spec, text) = load_with_text(&config)?;
            let mut controller = Controller::connect(spec).await?;
            controller.set_prune(!prune.no_prune);
            if no_wait {
                let waits = controller.ctx.waits;
                controller.set_waits(crate::resources::WaitSettings {
                    wait_for_shifts: false,
                    ..waits
                });
            }
            let progress = Progress::detect();
            let mut images =
                Images::prepare(&controller.spec, &controller.ctx.clients, &progress).await?;
            let plan = image::plan(&mut controller, &images).await?;
            let mut plan = controller.select(plan, &selector, false).await?;
            // Changes to make: take the writers' lease and plan again under it.
            let lease = if plan.has_changes() {
                let held = take_lease(&controller, &lease, "apply", true).await?;
                controller.set_fence(Some(held.guard()));
                let replanned = match image::plan(&mut controller, &images).await {
                    Ok(plan) => controller.select(plan, &selector, false).await,
                    Err(error) => Err(error),
                };
                plan = match replanned {
                    Ok(plan) => plan,
                    Err(error) => {
                        release(held).await;
                        return Err(error.into());
                    }
                };
                Some(held)
            } else {
                None
            };
            if let Some((path, saved)) = &saved {
                let moved = saved.moved(&config.config, &text, &plan);
                if !moved.is_empty() {
                    if let Some(held) = lease {
                        release(held).await;
                    }
                    return Err(crate::saved_plan::SavedPlanError::Stale {
                        path: path.clone(),
                        moved,
                    }
                    .into());
                }
            }
            if config.output == Output::Text {
                println!("{}", plan.render(plan_colours()));
            }
            if !plan.has_changes() {
                if let Some(held) = lease {
                    release(held).await;
                }
                if config.output == Output::Json {
                    print_json(
                        &serde_json::json!({"changed": false, "plan": plan, "calls": controller.calls(), "images": images.report()}),
                    )?;
                } else {
                    println!(
                        "No changes: the deployment already matches {}.",
                        config.config.display()
                    );
                    print_invoke_urls(&controller).await;
                }
                return Ok(EXIT_OK);
            }
            if plan.destroys() && !yes && saved.is_none() {
                if let Err(refused) = confirm_changes(&plan) {
                    if let Some(held) = lease {
                        release(held).await;
                    }
                    return Err(refused);
                }
            }
            let outcome = image::apply(&mut controller, &mut images, plan, &progress).await;
            if let Some(held) = lease {
                release(held).await;
            }
            let outcome = match outcome {
                Err(image::DeployError::Reconcile(reconcile::Error::Incomplete(outcome))) => {
                    report(&outcome, config.output, "Applied")?;
                    return Ok(EXIT_ERROR);
                }
                other => other?,
            };
            if config.output == Output::Json {
                print_json(
                    &serde_json::json!({"changed": true, "outcome": outcome, "images": images.report()}),
                )?;
            } else {
                report(&outcome, config.output, "Applied")?;
                print_invoke_urls(&controller).await;
                if !images.report().images.is_empty() {
                    println!("Images: {}.", images.report().summary());
                }
            }
            Ok(EXIT_OK)
        }
        Command::Destroy {
            config,
            lease,
            retain_bucket,
            delete_bucket,
            yes,
            select,
            dry_run,
        } => {
            let selector = select.selector()?;
            let spec = load(&config)?;
            let name = spec.deployment.name.clone();
            let mut controller = Controller::connect(spec).await?;
            let bucket = if delete_bucket {
                BucketOnDestroy::Delete
            } else if retain_bucket {
                BucketOnDestroy::Retain
            } else {
                BucketOnDestroy::AsConfigured
            };
            let plan = controller.plan_destroy(bucket).await?;
            let plan = controller.select(plan, &selector, true).await?;
            if config.output == Output::Text {
                println!("{}", plan.render(plan_colours()));
            }
            if dry_run {
                if config.output == Output::Json {
                    print_json(
                        &serde_json::json!({"changed": false, "dry_run": true, "plan": plan}),
                    )?;
                } else {
                    println!(
                        "Dry run: {} would be deleted, {} kept; nothing was changed.",
                        plan.count(Action::Delete),
                        plan.count(Action::Retain) + plan.count(Action::Refused)
                    );
                }
                return Ok(EXIT_OK);
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
            let outcome =
                match destroy_under_lease(&mut controller, plan, bucket, &lease, &selector).await {
                    Ok(outcome) => outcome,
                    Err(error) => match error.downcast::<reconcile::Error>() {
                        Ok(reconcile::Error::Incomplete(outcome)) => {
                            report(&outcome, config.output, "Destroyed")?;
                            return Ok(EXIT_ERROR);
                        }
                        Ok(other) => return Err(other.into()),
                        Err(other) => return Err(other),
                    },
                };
            report(&outcome, config.output, "Destroyed")?;
            Ok(EXIT_OK)
        }
        Command::Run {
            config,
            interval,
            mode,
            listen,
            lease_ttl,
        } => {
            daemon::run(daemon::Options {
                config,
                interval,
                mode,
                listen,
                lease_ttl,
                watch_period: Duration::from_secs(1),
            })
            .await?;
            Ok(EXIT_OK)
        }
    }
}

/// Takes the writers' lease in the model bucket, creating the bucket first
/// when `ensure_bucket` and it is absent.
async fn take_lease(
    controller: &Controller,
    args: &LeaseArgs,
    command: &str,
    ensure_bucket: bool,
) -> Result<Lease> {
    if ensure_bucket && controller.ensure_bucket().await? {
        tracing::info!(bucket = %controller.spec.bucket.name, "created the model bucket first: it holds the writers' lease");
    }
    let s3 = lease::connect(&controller.spec.deployment).await;
    let options = lease::Options {
        ttl: args.lease_ttl,
        wait: args.wait_lease,
        command: command.to_string(),
    };
    let deployment = &controller.spec.deployment;
    Ok(Lease::acquire(
        &s3,
        &controller.spec.bucket.name,
        &deployment.name,
        &options,
    )
    .await?)
}

async fn release(lease: Lease) {
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "cannot release the writers' lease; it expires on its own");
    }
}

/// Destroys under the lease, planning again once it is held. When the bucket
/// is to be deleted, the lease is released first (it lives in the bucket).
/// Without the bucket there is no lease to take.
async fn destroy_under_lease(
    controller: &mut Controller,
    plan: Plan,
    bucket: BucketOnDestroy,
    args: &LeaseArgs,
    selector: &reconcile::select::Selector,
) -> Result<Outcome> {
    let is_bucket = |change: &crate::plan::Change| change.resource.kind == bucket::KIND.kind();
    if !plan
        .changes
        .iter()
        .any(|change| is_bucket(change) && change.action != Action::Absent)
    {
        tracing::warn!("the model bucket is absent: destroying without the writers' lease");
        return Ok(controller.destroy_plan(plan).await?);
    }
    let held = take_lease(controller, args, "destroy", false).await?;
    controller.set_fence(Some(held.guard()));
    let replanned = match controller.plan_destroy(bucket).await {
        Ok(plan) => controller.select(plan, selector, true).await,
        Err(error) => Err(error),
    };
    let plan = match replanned {
        Ok(plan) => plan,
        Err(error) => {
            release(held).await;
            return Err(error.into());
        }
    };
    let (bucket_changes, others): (Vec<_>, Vec<_>) = plan
        .changes
        .iter()
        .cloned()
        .partition(|change| is_bucket(change) && change.action == Action::Delete);
    let first = Plan {
        deployment: plan.deployment.clone(),
        changes: others,
    };
    let outcome = controller.destroy_plan(first).await;
    controller.set_fence(None);
    release(held).await;
    let mut outcome = outcome?;
    if !bucket_changes.is_empty() {
        let last = Plan {
            deployment: plan.deployment.clone(),
            changes: bucket_changes,
        };
        let deleted = controller.destroy_plan(last).await?;
        outcome.seconds += deleted.seconds;
        outcome.calls = deleted.calls;
    }
    outcome.plan = plan;
    Ok(outcome)
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

/// Asks on a terminal before an apply deletes or replaces anything;
/// refuses without a terminal.
fn confirm_changes(plan: &Plan) -> Result<()> {
    let doomed: Vec<String> = plan
        .changes
        .iter()
        .filter(|change| matches!(change.action, Action::Delete | Action::Replace))
        .map(|change| change.resource.to_string())
        .collect();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "refusing to delete or replace {} without confirmation: not on a terminal; pass --yes to confirm, or --no-prune to keep what the file no longer names",
            doomed.join(", ")
        );
    }
    print!(
        "This deletes or replaces {} resource(s). Type yes to go on: ",
        doomed.len()
    );
    std::io::stdout()
        .flush()
        .context("cannot write the prompt")?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if answer.trim() != "yes" {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

/// Prints an outcome: a summary and every resource that did not succeed
/// (text), or everything (JSON, with `succeeded` saying whether all did).
fn report(outcome: &Outcome, output: Output, verb: &str) -> Result<()> {
    if output == Output::Json {
        return print_json(
            &serde_json::json!({"changed": true, "succeeded": outcome.succeeded(), "outcome": outcome}),
        );
    }
    for problem in outcome.problems() {
        println!("  {}: {}", problem.resource, problem.status);
    }
    let done = |action: Action| {
        outcome
            .results
            .iter()
            .filter(|result| result.action == action && result.status == Status::Done)
            .count()
    };
    let problems = outcome.problems().len();
    println!(
        "{verb} in {:.1} s: {} created, {} updated, {} replaced, {} deleted{} ({} API calls, {} mutating).",
        outcome.seconds,
        done(Action::Create),
        done(Action::Update),
        done(Action::Replace),
        done(Action::Delete),
        if problems > 0 {
            format!(", {problems} not done")
        } else {
            String::new()
        },
        outcome.calls.total,
        outcome.calls.mutating,
    );
    Ok(())
}

/// Prints where the REST API's routes answer.
async fn print_invoke_urls(controller: &Controller) {
    match controller.invoke_urls().await {
        Ok(urls) if !urls.is_empty() => {
            println!("Invoke URLs:");
            for url in urls {
                println!("  {url}");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot look up the REST API's invoke URLs"),
    }
}
