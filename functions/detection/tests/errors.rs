//! Each malformed request gets the right 4xx status, error kind and message, both from
//! the routing function and from `serve` over a real socket.

mod common;

use common::{http, small_model};
use detection::routes::{Limits, ModelView, Unavailable, route};
use detection::state::{AppState, Source};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    kind: &'static str,
    message: &'static str,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    kind: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        method,
        path,
        content_type: Some("application/json"),
        body: body.into(),
        status,
        kind,
        message,
    }
}

fn cases() -> Vec<Case> {
    let ev = r#"{"eventName": "PutEvaluations", "awsRegion": "us-east-1"}"#;
    let big_batch = format!("[{}]", vec![ev; 1001].join(","));
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let huge = format!(r#"{{"eventName": "{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let mut v = vec![
        case(
            "truncated object",
            "POST",
            "/detect",
            r#"{"eventName": "#,
            400,
            "invalid_json",
            "unexpected end of JSON at line 1, column 14",
        ),
        case(
            "trailing comma",
            "POST",
            "/detect",
            r#"{"a": 1,}"#,
            400,
            "invalid_json",
            "invalid JSON at line 1, column 9",
        ),
        case(
            "error on line 3",
            "POST",
            "/detect",
            "{\n  \"eventName\": \"x\",\n  oops\n}",
            400,
            "invalid_json",
            "line 3, column 3",
        ),
        case(
            "bare word",
            "POST",
            "/detect",
            "nul",
            400,
            "invalid_json",
            "line 1, column 3",
        ),
        case(
            "two documents",
            "POST",
            "/detect",
            format!("{ev} {ev}"),
            400,
            "invalid_json",
            "trailing characters",
        ),
        case(
            "invalid UTF-8",
            "POST",
            "/detect",
            b"{\"eventName\": \"\xff\xfe\"}".to_vec(),
            400,
            "invalid_json",
            "line 1",
        ),
        case(
            "nested too deep",
            "POST",
            "/detect",
            deep,
            400,
            "invalid_json",
            "recursion limit exceeded",
        ),
        case(
            "single quotes",
            "POST",
            "/detect",
            "{'eventName': 'x'}",
            400,
            "invalid_json",
            "key must be a string",
        ),
        case(
            "empty body",
            "POST",
            "/detect",
            "",
            400,
            "empty_body",
            "the body is empty",
        ),
        case(
            "whitespace body",
            "POST",
            "/detect",
            " \n\t ",
            400,
            "empty_body",
            "the body is empty",
        ),
        case(
            "a string",
            "POST",
            "/detect",
            r#""DeleteConfigRule""#,
            400,
            "wrong_shape",
            "got a string",
        ),
        case(
            "a number",
            "POST",
            "/detect",
            "42",
            400,
            "wrong_shape",
            "got a number",
        ),
        case(
            "null",
            "POST",
            "/detect",
            "null",
            400,
            "wrong_shape",
            "got null",
        ),
        case(
            "a boolean",
            "POST",
            "/detect",
            "true",
            400,
            "wrong_shape",
            "got a boolean",
        ),
        case(
            "empty object",
            "POST",
            "/detect",
            "{}",
            400,
            "wrong_shape",
            "none of the fields the model uses",
        ),
        case(
            "unrelated object",
            "POST",
            "/detect",
            r#"{"foo": 1, "bar": [2]}"#,
            400,
            "wrong_shape",
            "none of the fields the model uses",
        ),
        case(
            "empty batch",
            "POST",
            "/detect",
            "[]",
            400,
            "empty_batch",
            "the batch is empty",
        ),
        case(
            "batch of numbers",
            "POST",
            "/detect",
            "[1, 2]",
            400,
            "wrong_shape",
            "event 0 of the batch: an event must be a JSON object, got a number",
        ),
        case(
            "batch with a string",
            "POST",
            "/detect",
            format!("[{ev}, \"x\"]"),
            400,
            "wrong_shape",
            "event 1 of the batch: an event must be a JSON object, got a string",
        ),
        case(
            "nested batch",
            "POST",
            "/detect",
            format!("[[{ev}]]"),
            400,
            "wrong_shape",
            "event 0 of the batch: an event must be a JSON object, got an array",
        ),
        case(
            "batch with an unrelated object",
            "POST",
            "/detect",
            format!("[{ev}, {ev}, {{\"x\": 1}}]"),
            400,
            "wrong_shape",
            "event 2 of the batch: the event has none of the fields",
        ),
        case(
            "batch too large",
            "POST",
            "/detect",
            big_batch,
            400,
            "batch_too_large",
            "the batch has 1001 events; the limit is 1000",
        ),
        case(
            "body too large",
            "POST",
            "/detect",
            huge,
            413,
            "body_too_large",
            "limit",
        ),
        case(
            "GET /detect",
            "GET",
            "/detect",
            "",
            405,
            "method_not_allowed",
            "method GET is not allowed on /detect; use POST",
        ),
        case(
            "PUT /detect",
            "PUT",
            "/detect",
            ev,
            405,
            "method_not_allowed",
            "method PUT is not allowed on /detect; use POST",
        ),
        case(
            "DELETE /health",
            "DELETE",
            "/health",
            "",
            405,
            "method_not_allowed",
            "method DELETE is not allowed on /health; use GET",
        ),
        case(
            "POST /health",
            "POST",
            "/health",
            ev,
            405,
            "method_not_allowed",
            "use GET",
        ),
        case("root", "GET", "/", "", 404, "not_found", "no route for /"),
        case(
            "unknown route",
            "POST",
            "/anomaly",
            ev,
            404,
            "not_found",
            "no route for /anomaly",
        ),
        case(
            "below /detect",
            "POST",
            "/detect/extra",
            ev,
            404,
            "not_found",
            "no route for /detect/extra",
        ),
        case(
            "case matters",
            "GET",
            "/HEALTH",
            "",
            404,
            "not_found",
            "no route for /HEALTH",
        ),
    ];
    let mut form = case(
        "form body",
        "POST",
        "/detect",
        "eventName=x",
        400,
        "invalid_json",
        "whatever its Content-Type; it was application/x-www-form-urlencoded",
    );
    form.content_type = Some("application/x-www-form-urlencoded");
    v.push(form);
    v.push(case(
        "batch with null",
        "POST",
        "/detect",
        "[null]",
        400,
        "wrong_shape",
        "event 0 of the batch: an event must be a JSON object, got null",
    ));
    v.push(case(
        "batch with an empty object",
        "POST",
        "/detect",
        "[{}]",
        400,
        "wrong_shape",
        "event 0 of the batch: the event has none of the fields",
    ));
    v
}

fn check(c: &Case, status: u16, body: &Value, allow: Option<&str>, via: &str) {
    assert_eq!(status, c.status, "{via}: {}: {body}", c.name);
    assert_eq!(body["error"], json!(c.kind), "{via}: {}: {body}", c.name);
    let msg = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{via}: {}: no message in {body}", c.name));
    assert!(
        msg.contains(c.message),
        "{via}: {}: {msg:?} lacks {:?}",
        c.name,
        c.message
    );
    if c.status == 405 {
        assert!(allow.is_some(), "{via}: {}: 405 without Allow", c.name);
    }
}

#[test]
fn each_malformed_request_gets_its_4xx_from_the_router() {
    let view = ModelView::Ready(Arc::new(small_model(3)));
    let cases = cases();
    assert!(cases.len() >= 25);
    for c in &cases {
        let r = route(
            &view,
            &Limits::default(),
            c.method,
            c.path,
            c.content_type,
            &c.body,
        );
        check(c, r.status, &r.json(), r.allow, "router");
    }
}

#[tokio::test]
async fn each_malformed_request_gets_its_4xx_over_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    std::fs::write(&path, small_model(3).to_json()).unwrap();
    let state = AppState::new(
        Source::File(path),
        Limits::default(),
        Duration::from_secs(60),
    );
    state.reload().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(detection::serve::serve(listener, Arc::new(state)));
    for c in &cases() {
        let a = http(&addr, c.method, c.path, c.content_type, &c.body).await;
        check(c, a.status, &a.body, a.header("allow"), "socket");
        assert_eq!(
            a.header("content-type"),
            Some("application/json"),
            "{}",
            c.name
        );
    }
}

#[test]
fn without_a_model_health_and_detect_say_why() {
    let view = ModelView::Unavailable(Unavailable::NotPublished);
    let r = route(&view, &Limits::default(), "GET", "/health", None, b"");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "unavailable");
    assert_eq!(r.json()["reason"], "not_published");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("no model has been published yet"),
        "{}",
        r.json()
    );
    let r = route(
        &view,
        &Limits::default(),
        "POST",
        "/detect",
        None,
        br#"{"eventName": "X"}"#,
    );
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "model_unavailable");
    assert_eq!(r.json()["reason"], "not_published");
    // Bad input is still refused as such.
    let r = route(&view, &Limits::default(), "POST", "/detect", None, b"{");
    assert_eq!(r.status, 400);
}

#[test]
fn good_requests_answer_with_explanations() {
    let model = small_model(3);
    let version = model.version.clone();
    let view = ModelView::Ready(Arc::new(model));
    let old = br#"{"eventName": "DeleteConfigRule", "awsRegion": "us-east-1", "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0", "recipientAccountId": 999999999999, "p_event_time": "2024-06-27 03:15:22"}"#;
    let r = route(
        &view,
        &Limits::default(),
        "POST",
        "/detect",
        Some("application/json; charset=utf-8"),
        old,
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["is_anomaly"], true);
    assert_eq!(r.json()["prediction"], -1);
    assert_eq!(r.json()["model_version"], json!(version));
    assert!(r.json()["anomaly_score"].as_f64().unwrap() >= r.json()["threshold"].as_f64().unwrap());
    assert_eq!(r.json()["rarity_analysis"]["eventName"]["level"], "UNSEEN");
    assert_eq!(
        r.json()["rarity_analysis"]["recipientAccountId"]["value"],
        "999999999999"
    );
    assert_eq!(r.json()["model_info"]["training_samples"], 3000);
    assert!(
        r.json()["suspicious_features"]
            .as_array()
            .unwrap()
            .contains(&json!("eventName"))
    );
    // JSON sent with another Content-Type (as `curl -d` does) is still read.
    let r = route(
        &view,
        &Limits::default(),
        "POST",
        "/detect",
        Some("text/plain"),
        old,
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let r = route(&view, &Limits::default(), "GET", "/health/", None, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "healthy");
    assert_eq!(r.json()["service"], "anomaly-detection");
    assert_eq!(r.json()["model_version"], json!(version));
    assert!(r.json()["trained_at"].is_string() && r.json()["timestamp"].is_string());
}

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Every key the README documents, in the one-event and the batch answers, with the
/// values that tie them together.
#[test]
fn answers_carry_every_documented_key() {
    let model = small_model(3);
    let (version, samples) = (model.version.clone(), model.training_samples);
    let view = ModelView::Ready(Arc::new(model));
    let one = br#"{"eventName": "DeleteConfigRule", "awsRegion": "us-east-1", "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0", "recipientAccountId": 999999999999, "p_event_time": "2024-06-27 03:15:22"}"#;
    let r = route(&view, &Limits::default(), "POST", "/detect", None, one).json();
    assert_eq!(
        keys(&r),
        [
            "anomaly_score",
            "confidence",
            "evidence",
            "is_anomaly",
            "model_info",
            "model_version",
            "prediction",
            "principal",
            "rarity_analysis",
            "reasons",
            "score_range",
            "suspicious_features",
            "threshold",
            "timestamp"
        ]
    );
    assert_eq!(r["score_range"], json!({"min": 0.0, "max": 1.0}));
    assert_eq!(
        keys(&r["model_info"]),
        [
            "expected_anomaly_rate",
            "features_used",
            "threshold",
            "trained_at",
            "training_samples",
            "version"
        ]
    );
    assert_eq!(r["model_info"]["version"], json!(version));
    assert_eq!(r["model_info"]["training_samples"], json!(samples));
    assert_eq!(
        r["model_info"]["features_used"].as_array().unwrap().len(),
        8
    );
    assert!(r["timestamp"].as_str().unwrap().ends_with('Z'), "{r}");

    let mut batch = Vec::from(&b"["[..]);
    batch.extend_from_slice(one);
    batch.extend_from_slice(br#", {"eventName": "PutEvaluations"}, "#);
    batch.extend_from_slice(one);
    batch.push(b']');
    let r = route(&view, &Limits::default(), "POST", "/detect", None, &batch).json();
    assert_eq!(
        keys(&r),
        [
            "anomalies",
            "count",
            "model_info",
            "model_version",
            "results",
            "timestamp"
        ]
    );
    let results = r["results"].as_array().unwrap();
    assert_eq!(r["count"], 3);
    assert_eq!(results.len(), 3);
    let flagged = results.iter().filter(|x| x["is_anomaly"] == true).count();
    assert!(flagged >= 2, "{r}");
    assert_eq!(r["anomalies"], json!(flagged));
    assert_eq!(r["model_version"], json!(version));
    assert_eq!(keys(&r["model_info"]).len(), 6);
    assert_eq!(
        results[0]["rarity_analysis"]["eventName"]["level"],
        "UNSEEN"
    );
}

/// Thousands of mangled bodies, methods and paths: always an answer, never a 5xx
/// (503 needs a missing model, which is not the case here), never a panic.
#[test]
fn mangled_requests_never_give_a_server_error() {
    let view = ModelView::Ready(Arc::new(small_model(3)));
    let good = br#"[{"eventName": "DeleteConfigRule", "awsRegion": "us-east-1", "recipientAccountId": 999999999999, "p_event_time": "2024-06-27 03:15:22", "userIdentity": {"type": "Root"}}]"#;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let methods = ["POST", "GET", "PUT", "PATCH", "OPTIONS", "TRACE"];
    let paths = [
        "/detect",
        "/health",
        "/detect/",
        "/",
        "/x/../detect",
        "/detect?x=1",
        "//detect",
        "",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..5000 {
        let mut body = good.to_vec();
        for _ in 0..(next() % 6) {
            let i = (next() as usize) % body.len();
            match next() % 4 {
                0 => body[i] = next() as u8,
                1 => {
                    body.remove(i);
                }
                2 => body.insert(i, b"{}[]\",:0e-\\"[(next() % 11) as usize]),
                _ => body.truncate(i),
            }
            if body.is_empty() {
                break;
            }
        }
        let method = methods[(next() % 6) as usize];
        let method = if next() % 2 == 0 { "POST" } else { method };
        let path = paths[(next() % 8) as usize];
        let r = route(&view, &Limits::default(), method, path, None, &body);
        assert!(
            r.status < 500,
            "{method} {path} {:?} gave {}",
            String::from_utf8_lossy(&body),
            r.status
        );
        assert!(
            r.status == 200 || r.json()["message"].is_string(),
            "{}",
            r.json()
        );
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    // The mangling reaches both the happy path and the error paths.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
}
