//! Releasing what the function now runs: publishing it as a version and
//! moving the alias's traffic to it, all at once or in steps, reading the
//! release's alarms at every check. An alarm in ALARM sends all traffic
//! back to the previous version and records the release as rolled back in
//! the alias, so that it is not tried again; with `rollback_on_alarm =
//! false` the shift halts where it stands instead, until the alarm clears.
//!
//! Everything needed to continue is read from the alias (its target, the
//! new version's weight, the step's start in its description), so a shift
//! interrupted by a crash or left by `apply --no-wait` is continued by the
//! next apply or by the daemon from where it stood.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use chrono::Utc;

use super::journal::Journal;
use super::{AliasState, Desired, get_alias, point_alias, versions};
use crate::resources::{Context, Error, ErrorKind, Result, aws_error};

/// What `$LATEST` holds: the function as the last update left it.
struct Latest {
    fields: crate::field::Fields,
    image: Option<String>,
    code_sha256: Option<String>,
    revision: Option<String>,
}

async fn latest(ctx: &Context, function: &str) -> Result<Latest> {
    let output = ctx
        .clients
        .lambda
        .get_function()
        .function_name(function)
        .send()
        .await
        .map_err(aws_error("GetFunction"))?;
    let configuration = output.configuration().ok_or_else(|| {
        Error::Failed(format!(
            "function {function} has no configuration to release"
        ))
    })?;
    let image_uri = output.code().and_then(|code| code.image_uri());
    Ok(Latest {
        fields: crate::resources::function::version_fields(configuration, image_uri),
        image: image_uri.map(versions::image_reference),
        code_sha256: configuration.code_sha256().map(str::to_string),
        revision: configuration.revision_id().map(str::to_string),
    })
}

/// Publishes `$LATEST` as it was read (Lambda answers with the last
/// version when nothing changed since), retrying while an update of the
/// function is in progress. Gives the version.
async fn publish(
    ctx: &Context,
    function: &str,
    latest: &Latest,
    description: &str,
) -> Result<String> {
    let send = || {
        ctx.clients
            .lambda
            .publish_version()
            .function_name(function)
            .description(description)
            .set_code_sha256(latest.code_sha256.clone())
            .set_revision_id(latest.revision.clone())
            .send()
    };
    let output =
        crate::resources::function::retry_while_busy(ctx, function, send, "PublishVersion").await?;
    output
        .version()
        .map(str::to_string)
        .ok_or_else(|| Error::Failed(format!("PublishVersion of {function} gave no version")))
}

/// The step whose share is nearest `weight`.
fn step_of(steps: &[f64], weight: f64) -> usize {
    steps
        .iter()
        .enumerate()
        .min_by(|(_, a), (_, b)| (*a - weight).abs().total_cmp(&(*b - weight).abs()))
        .map_or(0, |(index, _)| index)
}

fn percent(weight: f64) -> String {
    format!("{:.0} %", weight * 100.0)
}

/// Releases the function's current code and configuration through its
/// alias (see the module's documentation).
pub async fn release(ctx: &Context, desired: &Desired) -> Result<()> {
    let function = desired.function.as_str();
    let alias_name = desired.release.alias.as_str();
    crate::resources::function::wait_until_ready(ctx, function).await?;
    let latest = latest(ctx, function).await?;
    let configuration = versions::configuration_fingerprint(&latest.fields, &desired.ignored);
    let wanted = versions::configuration_fingerprint(&desired.version_fields, &desired.ignored);
    let image_differs = desired
        .image
        .as_ref()
        .is_some_and(|image| latest.image.as_ref() != Some(image));
    if configuration != wanted || image_differs {
        return Err(Error::NotReady {
            what: format!("release of function {function}"),
            state: "not yet updated as the file wants it".into(),
        });
    }
    let image = latest.image.clone().unwrap_or_else(|| "unknown".into());
    let release_id = versions::release_id(&image, &configuration);
    let alias = get_alias(ctx, function, alias_name).await?;
    if let Some(Journal::RolledBack {
        version,
        release,
        to,
        at,
        reason,
    }) = alias.as_ref().and_then(AliasState::journal)
        && release == release_id
    {
        return Err(Error::Release {
            code: "ReleaseHeld",
            kind: ErrorKind::Terminal,
            message: format!(
                "release {release} of {function} (version {version}, image {image}) was rolled back to version {to} at {at} ({reason}); it is not tried again until the file or the image changes"
            ),
        });
    }
    let description = versions::version_description(&release_id, &image, &configuration);
    let version = publish(ctx, function, &latest, &description).await?;
    let now = Utc::now();
    let Some(alias) = alias else {
        create_alias(ctx, function, alias_name, &version).await?;
        tracing::info!(
            function,
            alias = alias_name,
            version,
            "released: the alias takes all traffic to it"
        );
        return Ok(());
    };
    let stable = alias.version.clone();
    let (steps, step_length) = desired.release.strategy.steps();
    if stable == version || steps.is_empty() {
        if stable != version
            || !alias.weights.is_empty()
            || !matches!(alias.journal(), Some(Journal::Released { .. }))
        {
            let from = (stable != version).then(|| stable.clone());
            point_alias(
                ctx,
                function,
                alias_name,
                &version,
                &BTreeMap::new(),
                &Journal::Released {
                    version: version.clone(),
                    from,
                    at: now,
                },
                alias.revision.as_deref(),
            )
            .await?;
            tracing::info!(function, alias = alias_name, version, from = %stable, "released: all traffic on the new version");
        }
        return Ok(());
    }
    Shift {
        ctx,
        desired,
        function,
        alias_name,
        version,
        stable,
        release_id,
        steps,
        step_length,
    }
    .run(alias)
    .await
}

async fn create_alias(ctx: &Context, function: &str, alias: &str, version: &str) -> Result<()> {
    let journal = Journal::Released {
        version: version.to_string(),
        from: None,
        at: Utc::now(),
    };
    match ctx
        .clients
        .lambda
        .create_alias()
        .function_name(function)
        .name(alias)
        .function_version(version)
        .description(journal.render())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_conflict_exception()) =>
        {
            // Created meanwhile (a retried create): point it at the version.
            let current = get_alias(ctx, function, alias).await?;
            point_alias(
                ctx,
                function,
                alias,
                version,
                &BTreeMap::new(),
                &journal,
                current.and_then(|alias| alias.revision).as_deref(),
            )
            .await
            .map(|_| ())
        }
        Err(error) => Err(aws_error("CreateAlias")(error)),
    }
}

/// One shift of traffic from `stable` to `version`, in `steps`.
struct Shift<'a> {
    ctx: &'a Context,
    desired: &'a Desired,
    function: &'a str,
    alias_name: &'a str,
    version: String,
    stable: String,
    release_id: String,
    steps: Vec<f64>,
    step_length: Duration,
}

impl Shift<'_> {
    async fn point(
        &self,
        version: &str,
        weights: BTreeMap<String, f64>,
        journal: Journal,
        revision: Option<&str>,
    ) -> Result<Option<String>> {
        point_alias(
            self.ctx,
            self.function,
            self.alias_name,
            version,
            &weights,
            &journal,
            revision,
        )
        .await
    }

    fn releasing(
        &self,
        started: chrono::DateTime<Utc>,
        step_since: chrono::DateTime<Utc>,
    ) -> Journal {
        Journal::Releasing {
            version: self.version.clone(),
            from: self.stable.clone(),
            release: self.release_id.clone(),
            started,
            step_since,
        }
    }

    async fn run(self, alias: AliasState) -> Result<()> {
        let now = Utc::now();
        let in_progress = alias.weights.get(&self.version).copied();
        let (mut index, started, mut since, mut revision) = match (in_progress, alias.journal()) {
            (
                Some(weight),
                Some(Journal::Releasing {
                    version,
                    started,
                    step_since,
                    ..
                }),
            ) if version == self.version => (
                step_of(&self.steps, weight),
                started,
                step_since,
                alias.revision.clone(),
            ),
            (Some(weight), _) => (
                step_of(&self.steps, weight),
                now,
                now,
                alias.revision.clone(),
            ),
            (None, _) => {
                let revision = self
                    .point(
                        &self.stable,
                        BTreeMap::from([(self.version.clone(), self.steps[0])]),
                        self.releasing(now, now),
                        alias.revision.as_deref(),
                    )
                    .await?;
                (0, now, now, revision)
            }
        };
        if in_progress.is_some() {
            tracing::info!(function = self.function, version = %self.version, share = %percent(self.steps[index]), "continuing the shift in progress");
        } else {
            tracing::info!(function = self.function, version = %self.version, from = %self.stable, share = %percent(self.steps[0]), "shifting traffic to the new version");
        }
        let progress = StepProgress::new(
            self.function,
            self.step_length,
            self.ctx.waits.wait_for_shifts,
        );
        loop {
            progress.show(index, &self.steps, &self.version, since);
            let firing =
                crate::resources::alarm::firing(self.ctx, &self.desired.alarm_names).await?;
            if let Some((alarm, reason)) = firing.first() {
                progress.finish();
                return Err(self.on_alarm(alarm, reason, revision.as_deref()).await);
            }
            let elapsed = (Utc::now() - since).to_std().unwrap_or_default();
            if elapsed >= self.step_length {
                index += 1;
                let now = Utc::now();
                if index == self.steps.len() {
                    self.point(
                        &self.version,
                        BTreeMap::new(),
                        Journal::Released {
                            version: self.version.clone(),
                            from: Some(self.stable.clone()),
                            at: now,
                        },
                        revision.as_deref(),
                    )
                    .await?;
                    progress.finish();
                    tracing::info!(function = self.function, version = %self.version, from = %self.stable, "released: all traffic on the new version");
                    return Ok(());
                }
                revision = self
                    .point(
                        &self.stable,
                        BTreeMap::from([(self.version.clone(), self.steps[index])]),
                        self.releasing(started, now),
                        revision.as_deref(),
                    )
                    .await?;
                since = now;
                tracing::info!(function = self.function, version = %self.version, share = %percent(self.steps[index]), "next step of the shift");
                continue;
            }
            if !self.ctx.waits.wait_for_shifts {
                progress.finish();
                let state = format!(
                    "{} on version {} (step {} of {}), next step in {}s",
                    percent(self.steps[index]),
                    self.version,
                    index + 1,
                    self.steps.len(),
                    (self.step_length - elapsed).as_secs()
                );
                if self.ctx.waits.requeue_when_pending {
                    return Err(Error::NotReady {
                        what: format!("release of function {}", self.function),
                        state,
                    });
                }
                tracing::info!(
                    function = self.function,
                    "release in progress: {state}; the next apply or the daemon continues it"
                );
                return Ok(());
            }
            tokio::time::sleep(
                self.desired
                    .release
                    .alarm_check
                    .min(self.step_length - elapsed),
            )
            .await;
        }
    }

    /// Rolls back (or halts) on an alarm; gives the error to report.
    async fn on_alarm(&self, alarm: &str, reason: &str, revision: Option<&str>) -> Error {
        if !self.desired.release.rollback_on_alarm {
            tracing::warn!(function = self.function, alarm, version = %self.version, "alarm in ALARM: the shift halts where it stands");
            return Error::Release {
                code: "ReleaseHalted",
                kind: ErrorKind::Conflict,
                message: format!(
                    "release of {} halted at version {}: alarm {alarm} is in ALARM ({reason}); it goes on once the alarm clears, or `controller rollback` ends it",
                    self.function, self.version
                ),
            };
        }
        let journal = Journal::RolledBack {
            version: self.version.clone(),
            release: self.release_id.clone(),
            to: self.stable.clone(),
            at: Utc::now(),
            reason: format!("alarm {alarm}"),
        };
        if let Err(error) = self
            .point(&self.stable, BTreeMap::new(), journal, revision)
            .await
        {
            return error;
        }
        tracing::error!(function = self.function, alarm, version = %self.version, to = %self.stable, "alarm in ALARM: rolled back");
        Error::Release {
            code: "ReleaseRolledBack",
            kind: ErrorKind::Terminal,
            message: format!(
                "release of {} rolled back from version {} to {}: alarm {alarm} is in ALARM ({reason})",
                self.function, self.version, self.stable
            ),
        }
    }
}

/// The shift's progress: a bar over the current step on a terminal, a log
/// line per step otherwise.
struct StepProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl StepProgress {
    fn new(function: &str, step: Duration, waiting: bool) -> StepProgress {
        let bar = (waiting && std::io::stderr().is_terminal()).then(|| {
            let bar = crate::image::Progress::bars()
                .add(indicatif::ProgressBar::new(step.as_secs().max(1)))
                .expect("bars on a terminal");
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix}: {wide_bar} {pos}/{len} s {msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(format!("{function} release"));
            bar
        });
        StepProgress { bar }
    }

    fn show(&self, index: usize, steps: &[f64], version: &str, since: chrono::DateTime<Utc>) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} on version {version} (step {} of {})",
                percent(steps[index]),
                index + 1,
                steps.len()
            ));
            bar.set_position((Utc::now() - since).num_seconds().max(0) as u64);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::step_of;

    #[test]
    fn a_weight_read_back_finds_its_step() {
        let steps = [0.2, 0.4, 0.6, 0.8];
        assert_eq!(step_of(&steps, 0.2), 0);
        assert_eq!(step_of(&steps, 0.6000001), 2);
        assert_eq!(step_of(&steps, 0.8), 3);
        assert_eq!(step_of(&[0.1], 0.1), 0);
    }
}
