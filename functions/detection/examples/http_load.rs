//! Benchmark: `/detect` throughput over HTTP.
//!
//! `http_load URL BODY_FILE CONNECTIONS SECONDS` keeps CONNECTIONS keep-alive HTTP/1.1
//! connections busy posting the body for SECONDS and prints JSON with requests per
//! second, latency percentiles and the count of non-200 answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn worker(
    addr: String,
    path: String,
    body: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> (Vec<f64>, usize) {
    let mut lat = Vec::new();
    let mut errors = 0;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    'conn: while !stop.load(Ordering::Relaxed) {
        let Ok(s) = TcpStream::connect(&addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        s.set_nodelay(true).ok();
        let mut s = BufReader::new(s);
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let mut req = head.clone().into_bytes();
            req.extend_from_slice(&body);
            if s.get_mut().write_all(&req).await.is_err() {
                continue 'conn;
            }
            let mut line = String::new();
            if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                continue 'conn;
            }
            let ok = line.split(' ').nth(1) == Some("200");
            let mut len = 0usize;
            let mut close = false;
            loop {
                let mut h = String::new();
                if s.read_line(&mut h).await.unwrap_or(0) == 0 {
                    continue 'conn;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("connection:") && lower.contains("close") {
                    close = true;
                }
            }
            let mut buf = vec![0u8; len];
            if s.read_exact(&mut buf).await.is_err() {
                continue 'conn;
            }
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            if !ok {
                errors += 1;
            }
            if close {
                continue 'conn;
            }
        }
    }
    (lat, errors)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: http_load URL BODY_FILE CONNECTIONS SECONDS");
        std::process::exit(2);
    }
    let url = args[1].strip_prefix("http://").expect("http:// URL");
    let (addr, path) = url
        .split_once('/')
        .map(|(a, p)| (a.to_string(), format!("/{p}")))
        .unwrap_or((url.to_string(), "/".into()));
    let body = Arc::new(std::fs::read(&args[2]).expect("body file"));
    let conns: usize = args[3].parse().unwrap();
    let secs: f64 = args[4].parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(worker(
                addr.clone(),
                path.clone(),
                body.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p) as usize]
        }
    };
    println!(
        "{}",
        serde_json::json!({"requests": lat.len(), "rps": lat.len() as f64 / elapsed, "p50_us": pct(0.5), "p99_us": pct(0.99), "errors": errors, "connections": conns})
    );
}
