//! The routing shared by the Lambda handler and `serve`: one function maps
//! (method, path, content type, body) to (status, JSON).
//!
//! Bad input is always a 4xx JSON error `{"error": <kind>, "message": <text>}`; nothing
//! here panics on input, and no input leads to a 500.

use crate::cors::Cors;
use anomaly::wire::WireError;
use anomaly::{Detection, Event, Model};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value as Json, json};
use std::sync::Arc;

/// The service name in `/health`.
pub const SERVICE: &str = "anomaly-detection";

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
    /// Largest accepted batch.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_batch: 1000,
        }
    }
}

/// A response: status, JSON body (written) and, for 405, the allowed methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body as written.
    pub body: Vec<u8>,
    /// `Allow` header value for 405 answers.
    pub allow: Option<&'static str>,
}

impl Reply {
    /// A reply with `body` written as JSON.
    fn with(status: u16, body: &impl Serialize) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
            allow: None,
        }
    }

    fn ok(body: &impl Serialize) -> Reply {
        Reply::with(200, body)
    }

    /// An error reply.
    pub fn error(status: u16, kind: &str, message: impl Into<String>) -> Reply {
        Reply::with(status, &json!({"error": kind, "message": message.into()}))
    }

    /// The body read back as a JSON value.
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }
}

/// Why no model is loaded, as the public answer says it.
///
/// Public answers never carry the detail (S3 errors, bucket names, keys,
/// ARNs, file paths): only one of these reasons and its fixed message. The
/// detail is in the function's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The first load has not happened yet.
    NotLoaded,
    /// The store has no model yet (the pointer does not exist).
    NotPublished,
    /// The store could not be read (permissions, a missing bucket, the network...).
    StoreUnavailable,
    /// The published model could not be used (invalid, or another format version).
    ModelInvalid,
}

impl Unavailable {
    /// The `reason` field of the answer.
    pub fn code(self) -> &'static str {
        match self {
            Unavailable::NotLoaded => "not_loaded",
            Unavailable::NotPublished => "not_published",
            Unavailable::StoreUnavailable => "store_unavailable",
            Unavailable::ModelInvalid => "model_invalid",
        }
    }

    /// The `message` field of the answer.
    pub fn message(self) -> &'static str {
        match self {
            Unavailable::NotLoaded => "no model has been loaded yet",
            Unavailable::NotPublished => {
                "no model has been published yet; the training function publishes one when it has run"
            }
            Unavailable::StoreUnavailable => {
                "the model store cannot be read at the moment; the details are in the function's log"
            }
            Unavailable::ModelInvalid => {
                "the published model cannot be used by this build; the details are in the function's log"
            }
        }
    }
}

/// What the router knows about the model: the loaded model, or why there is none.
#[derive(Debug, Clone)]
pub enum ModelView {
    /// A model is loaded.
    Ready(Arc<Model>),
    /// No model is loaded, with the public reason.
    Unavailable(Unavailable),
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One HTTP request, as both front ends see it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// The path (without API Gateway's stage), possibly with a query string.
    pub path: &'a str,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// One HTTP answer: status, headers (lower-case names) and body bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The body (JSON, or empty for a preflight).
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn route_path(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or("");
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

/// Answers one request: the CORS preflight (`OPTIONS` on a route, when CORS
/// is configured), else [`route`], with `Content-Type`, `Allow` and the CORS
/// headers. The Lambda handler and `serve` both answer through this.
pub fn answer(model: &ModelView, limits: &Limits, cors: &Cors, req: HttpRequest<'_>) -> HttpAnswer {
    let path = route_path(req.path);
    if req.method == "OPTIONS" && cors.enabled() && matches!(path, "/health" | "/detect") {
        return HttpAnswer {
            status: 204,
            headers: cors.preflight_headers(path, req.origin),
            body: Vec::new(),
        };
    }
    let reply = route(
        model,
        limits,
        req.method,
        req.path,
        req.content_type,
        req.body,
    );
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(allow) = reply.allow {
        let allow = if cors.enabled() {
            format!("{allow}, OPTIONS")
        } else {
            allow.to_string()
        };
        headers.push(("allow", allow));
    }
    headers.extend(cors.headers(req.origin));
    HttpAnswer {
        status: reply.status,
        headers,
        body: reply.body,
    }
}

/// Routes one request.
pub fn route(
    model: &ModelView,
    limits: &Limits,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let path = route_path(path);
    match path {
        "/health" => match method {
            "GET" | "HEAD" => health(model),
            _ => method_not_allowed(method, path, "GET"),
        },
        "/detect" => match method {
            "POST" => detect(model, limits, content_type, body),
            _ => method_not_allowed(method, path, "POST"),
        },
        _ => Reply::error(
            404,
            "not_found",
            format!("no route for {path}; the routes are GET /health and POST /detect"),
        ),
    }
}

fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Reply {
    let mut r = Reply::error(
        405,
        "method_not_allowed",
        format!("method {method} is not allowed on {path}; use {allow}"),
    );
    r.allow = Some(allow);
    r
}

fn health(model: &ModelView) -> Reply {
    match model {
        ModelView::Ready(m) => Reply::ok(&json!({
            "status": "healthy",
            "service": SERVICE,
            "timestamp": now(),
            "model_version": m.version,
            "trained_at": m.trained_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "training_samples": m.training_samples,
            "threshold": m.threshold(),
        })),
        ModelView::Unavailable(reason) => Reply::with(
            503,
            &json!({
                "status": "unavailable",
                "service": SERVICE,
                "timestamp": now(),
                "error": "model_unavailable",
                "reason": reason.code(),
                "message": reason.message(),
            }),
        ),
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// 503: no model to score with.
fn unavailable(reason: &Unavailable) -> Reply {
    Reply::with(
        503,
        &json!({"error": "model_unavailable", "message": reason.message(), "reason": reason.code()}),
    )
}

/// The answer for one event: the detection, and what scored it.
#[derive(Serialize)]
struct OneAnswer<'a> {
    #[serde(flatten)]
    detection: &'a Detection,
    score_range: ScoreRange,
    model_info: ModelInfo<'a>,
    timestamp: String,
}

/// The range of `anomaly_score`.
#[derive(Serialize)]
struct ScoreRange {
    min: f64,
    max: f64,
}

/// The answer for a batch.
#[derive(Serialize)]
struct BatchAnswer<'a> {
    count: usize,
    anomalies: usize,
    results: &'a [Detection],
    model_version: &'a str,
    model_info: ModelInfo<'a>,
    timestamp: String,
}

/// What the answers say of the model.
#[derive(Serialize)]
struct ModelInfo<'a> {
    version: &'a str,
    trained_at: String,
    features_used: &'static [&'static str],
    training_samples: u64,
    expected_anomaly_rate: f64,
    threshold: f64,
}

impl<'a> ModelInfo<'a> {
    fn of(m: &'a Model) -> ModelInfo<'a> {
        ModelInfo {
            version: &m.version,
            trained_at: m.trained_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            features_used: &anomaly::model::FIELDS,
            training_samples: m.training_samples,
            expected_anomaly_rate: m.params.contamination,
            threshold: m.threshold(),
        }
    }
}

/// The answer for one event, written straight from the detection.
fn one_answer(model: &Model, event: &Event) -> Reply {
    Reply::ok(&OneAnswer {
        detection: &model.detect(event),
        score_range: ScoreRange { min: 0.0, max: 1.0 },
        model_info: ModelInfo::of(model),
        timestamp: now(),
    })
}

fn detect(model: &ModelView, limits: &Limits, content_type: Option<&str>, body: &[u8]) -> Reply {
    if body.len() > limits.max_body_bytes {
        return Reply::error(
            413,
            "body_too_large",
            format!(
                "the body has {} bytes; the limit is {}",
                body.len(),
                limits.max_body_bytes
            ),
        );
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Reply::error(
            400,
            "empty_body",
            "the body is empty; send an event object or an array of event objects",
        );
    }
    let invalid_json = |e: serde_json::Error| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "unexpected end of JSON",
            serde_json::error::Category::Io => "unreadable body",
            _ => "invalid JSON",
        };
        // The body is read as JSON whatever its Content-Type (clients such as
        // `curl -d` send form types); say so when the type was not JSON.
        let hint = match content_type {
            Some(ct) if !ct.to_ascii_lowercase().contains("json") => {
                format!(" (the body is read as JSON whatever its Content-Type; it was {ct})")
            }
            _ => String::new(),
        };
        Reply::error(
            400,
            "invalid_json",
            format!(
                "{what} at line {}, column {}: {e}{hint}",
                e.line(),
                e.column()
            ),
        )
    };
    // One event object: read straight from the text, keeping only what the model
    // reads.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let event = match Event::from_slice(body) {
            Ok(event) => event,
            Err(WireError::Json(e)) => return invalid_json(e),
            Err(WireError::Event(err)) => {
                return match model {
                    ModelView::Ready(_) => Reply::error(400, "wrong_shape", err.to_string()),
                    ModelView::Unavailable(reason) => unavailable(reason),
                };
            }
        };
        return match model {
            ModelView::Ready(model) => one_answer(model, &event),
            ModelView::Unavailable(reason) => unavailable(reason),
        };
    }
    let value: Json = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return invalid_json(e),
    };
    // An object was read above: what is left is a batch, or the wrong shape.
    let items = match &value {
        Json::Array(items) => {
            if items.is_empty() {
                return Reply::error(
                    400,
                    "empty_batch",
                    "the batch is empty; send at least one event",
                );
            }
            if items.len() > limits.max_batch {
                return Reply::error(
                    400,
                    "batch_too_large",
                    format!(
                        "the batch has {} events; the limit is {}",
                        items.len(),
                        limits.max_batch
                    ),
                );
            }
            items
        }
        other => {
            return Reply::error(
                400,
                "wrong_shape",
                format!(
                    "the body must be an event object or an array of event objects, got {}",
                    json_type(other)
                ),
            );
        }
    };
    let model = match model {
        ModelView::Ready(m) => m,
        ModelView::Unavailable(reason) => return unavailable(reason),
    };
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match Event::from_json(item) {
            Ok(e) => parsed.push(e),
            Err(err) => {
                return Reply::error(400, "wrong_shape", format!("event {i} of the batch: {err}"));
            }
        }
    }
    let results: Vec<Detection> = parsed.iter().map(|e| model.detect(e)).collect();
    Reply::ok(&BatchAnswer {
        count: results.len(),
        anomalies: results.iter().filter(|r| r.is_anomaly).count(),
        results: &results,
        model_version: &model.version,
        model_info: ModelInfo::of(model),
        timestamp: now(),
    })
}
