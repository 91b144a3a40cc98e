//! The Lambda handler: API Gateway REST (v1) proxy events in, proxy responses out.
//!
//! The event is read as `lambda_http`'s API Gateway v1 type
//! ([`ApiGatewayProxyRequest`]) by this handler rather than by the runtime, so
//! that an event of another kind is reported to Lambda with a readable
//! `errorType` (`InvalidEvent`) instead of a Rust type path. The answer comes
//! from [`routes::answer`], as in `serve`.

use crate::routes::{self, HttpRequest};
use crate::state::AppState;
use base64::Engine;
use lambda_http::Body;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent};
use std::sync::Arc;

/// An error reported to Lambda (the invocation fails; API Gateway answers 502).
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The event is not an API Gateway REST proxy event.
    #[error("the event is not an API Gateway REST (v1) proxy event: {0}")]
    InvalidEvent(String),
}

impl LambdaError {
    /// The `errorType` Lambda reports.
    pub fn error_type(&self) -> &'static str {
        match self {
            LambdaError::InvalidEvent(_) => "InvalidEvent",
        }
    }
}

impl From<LambdaError> for Diagnostic {
    fn from(error: LambdaError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_string(),
            error_message: error.to_string(),
        }
    }
}

fn header<'a>(event: &'a ApiGatewayProxyRequest, name: &str) -> Option<&'a str> {
    event
        .headers
        .get(name)
        .or_else(|| event.multi_value_headers.get(name))
        .and_then(|v| v.to_str().ok())
}

/// Answers one API Gateway event.
pub async fn handle_event(
    state: &AppState,
    event: serde_json::Value,
) -> Result<ApiGatewayProxyResponse, LambdaError> {
    let event: ApiGatewayProxyRequest =
        serde_json::from_value(event).map_err(|e| LambdaError::InvalidEvent(e.to_string()))?;
    state.refresh_if_due().await;
    // `path` is the resource path without the stage prefix API Gateway REST adds.
    let path = event.path.clone().unwrap_or_else(|| "/".to_string());
    let decoded;
    let body: &[u8] = match (&event.body, event.is_base64_encoded) {
        (None, _) => b"",
        (Some(text), false) => text.as_bytes(),
        (Some(text), true) => match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => {
                decoded = bytes;
                &decoded
            }
            Err(e) => {
                return Err(LambdaError::InvalidEvent(format!(
                    "isBase64Encoded is true but the body is not base64: {e}"
                )));
            }
        },
    };
    let answer = routes::answer(
        &state.view(),
        &state.limits,
        &state.cors,
        HttpRequest {
            method: event.http_method.as_str(),
            path: &path,
            content_type: header(&event, "content-type"),
            origin: header(&event, "origin"),
            body,
        },
    );
    tracing::debug!(status = answer.status, method = %event.http_method, %path, "request");
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(answer.status);
    response.multi_value_headers = headers;
    response.body = (!answer.body.is_empty())
        .then(|| Body::Text(String::from_utf8_lossy(&answer.body).into_owned()));
    response.is_base64_encoded = false;
    Ok(response)
}

/// Runs the Lambda runtime loop.
pub async fn run(state: Arc<AppState>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<serde_json::Value>| {
            let state = state.clone();
            async move {
                handle_event(&state, event.payload).await.inspect_err(|error| {
                    tracing::error!(error_type = error.error_type(), %error, "invocation failed")
                })
            }
        },
    ))
    .await
}
