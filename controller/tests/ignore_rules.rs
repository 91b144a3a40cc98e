//! Ignore rules: a tag and an environment variable another team sets, and
//! a reserved concurrency on-call changes, are neither drift (`diff` is in
//! sync and says how many fields it ignored) nor changed by apply, even
//! when apply updates the same function and publishes a release of it; a
//! field no rule covers is still put back.

mod common;

use std::collections::HashMap;

use common::*;

const DETECTION: &str = "anomaly-local-detection";
const DETECTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:anomaly-local-detection";
const BUCKET: &str = "anomaly-local-models";

/// The local config with a global rule, the detection function's own
/// rules, and a release of detection.
fn ignoring_config(endpoint: &str) -> String {
    let text = local_config(endpoint).replacen(
        "[functions.detection]\n",
        "[functions.detection]\nignore = [\"environment.FEATURE_FLAG\", \"reserved_concurrency\"]\n",
        1,
    );
    format!(
        "ignore = [\"tags.team\"]\n\n{text}\n[functions.detection.release]\nstrategy = \"all-at-once\"\n"
    )
}

async fn environment_of(sdk: &Sdk, qualifier: Option<&str>) -> HashMap<String, String> {
    sdk.lambda
        .get_function_configuration()
        .function_name(DETECTION)
        .set_qualifier(qualifier.map(str::to_string))
        .send()
        .await
        .unwrap()
        .environment()
        .and_then(|environment| environment.variables())
        .cloned()
        .unwrap_or_default()
}

/// Waits until the function's last update is over (Lambda refuses another
/// change meanwhile).
async fn settled(sdk: &Sdk) {
    for _ in 0..200 {
        let configuration = sdk
            .lambda
            .get_function_configuration()
            .function_name(DETECTION)
            .send()
            .await
            .unwrap();
        if configuration.last_update_status()
            != Some(&aws_sdk_lambda::types::LastUpdateStatus::InProgress)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{DETECTION} is still updating");
}

/// Sets some of the function's variables out of band, keeping the others, and
/// waits for the update to finish.
async fn set_variables(sdk: &Sdk, changes: &[(&str, &str)]) {
    let mut variables = environment_of(sdk, None).await;
    for (name, value) in changes {
        variables.insert(name.to_string(), value.to_string());
    }
    sdk.lambda
        .update_function_configuration()
        .function_name(DETECTION)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .set_variables(Some(variables))
                .build(),
        )
        .send()
        .await
        .unwrap();
    settled(sdk).await;
}

async fn function_tags(sdk: &Sdk) -> HashMap<String, String> {
    sdk.lambda
        .list_tags()
        .resource(DETECTION_ARN)
        .send()
        .await
        .unwrap()
        .tags()
        .cloned()
        .unwrap_or_default()
}

async fn bucket_tags(sdk: &Sdk) -> HashMap<String, String> {
    sdk.s3
        .get_bucket_tagging()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|tag| (tag.key().to_string(), tag.value().to_string()))
        .collect()
}

async fn reserved_concurrency(sdk: &Sdk) -> Option<i32> {
    sdk.lambda
        .get_function_concurrency()
        .function_name(DETECTION)
        .send()
        .await
        .unwrap()
        .reserved_concurrent_executions()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_fields_are_neither_drift_nor_changed_by_apply() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let text = ignoring_config(aws.endpoint_url());
    controller_at(aws.endpoint_url(), &text)
        .await
        .apply()
        .await
        .expect("first apply");

    // Another team's changes, and one the file owns (LOG_LEVEL).
    set_variables(&sdk, &[("FEATURE_FLAG", "on"), ("LOG_LEVEL", "debug")]).await;
    sdk.lambda
        .tag_resource()
        .resource(DETECTION_ARN)
        .tags("team", "secops")
        .send()
        .await
        .unwrap();
    let mut tags: Vec<aws_sdk_s3::types::Tag> = bucket_tags(&sdk)
        .await
        .into_iter()
        .map(|(key, value)| {
            aws_sdk_s3::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .unwrap()
        })
        .collect();
    tags.push(
        aws_sdk_s3::types::Tag::builder()
            .key("team")
            .value("data")
            .build()
            .unwrap(),
    );
    sdk.s3
        .put_bucket_tagging()
        .bucket(BUCKET)
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .set_tag_set(Some(tags))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    sdk.lambda
        .put_function_concurrency()
        .function_name(DETECTION)
        .reserved_concurrent_executions(5)
        .send()
        .await
        .unwrap();

    // The plan: LOG_LEVEL is drift; the rest is counted as ignored.
    let controller = controller_at(aws.endpoint_url(), &text).await;
    let plan = controller.plan().await.expect("plan");
    let function = plan
        .changes
        .iter()
        .find(|change| change.resource.to_string() == format!("function {DETECTION}"))
        .unwrap();
    assert_eq!(
        function.ignored,
        [
            "environment.FEATURE_FLAG",
            "reserved_concurrency",
            "tags.team"
        ]
    );
    let drift: Vec<String> = function
        .diffs
        .iter()
        .flat_map(|diff| diff.changes.iter().map(|change| change.path.clone()))
        .collect();
    assert_eq!(drift, ["environment.LOG_LEVEL"], "{function:#?}");
    let bucket = plan
        .changes
        .iter()
        .find(|change| change.resource.to_string() == format!("bucket {BUCKET}"))
        .unwrap();
    assert_eq!(bucket.action, controller::plan::Action::InSync);
    assert_eq!(bucket.ignored, ["tags.team"]);
    assert_eq!(plan.ignored(), 4);

    // diff shows both, and says how many fields it ignored.
    let config = write_config(&text);
    let path = config.path.to_str().unwrap();
    let diff = run_controller(&["diff", path]);
    assert_eq!(diff.status.code(), Some(2), "{}", stderr(&diff));
    let shown = stdout(&diff);
    assert!(
        shown.contains(r#"environment.LOG_LEVEL: "debug" -> "info""#),
        "{shown}"
    );
    assert!(
        shown.contains(
            "ignored (ignore rules): environment.FEATURE_FLAG, reserved_concurrency, tags.team"
        ),
        "{shown}"
    );
    assert!(shown.contains("4 differing fields ignored"), "{shown}");
    assert!(!shown.contains("FEATURE_FLAG: "), "{shown}");

    // Apply with a memory change in the file too: LOG_LEVEL and memory are
    // put right, a release is published, and nothing ignored is touched.
    let changed = text.replacen("memory_mb = 1024", "memory_mb = 2048", 1);
    let outcome = controller_at(aws.endpoint_url(), &changed)
        .await
        .apply()
        .await
        .expect("apply");
    assert!(outcome.succeeded(), "{:?}", outcome.problems());
    let environment = environment_of(&sdk, None).await;
    assert_eq!(environment["LOG_LEVEL"], "info");
    assert_eq!(environment["FEATURE_FLAG"], "on", "{environment:?}");
    assert_eq!(function_tags(&sdk).await["team"], "secops");
    assert_eq!(bucket_tags(&sdk).await["team"], "data");
    assert_eq!(reserved_concurrency(&sdk).await, Some(5));
    let memory = sdk
        .lambda
        .get_function_configuration()
        .function_name(DETECTION)
        .send()
        .await
        .unwrap()
        .memory_size();
    assert_eq!(memory, Some(2048));
    let live = environment_of(&sdk, Some("live")).await;
    assert_eq!(
        live.get("FEATURE_FLAG").map(String::as_str),
        Some("on"),
        "the released version carries the other team's variable"
    );

    // In sync afterwards, the alias too (its configuration fingerprint
    // leaves the ignored variable out), and after the flag changes again.
    let plan = controller_at(aws.endpoint_url(), &changed)
        .await
        .plan()
        .await
        .expect("plan");
    assert!(!plan.has_changes(), "{plan}");
    set_variables(&sdk, &[("FEATURE_FLAG", "off")]).await;
    let plan = controller_at(aws.endpoint_url(), &changed)
        .await
        .plan()
        .await
        .expect("plan");
    assert!(!plan.has_changes(), "{plan}");

    // Without the rules, the same state is drift that apply reverts.
    let strict = changed
        .replacen("ignore = [\"tags.team\"]\n", "", 1)
        .replacen(
            "ignore = [\"environment.FEATURE_FLAG\", \"reserved_concurrency\"]\n",
            "",
            1,
        );
    let plan = controller_at(aws.endpoint_url(), &strict)
        .await
        .plan()
        .await
        .expect("plan");
    assert_eq!(plan.ignored(), 0);
    let paths: Vec<String> = plan
        .changes
        .iter()
        .flat_map(|change| &change.diffs)
        .flat_map(|diff| diff.changes.iter().map(|change| change.path.clone()))
        .collect();
    for path in [
        "environment.FEATURE_FLAG",
        "reserved_concurrency",
        "tags.team",
    ] {
        assert!(paths.iter().any(|found| found == path), "{path}: {paths:?}");
    }
}
