//! The Lambda handler: API Gateway REST (v1) proxy events through `lambda_http`.

use crate::routes::{self, Reply};
use crate::state::AppState;
use lambda_http::{Body, Request, RequestExt, Response};
use std::sync::Arc;

/// Turns a reply into an HTTP response.
pub fn response(reply: &Reply, allow_origin: Option<&str>) -> Response<Body> {
    let mut b = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json");
    if let Some(allow) = reply.allow {
        b = b.header("allow", allow);
    }
    if let Some(origin) = allow_origin {
        b = b
            .header("access-control-allow-origin", origin)
            .header("vary", "Origin");
    }
    b.body(Body::from(reply.body_bytes()))
        .unwrap_or_else(|_| Response::new(Body::from("{}")))
}

/// Handles one API Gateway request.
pub async fn handle(
    state: Arc<AppState>,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    state.refresh_if_due().await;
    // The path without the stage prefix that API Gateway REST adds.
    let path = req.raw_http_path().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reply = routes::route(
        &state.view(),
        &state.limits,
        req.method().as_str(),
        &path,
        content_type.as_deref(),
        req.body().as_ref(),
    );
    tracing::debug!(status = reply.status, method = %req.method(), %path, "request");
    let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
    Ok(response(
        &reply,
        crate::cors::allow_origin(origin).as_deref(),
    ))
}

/// Runs the Lambda runtime loop.
pub async fn run(state: Arc<AppState>) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_http::service_fn(move |req: Request| {
        handle(state.clone(), req)
    }))
    .await
}
