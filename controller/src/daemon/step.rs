//! One reconcile of the daemon: observe, log the drift field by field, and
//! in enforce mode repair it under the lease; then update the status, the
//! metrics and each resource's backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::metrics::{KindLabel, Metrics};
use super::state::{BackoffPolicy, LastReconcile, ResourceState, Status as DaemonStatus, Trigger};
use super::{Mode, Options};
use crate::lease::{self, Lease};
use crate::plan::{Action, Change, Plan};
use crate::reconcile::{Controller, Error};
use crate::reconcile::{Mode as PlanMode, Status};
use crate::resources::{ErrorKind, ResourceId};
use crate::spec::Spec;

/// A resource left alone until `until` after failures in a row.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failures: u32,
    until: Instant,
    /// What the last failure was; a terminal one waits for the file to change.
    kind: ErrorKind,
}

/// Why a resource did not reconcile this round.
#[derive(Clone, Debug)]
struct Failure {
    message: String,
    kind: ErrorKind,
    /// Not attempted because this resource failed: it waits as long.
    because: Option<ResourceId>,
    /// The error's code (AWS's, or `Release...` for a release that did
    /// not go on).
    code: Option<String>,
}

impl Failure {
    fn of(error: &Error) -> Failure {
        let kind = match error {
            Error::Observe { cause, .. } | Error::Discover { cause, .. } => cause.kind(),
            Error::Lease(_) => ErrorKind::Transient,
            _ => ErrorKind::Terminal,
        };
        Failure {
            message: error.to_string(),
            kind,
            because: None,
            code: None,
        }
    }

    fn terminal(message: String) -> Failure {
        Failure {
            message,
            kind: ErrorKind::Terminal,
            because: None,
            code: None,
        }
    }
}

/// The daemon between reconciles.
pub struct Daemon {
    pub options: Options,
    pub controller: Controller,
    pub lease_s3: aws_sdk_s3::Client,
    pub status: Arc<RwLock<DaemonStatus>>,
    pub metrics: Arc<Metrics>,
    policy: BackoffPolicy,
    backoff: BTreeMap<ResourceId, Backoff>,
    notifier: super::notify::Notifier,
    reported: super::notify::Tracker,
}

/// The notifier of `controller`'s `[[notify]]` targets, counting into `metrics`.
fn notifier_for(controller: &Controller, metrics: &Arc<Metrics>) -> super::notify::Notifier {
    let metrics = metrics.clone();
    super::notify::Notifier::start(
        &controller.spec.notify,
        controller.ctx.clients.sns.clone(),
        Arc::new(move |target, event, delivery| {
            let outcome = match delivery {
                super::notify::Delivery::Sent => "sent",
                super::notify::Delivery::Failed => "failed",
                super::notify::Delivery::Dropped => "dropped",
            };
            metrics
                .notifications
                .get_or_create(&super::metrics::NotificationLabel {
                    target: target.to_string(),
                    event: event.name().to_string(),
                    outcome: outcome.to_string(),
                })
                .inc();
        }),
    )
}

/// What a repair did.
#[derive(Default)]
struct Repair {
    plan: Option<Plan>,
    repaired: BTreeSet<ResourceId>,
    errors: Vec<(ResourceId, Failure)>,
}

impl Daemon {
    pub fn new(
        options: Options,
        controller: Controller,
        lease_s3: aws_sdk_s3::Client,
        status: Arc<RwLock<DaemonStatus>>,
        metrics: Arc<Metrics>,
    ) -> Daemon {
        let policy = BackoffPolicy::for_interval(options.interval);
        let mut controller = controller;
        never_wait_in_a_round(&mut controller);
        let notifier = notifier_for(&controller, &metrics);
        Daemon {
            options,
            controller,
            lease_s3,
            status,
            metrics,
            policy,
            backoff: BTreeMap::new(),
            notifier,
            reported: super::notify::Tracker::default(),
        }
    }

    /// When the soonest requeued resource (a conflict, such as a function
    /// still updating) is due, if it is due before the next interval.
    pub fn next_requeue(&self) -> Option<Instant> {
        self.backoff
            .values()
            .filter(|backoff| backoff.kind == ErrorKind::Conflict)
            .map(|backoff| backoff.until)
            .min()
    }

    fn status(&self) -> std::sync::RwLockWriteGuard<'_, DaemonStatus> {
        self.status
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Loads the edited file; a broken edit is reported and the last good
    /// desired state kept. Returns whether the new state was taken.
    pub async fn reload(&mut self) -> bool {
        let path = &self.options.config;
        let result = match Spec::load(path) {
            Ok(spec) => Controller::connect(spec)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match result {
            Ok(controller) => {
                tracing::info!(config = %path.display(), "configuration reloaded");
                self.controller = controller;
                never_wait_in_a_round(&mut self.controller);
                self.notifier = notifier_for(&self.controller, &self.metrics);
                // A terminal failure waits for the file to change: it has.
                self.backoff
                    .retain(|_, backoff| backoff.kind != ErrorKind::Terminal);
                self.metrics.config_reloads.inc();
                let mut status = self.status();
                status.deployment = self.controller.spec.deployment.name.clone();
                status.config_error = None;
                true
            }
            Err(error) => {
                tracing::error!(config = %path.display(), %error, "invalid configuration edit ignored; keeping the last good desired state");
                self.metrics.error("config");
                self.status().config_error = Some(error);
                false
            }
        }
    }

    /// One reconcile.
    pub async fn reconcile(&mut self, trigger: Trigger) {
        let started = Instant::now();
        let started_at = Utc::now();
        let calls_before = self.controller.calls();
        let now = Instant::now();
        let skipped: BTreeSet<ResourceId> = self
            .backoff
            .iter()
            .filter(|(_, backoff)| backoff.until > now)
            .map(|(id, _)| id.clone())
            .collect();
        let (mut plan, failures) = self
            .controller
            .plan_each(|id| !skipped.contains(id), true)
            .await;
        let mut errors: Vec<(ResourceId, Failure)> = failures
            .iter()
            .map(|(id, error)| (id.clone(), Failure::of(error)))
            .collect();
        log_drift(&plan);
        for change in plan.refused() {
            errors.push((
                change.resource.clone(),
                Failure::terminal(format!(
                    "refused: {}",
                    change.reason.as_deref().unwrap_or("not owned")
                )),
            ));
        }
        let mut repaired = BTreeSet::new();
        if self.options.mode == Mode::Enforce && plan.changes.iter().any(|c| c.action.mutates()) {
            let repair = self.repair(&skipped, &errors).await;
            if let Some(replanned) = repair.plan {
                plan = replanned;
            }
            repaired = repair.repaired;
            errors.extend(repair.errors);
        }
        self.notify_round(&plan, &repaired, &errors);
        let calls_after = self.controller.calls();
        self.record(
            trigger,
            started_at,
            started.elapsed(),
            &plan,
            &repaired,
            &errors,
            &skipped,
            (
                calls_after.total.saturating_sub(calls_before.total),
                calls_after.mutating.saturating_sub(calls_before.mutating),
            ),
        );
    }

    /// Tells the `[[notify]]` targets what is new this round: drift found
    /// (once per distinct drift, until it changes or is repaired), drift
    /// repaired, a repair failing (once per distinct failure), an orphan
    /// found, a release started, completed or rolled back.
    fn notify_round(
        &mut self,
        plan: &Plan,
        repaired: &BTreeSet<ResourceId>,
        errors: &[(ResourceId, Failure)],
    ) {
        use crate::plan::Action;
        use crate::spec::NotifyEvent as Event;
        let deployment = self.controller.spec.deployment.name.clone();
        let alias_kind = crate::resources::ResourceKind::kind(&crate::resources::release::KIND);
        let mut notices = Vec::new();
        let mut notice = |event: Event, resource: &ResourceId, summary: String, changes| {
            notices.push(super::notify::Notice {
                deployment: deployment.clone(),
                event,
                resource: resource.to_string(),
                summary,
                changes,
                at: Utc::now(),
            });
        };
        let failed: BTreeMap<&ResourceId, &Failure> =
            errors.iter().map(|(id, failure)| (id, failure)).collect();
        let mut orphans = BTreeSet::new();
        let mut drifting = BTreeSet::new();
        for change in &plan.changes {
            let id = &change.resource;
            let key = id.to_string();
            let is_orphan = change.observed.is_none()
                && matches!(change.action, Action::Delete | Action::Orphan);
            if is_orphan {
                orphans.insert(key.clone());
                if !repaired.contains(id)
                    && self.reported.is_new(Event::OrphanFound, &key, "exists")
                {
                    notice(
                        Event::OrphanFound,
                        id,
                        format!("{id} is the deployment's but no longer in the file"),
                        Vec::new(),
                    );
                }
                continue;
            }
            if !change.action.mutates() {
                continue;
            }
            let changes: Vec<crate::detail::Detail> = change
                .diffs
                .iter()
                .flat_map(|diff| diff.changes.clone())
                .collect();
            let fields: Vec<&str> = change
                .diffs
                .iter()
                .map(|diff| diff.field.as_str())
                .collect();
            if repaired.contains(id) {
                self.reported.forget(Event::DriftFound, &key);
                self.reported.forget(Event::RepairFailed, &key);
                let released = change.diffs.iter().any(|diff| {
                    ["image", "configuration", "routing"].contains(&diff.field.as_str())
                });
                if id.kind == alias_kind && released {
                    self.reported.forget(Event::ReleaseStarted, &key);
                    notice(
                        Event::ReleaseCompleted,
                        id,
                        format!("{id}: all traffic on the new version"),
                        changes,
                    );
                } else {
                    notice(
                        Event::DriftRepaired,
                        id,
                        format!("{id} repaired ({})", fields.join(", ")),
                        changes,
                    );
                }
                continue;
            }
            if failed.contains_key(id) {
                continue;
            }
            drifting.insert(key.clone());
            let fingerprint = serde_json::to_string(&change.diffs).unwrap_or_default();
            if self.reported.is_new(Event::DriftFound, &key, &fingerprint) {
                let summary = match change.action {
                    Action::Create => format!("{id} is missing"),
                    _ => format!("{id} differs: {}", fields.join(", ")),
                };
                notice(Event::DriftFound, id, summary, changes);
            }
        }
        for (id, failure) in errors {
            if failure.because.is_some() {
                continue;
            }
            let key = id.to_string();
            let code = failure.code.as_deref().unwrap_or_default();
            if id.kind == alias_kind && code == "ReleaseRolledBack" {
                if self
                    .reported
                    .is_new(Event::ReleaseRolledBack, &key, &failure.message)
                {
                    notice(
                        Event::ReleaseRolledBack,
                        id,
                        failure.message.clone(),
                        Vec::new(),
                    );
                }
            } else if id.kind == alias_kind
                && failure.kind == ErrorKind::Conflict
                && failure.message.contains("release of function")
            {
                // The release is what the alias is to serve (the desired
                // image and configuration), the same at every step.
                let release = plan
                    .changes
                    .iter()
                    .find(|change| &change.resource == id)
                    .map(|change| {
                        change
                            .diffs
                            .iter()
                            .filter(|diff| diff.field == "image" || diff.field == "configuration")
                            .map(|diff| format!("{}={}", diff.field, diff.desired))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                if self.reported.is_new(Event::ReleaseStarted, &key, &release) {
                    notice(
                        Event::ReleaseStarted,
                        id,
                        failure.message.clone(),
                        Vec::new(),
                    );
                }
            } else if self
                .reported
                .is_new(Event::RepairFailed, &key, &failure.message)
            {
                notice(Event::RepairFailed, id, failure.message.clone(), Vec::new());
            }
        }
        // What ended is forgotten, so that it is reported if it comes back.
        for key in self.reported.reported(Event::OrphanFound) {
            if !orphans.contains(&key) {
                self.reported.forget(Event::OrphanFound, &key);
            }
        }
        let failing: BTreeSet<String> = failed.keys().map(|id| id.to_string()).collect();
        for key in self.reported.reported(Event::DriftFound) {
            if !drifting.contains(&key) && !failing.contains(&key) {
                self.reported.forget(Event::DriftFound, &key);
            }
        }
        for notice in &notices {
            self.notifier.send(notice);
        }
    }

    /// Takes the lease, plans again under it, and carries out the changes of
    /// the resources that are neither backing off nor failing.
    async fn repair(
        &mut self,
        skipped: &BTreeSet<ResourceId>,
        failed: &[(ResourceId, Failure)],
    ) -> Repair {
        let mut repair = Repair::default();
        let deployment = self.controller.spec.deployment.name.clone();
        if let Err(error) = self.controller.ensure_bucket().await {
            tracing::error!(%error, "cannot create the model bucket that holds the lease");
            repair
                .errors
                .push((bucket_id(&self.controller), Failure::of(&error)));
            return repair;
        }
        let options = lease::Options {
            ttl: self.options.lease_ttl,
            wait: Duration::ZERO,
            command: "run --mode enforce".into(),
        };
        let bucket = self.controller.spec.bucket.name.clone();
        let lease = match Lease::acquire(&self.lease_s3, &bucket, &deployment, &options).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::warn!(%error, "repairs skipped this round");
                self.metrics.error("lease");
                if let lease::Error::Held { holder, .. } = &error {
                    self.status().lease_blocked_by = Some(holder.to_string());
                }
                return repair;
            }
        };
        self.status().lease_blocked_by = None;
        // Repairs happen under the lease, read back before each wave.
        self.controller.set_fence(Some(lease.guard()));
        let failed: BTreeSet<&ResourceId> = failed.iter().map(|(id, _)| id).collect();
        let (plan, failures) = self
            .controller
            .plan_each(|id| !skipped.contains(id) && !failed.contains(id), true)
            .await;
        repair.errors.extend(
            failures
                .iter()
                .map(|(id, error)| (id.clone(), Failure::of(error))),
        );
        let work: Vec<Change> = plan
            .changes
            .iter()
            .filter(|change| change.action.mutates())
            .cloned()
            .collect();
        if !work.is_empty() {
            let subset = Plan {
                deployment: plan.deployment.clone(),
                changes: work.clone(),
            };
            match self.controller.execute(subset, PlanMode::Apply).await {
                Ok(outcome) => {
                    for result in outcome.results {
                        let failure = match &result.status {
                            Status::Done | Status::Unchanged => {
                                repair.repaired.insert(result.resource);
                                continue;
                            }
                            Status::Failed {
                                error_kind, code, ..
                            } => Failure {
                                message: result.status.to_string(),
                                kind: *error_kind,
                                because: None,
                                code: code.clone(),
                            },
                            // Tried again when what it needs is.
                            Status::Skipped { because } => Failure {
                                message: result.status.to_string(),
                                kind: ErrorKind::Conflict,
                                because: Some(because.clone()),
                                code: None,
                            },
                            Status::Refused { .. } => Failure::terminal(result.status.to_string()),
                        };
                        repair.errors.push((result.resource, failure));
                    }
                }
                Err(error) => {
                    let failure = Failure::of(&error);
                    repair.errors.extend(
                        work.iter()
                            .map(|change| (change.resource.clone(), failure.clone())),
                    );
                }
            }
        }
        self.controller.set_fence(None);
        if !lease.is_held() {
            tracing::error!("the lease expired or was taken over during the repair");
        }
        if let Err(error) = lease.release().await {
            tracing::warn!(%error, "cannot release the lease; it expires on its own");
        }
        repair.plan = Some(plan);
        repair
    }

    /// Updates backoff, status and metrics after a reconcile.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        trigger: Trigger,
        started_at: chrono::DateTime<Utc>,
        elapsed: Duration,
        plan: &Plan,
        repaired: &BTreeSet<ResourceId>,
        errors: &[(ResourceId, Failure)],
        skipped: &BTreeSet<ResourceId>,
        (api_calls, mutating_calls): (u64, u64),
    ) {
        let now = Instant::now();
        let wall = Utc::now();
        let mut error_of: BTreeMap<&ResourceId, &Failure> = BTreeMap::new();
        for (id, error) in errors {
            error_of.entry(id).or_insert(error);
        }
        // Backoff by what failed: a transient error waits longer each time,
        // a conflict (a function still updating) is requeued soon, a
        // terminal one waits the longest or until the file changes; clean
        // resources reset.
        // Those skipped for a failed prerequisite wait as long as it does.
        let (own, waiting): (Vec<_>, Vec<_>) = error_of
            .iter()
            .partition(|(_, failure)| failure.because.is_none());
        for (id, failure) in own.into_iter().chain(waiting) {
            let failures = self.backoff.get(*id).map_or(0, |b| b.failures) + 1;
            let prerequisite = failure
                .because
                .as_ref()
                .and_then(|cause| self.backoff.get(cause))
                .copied();
            let (delay, kind) = match prerequisite {
                Some(cause) => (cause.until.saturating_duration_since(now), cause.kind),
                None => (self.policy.requeue(failure.kind, failures), failure.kind),
            };
            self.backoff.insert(
                (*id).clone(),
                Backoff {
                    failures,
                    until: now + delay,
                    kind,
                },
            );
            self.metrics.error(id.kind.as_str());
            tracing::error!(resource = %id, kind = id.kind.as_str(), failures, error_kind = ?failure.kind, retry_in = ?delay, error = %failure.message, "reconcile failed for this resource; backing off");
        }
        for change in &plan.changes {
            if !error_of.contains_key(&change.resource) {
                self.backoff.remove(&change.resource);
            }
        }
        let mut drifted_by_kind: BTreeMap<&'static str, i64> = BTreeMap::new();
        let mut resources = BTreeMap::new();
        {
            let guard = self.status();
            let previous = &guard.resources;
            for change in &plan.changes {
                let id = &change.resource;
                let key = id.to_string();
                let drifted = change.action.mutates() && !repaired.contains(id);
                *drifted_by_kind.entry(id.kind.as_str()).or_default() += i64::from(drifted);
                let backoff = self.backoff.get(id);
                resources.insert(
                    key.clone(),
                    ResourceState {
                        kind: id.kind.as_str().into(),
                        name: id.name.clone(),
                        action: Some(change.action),
                        drifted,
                        diffs: change.diffs.clone(),
                        last_checked_at: Some(wall),
                        last_repaired_at: if repaired.contains(id) {
                            Some(wall)
                        } else {
                            previous.get(&key).and_then(|p| p.last_repaired_at)
                        },
                        last_error: error_of.get(id).map(|e| e.message.clone()),
                        failures: backoff.map_or(0, |b| b.failures),
                        retry_at: backoff.map(|b| wall + (b.until - now)),
                    },
                );
            }
            // Not observed this time: failed to observe, or backing off.
            for id in error_of.keys().copied().chain(skipped.iter()) {
                let key = id.to_string();
                if resources.contains_key(&key) {
                    continue;
                }
                let mut state = previous
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| ResourceState {
                        kind: id.kind.as_str().into(),
                        name: id.name.clone(),
                        ..ResourceState::default()
                    });
                if let Some(error) = error_of.get(id) {
                    state.last_error = Some(error.message.clone());
                    state.action = None;
                }
                let backoff = self.backoff.get(id);
                state.failures = backoff.map_or(0, |b| b.failures);
                state.retry_at = backoff
                    .filter(|b| b.until > now)
                    .map(|b| wall + (b.until - now));
                drifted_by_kind.entry(id.kind.as_str()).or_default();
                resources.insert(key, state);
            }
        }
        self.metrics.release_failed.clear();
        for (id, failure) in &error_of {
            let Some(code) = failure
                .code
                .as_deref()
                .filter(|code| code.starts_with("Release"))
            else {
                continue;
            };
            let label = super::metrics::ReleaseLabel {
                alias: id.name.clone(),
                reason: code.to_string(),
            };
            self.metrics.release_failed.get_or_create(&label).set(1);
            if code == "ReleaseRolledBack" {
                self.metrics.release_rollbacks.get_or_create(&label).inc();
            }
            tracing::error!(alias = %id.name, reason = code, error = %failure.message, "release failed");
        }
        for id in repaired {
            self.metrics
                .repairs
                .get_or_create(&KindLabel::new(id.kind.as_str()))
                .inc();
        }
        self.metrics.drifted.clear();
        for (kind, count) in &drifted_by_kind {
            self.metrics
                .drifted
                .get_or_create(&KindLabel::new(kind))
                .set(*count);
        }
        self.metrics.duration.observe(elapsed.as_secs_f64());
        self.metrics.reconciles.inc();
        self.metrics.api_calls.inc_by(api_calls);
        self.metrics.mutating_calls.inc_by(mutating_calls);
        if errors.is_empty() {
            self.metrics
                .last_success
                .set(wall.timestamp_millis() as f64 / 1000.0);
        }
        self.metrics.ready.set(1);
        let drifted: i64 = drifted_by_kind.values().sum();
        tracing::info!(
            trigger = ?trigger,
            seconds = elapsed.as_secs_f64(),
            drifted,
            repaired = repaired.len(),
            errors = errors.len(),
            api_calls,
            mutating_calls,
            "reconciled"
        );
        let mut status = self.status();
        status.ready = true;
        status.reconciles += 1;
        status.last_reconcile = Some(LastReconcile {
            trigger,
            started_at,
            seconds: elapsed.as_secs_f64(),
            api_calls,
            mutating_calls,
            errors: errors.len(),
        });
        if errors.is_empty() {
            status.last_success_at = Some(wall);
        }
        status.last_plan = Some(plan.clone());
        status.resources = resources;
    }
}

/// A function still `Pending` or `InProgress` is requeued (a conflict,
/// retried within a tenth of an interval), never waited on inside a round.
fn never_wait_in_a_round(controller: &mut Controller) {
    let waits = controller.ctx.waits;
    controller.set_waits(crate::resources::WaitSettings {
        requeue_when_pending: true,
        wait_for_shifts: false,
        ..waits
    });
}

fn bucket_id(controller: &Controller) -> ResourceId {
    use crate::resources::ResourceKind;
    ResourceId::new(
        crate::resources::bucket::KIND.kind(),
        &controller.spec.bucket.name,
    )
}

/// One log line per drifted field: resource, field, desired and observed.
fn log_drift(plan: &Plan) {
    for change in &plan.changes {
        let resource = change.resource.to_string();
        let kind = change.resource.kind.as_str();
        match change.action {
            Action::Create => tracing::warn!(
                resource,
                kind,
                field = "exists",
                desired = "true",
                observed = "false",
                action = "create",
                "drift"
            ),
            Action::Delete => tracing::warn!(
                resource,
                kind,
                field = "exists",
                desired = "false",
                observed = "true",
                action = "delete",
                reason = change.reason.as_deref().unwrap_or_default(),
                "drift"
            ),
            Action::Update | Action::Replace => {
                let action = if change.action == Action::Update {
                    "update"
                } else {
                    "replace"
                };
                for diff in &change.diffs {
                    tracing::warn!(
                        resource,
                        kind,
                        field = diff.field,
                        desired = %diff.desired,
                        observed = %diff.observed,
                        action,
                        "drift"
                    );
                }
            }
            _ => {}
        }
    }
}
