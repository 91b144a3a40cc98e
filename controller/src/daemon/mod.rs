//! `controller run`: the reconcile loop as a long-running daemon.
//!
//! Every interval (with jitter), and whenever the configuration file
//! changes, it observes the deployment and diffs it against the desired
//! state; in report mode it logs the drift, in enforce mode it repairs it
//! under the writers' lease. Errors back off per resource. It serves
//! `/healthz`, `/readyz`, `/metrics` and `/status`, and on SIGTERM or SIGINT
//! finishes the reconcile in flight and exits.

pub mod http;
pub mod metrics;
pub mod notify;
pub mod state;
mod step;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch as channel};

use crate::reconcile::Controller;
use crate::spec::{Spec, SpecError};
use metrics::Metrics;
use state::{Status, Trigger};
use step::Daemon;

/// Report drift, or repair it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Log and expose the drift; change nothing.
    Report,
    /// Repair the drift, holding the writers' lease while mutating.
    Enforce,
}

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub interval: Duration,
    pub mode: Mode,
    pub listen: SocketAddr,
    pub lease_ttl: Duration,
    /// How often the configuration file is checked for edits.
    pub watch_period: Duration,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] SpecError),
    #[error(transparent)]
    Connect(#[from] crate::reconcile::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot handle signals: {0}")]
    Signal(std::io::Error),
}

/// Runs until SIGTERM or SIGINT; then finishes the reconcile in flight,
/// stops serving and returns. A second signal exits at once (status 1).
pub async fn run(options: Options) -> Result<(), Error> {
    let stop = stop_on_signals()?;
    let initial_digest = watch::digest(&options.config);
    let spec = Spec::load(&options.config)?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: options.listen,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(options.listen);
    let status = Arc::new(RwLock::new(Status {
        deployment: spec.deployment.name.clone(),
        config: options.config.display().to_string(),
        mode: options.mode,
        interval_seconds: options.interval.as_secs_f64(),
        ready: false,
        reconciles: 0,
        last_reconcile: None,
        last_success_at: None,
        config_error: None,
        lease_blocked_by: None,
        last_plan: None,
        resources: Default::default(),
    }));
    let metrics = Arc::new(Metrics::new());
    let app = http::router(http::Shared {
        status: status.clone(),
        metrics: metrics.clone(),
    });
    let mut server_stop = stop.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop.wait_for(|stopping| *stopping).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "the HTTP server stopped");
        }
    });
    tracing::info!(%address, mode = ?options.mode, interval = ?options.interval, config = %options.config.display(), "listening");

    let lease_s3 = crate::lease::connect(&spec.deployment).await;
    let controller = Controller::connect(spec).await?;
    let changes = Arc::new(Notify::new());
    let watcher = watch::spawn(
        options.config.clone(),
        initial_digest,
        options.watch_period,
        changes.clone(),
    );
    let mut daemon = Daemon::new(options, controller, lease_s3, status, metrics);
    run_loop(&mut daemon, stop, &changes).await;
    watcher.abort();
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

async fn run_loop(daemon: &mut Daemon, mut stop: channel::Receiver<bool>, changes: &Notify) {
    let mut trigger = Trigger::Start;
    loop {
        daemon.reconcile(trigger).await;
        if *stop.borrow() {
            return;
        }
        let interval = tokio::time::Instant::now() + jittered(daemon.options.interval);
        let (next, due) = match daemon.next_requeue() {
            Some(requeue) if tokio::time::Instant::from_std(requeue) < interval => {
                (tokio::time::Instant::from_std(requeue), Trigger::Requeue)
            }
            _ => (interval, Trigger::Interval),
        };
        trigger = loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break due,
                _ = changes.notified() => {
                    if daemon.reload().await {
                        break Trigger::ConfigChange;
                    }
                }
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
            if *stop.borrow() {
                return;
            }
        };
    }
}

/// The interval, give or take a tenth, so that many daemons do not call
/// AWS in step.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::thread_rng().gen_range(0.9..=1.1))
}

/// A channel that turns true on the first SIGTERM or SIGINT.
fn stop_on_signals() -> Result<channel::Receiver<bool>, Error> {
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    let (sender, receiver) = channel::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("stopping: finishing the reconcile in flight");
        let _ = sender.send(true);
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("second signal: stopping now");
        std::process::exit(1);
    });
    Ok(receiver)
}
