//! A persistent failure of one resource: that resource fails with its AWS
//! error code, what depends on it is skipped, every independent resource
//! still converges, and the exit code is 1; the outcome is the same, per
//! resource, in `--output json`.

mod common;

use common::*;
use serde_json::Value;
use test_harness::{FaultProxy, FaultRates, RequestMatch, ScriptedResponse};

const TRAINING_ROLE: &str = "anomaly-local-training-role";

/// `status` of every result of an apply outcome, by `kind name`.
fn statuses(outcome: &Value) -> std::collections::BTreeMap<String, Value> {
    outcome["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| {
            (
                format!(
                    "{} {}",
                    result["resource"]["kind"].as_str().unwrap(),
                    result["resource"]["name"].as_str().unwrap()
                ),
                result.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_resource_stops_only_what_depends_on_it() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    proxy.script(
        RequestMatch::action("CreateRole").with_body(&format!("RoleName={TRAINING_ROLE}")),
        ScriptedResponse::query_error(
            403,
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: iam:CreateRole",
        ),
        1000,
    );
    let config = write_config(&local_config(&proxy.endpoint_url()));
    let path = config.path.to_str().unwrap();
    let output = run_controller(&["apply", path, "--output", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).expect("JSON outcome");
    assert_eq!(report["succeeded"], false);
    let results = statuses(&report["outcome"]);
    let role = &results[&format!("role {TRAINING_ROLE}")];
    assert_eq!(role["status"], "failed", "{role}");
    assert_eq!(role["code"], "AccessDenied");
    assert_eq!(role["operation"], "CreateRole");
    assert_eq!(role["error_kind"], "terminal");
    // What needs the role, directly or not, is skipped, naming it.
    for skipped in [
        "function anomaly-local-training".to_string(),
        "rule anomaly-local-schedule".to_string(),
    ] {
        let result = &results[&skipped];
        assert_eq!(result["status"], "skipped", "{skipped}: {result}");
        assert_eq!(result["because"]["name"], TRAINING_ROLE, "{skipped}");
    }
    let schedule_permission = results
        .iter()
        .find(|(id, _)| id.starts_with("permission anomaly-local-training:"))
        .map(|(_, result)| result)
        .expect("the schedule's permission is planned");
    assert_eq!(schedule_permission["status"], "skipped");
    // Exactly the role and what needs it did not converge; every other
    // resource (the training function's repository and log group included)
    // did.
    let not_converged: std::collections::BTreeSet<&str> = results
        .iter()
        .filter(|(_, result)| result["status"] != "done" && result["status"] != "unchanged")
        .map(|(id, _)| id.as_str())
        .collect();
    let schedule_permission_id = results
        .keys()
        .find(|id| id.starts_with("permission anomaly-local-training:"))
        .unwrap()
        .as_str();
    assert_eq!(
        not_converged,
        std::collections::BTreeSet::from([
            format!("role {TRAINING_ROLE}").as_str(),
            "function anomaly-local-training",
            "rule anomaly-local-schedule",
            schedule_permission_id,
        ]),
        "{report:#}"
    );
    for converged in [
        "repository anomaly-local/training",
        "log_group /aws/lambda/anomaly-local-training",
        "function anomaly-local-detection",
        "rest_api anomaly-local-api",
    ] {
        assert!(
            results[converged]["status"] == "done" || results[converged]["status"] == "unchanged",
            "{converged}: {}",
            results[converged]
        );
    }
    let sdk = sdk(&aws).await;
    assert!(
        sdk.lambda
            .get_function()
            .function_name("anomaly-local-detection")
            .send()
            .await
            .is_ok()
    );
    assert!(
        sdk.lambda
            .get_function()
            .function_name("anomaly-local-training")
            .send()
            .await
            .is_err()
    );

    // The same in text: the failed resource with its code, the skipped ones.
    let output = run_controller(&["apply", path]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("role {TRAINING_ROLE}: failed"))
            && text.contains("AccessDenied")
            && text.contains(&format!(
                "function anomaly-local-training: skipped: role {TRAINING_ROLE} failed"
            )),
        "{text}"
    );
}
