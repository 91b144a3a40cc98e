//! Helpers shared by the detection tests: a small trained model, a raw HTTP/1.1 client
//! and the `detection` binary as a child process.

#![allow(dead_code)]

use anomaly::generator::Generator;
use anomaly::{Event, Model, TrainParams};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A model trained on 3,000 events of the synthetic organisation.
pub fn small_model(seed: u64) -> Model {
    let events: Vec<Event> = Generator::new(seed)
        .normal_events(3000)
        .iter()
        .map(|r| Event::from_json(r).unwrap())
        .collect();
    Model::train(&events, TrainParams::default()).unwrap()
}

/// Asserts that a public answer leaks nothing of the model store: not the
/// bucket, not the key, no ARN, no S3 error code.
pub fn assert_no_internals(body: &str, bucket: &str) {
    for secret in [
        bucket,
        "latest.json",
        "models/",
        "arn:",
        "s3://",
        "AccessDenied",
        "NoSuchBucket",
        "NoSuchKey",
        "s3:ListBucket",
    ] {
        assert!(
            !body.contains(secret),
            "the public answer shows {secret:?}: {body}"
        );
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request over a new connection and reads the whole answer.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) before reading the whole body and close.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        payload = dechunk(&payload);
    }
    let body = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&payload).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&payload)
            )
        })
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

/// The `detection` binary, killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `detection serve --port 0` with `envs` and returns it with its address.
pub fn spawn_serve(envs: &[(&str, &str)]) -> (Proc, String) {
    spawn_serve_with(envs, Stdio::inherit())
}

/// As [`spawn_serve`], with the logs (stderr) written to `log`.
pub fn spawn_serve_logged(envs: &[(&str, &str)], log: &std::path::Path) -> (Proc, String) {
    let file = std::fs::File::create(log).expect("a log file");
    spawn_serve_with(envs, Stdio::from(file))
}

fn spawn_serve_with(envs: &[(&str, &str)], stderr: Stdio) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detection"));
    cmd.args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the detection binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Proc(child), addr)
}
