//! What the daemon knows between reconciles, served on `/status`: the last
//! plan, each resource's state and last error, and the per-resource backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Mode;
use crate::field::FieldDiff;
use crate::plan::{Action, Plan};

/// What started a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Start,
    Interval,
    ConfigChange,
    /// A resource requeued after a conflict is due.
    Requeue,
}

/// One resource as the daemon last saw it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ResourceState {
    pub kind: String,
    pub name: String,
    /// What the last plan said (`null` when it could not be observed).
    pub action: Option<Action>,
    /// Whether it still differs from the desired state.
    pub drifted: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<FieldDiff>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_repaired_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Failures in a row; reset by a clean reconcile of the resource.
    pub failures: u32,
    /// While backing off: when it is observed again.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The last reconcile, in short.
#[derive(Clone, Debug, Serialize)]
pub struct LastReconcile {
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    pub api_calls: u64,
    pub mutating_calls: u64,
    pub errors: usize,
}

/// Everything `/status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub deployment: String,
    pub config: String,
    pub mode: Mode,
    pub interval_seconds: f64,
    pub ready: bool,
    pub reconciles: u64,
    pub last_reconcile: Option<LastReconcile>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last configuration edit was not taken (the last good one is kept).
    pub config_error: Option<String>,
    /// In enforce mode: who held the lease when a repair had to be skipped.
    pub lease_blocked_by: Option<String>,
    pub last_plan: Option<Plan>,
    /// By `"<kind> <name>"`.
    pub resources: BTreeMap<String, ResourceState>,
}

/// Exponential backoff per resource: the interval, doubled per failure in
/// a row, capped.
#[derive(Clone, Copy, Debug)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl BackoffPolicy {
    /// Starts at one interval and stops doubling at 16 intervals or an hour,
    /// whichever is shorter (never below one interval).
    pub fn for_interval(interval: Duration) -> BackoffPolicy {
        let cap = (interval * 16).min(Duration::from_secs(3600)).max(interval);
        BackoffPolicy {
            base: interval,
            cap,
        }
    }

    /// How long to leave a resource alone after `failures` failures in a
    /// row, the last of this kind: a conflict (another change under way, a
    /// function `Pending` or `InProgress`) is requeued after a tenth of an
    /// interval (at most 10 s); a transient error or a missing resource
    /// doubles from one interval; a terminal error (access denied, a refused
    /// value) waits the longest, or until the file changes.
    pub fn requeue(&self, kind: crate::resources::ErrorKind, failures: u32) -> Duration {
        use crate::resources::ErrorKind;
        match kind {
            ErrorKind::Conflict => (self.base / 10).min(Duration::from_secs(10)),
            ErrorKind::Transient | ErrorKind::NotFound => self.delay(failures),
            ErrorKind::Terminal => self.cap,
        }
    }

    /// How long to leave a resource alone after `failures` failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = BackoffPolicy::for_interval(Duration::from_secs(10));
        let delays: Vec<u64> = (1..=7).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 160, 160]);
        let long = BackoffPolicy::for_interval(Duration::from_secs(300));
        assert_eq!(long.delay(10), Duration::from_secs(3600));
    }
}
