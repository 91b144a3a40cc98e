//! Saved plans: `diff --out` writes the plan with digests of the file and
//! of every observed resource and no secret; `apply --plan` carries out
//! exactly that plan, and refuses (exit 1, naming what moved, nothing
//! changed) after an out-of-band change or an edit of the file.

mod common;

use common::*;
use serde_json::Value;

const DETECTION: &str = "anomaly-local-detection";

async fn memory(sdk: &Sdk) -> i32 {
    sdk.lambda
        .get_function_configuration()
        .function_name(DETECTION)
        .send()
        .await
        .unwrap()
        .memory_size()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_carried_out_as_saved_and_refused_once_stale() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    let sdk = sdk(&aws).await;
    let text = local_config(aws.endpoint_url()).replacen("memory_mb = 1024", "memory_mb = 2048", 1);
    let config = write_config(&text);
    let path = config.path.to_str().unwrap();
    let saved = config.path.with_file_name("plan.json");
    let saved_path = saved.to_str().unwrap();

    // The token changed by hand: its value shows only as digests keyed
    // for one run, and the saved plan still holds in the next run.
    sdk.secrets
        .put_secret_value()
        .secret_id("anomaly-local/panther-api-token")
        .secret_string("changed-by-hand")
        .send()
        .await
        .unwrap();

    // Saved, then carried out.
    let diff = run_controller(&["diff", path, "--out", saved_path]);
    assert_eq!(diff.status.code(), Some(2), "{}", stderr(&diff));
    let file = std::fs::read_to_string(&saved).unwrap();
    assert!(
        !file.contains(PANTHER_TOKEN),
        "the token is in the plan file"
    );
    let plan: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(plan["format"], "anomaly-controller-plan/1");
    assert_eq!(plan["config"]["sha256"].as_str().unwrap().len(), 64);
    let function = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|change| change["resource"] == format!("function {DETECTION}"))
        .unwrap();
    assert_eq!(function["action"], "update");
    assert_eq!(function["observed"].as_str().unwrap().len(), 16);
    let apply = run_controller(&["apply", path, "--plan", saved_path]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}{}",
        stdout(&apply),
        stderr(&apply)
    );
    assert_eq!(memory(&sdk).await, 2048);
    let token = sdk
        .secrets
        .get_secret_value()
        .secret_id("anomaly-local/panther-api-token")
        .send()
        .await
        .unwrap();
    assert_eq!(token.secret_string(), Some(PANTHER_TOKEN));
    assert!(!file.contains("changed-by-hand"));

    // Stale after an out-of-band change: refused, naming it; nothing changed.
    let text = text.replacen("memory_mb = 2048", "memory_mb = 3008", 1);
    std::fs::write(&config.path, &text).unwrap();
    let diff = run_controller(&["diff", path, "--out", saved_path]);
    assert_eq!(diff.status.code(), Some(2));
    sdk.logs
        .put_retention_policy()
        .log_group_name("/aws/lambda/anomaly-local-training")
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    let apply = run_controller(&["apply", path, "--plan", saved_path]);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    let said = stderr(&apply);
    assert!(
        said.contains(
            "log_group /aws/lambda/anomaly-local-training: planned to InSync, now Update"
        ),
        "{said}"
    );
    assert_eq!(memory(&sdk).await, 2048, "a stale plan changed something");

    // Stale after an edit of the file: refused, naming the file.
    let diff = run_controller(&["diff", path, "--out", saved_path]);
    assert_eq!(diff.status.code(), Some(2));
    std::fs::write(
        &config.path,
        text.replacen("timeout_seconds = 30", "timeout_seconds = 60", 1),
    )
    .unwrap();
    let apply = run_controller(&["apply", path, "--plan", saved_path]);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    let said = stderr(&apply);
    assert!(said.contains("changed since the plan was saved"), "{said}");
    assert!(said.contains(path), "{said}");
    assert_eq!(memory(&sdk).await, 2048);

    // A file that is not a plan.
    std::fs::write(&saved, "{}").unwrap();
    let apply = run_controller(&["apply", path, "--plan", saved_path]);
    assert_eq!(apply.status.code(), Some(1));
    assert!(
        stderr(&apply).contains("is not a saved plan"),
        "{}",
        stderr(&apply)
    );
}
