//! Selectors and dry runs: `--only` / `--exclude` on diff, apply and
//! destroy, dependencies respected (a selection missing what it needs, or
//! deleting what a kept resource needs, is refused naming it), and
//! `destroy --dry-run` lists without changing anything.

mod common;

use common::*;

const DETECTION: &str = "anomaly-local-detection";

async fn function_exists(sdk: &Sdk, name: &str) -> bool {
    sdk.lambda
        .get_function()
        .function_name(name)
        .send()
        .await
        .is_ok()
}

async fn retention(sdk: &Sdk) -> Option<i32> {
    sdk.logs
        .describe_log_groups()
        .log_group_name_prefix("/aws/lambda/anomaly-local-detection")
        .send()
        .await
        .unwrap()
        .log_groups()
        .first()
        .and_then(|group| group.retention_in_days())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_narrow_diff_apply_and_destroy_and_respect_dependencies() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let text = local_config(aws.endpoint_url());
    let config = write_config(&text);
    let path = config.path.to_str().unwrap();

    // Nothing exists: the function alone cannot be made.
    let refused = run_controller(&[
        "apply",
        path,
        "--yes",
        "--only",
        &format!("function/{DETECTION}"),
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains(&format!("function {DETECTION} needs role {DETECTION}-role")),
        "{said}"
    );
    assert!(!function_exists(&sdk, DETECTION).await);
    let refused = run_controller(&["diff", path, "--only", "lambda"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("\"lambda\" is not a kind"),
        "{}",
        stderr(&refused)
    );

    // The bucket alone.
    let only_bucket = run_controller(&["apply", path, "--yes", "--only", "bucket"]);
    assert_eq!(
        only_bucket.status.code(),
        Some(0),
        "{}",
        stderr(&only_bucket)
    );
    assert!(
        sdk.s3
            .head_bucket()
            .bucket("anomaly-local-models")
            .send()
            .await
            .is_ok()
    );
    assert!(!function_exists(&sdk, DETECTION).await);

    // Everything, then two changes in the file: only the selected one goes.
    local_controller(&aws).await.apply().await.expect("apply");
    let changed = text
        .replacen("memory_mb = 1024", "memory_mb = 2048", 1)
        .replacen("retention_days = 7", "retention_days = 14", 1);
    std::fs::write(&config.path, &changed).unwrap();
    let diff = run_controller(&["diff", path, "--only", "function"]);
    assert_eq!(diff.status.code(), Some(2));
    let shown = stdout(&diff);
    assert!(shown.contains("memory_mb: 1024 -> 2048"), "{shown}");
    assert!(!shown.contains("retention_days"), "{shown}");
    assert!(!shown.contains("log_group"), "{shown}");
    let apply = run_controller(&[
        "apply",
        path,
        "--yes",
        "--only",
        "function/anomaly-local-detect*",
        "--exclude",
        "log_group",
    ]);
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    let memory = sdk
        .lambda
        .get_function_configuration()
        .function_name(DETECTION)
        .send()
        .await
        .unwrap()
        .memory_size();
    assert_eq!(memory, Some(2048));
    assert_eq!(
        retention(&sdk).await,
        Some(7),
        "the log group was not selected"
    );

    // destroy --dry-run: lists, changes nothing.
    let dry = run_controller(&["destroy", path, "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let listed = stdout(&dry);
    let function_line = listed
        .lines()
        .find(|line| line.contains(&format!("function     {DETECTION}")))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(function_line.trim_start().starts_with('-'), "{listed}");
    assert!(listed.contains("(retain)"), "{listed}");
    assert!(listed.contains("would be deleted"), "{listed}");
    assert!(function_exists(&sdk, DETECTION).await);

    // A role a kept function needs cannot go alone; the permissions can.
    let refused = run_controller(&[
        "destroy",
        path,
        "--yes",
        "--only",
        &format!("role/{DETECTION}-role"),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(&format!(
            "role {DETECTION}-role is needed by function {DETECTION}"
        )),
        "{}",
        stderr(&refused)
    );
    let permissions = run_controller(&["destroy", path, "--yes", "--only", "permission"]);
    assert_eq!(
        permissions.status.code(),
        Some(0),
        "{}",
        stderr(&permissions)
    );
    assert!(
        sdk.lambda
            .get_policy()
            .function_name(DETECTION)
            .send()
            .await
            .is_err()
    );
    assert!(function_exists(&sdk, DETECTION).await);
}
