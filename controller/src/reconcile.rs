//! Runs plans: observes every resource, decides what to do, and carries it
//! out in dependency order, independent resources concurrently. `apply`,
//! `destroy` and the daemon all go through here.

use std::time::Instant;

use futures::future::join_all;
use serde::Serialize;
use tracing::Instrument;

use crate::cloud::{CallSummary, Clients};
use crate::desired::{Refs, desired_resources};
use crate::field::diff_fields;
use crate::ownership::Ownership;
use crate::plan::{Action, Change, Plan};
use crate::resources::{self, Context, Desired, Kind, ResourceId, WaitSettings};
use crate::spec::Spec;

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot find out which AWS account the credentials belong to: {0}")]
    Identity(String),
    #[error(
        "refusing to act: the credentials are for account {actual}, but the configuration is for account {expected} (deployment.account_id)"
    )]
    WrongAccount { expected: String, actual: String },
    #[error("cannot observe {resource}: {cause}")]
    Observe {
        resource: ResourceId,
        cause: resources::Error,
    },
    #[error("{}", refused_message(.0))]
    Refused(Vec<Change>),
    #[error(transparent)]
    Lease(#[from] crate::lease::Error),
    #[error("{} of {} changes failed:\n{}", .failures.len(), .attempted, failure_lines(.failures))]
    Incomplete {
        attempted: usize,
        failures: Vec<(ResourceId, String)>,
    },
}

fn refused_message(changes: &[Change]) -> String {
    let lines: Vec<String> = changes
        .iter()
        .map(|change| {
            format!(
                "  {}: {}",
                change.resource,
                change.reason.as_deref().unwrap_or("not owned")
            )
        })
        .collect();
    format!(
        "refusing to change resources this deployment does not own:\n{}",
        lines.join("\n")
    )
}

fn failure_lines(failures: &[(ResourceId, String)]) -> String {
    failures
        .iter()
        .map(|(resource, error)| format!("  {resource}: {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What destroy keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BucketOnDestroy {
    /// As `bucket.retain_on_destroy` says.
    #[default]
    AsConfigured,
    Retain,
    /// Delete every object version, then the bucket.
    Delete,
}

/// The result of carrying out a plan.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub plan: Plan,
    pub calls: CallSummary,
    pub seconds: f64,
}

/// A deployment and the account it lives in.
pub struct Controller {
    pub spec: Spec,
    pub ctx: Context,
    /// The Panther token, when its environment variable is set.
    secret_value: Option<resources::secret::SecretValue>,
    /// The writers' lease this controller changes things under, checked
    /// against S3 before each wave of changes.
    fence: Option<crate::lease::Guard>,
}

impl Controller {
    /// Connects with the standard credential chain and checks the account guard.
    pub async fn connect(spec: Spec) -> Result<Controller, Error> {
        let clients = Clients::connect(&spec.deployment).await;
        Controller::with_clients(spec, clients).await
    }

    /// Uses the given clients (tests point them at a local cloud or a proxy).
    pub async fn with_clients(spec: Spec, clients: Clients) -> Result<Controller, Error> {
        let identity = clients
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|error| {
                Error::Identity(resources::aws_error("GetCallerIdentity")(error).to_string())
            })?;
        let account = identity.account().unwrap_or_default().to_string();
        if let Some(expected) = &spec.deployment.account_id {
            if *expected != account {
                return Err(Error::WrongAccount {
                    expected: expected.clone(),
                    actual: account,
                });
            }
        }
        let ctx = Context::new(
            clients,
            &spec.deployment.name,
            &spec.deployment.region,
            &account,
        );
        let secret_value = spec
            .panther_secret
            .as_ref()
            .and_then(|secret| std::env::var(&secret.value_from_env).ok())
            .filter(|value| !value.is_empty())
            .map(resources::secret::SecretValue::new);
        Ok(Controller {
            spec,
            ctx,
            secret_value,
            fence: None,
        })
    }

    /// Changes happen under this lease from now on: before each wave of
    /// changes it is read back from S3, and a lease no longer ours stops the
    /// apply or destroy before it changes anything more.
    pub fn set_fence(&mut self, guard: Option<crate::lease::Guard>) {
        self.fence = guard;
    }

    /// Changes how long the controller waits on AWS (tests shorten it).
    pub fn set_waits(&mut self, waits: WaitSettings) {
        self.ctx.waits = waits;
    }

    /// Calls made so far through this controller's clients.
    pub fn calls(&self) -> CallSummary {
        self.ctx.clients.calls.summary()
    }

    /// Sets the secret's value instead of reading its environment variable.
    pub fn set_secret_value(&mut self, value: Option<String>) {
        self.secret_value = value.map(resources::secret::SecretValue::new);
    }

    /// Looks up the values AWS chose for this deployment's resources.
    pub async fn refs(&self) -> Result<Refs, Error> {
        let mut refs = Refs {
            secret_value: self.secret_value.clone(),
            ..Refs::default()
        };
        let skeleton = desired_resources(&self.spec, &self.ctx, &refs);
        for desired in &skeleton {
            let lookup = match desired {
                Desired::Api(api) => api.id(&self.ctx).await.map(|id| refs.api_id = id),
                Desired::Secret(secret) => {
                    resources::secret::Desired::arn(&self.ctx, &secret.spec.name)
                        .await
                        .map(|arn| refs.secret_arn = arn)
                }
                _ => Ok(()),
            };
            lookup.map_err(|cause| Error::Observe {
                resource: desired.id(),
                cause,
            })?;
        }
        Ok(refs)
    }

    /// Every resource of the deployment, as far as AWS's choices are known.
    pub async fn resources(&self) -> Result<Vec<Desired>, Error> {
        Ok(desired_resources(
            &self.spec,
            &self.ctx,
            &self.refs().await?,
        ))
    }

    /// The invoke URL of every route of the REST API, once the API exists.
    pub async fn invoke_urls(&self) -> Result<Vec<String>, Error> {
        for desired in self.resources().await? {
            if let Desired::Api(api) = &desired {
                let id = api.id(&self.ctx).await.map_err(|cause| Error::Observe {
                    resource: desired.id(),
                    cause,
                })?;
                return Ok(id
                    .map(|id| api.invoke_urls(&self.ctx, &id))
                    .unwrap_or_default());
            }
        }
        Ok(Vec::new())
    }

    /// Observes every resource and plans what apply would do.
    pub async fn plan(&self) -> Result<Plan, Error> {
        let resources = self.resources().await?;
        self.plan_for(&resources).await
    }

    async fn plan_for(&self, resources: &[Desired]) -> Result<Plan, Error> {
        let observed = self.observe_all_for_apply(resources).await?;
        let changes = resources
            .iter()
            .zip(observed)
            .map(|(desired, observed)| plan_apply(desired, observed, &self.ctx.deployment))
            .collect();
        Ok(Plan {
            deployment: self.spec.deployment.name.clone(),
            changes,
        })
    }

    /// Plans the resources `include` selects, each observed on its own: one
    /// that cannot be observed is returned apart and the others are still
    /// planned (the daemon backs off per resource).
    pub async fn plan_each(
        &self,
        include: impl Fn(&ResourceId) -> bool,
    ) -> (Plan, Vec<(ResourceId, Error)>) {
        let resources: Vec<Desired> = match self.resources().await {
            Ok(resources) => resources,
            Err(error) => {
                let plan = Plan {
                    deployment: self.spec.deployment.name.clone(),
                    changes: Vec::new(),
                };
                let id = match &error {
                    Error::Observe { resource, .. } => resource.clone(),
                    _ => ResourceId {
                        kind: Kind::Bucket,
                        name: self.spec.bucket.name.clone(),
                    },
                };
                return (plan, vec![(id, error)]);
            }
        };
        let resources: Vec<Desired> = resources
            .into_iter()
            .filter(|desired| include(&desired.id()))
            .collect();
        let observed = join_all(resources.iter().map(|desired| async move {
            desired.preflight(&self.ctx).await?;
            desired.observe(&self.ctx).await
        }))
        .await;
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        for (desired, observed) in resources.iter().zip(observed) {
            match observed {
                Ok(observed) => {
                    changes.push(plan_apply(desired, observed, &self.ctx.deployment));
                }
                Err(cause) => failures.push((
                    desired.id(),
                    Error::Observe {
                        resource: desired.id(),
                        cause,
                    },
                )),
            }
        }
        let plan = Plan {
            deployment: self.spec.deployment.name.clone(),
            changes,
        };
        (plan, failures)
    }

    /// Creates the model bucket when it is absent, before anything else: the
    /// writers' lease lives in it. Returns whether it was created.
    pub async fn ensure_bucket(&self) -> Result<bool, Error> {
        let (plan, mut failures) = self.plan_each(|id| id.kind == Kind::Bucket).await;
        if let Some((_, error)) = failures.pop() {
            return Err(error);
        }
        let refused = plan.refused();
        if !refused.is_empty() {
            return Err(Error::Refused(refused.into_iter().cloned().collect()));
        }
        if !plan
            .changes
            .iter()
            .any(|change| change.action == Action::Create)
        {
            return Ok(false);
        }
        let resources = self.resources().await?;
        self.execute(&plan, &resources, false, false).await?;
        Ok(true)
    }

    /// Observes every resource and plans what destroy would do.
    pub async fn plan_destroy(&self, bucket: BucketOnDestroy) -> Result<Plan, Error> {
        let resources = self.resources().await?;
        let observed = self.observe_all(&resources).await?;
        let retain_bucket = match bucket {
            BucketOnDestroy::AsConfigured => self.spec.bucket.retain_on_destroy,
            BucketOnDestroy::Retain => true,
            BucketOnDestroy::Delete => false,
        };
        let mut changes: Vec<Change> = resources
            .iter()
            .zip(observed)
            .map(|(desired, observed)| {
                let resource = desired.id();
                let scheduled_for_deletion = observed.as_ref().is_some_and(|observed| {
                    observed.fields.get("scheduled_for_deletion")
                        == Some(&serde_json::Value::Bool(true))
                });
                let (action, reason) = match observed.map(|observed| observed.ownership) {
                    None => (Action::Absent, None),
                    Some(_) if scheduled_for_deletion => {
                        (Action::Absent, Some("scheduled for deletion".to_string()))
                    }
                    Some(Ownership::Owned) if resource.kind == Kind::Bucket && retain_bucket => (
                        Action::Retain,
                        Some(
                            "kept with its models (retain_on_destroy; --delete-bucket removes it)"
                                .to_string(),
                        ),
                    ),
                    Some(Ownership::Owned) => (Action::Delete, None),
                    Some(other) => (
                        Action::Refused,
                        Some(refusal(&other, desired, &self.ctx.deployment)),
                    ),
                };
                Change {
                    resource,
                    action,
                    diffs: Vec::new(),
                    reason,
                }
            })
            .collect();
        changes.reverse();
        Ok(Plan {
            deployment: self.spec.deployment.name.clone(),
            changes,
        })
    }

    /// [`Controller::observe_all`] after each resource's preflight check.
    async fn observe_all_for_apply(
        &self,
        resources: &[Desired],
    ) -> Result<Vec<Option<resources::Observed>>, Error> {
        let checks = join_all(resources.iter().map(|desired| async move {
            desired
                .preflight(&self.ctx)
                .await
                .map_err(|cause| Error::Observe {
                    resource: desired.id(),
                    cause,
                })
        }))
        .await;
        checks.into_iter().collect::<Result<Vec<()>, Error>>()?;
        self.observe_all(resources).await
    }

    async fn observe_all(
        &self,
        resources: &[Desired],
    ) -> Result<Vec<Option<resources::Observed>>, Error> {
        let observations = join_all(resources.iter().map(|desired| async move {
            desired
                .observe(&self.ctx)
                .await
                .map_err(|cause| Error::Observe {
                    resource: desired.id(),
                    cause,
                })
        }))
        .await;
        observations.into_iter().collect()
    }

    /// Converges the deployment to the desired state: plans, then carries
    /// out the plan. Refuses everything when any resource is not owned.
    pub async fn apply(&self) -> Result<Outcome, Error> {
        let plan = self.plan().await?;
        self.apply_plan(plan).await
    }

    /// Carries out a plan made by [`Controller::plan`].
    pub async fn apply_plan(&self, plan: Plan) -> Result<Outcome, Error> {
        let started = Instant::now();
        let refused = plan.refused();
        if !refused.is_empty() {
            return Err(Error::Refused(refused.into_iter().cloned().collect()));
        }
        let plan = self.execute_apply(plan).await?;
        Ok(Outcome {
            plan,
            calls: self.calls(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Deletes what the deployment owns, in reverse dependency order.
    /// Resources it does not own are reported and left alone.
    pub async fn destroy(&self, bucket: BucketOnDestroy) -> Result<Outcome, Error> {
        let plan = self.plan_destroy(bucket).await?;
        self.destroy_plan(plan).await
    }

    /// Carries out a plan made by [`Controller::plan_destroy`].
    pub async fn destroy_plan(&self, plan: Plan) -> Result<Outcome, Error> {
        let started = Instant::now();
        let resources = self.resources().await?;
        self.execute(&plan, &resources, true, true).await?;
        let refused = plan.refused();
        if !refused.is_empty() {
            return Err(Error::Refused(refused.into_iter().cloned().collect()));
        }
        Ok(Outcome {
            plan,
            calls: self.calls(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Carries out an apply wave by wave. Before each wave after the first,
    /// the values AWS chose in earlier waves are looked up and that wave is
    /// planned again, so that it acts on what AWS holds now.
    async fn execute_apply(&self, mut plan: Plan) -> Result<Plan, Error> {
        let mut waves: Vec<usize> = plan
            .changes
            .iter()
            .map(|change| change.resource.kind.wave())
            .collect();
        waves.sort_unstable();
        waves.dedup();
        let mut attempted = 0;
        for (index, wave) in waves.into_iter().enumerate() {
            let resources: Vec<Desired> = self
                .resources()
                .await?
                .into_iter()
                .filter(|desired| desired.id().kind.wave() == wave)
                .collect();
            if index > 0 {
                let fresh = self.plan_for(&resources).await?;
                if let Some(refused) = fresh.refused().first() {
                    return Err(Error::Refused(vec![(*refused).clone()]));
                }
                for change in fresh.changes {
                    match plan
                        .changes
                        .iter_mut()
                        .find(|planned| planned.resource == change.resource)
                    {
                        Some(planned) => *planned = change,
                        None => plan.changes.push(change),
                    }
                }
            }
            let wave_plan = Plan {
                deployment: plan.deployment.clone(),
                changes: plan
                    .changes
                    .iter()
                    .filter(|change| change.resource.kind.wave() == wave)
                    .cloned()
                    .collect(),
            };
            match self.execute(&wave_plan, &resources, false, false).await {
                Ok(()) => {
                    attempted += wave_plan
                        .changes
                        .iter()
                        .filter(|change| change.action.mutates())
                        .count()
                }
                Err(Error::Incomplete {
                    attempted: in_wave,
                    failures,
                }) => {
                    return Err(Error::Incomplete {
                        attempted: attempted + in_wave,
                        failures,
                    });
                }
                Err(other) => return Err(other),
            }
        }
        Ok(plan)
    }

    /// Runs the plan's changes wave by wave (reversed for destroy); changes
    /// within a wave run concurrently. A failure stops the later waves.
    async fn execute(
        &self,
        plan: &Plan,
        resources: &[Desired],
        reverse: bool,
        delete_contents: bool,
    ) -> Result<(), Error> {
        let mut waves: Vec<usize> = resources
            .iter()
            .map(|desired| desired.id().kind.wave())
            .collect();
        waves.sort_unstable();
        waves.dedup();
        if reverse {
            waves.reverse();
        }
        let mut attempted = 0;
        let mut failures = Vec::new();
        for wave in waves {
            let work: Vec<(&Desired, &Change)> = resources
                .iter()
                .filter(|desired| desired.id().kind.wave() == wave)
                .filter_map(|desired| {
                    let id = desired.id();
                    plan.changes
                        .iter()
                        .find(|change| change.resource == id && change.action.mutates())
                        .map(|change| (desired, change))
                })
                .collect();
            if work.is_empty() {
                continue;
            }
            if let Some(fence) = &self.fence {
                fence.verify().await?;
            }
            attempted += work.len();
            let results = join_all(work.into_iter().map(|(desired, change)| {
                let span = tracing::info_span!("change", resource = %change.resource, action = ?change.action);
                async move {
                    let started = Instant::now();
                    let result = self.carry_out(desired, change, delete_contents).await;
                    match &result {
                        Ok(()) => tracing::info!(seconds = started.elapsed().as_secs_f64(), "done"),
                        Err(error) => tracing::error!(%error, "failed"),
                    }
                    (change.resource.clone(), result)
                }
                .instrument(span)
            }))
            .await;
            failures.extend(results.into_iter().filter_map(|(resource, result)| {
                result.err().map(|error| (resource, error.to_string()))
            }));
            if !failures.is_empty() {
                break;
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Incomplete {
                attempted,
                failures,
            })
        }
    }

    async fn carry_out(
        &self,
        desired: &Desired,
        change: &Change,
        delete_contents: bool,
    ) -> resources::Result<()> {
        match change.action {
            Action::Create => {
                desired.create(&self.ctx).await?;
                self.converge_after_create(desired).await
            }
            Action::Update => desired.update(&self.ctx, &change.diffs).await,
            Action::Replace => {
                desired.delete(&self.ctx, false).await?;
                desired.create(&self.ctx).await?;
                self.converge_after_create(desired).await
            }
            Action::Delete => desired.delete(&self.ctx, delete_contents).await,
            Action::Retain | Action::InSync | Action::Absent | Action::Refused => Ok(()),
        }
    }

    /// A create call sets what it can; whatever it could not set (or what an
    /// earlier, interrupted create left out) is set by an update.
    async fn converge_after_create(&self, desired: &Desired) -> resources::Result<()> {
        let Some(observed) = desired.observe(&self.ctx).await? else {
            return Err(resources::Error::Failed(
                "created, but AWS does not show it yet".into(),
            ));
        };
        let diffs = diff_fields(&desired.fields(), &observed.fields);
        if diffs.is_empty() {
            Ok(())
        } else {
            desired.update(&self.ctx, &diffs).await
        }
    }
}

fn refusal(ownership: &Ownership, desired: &Desired, deployment: &str) -> String {
    let setting = match desired.id().kind {
        Kind::Bucket => "bucket.adopt",
        Kind::Repository => "functions.<name>.repository.adopt",
        Kind::Role => "functions.<name>.role.adopt",
        Kind::LogGroup => "functions.<name>.logs.adopt",
        Kind::Function => "functions.<name>.adopt",
        Kind::Secret => "panther_secret.adopt",
        Kind::Api => "api.adopt",
        Kind::Rule => "schedule.adopt",
        Kind::Permission => "nothing (statement ids are the controller's)",
    };
    match ownership {
        Ownership::OtherDeployment(other) => {
            format!("it belongs to deployment {other:?}, not {deployment:?}; choose another name")
        }
        _ => format!(
            "it exists without the ownership tags of deployment {deployment:?}; set {setting} = true to take it over, or choose another name"
        ),
    }
}

/// Decides what apply does to one resource.
fn plan_apply(
    desired: &Desired,
    observed: Option<resources::Observed>,
    deployment: &str,
) -> Change {
    let resource = desired.id();
    let Some(observed) = observed else {
        return Change {
            resource,
            action: Action::Create,
            diffs: Vec::new(),
            reason: None,
        };
    };
    let may_change = match &observed.ownership {
        Ownership::Owned => true,
        Ownership::Unmanaged => desired.adopt(),
        Ownership::OtherDeployment(_) => false,
    };
    if !may_change {
        return Change {
            resource,
            action: Action::Refused,
            diffs: Vec::new(),
            reason: Some(refusal(&observed.ownership, desired, deployment)),
        };
    }
    let diffs = diff_fields(&desired.fields(), &observed.fields);
    let forcing: Vec<&str> = desired
        .replacement_fields()
        .iter()
        .copied()
        .filter(|field| diffs.iter().any(|diff| diff.field == *field))
        .collect();
    let (action, reason) = if diffs.is_empty() {
        (Action::InSync, None)
    } else if !forcing.is_empty() {
        (
            Action::Replace,
            Some(format!("{} cannot be changed in place", forcing.join(", "))),
        )
    } else if observed.ownership == Ownership::Unmanaged {
        (
            Action::Update,
            Some("adopted: the ownership tags are added".to_string()),
        )
    } else {
        (Action::Update, None)
    };
    Change {
        resource,
        action,
        diffs,
        reason,
    }
}
