//! `controller run` as a child process: its JSON log lines collected, its
//! HTTP endpoints read over a real socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::controller_command;

/// A running daemon with its JSON log lines collected.
pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    address: String,
}

impl Daemon {
    pub async fn start(config: &Path, mode: &str, interval: &str) -> Daemon {
        Daemon::start_with(config, mode, interval, &[]).await
    }

    /// Like [`Daemon::start`], with more environment variables.
    pub async fn start_with(
        config: &Path,
        mode: &str,
        interval: &str,
        environment: &[(&str, &str)],
    ) -> Daemon {
        let mut child = controller_command(&[
            "run",
            config.to_str().unwrap(),
            "--mode",
            mode,
            "--interval",
            interval,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--lease-ttl",
            "10s",
        ])
        .envs(environment.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut daemon = Daemon {
            child,
            lines,
            address: String::new(),
        };
        let listening = daemon
            .wait_log(Duration::from_secs(20), |line| {
                line["fields"]["message"] == "listening"
            })
            .await;
        daemon.address = listening["fields"]["address"].as_str().unwrap().to_string();
        daemon
    }

    pub fn logs(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn dump(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub async fn wait_log(&self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().into_iter().find(|line| matches(line)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no matching log line within {timeout:?}:\n{}",
                self.dump()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.address, path)
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status").1).expect("/status is JSON")
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").1
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").0 != 200 {
            assert!(Instant::now() < deadline, "never ready:\n{}", self.dump());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running:\n{}",
                self.dump()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(30)).await;
        assert!(status.success(), "{status:?}:\n{}", self.dump());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.1 GET; returns the status and the body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("daemon listens");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The value of one sample line (`name{labels} value`) in a metrics text.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
