//! `serve`: plain HTTP on a port for local use and tests, with the same routing as the
//! Lambda handler.

use crate::routes::{self, Reply};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use std::sync::Arc;
use tokio::net::TcpListener;

fn response(reply: &Reply, allow_origin: Option<&str>) -> Response {
    let mut r = Response::new(Body::from(reply.body_bytes()));
    *r.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(allow) = reply.allow {
        r.headers_mut()
            .insert("allow", HeaderValue::from_static(allow));
    }
    if let Some(origin) = allow_origin.and_then(|origin| HeaderValue::from_str(origin).ok()) {
        r.headers_mut()
            .insert("access-control-allow-origin", origin);
        r.headers_mut()
            .insert("vary", HeaderValue::from_static("Origin"));
    }
    r
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    state.refresh_if_due().await;
    let (parts, body) = req.into_parts();
    let limit = state.limits.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return response(
                &Reply::error(
                    413,
                    "body_too_large",
                    format!("the body is larger than the limit of {limit} bytes"),
                ),
                None,
            );
        }
    };
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let path = parts.uri.path();
    let reply = routes::route(
        &state.view(),
        &state.limits,
        parts.method.as_str(),
        path,
        content_type,
        &bytes,
    );
    tracing::debug!(status = reply.status, method = %parts.method, %path, "request");
    let origin = parts.headers.get("origin").and_then(|v| v.to_str().ok());
    response(&reply, crate::cors::allow_origin(origin).as_deref())
}

/// The HTTP router: every request goes to the shared routing function.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
