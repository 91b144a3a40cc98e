//! `serve`: plain HTTP on a port for local use and tests, answering through the same
//! function as the Lambda handler ([`routes::answer`]).

use crate::routes::{self, HttpAnswer, HttpRequest, Reply};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use std::sync::Arc;
use tokio::net::TcpListener;

fn response(answer: HttpAnswer) -> Response {
    let mut r = Response::new(Body::from(answer.body));
    *r.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            r.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    r
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    state.refresh_if_due().await;
    let (parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let limit = state.limits.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            let reply = Reply::error(
                413,
                "body_too_large",
                format!("the body is larger than the limit of {limit} bytes"),
            );
            let mut headers = vec![("content-type", "application/json".to_string())];
            headers.extend(state.cors.headers(header("origin")));
            return response(HttpAnswer {
                status: reply.status,
                headers,
                body: reply.body,
            });
        }
    };
    let path = parts.uri.path();
    let answer = routes::answer(
        &state.view(),
        &state.limits,
        &state.cors,
        HttpRequest {
            method: parts.method.as_str(),
            path,
            content_type: header("content-type"),
            origin: header("origin"),
            body: &bytes,
        },
    );
    tracing::debug!(status = answer.status, method = %parts.method, %path, "request");
    response(answer)
}

/// The HTTP router: every request goes to the shared answering function.
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
