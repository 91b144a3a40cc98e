//! Carries out a plan: each change runs as soon as the changes it waits
//! for (see [`super::order`]) have succeeded, independent changes
//! concurrently; a failure skips only what waits for it. A resource whose
//! prerequisites were just created or changed is planned again first, with
//! the values AWS chose for them (an API's id, a secret's ARN), so that it
//! acts on what AWS holds now.

use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::Mutex;
use tracing::Instrument;

use super::graph::{NodeState, Scheduler};
use super::order::{self, Node};
use super::outcome::{Outcome, ResourceResult, Status};
use super::{Controller, Error, planning};
use crate::desired::{Refs, desired_resources};
use crate::field::diff_fields;
use crate::plan::{Action, Change};
use crate::resources::{self, DeleteOptions, KINDS, Resource, ResourceKind, kind_named};

/// Whether a plan creates and changes (apply) or deletes (destroy); it
/// decides the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Destroy,
}

/// What a change acts on: a resource of the file, or an orphan known only
/// by its kind and name.
enum Subject<'a> {
    Desired(&'a dyn Resource),
    Orphan(&'static dyn ResourceKind, String),
}

/// The values AWS chose, looked up again only after something changed.
struct RefsCache {
    changes_seen: usize,
    refs: Option<Refs>,
}

impl Controller {
    /// Carries out `plan`, returning one result per change; failures are
    /// results, not errors. Errors are what stops the whole run: the
    /// desired state cannot be derived, the lease is lost, the changes
    /// cannot be ordered.
    pub async fn execute(&self, mut plan: crate::plan::Plan, mode: Mode) -> Result<Outcome, Error> {
        let started = Instant::now();
        let resources = self.resources().await?;
        let mut subjects = Vec::with_capacity(plan.changes.len());
        let mut nodes = Vec::with_capacity(plan.changes.len());
        for change in &plan.changes {
            let desired = resources
                .iter()
                .find(|desired| desired.id() == change.resource);
            let rank = KINDS
                .iter()
                .position(|kind| kind.kind() == change.resource.kind)
                .unwrap_or(KINDS.len());
            match desired {
                Some(desired) => {
                    nodes.push(Node {
                        id: change.resource.clone(),
                        dependencies: desired.dependencies(),
                        rank,
                        orphan: false,
                    });
                    subjects.push(Subject::Desired(desired.as_ref()));
                }
                None => {
                    let kind = kind_named(change.resource.kind).ok_or_else(|| Error::Observe {
                        resource: change.resource.clone(),
                        cause: resources::Error::Failed("no such kind of resource".into()),
                    })?;
                    nodes.push(Node {
                        id: change.resource.clone(),
                        dependencies: Vec::new(),
                        rank,
                        orphan: true,
                    });
                    subjects.push(Subject::Orphan(kind, change.resource.name.clone()));
                }
            }
        }
        let waits_for = match mode {
            Mode::Apply => order::apply_order(&nodes),
            Mode::Destroy => order::destroy_order(&nodes),
        };
        let mut scheduler = Scheduler::new(waits_for)?;
        let mut statuses: Vec<Option<Status>> = vec![None; nodes.len()];
        let mut mutated = vec![false; nodes.len()];
        let refs_cache = Mutex::new(RefsCache {
            changes_seen: 0,
            refs: None,
        });
        let mut changes_made = 0;
        let mut running = FuturesUnordered::new();
        loop {
            let ready = scheduler.take_ready();
            let replan: Vec<(usize, bool)> = ready
                .iter()
                .map(|&node| {
                    let after_change = mode == Mode::Apply
                        && matches!(subjects[node], Subject::Desired(_))
                        && scheduler
                            .prerequisites(node)
                            .iter()
                            .any(|&other| mutated[other]);
                    (node, after_change)
                })
                .collect();
            let acts = replan
                .iter()
                .any(|&(node, again)| again || plan.changes[node].action.mutates());
            if acts && let Some(fence) = &self.fence {
                fence.verify().await?;
            }
            for (node, again) in replan {
                let change = plan.changes[node].clone();
                let subject = &subjects[node];
                let refs_cache = &refs_cache;
                let seen = changes_made;
                let span = tracing::info_span!("change", resource = %change.resource, action = ?change.action);
                running.push(
                    async move {
                        let started = Instant::now();
                        let (node, change, result) = if again {
                            self.replan_and_carry_out(node, change, refs_cache, seen)
                                .await
                        } else {
                            let result = self.carry_out(subject, &change, mode).await;
                            (node, change, result)
                        };
                        match &result {
                            // Each change is in the outcome printed at the end;
                            // its own line is for debugging.
                            Ok(()) if change.action.mutates() => tracing::debug!(
                                action = ?change.action,
                                seconds = started.elapsed().as_secs_f64(),
                                "done"
                            ),
                            Ok(()) => {}
                            Err(error) => tracing::error!(%error, "failed"),
                        }
                        (node, change, result)
                    }
                    .instrument(span),
                );
            }
            let Some((node, change, result)) = running.next().await else {
                break;
            };
            let status = match &result {
                Ok(()) if change.action == Action::Refused => Status::Refused {
                    reason: change.reason.clone().unwrap_or_else(|| "not owned".into()),
                },
                Ok(()) if change.action.mutates() => {
                    mutated[node] = true;
                    changes_made += 1;
                    Status::Done
                }
                Ok(()) => Status::Unchanged,
                Err(error) => Status::failed(error),
            };
            scheduler.finish(
                node,
                // A resource destroy may not touch does not hold up the others.
                status.succeeded()
                    || (matches!(status, Status::Refused { .. }) && mode == Mode::Destroy),
            );
            statuses[node] = Some(status);
            plan.changes[node] = change;
        }
        debug_assert!(scheduler.is_done());
        let results = plan
            .changes
            .iter()
            .enumerate()
            .map(|(node, change)| ResourceResult {
                resource: change.resource.clone(),
                action: change.action,
                status: match (statuses[node].take(), scheduler.state(node)) {
                    (Some(status), _) => status,
                    (None, NodeState::Skipped(cause)) => Status::Skipped {
                        because: plan.changes[cause].resource.clone(),
                    },
                    (None, _) => Status::Unchanged,
                },
            })
            .collect();
        Ok(Outcome {
            plan,
            results,
            calls: self.calls(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Plans one resource again, with the values AWS chose since the plan
    /// was made, and carries out the fresh change.
    async fn replan_and_carry_out(
        &self,
        node: usize,
        change: Change,
        refs_cache: &Mutex<RefsCache>,
        changes_seen: usize,
    ) -> (usize, Change, resources::Result<()>) {
        let refs = {
            let mut cache = refs_cache.lock().await;
            if cache.refs.is_none() || cache.changes_seen < changes_seen {
                match self.refs().await {
                    Ok(refs) => {
                        cache.refs = Some(refs);
                        cache.changes_seen = changes_seen;
                    }
                    Err(Error::Observe { cause, .. }) => return (node, change, Err(cause)),
                    Err(other) => {
                        return (
                            node,
                            change,
                            Err(resources::Error::Failed(other.to_string())),
                        );
                    }
                }
            }
            cache.refs.clone().unwrap_or_default()
        };
        let fresh = desired_resources(&self.spec, &self.ctx, &refs);
        let Some(desired) = fresh.iter().find(|desired| desired.id() == change.resource) else {
            return (node, change, Ok(()));
        };
        let observed = match desired.observe(&self.ctx).await {
            Ok(observed) => observed,
            Err(error) => return (node, change, Err(error)),
        };
        let fresh_change = planning::plan_apply(
            desired.as_ref(),
            observed,
            &self.ctx.deployment,
            &self.spec.ignore,
        );
        let result = self
            .carry_out(
                &Subject::Desired(desired.as_ref()),
                &fresh_change,
                Mode::Apply,
            )
            .await;
        (node, fresh_change, result)
    }

    async fn carry_out(
        &self,
        subject: &Subject<'_>,
        change: &Change,
        mode: Mode,
    ) -> resources::Result<()> {
        let delete_options = match (subject, mode) {
            (_, Mode::Destroy) => DeleteOptions {
                delete_contents: true,
            },
            (Subject::Orphan(kind, _), Mode::Apply) => kind.orphan_delete_options(&self.spec),
            (Subject::Desired(_), Mode::Apply) => DeleteOptions::default(),
        };
        let desired = match subject {
            Subject::Desired(desired) => *desired,
            Subject::Orphan(kind, name) => {
                return match change.action {
                    Action::Delete => kind.delete(&self.ctx, name, delete_options).await,
                    _ => Ok(()),
                };
            }
        };
        match change.action {
            Action::Create => {
                desired.create(&self.ctx).await?;
                self.converge_after_create(desired).await
            }
            Action::Update => desired.update(&self.ctx, &change.diffs).await,
            Action::Replace => {
                desired.delete(&self.ctx, DeleteOptions::default()).await?;
                desired.create(&self.ctx).await?;
                self.converge_after_create(desired).await
            }
            Action::Delete => desired.delete(&self.ctx, delete_options).await,
            Action::Retain | Action::InSync | Action::Absent | Action::Refused | Action::Orphan => {
                Ok(())
            }
        }
    }

    /// A create call sets what it can; whatever it could not set (or what an
    /// earlier, interrupted create left out) is set by an update.
    async fn converge_after_create(&self, desired: &dyn Resource) -> resources::Result<()> {
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
