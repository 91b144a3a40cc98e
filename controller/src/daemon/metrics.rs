//! The daemon's Prometheus metrics, kept in a `prometheus-client` registry
//! and served as text on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A resource kind (`bucket`, `function`...), or for errors that are not
/// about one resource: `config`, `lease`, `connect`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

impl KindLabel {
    pub fn new(kind: &str) -> KindLabel {
        KindLabel {
            kind: kind.to_string(),
        }
    }
}

/// A release alias (`function:alias`) and why its release did not go on
/// (`ReleaseRolledBack`, `ReleaseHeld`, `ReleaseHalted`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReleaseLabel {
    pub alias: String,
    pub reason: String,
}

/// A notification target, an event and what became of the notice
/// (`sent`, `failed`, `dropped`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabel {
    pub target: String,
    pub event: String,
    pub outcome: String,
}

/// Every metric the daemon exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Resources that differ from the desired state after the last reconcile.
    pub drifted: Family<KindLabel, Gauge>,
    pub errors: Family<KindLabel, Counter>,
    pub repairs: Family<KindLabel, Counter>,
    /// 1 for each alias whose release did not go on in the last reconcile.
    pub release_failed: Family<ReleaseLabel, Gauge>,
    pub release_rollbacks: Family<ReleaseLabel, Counter>,
    pub notifications: Family<NotificationLabel, Counter>,
    pub duration: Histogram,
    pub reconciles: Counter,
    pub last_success: Gauge<f64, AtomicU64>,
    pub api_calls: Counter,
    pub mutating_calls: Counter,
    pub config_reloads: Counter,
    pub ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            drifted: Family::default(),
            errors: Family::default(),
            repairs: Family::default(),
            release_failed: Family::default(),
            release_rollbacks: Family::default(),
            notifications: Family::default(),
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            reconciles: Counter::default(),
            last_success: Gauge::default(),
            api_calls: Counter::default(),
            mutating_calls: Counter::default(),
            config_reloads: Counter::default(),
            ready: Gauge::default(),
        };
        let mut registry = Registry::default();
        registry.register(
            "controller_drifted_resources",
            "Resources that differ from the desired state, by kind",
            metrics.drifted.clone(),
        );
        registry.register(
            "controller_release_failed",
            "1 for each release alias whose release did not go on in the last reconcile (rolled back, held after a rollback, halted on an alarm)",
            metrics.release_failed.clone(),
        );
        registry.register(
            "controller_release_rollbacks",
            "Releases the daemon rolled back on an alarm, by alias",
            metrics.release_rollbacks.clone(),
        );
        registry.register(
            "controller_notifications",
            "Notifications by target, event and outcome (sent, failed after retries, dropped on a full queue)",
            metrics.notifications.clone(),
        );
        registry.register(
            "controller_reconcile_errors",
            "Errors met while reconciling, by resource kind (or config, lease, connect)",
            metrics.errors.clone(),
        );
        registry.register(
            "controller_repairs",
            "Resources repaired in enforce mode, by kind",
            metrics.repairs.clone(),
        );
        registry.register(
            "controller_reconcile_duration_seconds",
            "How long one reconcile took",
            metrics.duration.clone(),
        );
        registry.register(
            "controller_reconciles",
            "Reconciles run",
            metrics.reconciles.clone(),
        );
        registry.register(
            "controller_last_success_timestamp_seconds",
            "Unix time of the last reconcile without error",
            metrics.last_success.clone(),
        );
        registry.register(
            "controller_api_calls",
            "AWS API calls made by reconciles",
            metrics.api_calls.clone(),
        );
        registry.register(
            "controller_mutating_calls",
            "AWS API calls that changed something",
            metrics.mutating_calls.clone(),
        );
        registry.register(
            "controller_config_reloads",
            "Configuration edits taken into use",
            metrics.config_reloads.clone(),
        );
        registry.register(
            "controller_ready",
            "1 once the first reconcile is done",
            metrics.ready.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors.get_or_create(&KindLabel::new(kind)).inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }
}
