//! A moto server per test, started on a free loopback port, behind the
//! strict-AWS layer.
//!
//! By default the endpoint a test gets is a [`FaultProxy`] in strict mode in
//! front of moto, so that every call answers as real AWS would where moto is
//! lenient (see [`crate::StrictAws`]). `TEST_AWS=moto` in the environment
//! gives moto itself, for debugging a test against plain moto.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fault_proxy::{FaultProxy, FaultRates};
use crate::strict::StrictAws;

/// Region every test account lives in.
pub const TEST_REGION: &str = "us-east-1";
/// The fixed account id moto answers for.
pub const TEST_ACCOUNT: &str = "123456789012";

/// A running moto server owned by one test, behind its strict layer;
/// killed when dropped.
pub struct LocalAws {
    child: Child,
    moto_addr: SocketAddr,
    strict: Option<FaultProxy>,
    addr: SocketAddr,
    endpoint: String,
}

impl LocalAws {
    /// Starts a fresh moto server and waits until it answers.
    ///
    /// Panics with instructions when `moto_server` is not installed: a test
    /// that needs the local cloud must never pass silently without it.
    pub async fn start() -> LocalAws {
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot start moto_server ({error}): the local cloud is missing; \
                         run `scripts/local-cloud.sh install` (the test command does it for you)"
                    )
                });
            let mut server = LocalAws {
                child,
                moto_addr: addr,
                strict: None,
                addr,
                endpoint: format!("http://{addr}"),
            };
            match server.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => {
                    if strict_wanted() {
                        let proxy = FaultProxy::start_strict(addr, FaultRates::default()).await;
                        server.addr = proxy.addr();
                        server.endpoint = proxy.endpoint_url();
                        server.strict = Some(proxy);
                    }
                    return server;
                }
                Err(error) => last_error = error,
            }
        }
        panic!("moto_server did not become ready: {last_error}");
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited early with {status}"));
            }
            if probe(self.moto_addr).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no answer on {} within {timeout:?}", self.addr));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `http://127.0.0.1:PORT` endpoint of this test's AWS: the strict
    /// layer in front of moto (moto itself with `TEST_AWS=moto`).
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    /// The socket address of [`LocalAws::endpoint_url`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// moto's own endpoint, without the strict layer: for checks that must
    /// see moto's lenient answer.
    pub fn moto_endpoint_url(&self) -> String {
        format!("http://{}", self.moto_addr)
    }

    /// moto's own socket address.
    pub fn moto_addr(&self) -> SocketAddr {
        self.moto_addr
    }

    /// The strict layer, unless `TEST_AWS=moto` turned it off.
    pub fn strict(&self) -> Option<&StrictAws> {
        self.strict.as_ref().and_then(FaultProxy::strict)
    }

    /// Credentials that act as the IAM role `role_name`: through the strict
    /// layer, their S3 and Secrets Manager calls are allowed only as far as
    /// that role's inline policies allow (read from moto at each call).
    /// Returns `(access_key_id, secret_access_key)`.
    pub fn role_credentials(&self, role_name: &str) -> (String, String) {
        let digest = role_name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        let access_key_id = format!("ASIA{digest:016X}");
        if let Some(strict) = self.strict() {
            strict.bind_credentials(&access_key_id, role_name);
        }
        (access_key_id, "strict-aws-role-secret".to_string())
    }

    /// An SDK configuration acting as the IAM role `role_name` (see
    /// [`LocalAws::role_credentials`]).
    pub async fn sdk_config_as_role(&self, role_name: &str) -> aws_config::SdkConfig {
        let (access_key_id, secret) = self.role_credentials(role_name);
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(TEST_REGION))
            .endpoint_url(self.endpoint_url())
            .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(
                aws_sdk_sts::config::Credentials::new(
                    access_key_id,
                    secret,
                    None,
                    None,
                    "test-harness-role",
                ),
            ))
            .load()
            .await
    }

    /// An SDK configuration pointing at this server with static test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// Clears every resource of this server (moto's reset API).
    pub async fn reset(&self) {
        let _ = raw_request(self.moto_addr, "POST", "/moto-api/reset").await;
        if let Some(strict) = self.strict() {
            strict.reset();
        }
    }
}

/// An SDK configuration for any endpoint (the moto server or a proxy in front of it).
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(TEST_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(
            aws_sdk_sts::config::Credentials::new("testing", "testing", None, None, "test-harness"),
        ))
        .load()
        .await
}

/// Whether tests run through the strict layer: always, unless `TEST_AWS=moto`.
fn strict_wanted() -> bool {
    std::env::var("TEST_AWS").map_or(true, |value| value != "moto")
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free loopback port")
}

async fn probe(addr: SocketAddr) -> bool {
    matches!(raw_request(addr, "GET", "/moto-api/").await, Ok(status) if status.starts_with("HTTP/1.") && status.contains(" 200"))
}

/// Sends a bodiless HTTP/1.0 request and returns the status line.
async fn raw_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_string())
}
