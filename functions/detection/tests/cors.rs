//! CORS over a real socket (`serve`) and through the shared answering function:
//! `Access-Control-Allow-Origin` holds exactly one origin or `*`; with several
//! allowed origins the function answers the preflight (`OPTIONS`, 204) and echoes
//! only a listed origin, with `Vary: Origin`; an unlisted origin, or no
//! `CORS_ALLOW_ORIGINS`, gets no CORS header.

mod common;

use std::io::{Read, Write};

use common::{small_model, spawn_serve};
use detection::cors::Cors;
use detection::routes::{HttpRequest, Limits, ModelView, answer};

/// One request from `origin` with extra header lines; returns the status and the
/// answer's head, lower-cased.
fn request(addr: &str, method: &str, origin: &str, extra: &str) -> (u16, String) {
    let body = if method == "POST" {
        r#"{"eventName": "ListBuckets", "awsRegion": "us-east-1"}"#
    } else {
        ""
    };
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} /detect HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

fn detect_from(addr: &str, origin: &str) -> String {
    let (status, head) = request(addr, "POST", origin, "");
    assert_eq!(status, 200, "{head}");
    head
}

fn preflight_from(addr: &str, origin: &str) -> (u16, String) {
    request(
        addr,
        "OPTIONS",
        origin,
        "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n",
    )
}

fn allow_origin_lines(head: &str) -> Vec<&str> {
    head.lines()
        .filter(|l| l.starts_with("access-control-allow-origin:"))
        .collect()
}

#[test]
fn several_origins_over_a_socket_one_echoed_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    std::fs::write(&model, small_model(3).to_json()).unwrap();
    let model = model.to_str().unwrap();

    let (_with, addr) = spawn_serve(&[
        ("MODEL_FILE", model),
        (
            "CORS_ALLOW_ORIGINS",
            "https://siem.example.com,https://soc.example.com",
        ),
    ]);
    for origin in ["https://siem.example.com", "https://soc.example.com"] {
        let head = detect_from(&addr, origin);
        assert_eq!(
            allow_origin_lines(&head),
            vec![format!("access-control-allow-origin: {origin}").as_str()],
            "{head}"
        );
        assert!(head.contains("vary: origin"), "{head}");

        let (status, head) = preflight_from(&addr, origin);
        assert_eq!(status, 204, "{head}");
        assert_eq!(
            allow_origin_lines(&head),
            vec![format!("access-control-allow-origin: {origin}").as_str()],
            "{head}"
        );
        assert!(
            head.contains("access-control-allow-methods: post, options"),
            "{head}"
        );
        assert!(
            head.contains("access-control-allow-headers: content-type"),
            "{head}"
        );
        assert!(head.contains("vary: origin"), "{head}");
    }
    let head = detect_from(&addr, "https://evil.example.com");
    assert!(!head.contains("access-control-"), "{head}");
    let (status, head) = preflight_from(&addr, "https://evil.example.com");
    assert_eq!(status, 204, "{head}");
    assert!(!head.contains("access-control-"), "{head}");

    // Without the variable: no CORS header, and OPTIONS is not a route.
    let (_without, addr) = spawn_serve(&[("MODEL_FILE", model)]);
    let head = detect_from(&addr, "https://siem.example.com");
    assert!(!head.contains("access-control-"), "{head}");
    let (status, head) = preflight_from(&addr, "https://siem.example.com");
    assert_eq!(status, 405, "{head}");
}

#[test]
fn the_answering_function_handles_preflight_and_origins() {
    let view = ModelView::Ready(std::sync::Arc::new(small_model(5)));
    let cors = Cors::from_list("https://siem.example.com,https://soc.example.com");
    let req = |method, path, origin| HttpRequest {
        method,
        path,
        content_type: Some("application/json"),
        origin,
        body: br#"{"eventName": "ListBuckets"}"#,
    };
    let a = answer(
        &view,
        &Limits::default(),
        &cors,
        req("OPTIONS", "/health", Some("https://siem.example.com")),
    );
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://siem.example.com")
    );
    assert_eq!(
        a.header("access-control-allow-methods"),
        Some("GET, OPTIONS")
    );

    let a = answer(
        &view,
        &Limits::default(),
        &cors,
        req("POST", "/detect", Some("https://soc.example.com")),
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://soc.example.com")
    );
    assert_eq!(a.header("vary"), Some("Origin"));

    // OPTIONS on an unknown path is still a 404; an unlisted origin gets nothing.
    let a = answer(
        &view,
        &Limits::default(),
        &cors,
        req("OPTIONS", "/metrics", Some("https://soc.example.com")),
    );
    assert_eq!(a.status, 404);
    let a = answer(
        &view,
        &Limits::default(),
        &cors,
        req("POST", "/detect", Some("https://evil.example.com")),
    );
    assert_eq!(a.header("access-control-allow-origin"), None);

    // Any origin: `*`, whatever the request's origin.
    let a = answer(
        &view,
        &Limits::default(),
        &Cors::from_list("*"),
        req("POST", "/detect", Some("https://any.example.com")),
    );
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
}
