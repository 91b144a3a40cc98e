//! The training binary as a Lambda function: a local Lambda Runtime API hands it
//! EventBridge scheduled events; it trains from the configured source and publishes to
//! S3 (moto), or keeps the current model when too few events were read.

use anomaly::generator::Generator;
use anomaly::store::{ModelStore, s3_client};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Runtime {
    queue: VecDeque<(String, Value)>,
    responses: HashMap<String, Value>,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Runtime>>;

async fn next(State(rt): State<Shared>) -> axum::response::Response {
    loop {
        let item = rt.lock().unwrap().queue.pop_front();
        if let Some((id, event)) = item {
            let deadline = (std::time::SystemTime::now() + Duration::from_secs(300))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let mut h = HeaderMap::new();
            h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            h.insert(
                "lambda-runtime-deadline-ms",
                deadline.to_string().parse().unwrap(),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:training"
                    .parse()
                    .unwrap(),
            );
            return (StatusCode::OK, h, event.to_string()).into_response();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn response(State(rt): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    rt.lock().unwrap().responses.insert(
        id,
        serde_json::from_str(&body).unwrap_or(json!({"raw": body})),
    );
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Shared>, body: String) -> StatusCode {
    rt.lock().unwrap().errors.push(body);
    StatusCode::ACCEPTED
}

fn scheduled(detail: Value) -> Value {
    json!({"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
           "source": "aws.events", "account": "123456789012", "time": "2024-06-27T03:00:00Z", "region": "us-east-1",
           "resources": ["arn:aws:events:us-east-1:123456789012:rule/anomaly-training"], "detail": detail})
}

#[tokio::test]
async fn scheduled_events_train_and_respect_the_minimum() {
    let aws = test_harness::LocalAws::start().await;
    let conf = aws.sdk_config().await;
    let s3 = s3_client(&conf);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events.jsonl");
    let mut f = std::fs::File::create(&data).unwrap();
    for r in Generator::new(31).normal_events(2000) {
        writeln!(f, "{r}").unwrap();
    }

    let rt: Shared = Arc::default();
    rt.lock()
        .unwrap()
        .queue
        .push_back(("run-1".into(), scheduled(json!({}))));
    rt.lock()
        .unwrap()
        .queue
        .push_back(("run-2".into(), scheduled(json!({"min_events": 5000}))));
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(next),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            axum::routing::post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            axum::routing::post(error),
        )
        .route("/2018-06-01/runtime/init/error", axum::routing::post(error))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_training"))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "training")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/training")
        .env("MODEL_BUCKET", "models")
        .env("TRAINING_SOURCE", format!("file:{}", data.display()))
        .env("MIN_EVENTS", "1000")
        .env("AWS_ENDPOINT_URL", aws.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let done = || {
        let r = rt.lock().unwrap();
        r.responses.len() + r.errors.len() >= 2
    };
    while !done() && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (errors, responses) = {
        let r = rt.lock().unwrap();
        (r.errors.clone(), r.responses.clone())
    };
    assert!(errors.is_empty(), "{errors:?}");
    let first = &responses["run-1"];
    assert_eq!(first["status"], "promoted", "{first}");
    assert_eq!(first["events"], 2000);
    let second = &responses["run-2"];
    assert_eq!(second["status"], "not_promoted", "{second}");
    assert_eq!(second["previous_version"], first["version"]);
    let store = ModelStore::new(s3, "models", "models/");
    let pointer = store.latest_pointer().await.unwrap().unwrap();
    assert_eq!(json!(pointer.version), first["version"]);
}
