//! The detection binary as a Lambda function under AWS's Lambda Runtime Interface
//! Emulator, with the model in S3 (moto): recorded API Gateway REST (v1) proxy events
//! (`tests/fixtures/apigw/`) in, proxy responses out; an event of another kind is an
//! `InvalidEvent` error; logs carry no ANSI codes; a broken model store is never
//! echoed to the caller.

mod common;

use anomaly::store::{ModelStore, s3_client};
use common::{assert_no_internals, small_model};
use serde_json::{Map, Value, json};
use test_harness::{LambdaEmulator, LocalAws};

fn fixture(path: &str) -> Value {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The AWS settings that point the function at the local S3.
fn aws_env(aws: &LocalAws) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", aws.endpoint_url().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// One API Gateway proxy answer: status, headers (lower-case names) and raw body.
struct Proxied {
    status: u16,
    headers: Map<String, Value>,
    body: String,
}

impl Proxied {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

async fn call(emulator: &LambdaEmulator, name: &str) -> Proxied {
    let (status, answer) = emulator
        .invoke(&fixture(&format!("apigw/{name}.json")))
        .await;
    assert_eq!(status, 200, "{name}: {answer}");
    assert!(
        answer.get("errorType").is_none(),
        "{name}: the function failed: {answer}\n{}",
        emulator.output()
    );
    assert_ne!(answer["isBase64Encoded"], true, "{name}: {answer}");
    // REST proxy responses may carry headers in either map.
    let mut headers = Map::new();
    for map in ["headers", "multiValueHeaders"] {
        if let Some(m) = answer[map].as_object() {
            for (k, v) in m {
                let v = if v.is_array() {
                    v[0].clone()
                } else {
                    v.clone()
                };
                headers.entry(k.to_ascii_lowercase()).or_insert(v);
            }
        }
    }
    Proxied {
        status: answer["statusCode"].as_u64().unwrap() as u16,
        headers,
        body: answer["body"].as_str().unwrap_or_default().to_string(),
    }
}

#[tokio::test]
async fn recorded_api_gateway_events_under_the_runtime_interface_emulator() {
    let aws = LocalAws::start().await;
    let s3 = s3_client(&aws.sdk_config().await);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let model = small_model(4);
    ModelStore::new(s3, "models", "models/")
        .publish(&model)
        .await
        .unwrap();

    let emulator = LambdaEmulator::binary(env!("CARGO_BIN_EXE_detection"))
        .envs(aws_env(&aws))
        .env("MODEL_BUCKET", "models")
        .env(
            "CORS_ALLOW_ORIGINS",
            "https://siem.example.com, https://soc.example.com",
        )
        .start()
        .await;

    // GET /health (API Gateway adds the stage to requestContext.path; the route ignores it).
    let a = call(&emulator, "get_health").await;
    let body = a.json();
    assert_eq!(a.status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["model_version"], json!(model.version));
    assert_eq!(a.header("content-type"), Some("application/json"));
    // No Origin header: no CORS header.
    assert_eq!(a.header("access-control-allow-origin"), None);

    // The old system's detection example: one event.
    let a = call(&emulator, "post_detect_old_example").await;
    let body = a.json();
    assert_eq!(a.status, 200, "{body}");
    assert_eq!(body["is_anomaly"], true);
    assert_eq!(body["rarity_analysis"]["eventName"]["level"], "UNSEEN");
    assert_eq!(
        body["rarity_analysis"]["eventName"]["value"],
        "DeleteConfigRule"
    );

    // A base64-encoded batch.
    let a = call(&emulator, "post_detect_batch_base64").await;
    let body = a.json();
    assert_eq!(a.status, 200, "{body}");
    assert_eq!(body["count"], 2);
    assert_eq!(
        body["results"][1]["rarity_analysis"]["eventName"]["value"],
        "PutEvaluations"
    );
    assert_ne!(
        body["results"][1]["rarity_analysis"]["eventName"]["level"],
        "UNSEEN"
    );

    // Errors: bad JSON, an unknown route, a wrong method.
    let a = call(&emulator, "post_detect_invalid_json").await;
    let body = a.json();
    assert_eq!(
        (a.status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("line 2, column 16"),
        "{body}"
    );
    let a = call(&emulator, "get_unknown_route").await;
    let body = a.json();
    assert_eq!((a.status, body["error"].as_str()), (404, Some("not_found")));
    assert!(body["message"].as_str().unwrap().contains("/metrics"));
    let a = call(&emulator, "delete_detect").await;
    let body = a.json();
    assert_eq!(
        (a.status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(a.header("allow"), Some("POST, OPTIONS"));

    // CORS with two origins: the function answers the preflight and echoes
    // only a listed origin, one at a time.
    let a = call(&emulator, "options_detect_listed_origin").await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(a.body, "");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://soc.example.com")
    );
    assert_eq!(
        a.header("access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    assert!(
        a.header("access-control-allow-headers")
            .unwrap()
            .contains("X-Api-Key")
    );
    assert_eq!(a.header("vary"), Some("Origin"));
    let a = call(&emulator, "options_detect_unlisted_origin").await;
    assert_eq!(a.status, 204);
    assert!(
        a.headers.keys().all(|k| !k.starts_with("access-control-")),
        "{:?}",
        a.headers
    );
    let a = call(&emulator, "get_health_listed_origin").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://siem.example.com")
    );

    // An event that is not from API Gateway: a named error type, not a Rust type path.
    let (status, answer) = emulator
        .invoke(&fixture("events/eventbridge_scheduled.json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errorType"], "InvalidEvent", "{answer}");
    assert!(
        answer["errorMessage"]
            .as_str()
            .unwrap()
            .contains("API Gateway"),
        "{answer}"
    );

    // Everything the function logged, as CloudWatch would get it: no colour codes.
    let output = emulator.output();
    assert!(output.contains("model loaded"), "{output}");
    assert!(output.contains("InvalidEvent"), "{output}");
    assert!(
        !output.contains("\x1b["),
        "ANSI codes in the logs:\n{output}"
    );
}

#[tokio::test]
async fn a_missing_model_bucket_is_logged_but_never_shown_to_the_caller() {
    let aws = LocalAws::start().await;
    let bucket = "anomaly-models-123456789012-private";
    let emulator = LambdaEmulator::binary(env!("CARGO_BIN_EXE_detection"))
        .envs(aws_env(&aws))
        .env("MODEL_BUCKET", bucket)
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .start()
        .await;

    let a = call(&emulator, "get_health").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_no_internals(&a.body, bucket);
    let body = a.json();
    assert_eq!(body["error"], "model_unavailable");
    assert_eq!(body["reason"], "store_unavailable");

    let a = call(&emulator, "post_detect_old_example").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_no_internals(&a.body, bucket);
    assert_eq!(a.json()["reason"], "store_unavailable");

    // The detail is in the log, as JSON lines without colour codes.
    let output = emulator.output();
    assert!(
        !output.contains("\x1b["),
        "ANSI codes in the logs:\n{output}"
    );
    let failure = output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "model check failed")
        .unwrap_or_else(|| panic!("no JSON log line of the failure:\n{output}"));
    assert_eq!(failure["level"], "ERROR", "{failure}");
    let detail = failure["detail"].as_str().unwrap();
    assert!(detail.contains(bucket), "{failure}");
    assert!(detail.contains("NoSuchBucket"), "{failure}");
}
