//! CORS over a real socket: with `CORS_ALLOW_ORIGINS` set, a listed origin
//! is echoed in `Access-Control-Allow-Origin`; another origin, or no
//! variable, gets no CORS header.

mod common;

use std::io::{Read, Write};

use common::{small_model, spawn_serve};

/// `POST /detect` from `origin`; returns the answer's head, lower-cased.
fn detect_from(addr: &str, origin: &str) -> String {
    let body = r#"{"eventName": "ListBuckets", "awsRegion": "us-east-1"}"#;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /detect HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    assert!(head.starts_with("http/1.1 200"), "{answer}");
    head
}

#[test]
fn listed_origins_get_the_cors_header_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    std::fs::write(&model, small_model(3).to_json()).unwrap();
    let model = model.to_str().unwrap();

    let (_with, addr) = spawn_serve(&[
        ("MODEL_FILE", model),
        ("CORS_ALLOW_ORIGINS", "https://siem.example.com"),
    ]);
    let head = detect_from(&addr, "https://siem.example.com");
    assert!(
        head.contains("access-control-allow-origin: https://siem.example.com"),
        "{head}"
    );
    let head = detect_from(&addr, "https://evil.example.com");
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    let (_without, addr) = spawn_serve(&[("MODEL_FILE", model)]);
    let head = detect_from(&addr, "https://siem.example.com");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}
