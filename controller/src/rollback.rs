//! What `controller rollback` does: points a function's release alias back
//! at the previous version (or a named one) at once, with no weight left on
//! any other, and records the version it took out of service in the alias,
//! so that neither `apply` nor the daemon releases it again until the file
//! or the image changes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::Utc;
use serde::Serialize;

use crate::ignore::IgnoreRule;
use crate::reconcile::Controller;
use crate::resources::release::journal::Journal;
use crate::resources::release::{get_alias, point_alias, versions};
use crate::resources::{self, Context, ResourceId, aws_error};
use crate::spec::FunctionSpec;

/// Why a rollback was not made.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Aws(#[from] resources::Error),
}

/// One alias moved back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RolledBack {
    pub function: String,
    pub alias: String,
    /// The version taken out of service.
    pub from: String,
    /// The version that now takes all traffic.
    pub to: String,
    /// The release (image and configuration) not released again.
    pub release: String,
}

impl fmt::Display for RolledBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: version {} -> {} (all traffic). Release {} is held: apply and the daemon do not release it again until the file or the image changes.",
            self.function, self.alias, self.from, self.to, self.release
        )
    }
}

/// The functions to roll back: the one named (by key or name), or every
/// function of the file that has a release.
fn chosen<'a>(
    controller: &'a Controller,
    function: Option<&str>,
) -> Result<Vec<&'a FunctionSpec>, RollbackError> {
    let with_release: Vec<&FunctionSpec> = controller
        .spec
        .functions
        .iter()
        .filter(|spec| spec.release.is_some())
        .collect();
    match function {
        None if with_release.is_empty() => Err(RollbackError::Refused(
            "no function of the file has a [functions.<name>.release] section; there is nothing to roll back".into(),
        )),
        None => Ok(with_release),
        Some(named) => {
            let Some(spec) = controller
                .spec
                .functions
                .iter()
                .find(|spec| spec.key == named || spec.name == named)
            else {
                return Err(RollbackError::Refused(format!(
                    "{named:?} is not a function of the file (functions: {})",
                    controller
                        .spec
                        .functions
                        .iter()
                        .map(|spec| spec.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if spec.release.is_none() {
                return Err(RollbackError::Refused(format!(
                    "functions.{} has no release section: it is invoked unversioned and has nothing to roll back",
                    spec.key
                )));
            }
            Ok(vec![spec])
        }
    }
}

/// Rolls back each chosen function (see the module's documentation).
pub async fn rollback(
    controller: &Controller,
    function: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<RolledBack>, RollbackError> {
    let chosen = chosen(controller, function)?;
    if to.is_some() && chosen.len() > 1 {
        return Err(RollbackError::Refused(
            "--to names a version of one function: name it with --function".into(),
        ));
    }
    let mut done = Vec::new();
    for spec in chosen {
        let ignored: Vec<IgnoreRule> = crate::ignore::rules_for(
            &controller.spec.ignore,
            &ResourceId::new(
                resources::ResourceKind::kind(&resources::function::KIND),
                spec.name.clone(),
            ),
        )
        .into_iter()
        .cloned()
        .collect();
        done.push(rollback_one(&controller.ctx, spec, to, &ignored).await?);
    }
    Ok(done)
}

async fn rollback_one(
    ctx: &Context,
    spec: &FunctionSpec,
    to: Option<&str>,
    ignored: &[IgnoreRule],
) -> Result<RolledBack, RollbackError> {
    let alias_name = &spec.release.as_ref().expect("chosen with a release").alias;
    let function = spec.name.as_str();
    let Some(alias) = get_alias(ctx, function, alias_name).await? else {
        return Err(RollbackError::Refused(format!(
            "{function} has no alias {alias_name:?} yet: nothing was released"
        )));
    };
    let published: Vec<u64> = versions::published(ctx, function)
        .await?
        .iter()
        .filter_map(|version| version.version()?.parse().ok())
        .collect();
    // A shift in progress is ended: its new version is what goes.
    let (from, target) = match alias.weights.keys().next() {
        Some(shifting) if to.is_none() => (shifting.clone(), alias.version.clone()),
        _ => {
            let current = alias.version.clone();
            let target = match to {
                Some(version) => {
                    if !version
                        .parse::<u64>()
                        .is_ok_and(|number| published.contains(&number))
                    {
                        return Err(RollbackError::Refused(format!(
                            "{version:?} is not a published version of {function} (published: {})",
                            published
                                .iter()
                                .map(u64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    version.to_string()
                }
                None => previous(&alias.journal(), &current, &published).ok_or_else(|| {
                    RollbackError::Refused(format!(
                        "{function}:{alias_name} is on version {current} and no earlier version is published"
                    ))
                })?,
            };
            if target == current && alias.weights.is_empty() {
                return Err(RollbackError::Refused(format!(
                    "{function}:{alias_name} already sends all traffic to version {current}"
                )));
            }
            (current, target)
        }
    };
    let release = release_of(ctx, function, &from, ignored).await?;
    point_alias(
        ctx,
        function,
        alias_name,
        &target,
        &BTreeMap::new(),
        &Journal::RolledBack {
            version: from.clone(),
            release: release.clone(),
            to: target.clone(),
            at: Utc::now(),
            reason: "rolled back by hand".into(),
        },
        alias.revision.as_deref(),
    )
    .await?;
    tracing::info!(function, alias = %alias_name, from = %from, to = %target, "rolled back");
    Ok(RolledBack {
        function: function.to_string(),
        alias: alias_name.clone(),
        from,
        to: target,
        release,
    })
}

/// The version to go back to: the one the last release replaced, when it
/// is still published, else the newest published before `current`.
fn previous(journal: &Option<Journal>, current: &str, published: &[u64]) -> Option<String> {
    if let Some(Journal::Released {
        version,
        from: Some(from),
        ..
    }) = journal
        && version == current
        && from
            .parse::<u64>()
            .is_ok_and(|number| published.contains(&number))
    {
        return Some(from.clone());
    }
    let current: u64 = current.parse().ok()?;
    published
        .iter()
        .filter(|version| **version < current)
        .max()
        .map(u64::to_string)
}

/// The release a version holds: its image (from its description)
/// and the fingerprint of its configuration.
async fn release_of(
    ctx: &Context,
    function: &str,
    version: &str,
    ignored: &[IgnoreRule],
) -> resources::Result<String> {
    let output = ctx
        .clients
        .lambda
        .get_function()
        .function_name(function)
        .qualifier(version)
        .send()
        .await
        .map_err(aws_error("GetFunction"))?;
    let Some(configuration) = output.configuration() else {
        return Ok(versions::release_id("unknown", "unknown"));
    };
    let (image, configuration) = versions::held_by(configuration, ignored);
    Ok(versions::release_id(
        image.unwrap_or("unknown"),
        &configuration,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_version_is_the_one_the_release_replaced_while_it_exists() {
        let released = Some(Journal::Released {
            version: "7".into(),
            from: Some("4".into()),
            at: Utc::now(),
        });
        assert_eq!(previous(&released, "7", &[3, 4, 5, 6, 7]), Some("4".into()));
        // Pruned since: the newest before the current one.
        assert_eq!(previous(&released, "7", &[5, 6, 7]), Some("6".into()));
        assert_eq!(previous(&None, "7", &[2, 7, 9]), Some("2".into()));
        assert_eq!(previous(&None, "1", &[1, 2]), None);
    }
}
