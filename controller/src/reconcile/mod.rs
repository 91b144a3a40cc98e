//! Runs plans: observes every resource, finds what the deployment owns that
//! the file no longer names, decides what to do, and carries it out in
//! dependency order, independent resources concurrently. `apply`, `destroy`
//! and the daemon all go through here. The engine names no kind: it works
//! through [`crate::resources::Resource`] and the registry of kinds.

mod discover;
mod execute;
mod graph;
mod order;
mod outcome;
mod planning;
pub mod select;

use futures::future::join_all;

use crate::cloud::{CallSummary, Clients};
use crate::desired::{Refs, desired_resources};
use crate::plan::{Change, Plan};
use crate::resources::{self, Context, Resource, ResourceId, ResourceKind, WaitSettings};
use crate::spec::Spec;

pub use execute::Mode;
pub use outcome::{Outcome, ResourceResult, Status};

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
    #[error("cannot find the {what}: {cause}")]
    Discover {
        what: String,
        cause: resources::Error,
    },
    #[error("{}", refused_message(.0))]
    Refused(Vec<Change>),
    #[error(transparent)]
    Lease(#[from] crate::lease::Error),
    #[error("{}", incomplete_message(.0))]
    Incomplete(Box<Outcome>),
    #[error("cannot order the changes: {0}")]
    Order(#[from] graph::Cycle),
    #[error(transparent)]
    Select(#[from] select::SelectError),
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

fn incomplete_message(outcome: &Outcome) -> String {
    let problems = outcome.problems();
    let failed = problems
        .iter()
        .filter(|result| matches!(result.status, Status::Failed { .. }))
        .count();
    let lines: Vec<String> = problems
        .iter()
        .map(|result| format!("  {}: {}", result.resource, result.status))
        .collect();
    format!(
        "{failed} of {} changes failed, {} not made:\n{}",
        outcome.attempted(),
        problems.len() - failed,
        lines.join("\n")
    )
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

/// A deployment and the account it lives in.
pub struct Controller {
    pub spec: Spec,
    pub ctx: Context,
    /// The Panther token, when its environment variable is set.
    secret_value: Option<resources::secret::SecretValue>,
    /// The writers' lease this controller changes things under, checked
    /// against S3 before each batch of changes.
    fence: Option<crate::lease::Guard>,
    /// Whether apply deletes the resources the file no longer names.
    prune: bool,
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
            prune: true,
        })
    }

    /// Changes happen under this lease from now on: before each batch of
    /// changes it is read back from S3, and a lease no longer ours stops the
    /// apply or destroy before it changes anything more.
    pub fn set_fence(&mut self, guard: Option<crate::lease::Guard>) {
        self.fence = guard;
    }

    /// Changes how long the controller waits on AWS (tests shorten it).
    pub fn set_waits(&mut self, waits: WaitSettings) {
        self.ctx.waits = waits;
    }

    /// Whether apply deletes what the file no longer names (on by default);
    /// off, such resources are listed as orphans and kept.
    pub fn set_prune(&mut self, prune: bool) {
        self.prune = prune;
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
            desired
                .lookup(&self.ctx, &mut refs)
                .await
                .map_err(|cause| Error::Observe {
                    resource: desired.id(),
                    cause,
                })?;
        }
        Ok(refs)
    }

    /// Every resource of the deployment, as far as AWS's choices are known.
    pub async fn resources(&self) -> Result<Vec<Box<dyn Resource>>, Error> {
        Ok(desired_resources(
            &self.spec,
            &self.ctx,
            &self.refs().await?,
        ))
    }

    /// The invoke URL of every route of the REST API, once the API exists.
    pub async fn invoke_urls(&self) -> Result<Vec<String>, Error> {
        Ok(match self.api().await? {
            Some((api, Some(id))) => api
                .as_any()
                .downcast_ref::<resources::api::Desired>()
                .map(|api| api.invoke_urls(&self.ctx, &id))
                .unwrap_or_default(),
            _ => Vec::new(),
        })
    }

    /// The id AWS gave the file's REST API, if it exists.
    pub async fn api_id(&self) -> Result<Option<String>, Error> {
        Ok(self.api().await?.and_then(|(_, id)| id))
    }

    /// The file's REST API as desired, and the id AWS gave it if it exists.
    async fn api(&self) -> Result<Option<(Box<dyn Resource>, Option<String>)>, Error> {
        for desired in self.resources().await? {
            if let Some(api) = desired.as_any().downcast_ref::<resources::api::Desired>() {
                let id = api.id(&self.ctx).await.map_err(|cause| Error::Observe {
                    resource: desired.id(),
                    cause,
                })?;
                return Ok(Some((desired, id)));
            }
        }
        Ok(None)
    }

    /// `plan` narrowed to what `selector` selects, with the dependencies
    /// checked (see [`select`]).
    pub async fn select(
        &self,
        plan: Plan,
        selector: &select::Selector,
        destroy: bool,
    ) -> Result<Plan, Error> {
        if selector.is_everything() {
            return Ok(plan);
        }
        let dependencies = self
            .resources()
            .await?
            .iter()
            .map(|resource| (resource.id(), resource.dependencies()))
            .collect();
        Ok(selector.narrow(plan, &dependencies, destroy)?)
    }

    /// Observes every resource, finds the orphans, and plans what apply
    /// would do.
    pub async fn plan(&self) -> Result<Plan, Error> {
        let resources = self.resources().await?;
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
        let (observed, orphans) = futures::join!(
            self.observe_all(&resources),
            discover::orphans(&self.ctx, &self.spec, &resources)
        );
        let mut changes: Vec<Change> = resources
            .iter()
            .zip(observed?)
            .map(|(desired, observed)| {
                planning::plan_apply(
                    desired.as_ref(),
                    observed,
                    &self.ctx.deployment,
                    &self.spec.ignore,
                )
            })
            .collect();
        changes.extend(self.orphan_changes(orphans?));
        Ok(self.plan_of(changes))
    }

    fn plan_of(&self, changes: Vec<Change>) -> Plan {
        Plan {
            deployment: self.spec.deployment.name.clone(),
            changes,
        }
    }

    fn orphan_changes(
        &self,
        orphans: Vec<(&'static dyn resources::ResourceKind, String)>,
    ) -> Vec<Change> {
        orphans
            .into_iter()
            .map(|(kind, name)| {
                let keep = kind.keep_orphan(&self.spec, &name);
                planning::plan_orphan(ResourceId::new(kind.kind(), name), keep, self.prune)
            })
            .collect()
    }

    /// Plans the resources `include` selects, each observed on its own: one
    /// that cannot be observed is returned apart and the others are still
    /// planned (the daemon backs off per resource). With `orphans`, the
    /// resources the file no longer names are planned too.
    pub async fn plan_each(
        &self,
        include: impl Fn(&ResourceId) -> bool,
        orphans: bool,
    ) -> (Plan, Vec<(ResourceId, Error)>) {
        let resources: Vec<Box<dyn Resource>> = match self.resources().await {
            Ok(resources) => resources,
            Err(error) => {
                let id = match &error {
                    Error::Observe { resource, .. } => resource.clone(),
                    _ => self.bucket_id(),
                };
                return (self.plan_of(Vec::new()), vec![(id, error)]);
            }
        };
        let discovered = if orphans {
            Some(discover::orphans(&self.ctx, &self.spec, &resources).await)
        } else {
            None
        };
        let selected: Vec<&Box<dyn Resource>> = resources
            .iter()
            .filter(|desired| include(&desired.id()))
            .collect();
        let observed = join_all(selected.iter().map(|desired| async move {
            desired.preflight(&self.ctx).await?;
            desired.observe(&self.ctx).await
        }))
        .await;
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        for (desired, observed) in selected.iter().zip(observed) {
            match observed {
                Ok(observed) => changes.push(planning::plan_apply(
                    desired.as_ref(),
                    observed,
                    &self.ctx.deployment,
                    &self.spec.ignore,
                )),
                Err(cause) => failures.push((
                    desired.id(),
                    Error::Observe {
                        resource: desired.id(),
                        cause,
                    },
                )),
            }
        }
        match discovered {
            Some(Ok(found)) => changes.extend(
                self.orphan_changes(found)
                    .into_iter()
                    .filter(|change| include(&change.resource)),
            ),
            Some(Err(error)) => failures.push((
                ResourceId::new(resources::Kind("orphans"), "discovery"),
                error,
            )),
            None => {}
        }
        (self.plan_of(changes), failures)
    }

    fn bucket_id(&self) -> ResourceId {
        ResourceId::new(resources::bucket::KIND.kind(), &self.spec.bucket.name)
    }

    /// Creates the model bucket when it is absent, before anything else: the
    /// writers' lease lives in it. Returns whether it was created.
    pub async fn ensure_bucket(&self) -> Result<bool, Error> {
        let bucket = self.bucket_id();
        let (plan, mut failures) = self.plan_each(|id| *id == bucket, false).await;
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
            .any(|change| change.action == crate::plan::Action::Create)
        {
            return Ok(false);
        }
        self.apply_plan(plan).await?;
        Ok(true)
    }

    /// Observes every resource, including those of earlier versions of the
    /// file found by tag, and plans what destroy would do.
    pub async fn plan_destroy(&self, bucket: BucketOnDestroy) -> Result<Plan, Error> {
        let resources = self.resources().await?;
        let (observed, orphans) = futures::join!(
            self.observe_all(&resources),
            discover::orphans(&self.ctx, &self.spec, &resources)
        );
        let mut spec = self.spec.clone();
        spec.bucket.retain_on_destroy = match bucket {
            BucketOnDestroy::AsConfigured => self.spec.bucket.retain_on_destroy,
            BucketOnDestroy::Retain => true,
            BucketOnDestroy::Delete => false,
        };
        let mut changes: Vec<Change> = resources
            .iter()
            .zip(observed?)
            .map(|(desired, observed)| {
                let retain = desired.kind().keep_on_destroy(&spec, &desired.name());
                planning::plan_destroy(desired.as_ref(), observed, &self.ctx.deployment, retain)
            })
            .collect();
        changes.extend(orphans?.into_iter().map(|(kind, name)| {
            let keep = kind.keep_on_destroy(&spec, &name);
            let mut change = planning::plan_orphan(ResourceId::new(kind.kind(), name), keep, true);
            if change.action == crate::plan::Action::Delete {
                change.reason = Some("named by an earlier version of the file".into());
            }
            change
        }));
        changes.reverse();
        Ok(self.plan_of(changes))
    }

    async fn observe_all(
        &self,
        resources: &[Box<dyn Resource>],
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

    /// Carries out a plan made by [`Controller::plan`]; an error when a
    /// resource is refused (nothing is changed then) or a change did not
    /// succeed (every independent change was still made).
    pub async fn apply_plan(&self, plan: Plan) -> Result<Outcome, Error> {
        let refused = plan.refused();
        if !refused.is_empty() {
            return Err(Error::Refused(refused.into_iter().cloned().collect()));
        }
        let outcome = self.execute(plan, Mode::Apply).await?;
        if outcome.succeeded() {
            Ok(outcome)
        } else {
            Err(Error::Incomplete(Box::new(outcome)))
        }
    }

    /// Deletes what the deployment owns, after what needs it. Resources it
    /// does not own are reported and left alone.
    pub async fn destroy(&self, bucket: BucketOnDestroy) -> Result<Outcome, Error> {
        let plan = self.plan_destroy(bucket).await?;
        self.destroy_plan(plan).await
    }

    /// Carries out a plan made by [`Controller::plan_destroy`].
    pub async fn destroy_plan(&self, plan: Plan) -> Result<Outcome, Error> {
        let outcome = self.execute(plan, Mode::Destroy).await?;
        let refused: Vec<Change> = outcome.plan.refused().into_iter().cloned().collect();
        let failed = outcome.results.iter().any(|result| {
            matches!(
                result.status,
                Status::Failed { .. } | Status::Skipped { .. }
            )
        });
        if failed {
            return Err(Error::Incomplete(Box::new(outcome)));
        }
        if !refused.is_empty() {
            return Err(Error::Refused(refused));
        }
        Ok(outcome)
    }
}
