//! `[functions.<key>.release]`: the alias, the traffic-shifting strategy,
//! how many versions are kept, and the alarms watched during a shift.
//!
//! Alias names follow the Lambda API reference, CreateAlias
//! (<https://docs.aws.amazon.com/lambda/latest/api/API_CreateAlias.html>):
//! 1 to 128 characters of `[a-zA-Z0-9-_]`, not only digits (that would read
//! as a version number).

use std::time::Duration;

use super::{Checker, NameRule};
use crate::spec::raw::RawRelease;
use crate::spec::{AlarmMetric, AlarmSpec, ApiSpec, ReleaseSpec, ReleaseStrategy};

const ALIAS_NAME: NameRule = NameRule {
    what: "alias name",
    min: 1,
    max: 128,
    allowed: |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
    allowed_text: "letters, digits, '-' and '_'",
};
/// The longest step of a shift: a day.
const LONGEST_STEP_MINUTES: f64 = 24.0 * 60.0;
/// The alarms watched when the file names none.
const DEFAULT_ALARMS: [AlarmMetric; 2] = [AlarmMetric::Errors, AlarmMetric::Throttles];

pub(super) fn build_release(
    function_key: &str,
    function_name: &str,
    raw: &RawRelease,
    checker: &mut Checker,
) -> ReleaseSpec {
    let at = |field: &'static str| ["functions", function_key, "release", field];
    let alias = raw.alias.clone().unwrap_or_else(|| "live".to_string());
    checker.name(&at("alias"), &alias, &ALIAS_NAME);
    if !alias.is_empty() && alias.chars().all(|c| c.is_ascii_digit()) {
        checker.problem(
            &at("alias"),
            format!("{alias:?} reads as a version number; an alias name needs a letter"),
        );
    }
    let strategy = match raw.strategy.as_deref() {
        None | Some("all-at-once") => ReleaseStrategy::AllAtOnce,
        Some("canary") => {
            let (percent, minutes) = raw
                .canary
                .as_ref()
                .map_or((10, 10.0), |canary| (canary.percent, canary.minutes));
            ReleaseStrategy::Canary {
                percent: percent_in_range(checker, function_key, "canary", percent),
                step: step_in_range(checker, function_key, "canary", "minutes", minutes),
            }
        }
        Some("linear") => {
            let (percent, minutes) = raw
                .linear
                .as_ref()
                .map_or((10, 10.0), |linear| (linear.percent, linear.every_minutes));
            ReleaseStrategy::Linear {
                percent: percent_in_range(checker, function_key, "linear", percent),
                step: step_in_range(checker, function_key, "linear", "every_minutes", minutes),
            }
        }
        Some(other) => {
            checker.problem(
                &at("strategy"),
                format!("{other:?} is not \"all-at-once\", \"canary\" or \"linear\""),
            );
            ReleaseStrategy::AllAtOnce
        }
    };
    let keep_versions = checker.ranged(&at("keep_versions"), raw.keep_versions, 5, 1, 100, "");
    let alarm_check_seconds = checker.ranged(
        &at("alarm_check_seconds"),
        raw.alarm_check_seconds,
        10,
        1,
        300,
        " seconds",
    );
    let mut alarms: Vec<AlarmSpec> = Vec::new();
    let named: Vec<AlarmMetric> = match &raw.alarms {
        None => DEFAULT_ALARMS.to_vec(),
        Some(names) => names
            .iter()
            .filter_map(|name| {
                let metric = AlarmMetric::ALL.into_iter().find(|m| m.key() == name);
                if metric.is_none() {
                    checker.problem(
                        &at("alarms"),
                        format!(
                            "{name:?} is not an alarm the controller manages ({})",
                            AlarmMetric::ALL.map(AlarmMetric::key).join(", ")
                        ),
                    );
                }
                metric
            })
            .collect(),
    };
    for metric in named {
        if alarms.iter().any(|alarm| alarm.metric == metric) {
            checker.problem(&at("alarms"), format!("{:?} is named twice", metric.key()));
            continue;
        }
        let given = match metric {
            AlarmMetric::Errors => raw.thresholds.errors,
            AlarmMetric::Throttles => raw.thresholds.throttles,
            AlarmMetric::Api5xx => raw.thresholds.api_5xx,
            AlarmMetric::ApiLatencyP99 => raw.thresholds.api_latency_p99_ms,
        };
        let threshold = match given {
            Some(value) if value.is_finite() && value > 0.0 => value,
            Some(value) => {
                checker.problem(
                    &[
                        "functions",
                        function_key,
                        "release",
                        "thresholds",
                        metric.threshold_key(),
                    ],
                    format!("{value} is not a threshold: it must be above 0"),
                );
                metric.default_threshold()
            }
            None => metric.default_threshold(),
        };
        alarms.push(AlarmSpec {
            metric,
            name: format!("{function_name}-{}", metric.key()),
            threshold,
        });
    }
    ReleaseSpec {
        alias,
        strategy,
        keep_versions,
        alarms,
        rollback_on_alarm: raw.rollback_on_alarm.unwrap_or(true),
        alarm_check: Duration::from_secs(u64::from(alarm_check_seconds)),
    }
}

fn percent_in_range(checker: &mut Checker, key: &str, table: &str, percent: i64) -> u32 {
    if !(1..=99).contains(&percent) {
        checker.problem(
            &["functions", key, "release", table, "percent"],
            format!("{percent} is out of range: it must be 1 to 99 percent"),
        );
        return 10;
    }
    percent as u32
}

fn step_in_range(
    checker: &mut Checker,
    key: &str,
    table: &str,
    field: &str,
    minutes: f64,
) -> Duration {
    if !(minutes.is_finite() && minutes > 0.0 && minutes <= LONGEST_STEP_MINUTES) {
        checker.problem(
            &["functions", key, "release", table, field],
            format!("{minutes} is out of range: it must be above 0 and at most {LONGEST_STEP_MINUTES} minutes"),
        );
        return Duration::from_secs(600);
    }
    Duration::from_secs_f64(minutes * 60.0)
}

/// An alarm on the API's stage needs the API to route to the function.
pub(super) fn check_api_alarms(
    function_key: &str,
    release: &ReleaseSpec,
    api: Option<&ApiSpec>,
    checker: &mut Checker,
) {
    let routed = api.is_some_and(|api| {
        api.routes
            .iter()
            .any(|route| route.function == function_key)
    });
    for alarm in &release.alarms {
        if alarm.metric.watches_api() && !routed {
            checker.problem(
                &["functions", function_key, "release", "alarms"],
                format!(
                    "{:?} watches the REST API's stage, but no route of [api] invokes functions.{function_key}",
                    alarm.metric.key()
                ),
            );
        }
    }
}
