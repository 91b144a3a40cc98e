//! The training binary as a Lambda function under AWS's Lambda Runtime Interface
//! Emulator: a recorded EventBridge scheduled event (`tests/fixtures/`) trains from the
//! configured source and publishes to S3 (moto), or keeps the current model when too
//! few events were read. Failures reach Lambda with named error types, and the logs
//! carry no ANSI colour codes.

use anomaly::generator::Generator;
use anomaly::store::{ModelStore, s3_client};
use serde_json::{Value, json};
use std::io::Write;
use test_harness::{
    FaultProxy, FaultRates, LambdaEmulator, LocalAws, RequestMatch, ScriptedResponse,
};

fn scheduled_event() -> Value {
    let path = format!(
        "{}/tests/fixtures/scheduled_event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn with_detail(detail: Value) -> Value {
    let mut event = scheduled_event();
    event["detail"] = detail;
    event
}

fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// 2,000 events of the simulated organisation as JSON Lines.
fn events_file(dir: &std::path::Path) -> String {
    let data = dir.join("events.jsonl");
    let mut f = std::fs::File::create(&data).unwrap();
    for r in Generator::new(31).normal_events(2000) {
        writeln!(f, "{r}").unwrap();
    }
    format!("file:{}", data.display())
}

fn assert_plain_logs(output: &str) {
    assert!(
        !output.contains("\x1b["),
        "ANSI codes in the logs:\n{output}"
    );
}

#[tokio::test]
async fn scheduled_events_train_and_respect_the_minimum() {
    let aws = LocalAws::start().await;
    let s3 = s3_client(&aws.sdk_config().await);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let emulator = LambdaEmulator::binary(env!("CARGO_BIN_EXE_training"))
        .envs(aws_env(aws.endpoint_url()))
        .env("MODEL_BUCKET", "models")
        .env("TRAINING_SOURCE", events_file(dir.path()))
        .env("MIN_EVENTS", "1000")
        .start()
        .await;

    let (status, first) = emulator.invoke(&scheduled_event()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "promoted", "{first}");
    assert_eq!(first["events"], 2000);

    let (_, second) = emulator
        .invoke(&with_detail(json!({"min_events": 5000})))
        .await;
    assert_eq!(second["status"], "not_promoted", "{second}");
    assert_eq!(second["previous_version"], first["version"]);
    let store = ModelStore::new(s3, "models", "models/");
    let pointer = store.latest_pointer().await.unwrap().unwrap();
    assert_eq!(json!(pointer.version), first["version"]);

    // A malformed override is refused by name, not silently ignored.
    let (status, refused) = emulator
        .invoke(&with_detail(json!({"min_events": "many"})))
        .await;
    assert_eq!(status, 200, "{refused}");
    assert_eq!(refused["errorType"], "InvalidEvent", "{refused}");
    assert!(
        refused["errorMessage"]
            .as_str()
            .unwrap()
            .contains("min_events must be a non-negative integer"),
        "{refused}"
    );

    let output = emulator.output();
    assert!(output.contains("training finished"), "{output}");
    assert!(output.contains("InvalidEvent"), "{output}");
    assert_plain_logs(&output);
}

/// S3's answer to a refused request (S3 API reference, "Error responses"): what a
/// role without `s3:ListBucket` gets for a missing pointer.
const ACCESS_DENIED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#;

#[tokio::test]
async fn failures_reach_lambda_with_named_error_types() {
    let aws = LocalAws::start().await;
    let s3 = s3_client(&aws.sdk_config().await);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = events_file(dir.path());

    // A 403 on the pointer (a role without s3:ListBucket, the pointer missing):
    // a permission error naming the permission, never "no model yet".
    let upstream = aws
        .endpoint_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream, FaultRates::default()).await;
    proxy.script(
        RequestMatch {
            method: Some("GET".into()),
            path_prefix: Some("/models/models/latest.json".into()),
            ..RequestMatch::default()
        },
        ScriptedResponse::new(
            403,
            vec![("Content-Type".into(), "application/xml".into())],
            ACCESS_DENIED,
        ),
        1000,
    );
    let forbidden = LambdaEmulator::binary(env!("CARGO_BIN_EXE_training"))
        .envs(aws_env(&proxy.endpoint_url()))
        .env("MODEL_BUCKET", "models")
        .env("TRAINING_SOURCE", &source)
        .env("MIN_EVENTS", "1000")
        .start()
        .await;
    let (status, answer) = forbidden.invoke(&scheduled_event()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errorType"], "ModelStoreAccessDenied", "{answer}");
    let message = answer["errorMessage"].as_str().unwrap();
    assert!(message.contains("s3:ListBucket"), "{message}");
    assert!(message.contains("s3:GetObject"), "{message}");
    let output = forbidden.output();
    assert!(
        output.contains("s3:ListBucket"),
        "the log names it:\n{output}"
    );
    assert_plain_logs(&output);
    // Nothing was published over the refused store.
    let listed = s3.list_objects_v2().bucket("models").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "{listed:?}");

    // A missing bucket: the run fails as a training failure naming the bucket.
    let missing = LambdaEmulator::binary(env!("CARGO_BIN_EXE_training"))
        .envs(aws_env(aws.endpoint_url()))
        .env("MODEL_BUCKET", "no-such-model-bucket")
        .env("TRAINING_SOURCE", &source)
        .start()
        .await;
    let (_, answer) = missing.invoke(&scheduled_event()).await;
    assert_eq!(answer["errorType"], "TrainingFailed", "{answer}");
    assert!(
        answer["errorMessage"]
            .as_str()
            .unwrap()
            .contains("no-such-model-bucket"),
        "{answer}"
    );

    // No bucket configured: a configuration error, before any S3 call.
    let unconfigured = LambdaEmulator::binary(env!("CARGO_BIN_EXE_training"))
        .envs(aws_env(aws.endpoint_url()))
        .env("TRAINING_SOURCE", &source)
        .start()
        .await;
    let (_, answer) = unconfigured.invoke(&scheduled_event()).await;
    assert_eq!(answer["errorType"], "InvalidConfiguration", "{answer}");
    assert!(
        answer["errorMessage"]
            .as_str()
            .unwrap()
            .contains("MODEL_BUCKET"),
        "{answer}"
    );
    assert_plain_logs(&unconfigured.output());
}
