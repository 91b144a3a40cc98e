//! `controller run` as a process against moto: drift noticed within an
//! interval and reported (logs, `/status`, `/metrics`) or repaired; config
//! edits picked up, broken ones ignored; SIGTERM mid-reconcile; `/metrics`
//! as Prometheus text.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, sample};
use common::*;
use serde_json::Value;
use test_harness::{FaultProxy, FaultRates, RequestMatch, ScriptedResponse};

const DETECTION_LOGS: &str = "log_group /aws/lambda/anomaly-local-detection";

async fn retention(sdk: &Sdk, group: &str) -> Option<i32> {
    sdk.logs
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .unwrap()
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .and_then(|g| g.retention_in_days())
}

async fn set_retention(sdk: &Sdk, group: &str, days: i32) {
    sdk.logs
        .put_retention_policy()
        .log_group_name(group)
        .retention_in_days(days)
        .send()
        .await
        .unwrap();
}

fn is_drift(line: &Value, resource: &str, field: &str) -> bool {
    line["fields"]["message"] == "drift"
        && line["fields"]["resource"] == resource
        && line["fields"]["field"] == field
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_mode_notices_drift_within_an_interval_and_enforce_mode_repairs_it() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.unwrap();
    let sdk = sdk(&aws).await;
    let config = write_config(&local_config(aws.endpoint_url()));
    let group = "/aws/lambda/anomaly-local-detection";

    let daemon = Daemon::start(&config.path, "report", "2s").await;
    daemon.wait_ready().await;
    assert_eq!(daemon.get("/healthz").0, 200);
    assert_eq!(
        sample(
            &daemon.metrics(),
            "controller_drifted_resources{kind=\"log_group\"}"
        ),
        Some(0.0)
    );

    // Out of band: someone changes the retention.
    let reconciles = |logs: &[Value]| {
        logs.iter()
            .filter(|line| line["fields"]["message"] == "reconciled")
            .count()
    };
    let finished_before = reconciles(&daemon.logs());
    set_retention(&sdk, group, 30).await;
    let line = daemon
        .wait_log(Duration::from_secs(60), |line| {
            is_drift(line, DETECTION_LOGS, "retention_days")
        })
        .await;
    // Within an interval: reported by the first reconcile that started
    // after the change (the one in flight then may have missed it), judged
    // by the reconciles themselves, not by the wall clock of a busy machine.
    let logs = daemon.logs();
    let at = logs
        .iter()
        .position(|candidate| *candidate == line)
        .expect("the drift line is in the log");
    assert!(
        reconciles(&logs[..at]) <= finished_before + 1,
        "the drift waited for more than one further reconcile:\n{}",
        daemon.dump()
    );
    assert_eq!(line["fields"]["desired"], "7");
    assert_eq!(line["fields"]["observed"], "30");

    // The status is written when the reconcile that logged the drift ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.logs()[at..]
        .iter()
        .any(|line| line["fields"]["message"] == "reconciled")
    {
        assert!(Instant::now() < deadline, "{}", daemon.dump());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = daemon.status();
    let resource = &status["resources"][DETECTION_LOGS];
    assert_eq!(resource["drifted"], true, "{status:#}");
    assert_eq!(resource["action"], "update");
    assert_eq!(resource["diffs"][0]["field"], "retention_days");
    assert!(status["last_plan"]["changes"].is_array());
    let metrics = daemon.metrics();
    assert_eq!(
        sample(&metrics, "controller_drifted_resources{kind=\"log_group\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "controller_mutating_calls_total"),
        Some(0.0)
    );
    // Report mode changes nothing, however many intervals pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(retention(&sdk, group).await, Some(30));
    assert_eq!(
        sample(&daemon.metrics(), "controller_mutating_calls_total"),
        Some(0.0)
    );
    daemon.stop().await;

    // Enforce mode repairs it, under the lease.
    let daemon = Daemon::start(&config.path, "enforce", "2s").await;
    daemon
        .wait_log(Duration::from_secs(15), |line| {
            line["fields"]["message"] == "reconciled" && line["fields"]["repaired"] == 1
        })
        .await;
    assert_eq!(retention(&sdk, group).await, Some(7));
    let metrics = daemon.metrics();
    assert!(sample(&metrics, "controller_mutating_calls_total").unwrap() >= 1.0);
    assert_eq!(
        sample(&metrics, "controller_repairs_total{kind=\"log_group\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "controller_drifted_resources{kind=\"log_group\"}"),
        Some(0.0)
    );
    let logs = daemon.logs();
    assert!(
        logs.iter()
            .any(|line| line["fields"]["message"] == "lease acquired")
            && logs
                .iter()
                .any(|line| line["fields"]["message"] == "lease released"),
        "{}",
        daemon.dump()
    );
    assert!(
        status_of_lease(&sdk).await.is_none(),
        "the lease is released"
    );
    daemon.stop().await;
}

async fn status_of_lease(sdk: &Sdk) -> Option<controller::lease::Current> {
    controller::lease::current(&sdk.s3, "anomaly-local-models")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_are_picked_up_and_a_broken_edit_is_reported_and_ignored() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.unwrap();
    let text = local_config(aws.endpoint_url());
    let config = write_config(&text);
    // A long interval: only the edit can cause the next reconcile.
    let daemon = Daemon::start(&config.path, "report", "10m").await;
    daemon.wait_ready().await;

    replace_file(
        &config.path,
        text.replacen("retention_days = 7", "retention_days = 14", 1),
    )
    .unwrap();
    let line = daemon
        .wait_log(Duration::from_secs(10), |line| {
            is_drift(line, DETECTION_LOGS, "retention_days")
        })
        .await;
    assert_eq!(line["fields"]["desired"], "14");
    assert_eq!(line["fields"]["observed"], "7");
    assert_eq!(
        sample(&daemon.metrics(), "controller_config_reloads_total"),
        Some(1.0)
    );

    // A broken edit: reported, and the last good desired state is kept.
    let line = 1 + text
        .lines()
        .position(|line| line == "memory_mb = 1024")
        .unwrap();
    let location = format!("deployment.toml:{line}:");
    replace_file(
        &config.path,
        text.replacen("memory_mb = 1024", "memory_mb = \"lots\"", 1),
    )
    .unwrap();
    let error = daemon
        .wait_log(Duration::from_secs(10), |line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid configuration edit ignored"))
        })
        .await;
    assert!(
        error["fields"]["error"]
            .as_str()
            .unwrap()
            .contains(&location),
        "{error}"
    );
    let status = daemon.status();
    assert!(
        status["config_error"]
            .as_str()
            .is_some_and(|e| e.contains(&location)),
        "{status:#}"
    );
    assert_eq!(
        status["resources"][DETECTION_LOGS]["diffs"][0]["desired"], 14,
        "{status:#}"
    );
    assert_eq!(
        sample(
            &daemon.metrics(),
            "controller_reconcile_errors_total{kind=\"config\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        daemon
            .logs()
            .iter()
            .filter(|line| line["fields"]["message"] == "reconciled")
            .count(),
        2,
        "the broken edit caused no reconcile:\n{}",
        daemon.dump()
    );

    // Fixed again: taken, and the error cleared.
    replace_file(&config.path, &text).unwrap();
    daemon
        .wait_log(Duration::from_secs(10), |line| {
            line["fields"]["message"] == "reconciled"
                && line["fields"]["trigger"] == "ConfigChange"
                && line["fields"]["drifted"] == 0
        })
        .await;
    assert!(daemon.status()["config_error"].is_null());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_reconcile_finishes_it_exits_zero_and_the_next_run_converges() {
    let aws = common::account().await;
    // Lambda refuses the new role for a while: the first reconcile lasts.
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    proxy.script(
        RequestMatch::lambda("POST", "/2015-03-31/functions"),
        ScriptedResponse::lambda_error(
            400,
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        ),
        4,
    );
    let config = write_config(&local_config(&proxy.endpoint_url()));
    let mut daemon = Daemon::start(&config.path, "enforce", "1m").await;
    daemon
        .wait_log(Duration::from_secs(20), |line| {
            line["fields"]["message"] == "lease acquired"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", daemon.dump());
    let logs = daemon.logs();
    let position = |message: &str| {
        logs.iter()
            .position(|line| line["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?}:\n{}", daemon.dump()))
    };
    // The reconcile in flight finished after the signal, then it stopped.
    assert!(position("stopping: finishing the reconcile in flight") < position("reconciled"));
    assert!(position("lease released") < position("stopped"));

    // Directly at moto: the next run finds a converged deployment, no lease left.
    let sdk = sdk(&aws).await;
    assert!(status_of_lease(&sdk).await.is_none());
    let direct = write_config(&local_config(aws.endpoint_url()));
    let mut next = Daemon::start(&direct.path, "enforce", "1m").await;
    next.wait_ready().await;
    // A function still settling is requeued, not waited on: a few quick
    // rounds finish the job.
    let deadline = Instant::now() + Duration::from_secs(30);
    while inventory(&sdk).await != FULL {
        assert!(Instant::now() < deadline, "{}", next.dump());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_controller(&["diff", direct.path.to_str().unwrap()])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "{}", next.dump());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let diff = run_controller(&["diff", direct.path.to_str().unwrap()]);
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));
    next.signal("INT");
    assert!(next.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text() {
    let aws = common::account().await;
    // Nothing exists yet: report mode sees every resource drifted, and a
    // broken edit adds an error sample.
    let text = local_config(aws.endpoint_url());
    let config = write_config(&text);
    let daemon = Daemon::start(&config.path, "report", "1s").await;
    daemon.wait_ready().await;
    replace_file(&config.path, "[deployment\n").unwrap();
    daemon
        .wait_log(Duration::from_secs(10), |line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid configuration edit"))
        })
        .await;
    let (code, metrics) = daemon.get("/metrics");
    assert_eq!(code, 200);

    // Every line is a comment the format knows or a sample.
    for line in metrics.lines() {
        match prometheus_parse::LineInfo::parse(line) {
            prometheus_parse::LineInfo::Doc { .. }
            | prometheus_parse::LineInfo::Type { .. }
            | prometheus_parse::LineInfo::Sample { .. } => {}
            _ => assert_eq!(line, "# EOF", "not Prometheus text: {line:?}"),
        }
    }
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|line| Ok(line.to_string())))
        .expect("parses");
    let find = |name: &str| {
        scrape
            .samples
            .iter()
            .filter(|sample| sample.metric == name)
            .collect::<Vec<_>>()
    };
    let drifted = find("controller_drifted_resources");
    assert!(drifted.len() >= 5, "one series per kind: {metrics}");
    let functions = drifted
        .iter()
        .find(|sample| sample.labels.get("kind") == Some("function"))
        .unwrap();
    assert_eq!(functions.value, prometheus_parse::Value::Gauge(2.0));
    let histogram = find("controller_reconcile_duration_seconds");
    assert!(
        matches!(&histogram[0].value, prometheus_parse::Value::Histogram(buckets) if buckets.len() == 13),
        "{histogram:?}"
    );
    let errors = find("controller_reconcile_errors_total");
    assert_eq!(errors[0].labels.get("kind"), Some("config"));
    for name in [
        "controller_reconciles_total",
        "controller_api_calls_total",
        "controller_mutating_calls_total",
        "controller_last_success_timestamp_seconds",
        "controller_ready",
    ] {
        assert_eq!(find(name).len(), 1, "{name} in {metrics}");
    }
    daemon.stop().await;
}

/// Replaces the watched file in one step (a new file renamed over it), as
/// editors do, so the daemon never reads a half-written edit.
fn replace_file(path: &Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    let next = path.with_extension("toml.next");
    std::fs::write(&next, text)?;
    std::fs::rename(&next, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_resource_is_backed_off_while_the_others_are_repaired_every_round() {
    use test_harness::{FaultProxy, FaultRates, RequestMatch, ScriptedResponse};
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    let role = "anomaly-local-training-role";
    proxy.script(
        RequestMatch::action("CreateRole").with_body(&format!("RoleName={role}")),
        ScriptedResponse::query_error(
            403,
            "AccessDenied",
            "not authorized to perform: iam:CreateRole",
        ),
        1000,
    );
    let config = write_config(&local_config(&proxy.endpoint_url()));
    let group = "/aws/lambda/anomaly-local-detection";
    let daemon = Daemon::start(&config.path, "enforce", "1s").await;
    let key = format!("role {role}");
    // The role fails with its code and is backed off; the rest converges.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = daemon.status();
        let resource = &status["resources"][&key];
        if resource["failures"].as_u64().unwrap_or(0) >= 1
            && retention(&sdk, group).await == Some(7)
        {
            assert!(
                resource["last_error"]
                    .as_str()
                    .is_some_and(|error| error.contains("AccessDenied")),
                "{resource}"
            );
            assert!(resource["retry_at"].is_string(), "{resource}");
            break;
        }
        assert!(Instant::now() < deadline, "{status:#}\n{}", daemon.dump());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = proxy.scripted_count();
    // Two rounds of drift in an independent resource, each repaired.
    for days in [30, 14] {
        set_retention(&sdk, group, days).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while retention(&sdk, group).await != Some(7) {
            assert!(
                Instant::now() < deadline,
                "not repaired:\n{}",
                daemon.dump()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A terminal error waits the longest (16 intervals here): no new attempt.
    assert_eq!(proxy.scripted_count(), attempts, "{}", daemon.dump());
    let backing_off = daemon.logs().into_iter().any(|line| {
        line["fields"]["message"] == "reconcile failed for this resource; backing off"
            && line["fields"]["resource"] == key.as_str()
            && line["fields"]["error_kind"] == "Terminal"
    });
    assert!(backing_off, "{}", daemon.dump());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_still_pending_is_requeued_not_waited_on() {
    let aws = common::account().await;
    // Functions stay Pending for 12 s after their creation.
    let strict = aws.strict().expect("the strict layer");
    strict.set_settings(test_harness::StrictSettings {
        function_pending: Duration::from_secs(12),
        ..strict.settings()
    });
    let config = write_config(&local_config(aws.endpoint_url()));
    let daemon = Daemon::start(&config.path, "enforce", "60s").await;
    let first = daemon
        .wait_log(Duration::from_secs(60), |line| {
            line["fields"]["message"] == "reconciled"
        })
        .await;
    // The round that created the functions did not wait for them.
    assert!(
        first["fields"]["seconds"].as_f64().unwrap() < 12.0,
        "{first}"
    );
    let requeued = daemon
        .logs()
        .into_iter()
        .find(|line| {
            line["fields"]["message"] == "reconcile failed for this resource; backing off"
                && line["fields"]["resource"] == "function anomaly-local-detection"
        })
        .unwrap_or_else(|| panic!("{}", daemon.dump()));
    assert_eq!(requeued["fields"]["error_kind"], "Conflict", "{requeued}");
    assert!(
        requeued["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("still Pending"),
        "{requeued}"
    );
    // Requeued rounds, long before the 60 s interval, finish the job.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let status = daemon.status();
        let converged = status["resources"].as_object().is_some_and(|resources| {
            resources.len() >= 16
                && resources.values().all(|resource| {
                    resource["drifted"] == false && resource["last_error"].is_null()
                })
        });
        if converged {
            break;
        }
        assert!(Instant::now() < deadline, "{status:#}\n{}", daemon.dump());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        daemon
            .logs()
            .iter()
            .any(|line| line["fields"]["message"] == "reconciled"
                && line["fields"]["trigger"] == "Requeue"),
        "{}",
        daemon.dump()
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_drift_in_report_mode_and_pruned_in_enforce_mode() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    local_controller(&aws).await.apply().await.unwrap();
    let mut text = String::new();
    let mut skipping = false;
    for line in local_config(aws.endpoint_url()).lines() {
        if line.starts_with('[') {
            skipping = line == "[schedule]";
        }
        if !skipping {
            text.push_str(line);
            text.push('\n');
        }
    }
    let config = write_config(&text);
    let rule = "anomaly-local-schedule";
    let daemon = Daemon::start(&config.path, "report", "1s").await;
    let line = daemon
        .wait_log(Duration::from_secs(30), |line| {
            is_drift(line, &format!("rule {rule}"), "exists")
        })
        .await;
    assert_eq!(line["fields"]["action"], "delete", "{line}");
    assert_eq!(line["fields"]["desired"], "false");
    assert_eq!(line["fields"]["reason"], "no longer in the file");
    let status = daemon.status();
    assert_eq!(
        status["resources"][&format!("rule {rule}")]["drifted"],
        true,
        "{status:#}"
    );
    assert!(sdk.events.describe_rule().name(rule).send().await.is_ok());
    daemon.stop().await;

    let daemon = Daemon::start(&config.path, "enforce", "1s").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sdk.events.describe_rule().name(rule).send().await.is_ok() {
        assert!(Instant::now() < deadline, "{}", daemon.dump());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.stop().await;
}
