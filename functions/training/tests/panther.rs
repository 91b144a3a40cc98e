//! Training from Panther: a local server over a real socket speaks Panther's GraphQL
//! protocol (`executeDataLakeQuery`, then `dataLakeQuery` polled until it succeeds or
//! fails, paged with cursors, `X-API-Key` checked).

use anomaly::generator::Generator;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use training::panther::{Panther, PantherConfig, PantherError};

const KEY: &str = "test-panther-key";

#[derive(Default)]
struct Fake {
    /// query id -> (sql, polls so far)
    queries: HashMap<String, (String, usize)>,
    /// every cursor asked for, in order
    cursors: Vec<Option<String>>,
    submits: usize,
}

type Shared = Arc<Mutex<Fake>>;

/// Rows of a page: 40 generated CloudTrail records.
fn page(n: usize) -> Vec<Value> {
    let mut g = Generator::new(100 + n as u64);
    (0..40).map(|_| json!({"node": g.normal()})).collect()
}

async fn graphql(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        );
    }
    let query = body["query"].as_str().unwrap_or("");
    let vars = &body["variables"];
    let mut f = fake.lock().unwrap();
    if query.contains("executeDataLakeQuery") {
        let Some(sql) = vars.pointer("/input/sql").and_then(Value::as_str) else {
            return (
                StatusCode::OK,
                Json(json!({"errors": [{"message": "input.sql is required"}]})),
            );
        };
        f.submits += 1;
        let id = format!("q{}", f.submits);
        f.queries.insert(id.clone(), (sql.to_string(), 0));
        return (
            StatusCode::OK,
            Json(json!({"data": {"executeDataLakeQuery": {"id": id}}})),
        );
    }
    if query.contains("dataLakeQuery") {
        let id = vars["id"].as_str().unwrap_or("").to_string();
        let cursor = vars["cursor"].as_str().map(str::to_string);
        f.cursors.push(cursor.clone());
        let Some((sql, polls)) = f.queries.get_mut(&id) else {
            return (
                StatusCode::OK,
                Json(json!({"errors": [{"message": format!("no query {id}")}]})),
            );
        };
        *polls += 1;
        let polls = *polls;
        let sql = sql.clone();
        // Two polls while running, then the outcome.
        if polls <= 2 || sql.contains("NEVER_ENDS") {
            return (
                StatusCode::OK,
                Json(
                    json!({"data": {"dataLakeQuery": {"status": "running", "message": "", "results": null}}}),
                ),
            );
        }
        if sql.contains("BROKEN") {
            return (
                StatusCode::OK,
                Json(
                    json!({"data": {"dataLakeQuery": {"status": "failed", "message": "SQL compilation error: invalid identifier 'BROKEN'", "results": null}}}),
                ),
            );
        }
        let (n, next) = match cursor.as_deref() {
            None => (0, Some("c1")),
            Some("c1") => (1, Some("c2")),
            Some("c2") => (2, None),
            Some(other) => {
                return (
                    StatusCode::OK,
                    Json(json!({"errors": [{"message": format!("bad cursor {other}")}]})),
                );
            }
        };
        return (
            StatusCode::OK,
            Json(
                json!({"data": {"dataLakeQuery": {"status": "succeeded", "message": "ok", "results": {
                    "edges": page(n),
                    "pageInfo": {"endCursor": next, "hasNextPage": next.is_some()}
                }}}}),
            ),
        );
    }
    (
        StatusCode::OK,
        Json(json!({"errors": [{"message": "unknown operation"}]})),
    )
}

async fn start_fake() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/public/graphql", axum::routing::post(graphql))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/public/graphql"), fake)
}

fn client(url: &str, token: &str, deadline: Duration) -> Panther {
    Panther::new(PantherConfig {
        url: url.into(),
        token: token.into(),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        deadline,
    })
    .unwrap()
}

#[tokio::test]
async fn a_query_that_pages_three_times() {
    let (url, fake) = start_fake().await;
    let rows = client(&url, KEY, Duration::from_secs(20))
        .query("SELECT * FROM t")
        .await
        .unwrap();
    assert_eq!(rows.len(), 120, "three pages of 40 rows");
    assert!(rows.iter().all(|r| r["eventName"].is_string()));
    let f = fake.lock().unwrap();
    assert_eq!(f.submits, 1);
    // Two "running" polls, then the three pages with their cursors.
    assert_eq!(
        f.cursors,
        vec![None, None, None, Some("c1".into()), Some("c2".into())]
    );
}

#[tokio::test]
async fn a_query_that_fails() {
    let (url, _) = start_fake().await;
    let err = client(&url, KEY, Duration::from_secs(20))
        .query("SELECT BROKEN")
        .await
        .unwrap_err();
    match &err {
        PantherError::QueryFailed {
            id,
            status,
            message,
        } => {
            assert_eq!((id.as_str(), status.as_str()), ("q1", "failed"));
            assert!(message.contains("invalid identifier"), "{message}");
        }
        other => panic!("expected QueryFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn polling_is_bounded_in_time() {
    let (url, _) = start_fake().await;
    let t = std::time::Instant::now();
    let err = client(&url, KEY, Duration::from_millis(400))
        .query("SELECT NEVER_ENDS")
        .await
        .unwrap_err();
    assert!(matches!(err, PantherError::Timeout(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_wrong_key_is_an_error() {
    let (url, fake) = start_fake().await;
    let err = client(&url, "wrong", Duration::from_secs(5))
        .query("SELECT 1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, PantherError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(fake.lock().unwrap().submits, 0);
}

/// The whole training job from Panther: token from Secrets Manager, model into S3.
#[tokio::test]
async fn training_from_panther_with_the_token_in_secrets_manager() {
    let (url, fake) = start_fake().await;
    let aws = test_harness::LocalAws::start().await;
    let conf = aws.sdk_config().await;
    let s3 = anomaly::store::s3_client(&conf);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let arn = sm
        .create_secret()
        .name("panther-token")
        .secret_string(json!({"api_key": KEY}).to_string())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let job = training::Job {
        source: training::sources::Source::Panther,
        bucket: Some("models".into()),
        prefix: "models/".into(),
        min_events: 100,
        out: None,
        params: anomaly::TrainParams::default(),
        panther: training::PantherSettings {
            url: Some(url),
            secret_arn: Some(arn),
            token: None,
            sql: training::panther::default_sql(30),
            deadline: Duration::from_secs(20),
            initial_backoff: Duration::from_millis(10),
        },
    };
    let outcome = training::run_with(&job, &conf).await.unwrap();
    assert!(outcome.promoted, "{outcome:?}");
    assert_eq!(outcome.events, 120);
    let store = anomaly::store::ModelStore::new(s3, "models", "models/");
    let (pointer, model) = store.load_latest().await.unwrap().unwrap();
    assert_eq!(Some(pointer.version), outcome.version);
    assert_eq!(model.training_samples, 120);
    let sql = fake.lock().unwrap().queries["q1"].0.clone();
    assert!(
        sql.contains("eventSource = 'config.amazonaws.com'") && sql.contains("30 days"),
        "{sql}"
    );
}
