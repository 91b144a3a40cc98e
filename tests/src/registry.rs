//! A container registry per test (the `docker-registry` package, Docker's
//! distribution server), standing in for ECR's registry endpoint, and a
//! check that the Docker daemon the image tests build with answers.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type (a multi-architecture image).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

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

    /// Uploads `content` as a blob of `repository`; returns its digest.
    pub async fn push_blob(&self, repository: &str, content: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(content)));
        let (status, headers, _) = self
            .send(
                "POST",
                &format!("/v2/{repository}/blobs/uploads/"),
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(status, 202, "the registry refused to start an upload");
        let location = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.clone())
            .expect("an upload has a location");
        let location = location
            .strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or(&location)
            .to_string();
        let separator = if location.contains('?') { '&' } else { '?' };
        let (status, _, body) = self
            .send(
                "PUT",
                &format!("{location}{separator}digest={digest}"),
                &[("Content-Type", "application/octet-stream")],
                content.to_vec(),
            )
            .await;
        assert_eq!(status, 201, "the registry refused the blob: {body}");
        digest
    }

    /// Stores `manifest` of `media_type` as `repository:reference`; returns
    /// its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &serde_json::Value,
    ) -> String {
        let body = manifest.to_string().into_bytes();
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
        let (status, _, answer) = self
            .send(
                "PUT",
                &format!("/v2/{repository}/manifests/{reference}"),
                &[("Content-Type", media_type)],
                body,
            )
            .await;
        assert_eq!(status, 201, "the registry refused the manifest: {answer}");
        digest
    }

    /// Pushes a one-layer image for `architecture` (`amd64`, `arm64`) as a
    /// single OCI manifest, without Docker; returns the manifest's digest.
    pub async fn push_test_image(&self, repository: &str, tag: &str, architecture: &str) -> String {
        let layer = self
            .push_blob(
                repository,
                format!("layer of {repository}:{tag}").as_bytes(),
            )
            .await;
        let config = serde_json::json!({
            "architecture": architecture,
            "os": "linux",
            "config": {"Entrypoint": ["/function"]},
            "rootfs": {"type": "layers", "diff_ids": [layer]}
        })
        .to_string();
        let config_digest = self.push_blob(repository, config.as_bytes()).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": format!("layer of {repository}:{tag}").len()}]
        });
        self.push_manifest(repository, tag, OCI_MANIFEST, &manifest)
            .await
    }

    /// Pushes an OCI index over the given manifests (a multi-architecture
    /// image, as BuildKit pushes by default); returns the index's digest.
    pub async fn push_test_index(
        &self,
        repository: &str,
        tag: &str,
        manifests: &[(&str, &str)],
    ) -> String {
        let entries: Vec<serde_json::Value> = manifests
            .iter()
            .map(|(digest, architecture)| {
                serde_json::json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": 1,
                    "platform": {"architecture": architecture, "os": "linux"}
                })
            })
            .collect();
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        self.push_manifest(repository, tag, OCI_INDEX, &index).await
    }

    /// One HTTP/1.0 request with a body: status, headers, body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Vec<(String, String)>, String) {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("the registry accepts connections");
        let mut request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(&body);
        stream
            .write_all(&bytes)
            .await
            .expect("send to the registry");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read the registry's answer");
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
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
