//! Detection through `lambda_http`: the real binary runs its Lambda loop against a local
//! Lambda Runtime API that hands it recorded API Gateway REST proxy events and collects
//! the proxy responses.

mod common;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{Proc, small_model};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
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
            let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
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
                "arn:aws:lambda:us-east-1:123456789012:function:detection"
                    .parse()
                    .unwrap(),
            );
            h.insert(
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700".parse().unwrap(),
            );
            h.insert("content-type", "application/json".parse().unwrap());
            return (StatusCode::OK, h, event.to_string()).into_response();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn response(State(rt): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let v: Value = serde_json::from_str(&body).unwrap_or(json!({"unparseable": body}));
    rt.lock().unwrap().responses.insert(id, v);
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Shared>, body: String) -> StatusCode {
    rt.lock().unwrap().errors.push(body);
    StatusCode::ACCEPTED
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/apigw/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn recorded_api_gateway_events_through_lambda_http() {
    let rt: Shared = Arc::default();
    let names = [
        "get_health",
        "post_detect_old_example",
        "post_detect_batch_base64",
        "post_detect_invalid_json",
        "get_unknown_route",
        "delete_detect",
    ];
    for (i, n) in names.iter().enumerate() {
        rt.lock()
            .unwrap()
            .queue
            .push_back((format!("req-{i}"), fixture(n)));
    }
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

    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.json");
    let model = small_model(4);
    std::fs::write(&model_path, model.to_json()).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_detection"))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "detection")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/detection")
        .env("MODEL_FILE", &model_path)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _proc = Proc(child);

    let start = Instant::now();
    while rt.lock().unwrap().responses.len() < names.len() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the function did not answer every event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rt = rt.lock().unwrap();
    assert!(rt.errors.is_empty(), "{:?}", rt.errors);
    let answer = |i: usize| -> (u16, Value, Value) {
        let r = &rt.responses[&format!("req-{i}")];
        let raw = r["body"]
            .as_str()
            .unwrap_or_else(|| panic!("no body in {r}"));
        let body = if r["isBase64Encoded"] == json!(true) {
            panic!("JSON answers are not base64: {r}")
        } else {
            serde_json::from_str(raw).unwrap()
        };
        // REST proxy responses may carry headers in either map.
        let mut headers = r["headers"].as_object().cloned().unwrap_or_default();
        if let Some(multi) = r["multiValueHeaders"].as_object() {
            for (k, v) in multi {
                headers.entry(k.clone()).or_insert(v[0].clone());
            }
        }
        (
            r["statusCode"].as_u64().unwrap() as u16,
            body,
            Value::Object(headers),
        )
    };
    // GET /health (API Gateway adds the stage to the path; the route ignores it).
    let (status, body, headers) = answer(0);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["model_version"], json!(model.version));
    assert_eq!(headers["content-type"], "application/json");
    // The old system's detection example.
    let (status, body, _) = answer(1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_anomaly"], true);
    assert_eq!(body["rarity_analysis"]["eventName"]["level"], "UNSEEN");
    assert_eq!(
        body["rarity_analysis"]["eventName"]["value"],
        "DeleteConfigRule"
    );
    // A base64-encoded batch.
    let (status, body, _) = answer(2);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 2);
    assert_eq!(
        body["results"][1]["rarity_analysis"]["eventName"]["value"],
        "PutEvaluations"
    );
    assert_ne!(
        body["results"][1]["rarity_analysis"]["eventName"]["level"],
        "UNSEEN"
    );
    // Errors.
    let (status, body, _) = answer(3);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("line 2, column 16"),
        "{body}"
    );
    let (status, body, _) = answer(4);
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    assert!(body["message"].as_str().unwrap().contains("/metrics"));
    let (status, body, headers) = answer(5);
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(headers["allow"], "POST");
}
