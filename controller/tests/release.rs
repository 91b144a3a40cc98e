//! Safe releases against the local cloud: a version per change of code or
//! configuration and none for a no-op, the alias as what the API, the
//! permissions and the schedule invoke, canary shifts step by step, a
//! rollback on an alarm that is not retried, a shift continued by the
//! daemon after `kill -9`, `rollback` by hand, and old versions pruned but
//! never one an alias routes to.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, sample};
use common::*;
use serde_json::Value;

const DETECTION: &str = "anomaly-local-detection";
const TRAINING: &str = "anomaly-local-training";
const ERRORS_ALARM: &str = "anomaly-local-detection-errors";

/// The local config with a release section for detection (and, with
/// `training`, one for training too).
fn release_config(endpoint: &str, release: &str, training: bool) -> String {
    let mut text = local_config(endpoint);
    text.push_str("\n[functions.detection.release]\n");
    text.push_str(release);
    text.push('\n');
    if training {
        text.push_str("\n[functions.training.release]\n");
    }
    text
}

/// How many times the controller called `operation` (Lambda's).
fn calls_of(controller: &controller::reconcile::Controller, operation: &str) -> u64 {
    controller
        .ctx
        .clients
        .calls
        .operations()
        .iter()
        .filter(|(key, _)| key.ends_with(&format!(".{operation}")))
        .map(|(_, count)| count)
        .sum()
}

/// The alias's target version and its routing weights.
async fn alias_of(sdk: &Sdk, function: &str) -> (String, BTreeMap<String, f64>) {
    let alias = sdk
        .lambda
        .get_alias()
        .function_name(function)
        .name("live")
        .send()
        .await
        .expect("the alias exists");
    let weights = alias
        .routing_config()
        .and_then(|routing| routing.additional_version_weights())
        .map(|weights| weights.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    (alias.function_version().unwrap().to_string(), weights)
}

async fn versions_of(sdk: &Sdk, function: &str) -> Vec<String> {
    sdk.lambda
        .list_versions_by_function()
        .function_name(function)
        .send()
        .await
        .unwrap()
        .versions()
        .iter()
        .filter_map(|version| version.version())
        .filter(|version| *version != "$LATEST")
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_publishes_one_version_and_a_no_op_publishes_none() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let endpoint = aws.endpoint_url();
    let text = release_config(endpoint, "", false);
    let first = controller_at(endpoint, &text).await;
    first.apply().await.expect("first apply");
    assert_eq!(calls_of(&first, "PublishVersion"), 1);
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("1".into(), BTreeMap::new())
    );

    // Nothing changed: nothing is published, nothing is called that changes anything.
    let again = controller_at(endpoint, &text).await;
    let outcome = again.apply().await.expect("no-op apply");
    assert!(!outcome.plan.has_changes(), "{}", outcome.plan);
    assert_eq!(calls_of(&again, "PublishVersion"), 0);
    assert_eq!(
        again.calls().mutating,
        0,
        "{:?}",
        again.calls().mutating_calls
    );
    println!("no-op apply with a release: {} calls", again.calls().total);

    // A configuration-only change is a new version.
    let memory = text.replacen("memory_mb = 1024", "memory_mb = 2048", 1);
    let changed = controller_at(endpoint, &memory).await;
    let plan = changed.plan().await.unwrap();
    let alias = plan
        .changes
        .iter()
        .find(|change| change.resource.to_string() == "alias anomaly-local-detection:live")
        .unwrap();
    assert!(alias.action.mutates(), "{plan}");
    assert_eq!(alias.diffs.len(), 1, "{plan}");
    assert_eq!(alias.diffs[0].field, "configuration", "{plan}");
    changed.apply().await.expect("memory change");
    assert_eq!(calls_of(&changed, "PublishVersion"), 1);
    assert_eq!(alias_of(&sdk, DETECTION).await.0, "2");
    let version = sdk
        .lambda
        .get_function_configuration()
        .function_name(DETECTION)
        .qualifier("2")
        .send()
        .await
        .unwrap();
    assert_eq!(version.memory_size(), Some(2048));

    // An image change is a new version, which records its image.
    let image = memory.replace("anomaly-local/detection:v1", "anomaly-local/detection:v2");
    let changed = controller_at(endpoint, &image).await;
    changed.apply().await.expect("image change");
    assert_eq!(calls_of(&changed, "PublishVersion"), 1);
    assert_eq!(alias_of(&sdk, DETECTION).await.0, "3");
    let version = sdk
        .lambda
        .get_function_configuration()
        .function_name(DETECTION)
        .qualifier("3")
        .send()
        .await
        .unwrap();
    let description = version.description().unwrap();
    assert!(
        description.contains("image 127.0.0.1:5000/anomaly-local/detection:v2"),
        "{description}"
    );
    assert_eq!(versions_of(&sdk, DETECTION).await, ["1", "2", "3"]);

    // And then in sync again.
    let settled = controller_at(endpoint, &image).await;
    let plan = settled.plan().await.unwrap();
    assert!(!plan.has_changes(), "{plan}");
}

/// Every caller of a released function goes through its alias.
async fn assert_callers_use_the_alias(sdk: &Sdk) {
    let detection_alias = format!("function:{DETECTION}:live");
    let training_alias = format!("function:{TRAINING}:live");
    let (id, _) = rest_api_resources(sdk).await;
    let resources = sdk
        .apigateway
        .get_resources()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    let mut integrations = 0;
    for resource in resources.items() {
        for method in resource
            .resource_methods()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if method == "OPTIONS" {
                continue;
            }
            let integration = sdk
                .apigateway
                .get_integration()
                .rest_api_id(&id)
                .resource_id(resource.id().unwrap())
                .http_method(&method)
                .send()
                .await
                .unwrap();
            let uri = integration.uri().unwrap_or_default();
            assert!(
                uri.contains(&format!("{detection_alias}/invocations")),
                "{uri}"
            );
            integrations += 1;
        }
    }
    assert!(integrations >= 2);
    let policy = sdk
        .lambda
        .get_policy()
        .function_name(DETECTION)
        .qualifier("live")
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let ours: Vec<&Value> = statements
        .iter()
        .filter(|s| {
            s["Sid"]
                .as_str()
                .unwrap()
                .starts_with("anomaly-controller-")
        })
        .collect();
    assert!(ours.len() >= 2, "{policy:#}");
    for statement in ours {
        assert!(
            statement["Resource"]
                .as_str()
                .unwrap()
                .ends_with(&detection_alias),
            "{statement:#}"
        );
    }
    let targets = sdk
        .events
        .list_targets_by_rule()
        .rule("anomaly-local-schedule")
        .send()
        .await
        .unwrap();
    assert!(
        targets.targets()[0].arn().ends_with(&training_alias),
        "{:?}",
        targets.targets()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_its_share_then_everything_and_callers_use_the_alias_throughout() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let endpoint = aws.endpoint_url();
    let canary =
        "strategy = \"canary\"\ncanary = { percent = 10, minutes = 0.03 }\nalarm_check_seconds = 1";
    let text = release_config(endpoint, canary, true);
    controller_at(endpoint, &text)
        .await
        .apply()
        .await
        .expect("first apply");
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("1".into(), BTreeMap::new())
    );
    assert_callers_use_the_alias(&sdk).await;

    // A new image, released without waiting: the first step only.
    let image = text.replace("anomaly-local/detection:v1", "anomaly-local/detection:v2");
    let mut stepping = controller_at(endpoint, &image).await;
    let waits = stepping.ctx.waits;
    stepping.set_waits(controller::resources::WaitSettings {
        wait_for_shifts: false,
        ..waits
    });
    stepping.apply().await.expect("first step");
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("1".into(), BTreeMap::from([("2".to_string(), 0.1)]))
    );
    assert_callers_use_the_alias(&sdk).await;
    // The shift in progress is a difference `diff` shows with both values.
    let plan = stepping.plan().await.unwrap();
    let change = plan
        .changes
        .iter()
        .find(|change| change.resource.to_string() == "alias anomaly-local-detection:live")
        .expect("the alias differs while it shifts");
    let routing = change
        .diffs
        .iter()
        .find(|diff| diff.field == "routing")
        .unwrap();
    assert_eq!(routing.observed, serde_json::json!({"2": 0.1}));
    assert_eq!(routing.desired, serde_json::json!({}));

    // After the step, the next apply completes it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stepping.apply().await.expect("the rest of the shift");
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("2".into(), BTreeMap::new())
    );
    assert_callers_use_the_alias(&sdk).await;

    // A waiting apply goes through the step by itself.
    let memory = image.replacen("memory_mb = 1024", "memory_mb = 2048", 1);
    let waiting = controller_at(endpoint, &memory).await;
    let started = Instant::now();
    waiting.apply().await.expect("a whole canary release");
    assert!(started.elapsed() >= Duration::from_millis(1800));
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("3".into(), BTreeMap::new())
    );
    assert!(!waiting.plan().await.unwrap().has_changes());
}

/// Waits until the alias is as `wanted` says, or panics after `timeout`.
async fn wait_for_alias(
    sdk: &Sdk,
    timeout: Duration,
    what: &str,
    wanted: impl Fn(&(String, BTreeMap<String, f64>)) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let alias = alias_of(sdk, DETECTION).await;
        if wanted(&alias) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{what}: the alias is still {alias:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn shifting_to(version: &str) -> impl Fn(&(String, BTreeMap<String, f64>)) -> bool + '_ {
    move |(_, weights)| weights.contains_key(version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_during_the_shift_rolls_back_and_the_release_is_not_tried_again() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let endpoint = aws.endpoint_url();
    let canary =
        "strategy = \"canary\"\ncanary = { percent = 10, minutes = 5 }\nalarm_check_seconds = 1";
    let text = release_config(endpoint, canary, false);
    controller_at(endpoint, &text)
        .await
        .apply()
        .await
        .expect("first release");
    let bad =
        write_config(&text.replace("anomaly-local/detection:v1", "anomaly-local/detection:v2"));
    let apply = controller_command(&["apply", bad.path.to_str().unwrap(), "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_alias(
        &sdk,
        Duration::from_secs(60),
        "the canary step",
        shifting_to("2"),
    )
    .await;
    sdk.cloudwatch
        .set_alarm_state()
        .alarm_name(ERRORS_ALARM)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("errors on the canary")
        .send()
        .await
        .unwrap();
    let rolled_back = wait_for_alias(&sdk, Duration::from_secs(30), "the rollback", |alias| {
        alias.0 == "1" && alias.1.is_empty()
    })
    .await;
    println!("alarm to rollback (apply, checks every second): {rolled_back:?}");
    assert!(rolled_back < Duration::from_secs(10), "{rolled_back:?}");
    let output = apply.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(said.contains(ERRORS_ALARM), "{said}");
    assert!(said.contains("rolled back"), "{said}");

    // The same image again: not tried, nothing published, the alias untouched.
    let again = controller_at(endpoint, &std::fs::read_to_string(&bad.path).unwrap()).await;
    let outcome = match again.apply().await {
        Err(controller::reconcile::Error::Incomplete(outcome)) => outcome,
        other => panic!("the held release applied: {other:?}"),
    };
    let alias = outcome
        .results
        .iter()
        .find(|result| result.resource.to_string() == "alias anomaly-local-detection:live")
        .unwrap();
    let status = serde_json::to_value(&alias.status).unwrap();
    assert_eq!(status["code"], "ReleaseHeld", "{status:#}");
    assert_eq!(calls_of(&again, "PublishVersion"), 0);
    assert_eq!(calls_of(&again, "UpdateAlias"), 0);
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("1".into(), BTreeMap::new())
    );

    // The daemon reports it, and does not release it either.
    let daemon = Daemon::start(&bad.path, "enforce", "1s").await;
    daemon
        .wait_log(Duration::from_secs(30), |line| {
            line["fields"]["message"] == "release failed"
                && line["fields"]["reason"] == "ReleaseHeld"
        })
        .await;
    let status = daemon.status();
    let state = &status["resources"]["alias anomaly-local-detection:live"];
    let error = state["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(ERRORS_ALARM), "{status:#}");
    let metrics = daemon.metrics();
    assert_eq!(
        sample(
            &metrics,
            "controller_release_failed{alias=\"anomaly-local-detection:live\",reason=\"ReleaseHeld\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    daemon.stop().await;
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("1".into(), BTreeMap::new())
    );
    assert_eq!(versions_of(&sdk, DETECTION).await, ["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_cut_by_kill_is_continued_by_the_daemon_from_where_it_stood() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let endpoint = aws.endpoint_url();
    let linear = "strategy = \"linear\"\nlinear = { percent = 40, every_minutes = 0.1 }\nalarm_check_seconds = 1";
    let text = release_config(endpoint, linear, false);
    controller_at(endpoint, &text)
        .await
        .apply()
        .await
        .expect("first release");
    let next =
        write_config(&text.replace("anomaly-local/detection:v1", "anomaly-local/detection:v2"));
    let mut apply = controller_command(&["apply", next.path.to_str().unwrap(), "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_alias(
        &sdk,
        Duration::from_secs(60),
        "the first step",
        shifting_to("2"),
    )
    .await;
    apply.kill().unwrap(); // SIGKILL: no cleanup at all
    apply.wait().unwrap();
    let (stable, weights) = alias_of(&sdk, DETECTION).await;
    assert_eq!(stable, "1");
    assert!(weights.contains_key("2"), "{weights:?}");

    let daemon = Daemon::start(&next.path, "enforce", "2s").await;
    daemon
        .wait_log(Duration::from_secs(60), |line| {
            line["fields"]["message"] == "continuing the shift in progress"
        })
        .await;
    // 40 %, 80 %, then all of it.
    wait_for_alias(
        &sdk,
        Duration::from_secs(90),
        "the rest of the shift",
        |alias| alias.0 == "2" && alias.1.is_empty(),
    )
    .await;
    let shares: Vec<String> = daemon
        .logs()
        .iter()
        .filter(|line| line["fields"]["message"] == "next step of the shift")
        .filter_map(|line| line["fields"]["share"].as_str().map(str::to_string))
        .collect();
    assert!(shares.iter().all(|share| share == "80 %"), "{shares:?}");
    daemon.stop().await;
    assert_eq!(versions_of(&sdk, DETECTION).await, ["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_points_the_alias_at_the_previous_version_and_releases_shows_it() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let endpoint = aws.endpoint_url();
    let text = release_config(endpoint, "", false);
    controller_at(endpoint, &text)
        .await
        .apply()
        .await
        .expect("first release");
    let second = text.replace("anomaly-local/detection:v1", "anomaly-local/detection:v2");
    controller_at(endpoint, &second)
        .await
        .apply()
        .await
        .expect("second release");
    assert_eq!(alias_of(&sdk, DETECTION).await.0, "2");
    let config = write_config(&second);
    let path = config.path.to_str().unwrap();

    let refused = run_controller(&["rollback", path, "--function", "detection", "--to", "9"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not a published version"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(alias_of(&sdk, DETECTION).await.0, "2");

    let output = run_controller(&["rollback", path, "--function", "detection"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("version 2 -> 1"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("1".into(), BTreeMap::new())
    );

    let releases = run_controller(&["releases", path, "--output", "json"]);
    let report: Value = serde_json::from_str(&stdout(&releases)).unwrap();
    let detection = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|function| function["function"] == DETECTION)
        .unwrap();
    assert_eq!(detection["aliases"][0]["version"], "1", "{detection:#}");
    let first = &detection["versions"][0];
    assert_eq!(first["version"], "1");
    assert_eq!(first["traffic"][0][0], "live");
    assert_eq!(first["traffic"][0][1], 1.0);

    // The version rolled back is held: apply does not release it again...
    let held = run_controller(&["apply", path, "--yes"]);
    assert_eq!(held.status.code(), Some(1), "{}", stdout(&held));
    assert!(stdout(&held).contains("rolled back"), "{}", stdout(&held));
    assert_eq!(alias_of(&sdk, DETECTION).await.0, "1");
    // ...until the file changes.
    let third = second.replacen("memory_mb = 1024", "memory_mb = 2048", 1);
    controller_at(endpoint, &third)
        .await
        .apply()
        .await
        .expect("a new release");
    assert_eq!(
        alias_of(&sdk, DETECTION).await,
        ("3".into(), BTreeMap::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_beyond_keep_versions_are_deleted_but_never_one_an_alias_routes_to() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let endpoint = aws.endpoint_url();
    let text = release_config(endpoint, "keep_versions = 1", false);
    controller_at(endpoint, &text)
        .await
        .apply()
        .await
        .expect("first release");
    // Another team pins version 1 with an alias of its own.
    sdk.lambda
        .create_alias()
        .function_name(DETECTION)
        .name("pinned")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let second = text.replacen("memory_mb = 1024", "memory_mb = 1536", 1);
    controller_at(endpoint, &second)
        .await
        .apply()
        .await
        .expect("second release");
    assert_eq!(versions_of(&sdk, DETECTION).await, ["1", "2"]);
    let third = text.replacen("memory_mb = 1024", "memory_mb = 2048", 1);
    controller_at(endpoint, &third)
        .await
        .apply()
        .await
        .expect("third release");
    // 2 is beyond keep_versions = 1 and unrouted; 1 is routed by `pinned`.
    assert_eq!(versions_of(&sdk, DETECTION).await, ["1", "3"]);
    assert_eq!(alias_of(&sdk, DETECTION).await.0, "3");

    // Once nothing routes to it, version 1 is due, shown, and deleted.
    sdk.lambda
        .delete_alias()
        .function_name(DETECTION)
        .name("pinned")
        .send()
        .await
        .unwrap();
    let controller = controller_at(endpoint, &third).await;
    let plan = controller.plan().await.unwrap();
    let alias = plan
        .changes
        .iter()
        .find(|change| change.resource.to_string() == "alias anomaly-local-detection:live")
        .unwrap();
    assert_eq!(alias.diffs.len(), 1, "{plan}");
    assert_eq!(alias.diffs[0].field, "prunable_versions");
    assert_eq!(alias.diffs[0].observed, serde_json::json!(["1"]));
    controller.apply().await.expect("prune");
    assert_eq!(versions_of(&sdk, DETECTION).await, ["3"]);
    assert_eq!(calls_of(&controller, "PublishVersion"), 0);
}
