//! A container registry per test (the `docker-registry` package, Docker's
//! distribution server), standing in for ECR's registry endpoint, and a
//! check that the Docker daemon the image tests build with answers.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running registry owned by one test; killed when dropped.
pub struct LocalRegistry {
    child: Child,
    addr: SocketAddr,
    _storage: tempfile::TempDir,
}

impl LocalRegistry {
    /// Starts a registry that stores pushes in a temporary directory.
    pub async fn start() -> LocalRegistry {
        LocalRegistry::start_with(false).await
    }

    /// Starts a registry in read-only mode: every push is refused.
    pub async fn start_read_only() -> LocalRegistry {
        LocalRegistry::start_with(true).await
    }

    async fn start_with(read_only: bool) -> LocalRegistry {
        let storage = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("no free loopback port");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  maintenance:\n    readonly:\n      enabled: {read_only}\nhttp:\n  addr: {addr}\n",
            root = storage.path().join("data").display(),
        );
        let config_path = storage.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start docker-registry ({error}): the local registry is missing; \
                     run `scripts/local-cloud.sh install` (the test command does it for you)"
                )
            });
        let mut registry = LocalRegistry {
            child,
            addr,
            _storage: storage,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited early with {status}");
            }
            if let Ok((200, _)) = registry.head("/v2/", "").await {
                return registry;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`, as image names and `[registry] endpoint` spell it.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The digest the registry has for `repository:tag`, if any.
    pub async fn digest(&self, repository: &str, tag: &str) -> Option<String> {
        let accept = "application/vnd.docker.distribution.manifest.v2+json";
        match self
            .head(&format!("/v2/{repository}/manifests/{tag}"), accept)
            .await
        {
            Ok((200, headers)) => headers.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| value.trim().to_string())
            }),
            _ => None,
        }
    }

    /// The tags of a repository (empty when it has none).
    pub async fn tags(&self, repository: &str) -> Vec<String> {
        let Ok(body) = self.get(&format!("/v2/{repository}/tags/list")).await else {
            return Vec::new();
        };
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["tags"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|tag| tag.as_str().map(str::to_string))
            .collect()
    }

    async fn head(&self, path: &str, accept: &str) -> std::io::Result<(u16, String)> {
        let response = self.request("HEAD", path, accept).await?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Ok((status, response))
    }

    async fn get(&self, path: &str) -> std::io::Result<String> {
        let response = self.request("GET", path, "").await?;
        Ok(response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default())
    }

    async fn request(&self, method: &str, path: &str, accept: &str) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await?;
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.addr);
        if !accept.is_empty() {
            request.push_str(&format!("Accept: {accept}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panics unless `docker info` answers: the image tests need the daemon and
/// must never pass silently without it.
pub fn require_docker() {
    let output = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "the Docker daemon does not answer: {}; run `scripts/local-cloud.sh start` \
             (or start dockerd) before the image tests",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => panic!(
            "cannot run docker ({error}); run `scripts/local-cloud.sh install`, then start dockerd"
        ),
    }
}
