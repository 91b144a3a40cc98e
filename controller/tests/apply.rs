//! Apply and diff against a local AWS: creation from empty, idempotence,
//! drift field by field, replacement, adoption and the account guard.

mod common;

use aws_sdk_s3::types::{BucketVersioningStatus, ServerSideEncryption};
use common::*;
use controller::field::diff_fields;
use controller::plan::Action;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_from_empty_creates_everything_as_desired() {
    let aws = common::account().await;
    let controller = local_controller(&aws).await;
    let outcome = controller.apply().await.expect("apply converges");
    assert_eq!(outcome.plan.count(Action::Create), 16);

    // Observed equals desired, field by field, for every resource.
    let resources = controller.resources().await.unwrap();
    assert_eq!(resources.len(), 16);
    for desired in &resources {
        let observed = desired
            .observe(&controller.ctx)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} exists", desired.id()));
        assert_eq!(
            observed.ownership,
            controller::ownership::Ownership::Owned,
            "{}",
            desired.id()
        );
        let diffs = diff_fields(&desired.fields(), &observed.fields);
        assert!(diffs.is_empty(), "{} differs: {diffs:?}", desired.id());
    }

    // And independently of the controller's own reading:
    let sdk = sdk(&aws).await;
    assert_eq!(inventory(&sdk).await, FULL);
    let detection = sdk
        .lambda
        .get_function()
        .function_name("anomaly-local-detection")
        .send()
        .await
        .unwrap();
    let configuration = detection.configuration().unwrap();
    assert_eq!(configuration.memory_size(), Some(1024));
    assert_eq!(configuration.timeout(), Some(30));
    assert_eq!(
        configuration.role(),
        Some("arn:aws:iam::123456789012:role/anomaly-controller/anomaly-local-detection-role")
    );
    let variables = configuration.environment().unwrap().variables().unwrap();
    assert_eq!(
        variables.get("MODEL_BUCKET").map(String::as_str),
        Some("anomaly-local-models")
    );
    let training = sdk
        .lambda
        .get_function()
        .function_name("anomaly-local-training")
        .send()
        .await
        .unwrap();
    assert_eq!(training.configuration().unwrap().memory_size(), Some(3008));
    assert_eq!(training.configuration().unwrap().timeout(), Some(900));
    assert_eq!(
        training
            .concurrency()
            .unwrap()
            .reserved_concurrent_executions(),
        Some(1)
    );
    // The SDK cannot parse moto's versioning answer (its root element is
    // `GetBucketVersioningResponse`): read the raw document instead.
    let versioning = raw_get(aws.moto_addr(), "/anomaly-local-models?versioning").await;
    assert!(
        versioning.contains("<Status>Enabled</Status>"),
        "versioning is enabled: {versioning}"
    );
    let encryption = sdk
        .s3
        .get_bucket_encryption()
        .bucket("anomaly-local-models")
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm(),
        &ServerSideEncryption::Aes256
    );
    let retention = sdk
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/aws/lambda/anomaly-local-detection")
        .send()
        .await
        .unwrap();
    assert_eq!(retention.log_groups()[0].retention_in_days(), Some(7));
    let _ = BucketVersioningStatus::Enabled;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_apply_makes_no_mutating_call_and_diff_exits_zero() {
    let aws = common::account().await;
    local_controller(&aws)
        .await
        .apply()
        .await
        .expect("first apply");

    let again = local_controller(&aws).await;
    let before = again.calls();
    let outcome = again.apply().await.expect("second apply");
    assert!(!outcome.plan.has_changes(), "{}", outcome.plan);
    let calls = again.calls();
    assert!(calls.total > before.total, "the second apply observed AWS");
    assert_eq!(
        calls.mutating, 0,
        "mutating calls: {:?}",
        calls.mutating_calls
    );

    let config = write_config(&local_config(aws.endpoint_url()));
    let output = run_controller(&["diff", config.path.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("In sync"));
    let output = run_controller(&["apply", config.path.to_str().unwrap(), "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["changed"], Value::Bool(false));
    assert_eq!(report["calls"]["mutating"], Value::from(0));
}

/// Finds the diff of `field` on the resource named `name` in a JSON plan.
fn field_diff<'a>(plan: &'a Value, name: &str, field: &str) -> Option<&'a Value> {
    plan["plan"]["changes"]
        .as_array()?
        .iter()
        .find(|change| change["resource"]["name"] == name)?
        .get("diffs")?
        .as_array()?
        .iter()
        .find(|diff| diff["field"] == field)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_changes_are_reported_field_by_field_and_repaired() {
    let aws = common::account().await;
    local_controller(&aws)
        .await
        .apply()
        .await
        .expect("first apply");
    let sdk = sdk(&aws).await;
    let bucket = "anomaly-local-models";
    let detection = "anomaly-local-detection";
    let training = "anomaly-local-training";

    // Function: memory, timeout, environment, tags, reserved concurrency.
    sdk.lambda
        .update_function_configuration()
        .function_name(detection)
        .memory_size(256)
        .timeout(10)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("LOG_LEVEL", "debug")
                .variables("MODEL_BUCKET", bucket)
                .variables("MODEL_PREFIX", "models/")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let training_arn = "arn:aws:lambda:us-east-1:123456789012:function:anomaly-local-training";
    sdk.lambda
        .untag_resource()
        .resource(training_arn)
        .tag_keys("project")
        .send()
        .await
        .unwrap();
    sdk.lambda
        .delete_function_concurrency()
        .function_name(training)
        .send()
        .await
        .unwrap();
    // Bucket: versioning, encryption, public access, lifecycle, tags.
    sdk.s3
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    sdk.s3
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::AwsKms)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    sdk.s3
        .delete_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    sdk.s3
        .delete_bucket_lifecycle()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    // Repository: scanning, mutability, lifecycle policy.
    // (moto keeps scanOnPush when the SDK leaves a false flag out of the
    // request, so scanning drift is not injected here.)
    sdk.ecr
        .put_lifecycle_policy()
        .repository_name("anomaly-local/detection")
        .lifecycle_policy_text(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1000},"action":{"type":"expire"}}]}"#)
        .send()
        .await
        .unwrap();
    sdk.ecr
        .put_image_tag_mutability()
        .repository_name("anomaly-local/training")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    // Role: inline policy widened, a managed policy attached.
    let wide = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    sdk.iam
        .put_role_policy()
        .role_name("anomaly-local-detection-role")
        .policy_name("function-access")
        .policy_document(wide)
        .send()
        .await
        .unwrap();
    let extra = sdk
        .iam
        .create_policy()
        .policy_name("extra-access")
        .policy_document(wide)
        .send()
        .await
        .unwrap();
    let extra_arn = extra.policy().unwrap().arn().unwrap().to_string();
    sdk.iam
        .attach_role_policy()
        .role_name("anomaly-local-training-role")
        .policy_arn(&extra_arn)
        .send()
        .await
        .unwrap();
    // Log group: retention.
    sdk.logs
        .put_retention_policy()
        .log_group_name("/aws/lambda/anomaly-local-training")
        .retention_in_days(30)
        .send()
        .await
        .unwrap();

    let config = write_config(&local_config(aws.endpoint_url()));
    let path = config.path.to_str().unwrap();
    let output = run_controller(&["diff", path, "--output", "json"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let expected: Vec<(&str, &str, Value, Value)> = vec![
        (detection, "memory_mb", 1024.into(), 256.into()),
        (detection, "timeout_seconds", 30.into(), 10.into()),
        (training, "reserved_concurrency", 1.into(), Value::Null),
        (bucket, "versioning", true.into(), false.into()),
        (bucket, "encryption", "AES256".into(), "aws:kms".into()),
        (
            bucket,
            "noncurrent_version_expiry_days",
            90.into(),
            Value::Null,
        ),
        (
            "anomaly-local/training",
            "image_tag_mutability",
            "IMMUTABLE".into(),
            "MUTABLE".into(),
        ),
        (
            "/aws/lambda/anomaly-local-training",
            "retention_days",
            7.into(),
            30.into(),
        ),
    ];
    for (name, field, desired, observed) in &expected {
        let diff =
            field_diff(&plan, name, field).unwrap_or_else(|| panic!("{name}.{field} reported"));
        assert_eq!(&diff["desired"], desired, "{name}.{field}");
        assert_eq!(&diff["observed"], observed, "{name}.{field}");
    }
    let lifecycle = field_diff(&plan, "anomaly-local/detection", "lifecycle_policy")
        .expect("lifecycle reported");
    assert!(lifecycle["observed"].to_string().contains("1000"));
    assert!(
        lifecycle["desired"]
            .to_string()
            .contains("\"countNumber\":10")
    );
    let environment = field_diff(&plan, detection, "environment").expect("environment reported");
    assert_eq!(environment["desired"]["LOG_LEVEL"], "info");
    assert_eq!(environment["observed"]["LOG_LEVEL"], "debug");
    let tags = field_diff(&plan, training, "tags").expect("function tags reported");
    assert_eq!(tags["desired"]["project"], "aws-config-anomaly-detection");
    assert_eq!(tags["observed"]["project"], Value::Null);
    let public = field_diff(&plan, bucket, "public_access_block").expect("public access reported");
    assert_eq!(public["observed"]["block_public_acls"], false);
    let inline = field_diff(&plan, "anomaly-local-detection-role", "inline_policies")
        .expect("policy reported");
    assert!(inline["observed"].to_string().contains("s3:*"));
    let managed = field_diff(&plan, "anomaly-local-training-role", "managed_policies")
        .expect("attachment reported");
    assert_eq!(managed["observed"], serde_json::json!([extra_arn]));

    // The text form names the field with both values.
    let output = run_controller(&["diff", path]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stdout(&output).contains("memory_mb: 256 -> 1024"),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("retention_days: 30 -> 7"));

    let output = run_controller(&["apply", path]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let output = run_controller(&["diff", path]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "after repair: {}",
        stdout(&output)
    );
    // The widened policy is gone and the managed policy detached.
    let attached = sdk
        .iam
        .list_attached_role_policies()
        .role_name("anomaly-local-training-role")
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_role_path_replaces_the_role_and_repoints_the_function() {
    let aws = common::account().await;
    local_controller(&aws)
        .await
        .apply()
        .await
        .expect("first apply");
    let text = local_config(aws.endpoint_url()).replace(
        "[functions.detection.repository]",
        "[functions.detection.role]\npath = \"/anomaly/detection/\"\n\n[functions.detection.repository]",
    );
    let controller = controller_at(aws.endpoint_url(), &text).await;
    let plan = controller.plan().await.unwrap();
    let role = plan
        .changes
        .iter()
        .find(|change| change.resource.name == "anomaly-local-detection-role")
        .unwrap();
    assert_eq!(role.action, Action::Replace, "{plan}");
    assert!(role.reason.as_deref().unwrap().contains("path"));
    controller.apply_plan(plan).await.expect("replace");
    let sdk = sdk(&aws).await;
    let function = sdk
        .lambda
        .get_function()
        .function_name("anomaly-local-detection")
        .send()
        .await
        .unwrap();
    assert_eq!(
        function.configuration().unwrap().role(),
        Some("arn:aws:iam::123456789012:role/anomaly/detection/anomaly-local-detection-role")
    );
    assert!(!controller.plan().await.unwrap().has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unowned_resource_is_refused_unless_adopted() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    sdk.logs
        .create_log_group()
        .log_group_name("/aws/lambda/anomaly-local-detection")
        .send()
        .await
        .unwrap();
    let controller = local_controller(&aws).await;
    let error = controller.apply().await.expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("log_group /aws/lambda/anomaly-local-detection"),
        "{message}"
    );
    assert!(message.contains("adopt"), "{message}");
    assert_eq!(controller.calls().mutating, 0, "nothing changed");

    let text = local_config(aws.endpoint_url()).replace(
        "[functions.detection.logs]\nretention_days = 7",
        "[functions.detection.logs]\nretention_days = 7\nadopt = true",
    );
    let controller = controller_at(aws.endpoint_url(), &text).await;
    controller.apply().await.expect("adopted");
    let tags = sdk
        .logs
        .list_tags_for_resource()
        .resource_arn(
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/anomaly-local-detection",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags()
            .unwrap()
            .get("anomaly-controller:deployment")
            .map(String::as_str),
        Some("anomaly-local")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_guard_refuses_another_account_before_any_change() {
    let aws = common::account().await;
    let text = local_config(aws.endpoint_url()).replace(
        "[deployment]\n",
        "[deployment]\naccount_id = \"999999999999\"\n",
    );
    let config = write_config(&text);
    let output = run_controller(&["apply", config.path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("credentials are for account 123456789012"),
        "{}",
        stderr(&output)
    );
    let sdk = sdk(&aws).await;
    assert_eq!(inventory(&sdk).await.buckets, 0);
}

/// The shipped local config as it is (functions built from Dockerfiles),
/// pointed at `endpoint`, with paths made absolute.
fn local_config_with_builds(endpoint: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("config/local.toml")).unwrap();
    text.lines()
        .map(|line| {
            if line.starts_with("endpoint_url") {
                format!("endpoint_url = \"{endpoint}\"")
            } else {
                line.replace(
                    "dockerfile = \"../docker/",
                    &format!("dockerfile = \"{}/docker/", root.display()),
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_image_resolution_the_image_is_left_to_apply_and_the_rest_is_managed() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    // What the daemon works with: the file as written, images not resolved.
    let text = local_config_with_builds(aws.endpoint_url());
    assert!(text.contains("image = {"));
    let controller = controller_at(aws.endpoint_url(), &text).await;
    let plan = controller.plan().await.unwrap();
    assert!(!plan.has_changes(), "{plan}");

    let sdk = sdk(&aws).await;
    sdk.lambda
        .update_function_configuration()
        .function_name("anomaly-local-detection")
        .memory_size(256)
        .send()
        .await
        .unwrap();
    let plan = controller.plan().await.unwrap();
    let change = plan
        .changes
        .iter()
        .find(|change| change.resource.name == "anomaly-local-detection")
        .unwrap();
    assert_eq!(change.action, Action::Update);
    assert_eq!(
        change
            .diffs
            .iter()
            .map(|diff| diff.field.as_str())
            .collect::<Vec<_>>(),
        ["memory_mb"]
    );
    controller
        .apply_plan(plan)
        .await
        .expect("repair without touching the image");
    let function = sdk
        .lambda
        .get_function()
        .function_name("anomaly-local-detection")
        .send()
        .await
        .unwrap();
    assert_eq!(function.configuration().unwrap().memory_size(), Some(1024));
    assert_eq!(
        function.code().unwrap().image_uri(),
        Some("127.0.0.1:5000/anomaly-local/detection:v1")
    );
}

/// A plain signed-in-form S3 GET to moto, for answers the SDK cannot parse.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}
