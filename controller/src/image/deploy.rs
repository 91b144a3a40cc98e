//! Fits built images into `diff` and `apply`. A plan is made with each built
//! image pinned by the digest the registry has for its content hash, or
//! shown as `repo@(built at apply)` when it is missing. Apply then builds
//! every missing image before changing anything, creates the repositories,
//! pushes, reads the digests back, and only then converges the rest: no
//! function is ever pointed at an image the registry does not have. Every
//! image a function is about to run is given its protected `live-` tag
//! first, and the tag is released from older images once the functions
//! run the new ones (see [`crate::resources::repository`]).

use std::time::Instant;

use super::{Engine, ImageError, Images, Progress};
use crate::plan::Plan;
use crate::reconcile::{self, Controller, Outcome};
use crate::resources::ResourceKind;
use crate::resources::repository;

/// Why an apply with images stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
}

/// The image digests the published versions of each released function pin,
/// by function key ([`versions::pinned_digests`]); `None` for a function
/// whose versions cannot all be read (its repository keeps every protected
/// image).
async fn kept_version_digests(
    controller: &Controller,
) -> std::collections::BTreeMap<String, Option<Vec<String>>> {
    use crate::resources::release::versions;
    let mut kept = std::collections::BTreeMap::new();
    for function in controller
        .spec
        .functions
        .iter()
        .filter(|function| function.release.is_some())
    {
        let digests = match versions::pinned_digests(&controller.ctx, &function.name).await {
            Ok(digests) => digests,
            Err(error) => {
                tracing::warn!(function = %function.name, %error, "cannot list the versions; every protected image of its repository stays");
                None
            }
        };
        kept.insert(function.key.clone(), digests);
    }
    kept
}

/// Plans with the images resolved: the controller's spec gets their URIs.
pub async fn plan(controller: &mut Controller, images: &Images) -> Result<Plan, reconcile::Error> {
    controller.spec = images.resolve(&controller.spec);
    controller.plan().await
}

/// Carries out `plan` (made by [`plan`]), building and pushing the images
/// that are not in the registry first.
pub async fn apply(
    controller: &mut Controller,
    images: &mut Images,
    plan: Plan,
    progress: &Progress,
) -> Result<Outcome, DeployError> {
    if !plan.refused().is_empty() {
        return Ok(controller.apply_plan(plan).await?);
    }
    if images.pending().is_empty() {
        images.protect(progress).await?;
        let outcome = controller.apply_plan(plan).await?;
        let kept = kept_version_digests(controller).await;
        images
            .release(&controller.ctx.clients.ecr, &kept, progress)
            .await;
        return Ok(outcome);
    }
    let started = Instant::now();
    let engine = Engine::connect().await?;
    images.build(&engine, progress).await?;
    // The repositories first: a registry takes a push only into one that exists.
    let repositories = Plan {
        deployment: plan.deployment.clone(),
        changes: plan
            .changes
            .iter()
            .filter(|change| {
                change.resource.kind == repository::KIND.kind() && change.action.mutates()
            })
            .cloned()
            .collect(),
    };
    if !repositories.changes.is_empty() {
        controller.apply_plan(repositories.clone()).await?;
    }
    images.push(&engine, progress).await?;
    images.protect(progress).await?;
    controller.spec = images.resolve(&controller.spec);
    let rest = controller.plan().await?;
    let mut outcome = controller.apply_plan(rest).await?;
    let kept = kept_version_digests(controller).await;
    images
        .release(&controller.ctx.clients.ecr, &kept, progress)
        .await;
    // Report the repositories as the first pass changed them.
    for change in repositories.changes {
        if let Some(slot) = outcome
            .plan
            .changes
            .iter_mut()
            .find(|slot| slot.resource == change.resource)
        {
            *slot = change;
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}
