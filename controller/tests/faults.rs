//! Real AWS behaviour moto lacks, injected between the controller and moto:
//! throttling, 5xx and dropped connections; a role not yet assumable; a
//! function still `Pending` or `InProgress`; and `kill -9` in mid-apply.

mod common;

use std::time::{Duration, Instant};

use common::*;
use test_harness::{FaultProxy, FaultRates, RequestMatch, ScriptedResponse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_converges_through_throttling_errors_and_dropped_connections() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::uniform(0.2, 7)).await;
    let text = local_config(&proxy.endpoint_url());
    let controller = controller_at(&proxy.endpoint_url(), &text).await;
    controller
        .apply()
        .await
        .expect("apply converges despite faults");
    let stats = proxy.stats();
    assert!(stats.throttled > 0 && stats.server_errors > 0, "{stats:?}");
    assert!(
        stats.dropped_before > 0 && stats.dropped_after > 0,
        "{stats:?}"
    );

    // Seen directly, without faults: converged, nothing duplicated.
    let direct = local_controller(&aws).await;
    let plan = direct.plan().await.unwrap();
    assert!(!plan.has_changes(), "{plan}");
    assert_eq!(inventory(&sdk(&aws).await).await, FULL);
}

/// A create of every kind whose answer is lost after AWS carried it out:
/// the SDK sends it again and AWS answers "already exists" (or, for the
/// calls AWS does not deduplicate, makes a second one). Each is scripted
/// once, deterministically, and the apply must end with exactly one of
/// everything and nothing left to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_of_every_kind_whose_answer_is_lost_converges_with_one_of_each() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    let by_path = |method: &str, suffix: &str| RequestMatch {
        method: Some(method.into()),
        path_suffix: Some(suffix.into()),
        ..RequestMatch::default()
    };
    let creates = [
        // The first PUT on the bucket: CreateBucket.
        (
            "CreateBucket",
            RequestMatch {
                method: Some("PUT".into()),
                path_prefix: Some("/anomaly-local-models".into()),
                ..RequestMatch::default()
            },
        ),
        ("CreateSecret", RequestMatch::action("CreateSecret")),
        ("CreateRepository", RequestMatch::action("CreateRepository")),
        ("CreateRole", RequestMatch::action("CreateRole")),
        ("PutRolePolicy", RequestMatch::action("PutRolePolicy")),
        ("CreateLogGroup", RequestMatch::action("CreateLogGroup")),
        ("CreateFunction", by_path("POST", "/2015-03-31/functions")),
        ("AddPermission", by_path("POST", "/policy")),
        ("CreateRestApi", by_path("POST", "/restapis")),
        // The first POST under an API after its creation: CreateResource.
        (
            "CreateResource",
            RequestMatch {
                method: Some("POST".into()),
                path_prefix: Some("/restapis/".into()),
                ..RequestMatch::default()
            },
        ),
        ("CreateDeployment", by_path("POST", "/deployments")),
        ("CreateStage", by_path("POST", "/stages")),
        ("PutRule", RequestMatch::action("PutRule")),
        ("PutTargets", RequestMatch::action("PutTargets")),
    ];
    for (_, matcher) in &creates {
        proxy.script_drop_after_forwarding(matcher.clone(), 1);
    }
    let controller =
        controller_at(&proxy.endpoint_url(), &local_config(&proxy.endpoint_url())).await;
    controller
        .apply()
        .await
        .expect("apply converges though every create's first answer is lost");
    assert_eq!(
        proxy.pending_scripts(),
        [],
        "each create lost its first answer"
    );
    assert_eq!(proxy.stats().dropped_after, creates.len() as u64);

    let direct = local_controller(&aws).await;
    let plan = direct.plan().await.unwrap();
    assert!(!plan.has_changes(), "{plan}");
    let sdk = sdk(&aws).await;
    assert_eq!(inventory(&sdk).await, FULL);
    // The API's resources and stage exist once each.
    let api_id = sdk.apigateway.get_rest_apis().send().await.unwrap().items()[0]
        .id()
        .unwrap()
        .to_string();
    let resources = sdk
        .apigateway
        .get_resources()
        .rest_api_id(&api_id)
        .send()
        .await
        .unwrap();
    let mut paths: Vec<&str> = resources
        .items()
        .iter()
        .filter_map(|resource| resource.path())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/", "/detect", "/health"]);
    let stages = sdk
        .apigateway
        .get_stages()
        .rest_api_id(&api_id)
        .send()
        .await
        .unwrap();
    assert_eq!(stages.item().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_not_yet_assumable_is_retried_until_lambda_accepts_it() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    proxy.script(
        RequestMatch::lambda("POST", "/2015-03-31/functions"),
        ScriptedResponse::lambda_error(
            400,
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        ),
        3,
    );
    let controller =
        controller_at(&proxy.endpoint_url(), &local_config(&proxy.endpoint_url())).await;
    controller.apply().await.expect("apply waits for the role");
    assert_eq!(proxy.scripted_count(), 3);
    assert_eq!(inventory(&sdk(&aws).await).await, FULL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_waited_for_while_pending_and_while_updating() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    // After create, the function reports Pending for a while.
    proxy.script_json_override(
        RequestMatch::lambda(
            "GET",
            "/2015-03-31/functions/anomaly-local-detection/configuration",
        ),
        serde_json::json!({"State": "Pending", "StateReason": "Creating the function"}),
        3,
    );
    let controller =
        controller_at(&proxy.endpoint_url(), &local_config(&proxy.endpoint_url())).await;
    controller.apply().await.expect("apply waits for Active");
    assert_eq!(proxy.scripted_count(), 3);

    // An update while another is in progress is refused, then retried.
    let changed =
        local_config(&proxy.endpoint_url()).replace("memory_mb = 1024", "memory_mb = 2048");
    proxy.script_json_override(
        RequestMatch::lambda(
            "GET",
            "/2015-03-31/functions/anomaly-local-detection/configuration",
        ),
        serde_json::json!({"LastUpdateStatus": "InProgress"}),
        2,
    );
    proxy.script(
        RequestMatch::lambda("PUT", "/2015-03-31/functions/anomaly-local-detection/configuration"),
        ScriptedResponse::lambda_error(
            409,
            "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for resource: anomaly-local-detection",
        ),
        1,
    );
    let controller = controller_at(&proxy.endpoint_url(), &changed).await;
    controller
        .apply()
        .await
        .expect("apply retries the conflicting update");
    assert_eq!(proxy.scripted_count(), 6);
    let function = sdk(&aws)
        .await
        .lambda
        .get_function()
        .function_name("anomaly-local-detection")
        .send()
        .await
        .unwrap();
    assert_eq!(function.configuration().unwrap().memory_size(), Some(2048));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_function_update_is_an_error_naming_the_reason() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    let controller =
        controller_at(&proxy.endpoint_url(), &local_config(&proxy.endpoint_url())).await;
    controller.apply().await.expect("apply");
    proxy.script_json_override(
        RequestMatch::lambda("GET", "/2015-03-31/functions/anomaly-local-detection/configuration"),
        serde_json::json!({"LastUpdateStatus": "Failed", "LastUpdateStatusReason": "image manifest not found"}),
        10,
    );
    let changed =
        local_config(&proxy.endpoint_url()).replace("memory_mb = 1024", "memory_mb = 2048");
    let controller = controller_at(&proxy.endpoint_url(), &changed).await;
    let error = controller
        .apply()
        .await
        .expect_err("the update fails")
        .to_string();
    assert!(
        error.contains("function anomaly-local-detection"),
        "{error}"
    );
    assert!(error.contains("image manifest not found"), "{error}");
}

/// How many requests a whole apply from empty sends.
async fn requests_of_a_full_apply() -> u64 {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    let config = write_config(&local_config(&proxy.endpoint_url()));
    let output = run_controller(&["apply", config.path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    proxy.stats().forwarded
}

/// Kills `controller apply` with SIGKILL once the proxy has forwarded
/// `after` requests, then checks that the next apply converges with no
/// duplicate and no orphan.
async fn kill_and_resume(after: u64) {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    let config = write_config(&local_config(&proxy.endpoint_url()));
    let mut child = controller_command(&["apply", config.path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.stats().forwarded < after && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "apply was still running after {after} requests"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let mutated = proxy.stats().forwarded;

    let output = run_controller(&["apply", config.path.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "resume after {mutated}: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let output = run_controller(&["diff", config.path.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "after {mutated}: {}",
        stdout(&output)
    );
    assert_eq!(inventory(&sdk(&aws).await).await, FULL, "after {mutated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_at_any_point_is_finished_by_the_next() {
    let total = requests_of_a_full_apply().await;
    assert!(total > 40, "a full apply sends {total} requests");
    // Kill points spread over the whole apply: observation, each wave of creates, the final updates.
    for eighth in 1..8 {
        kill_and_resume(total * eighth / 8).await;
    }
}
