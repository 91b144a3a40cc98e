//! The AWS Lambda Runtime Interface Emulator (RIE) per test.
//!
//! AWS ships the emulator that Lambda's own container images use for local
//! runs: it serves the Lambda Runtime API to a function's bootstrap, runs the
//! bootstrap as its child (with `AWS_LAMBDA_RUNTIME_API` set), and accepts
//! invocations on `POST /2015-03-31/functions/function/invocations`, answering
//! with the function's result or its `{"errorType", "errorMessage"}`.
//! `scripts/local-cloud.sh install` puts the binary at [`RIE_PATH`] (taken from
//! the aws-sam-cli wheel; the `sam` command itself is never run).
//!
//! [`LambdaEmulator::binary`] runs a function binary of this machine under the
//! emulator; [`LambdaEmulator::image`] runs a function image in Docker with the
//! emulator mounted as its entrypoint, as Lambda would run it. Both listen on
//! free loopback ports, capture everything the emulator and the function
//! print ([`LambdaEmulator::output`]), and are stopped when the handle is
//! dropped (the process by its own pid, the container by its own name).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// Where `scripts/local-cloud.sh install` puts the emulator.
pub const RIE_PATH: &str = "/usr/local/bin/aws-lambda-rie";

/// The invocation path of the emulator (Lambda's Invoke API, one function).
pub const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

/// How long an invocation may take before the test fails (training runs in
/// the debug profile need a few seconds, the emulator's own limit is 300 s).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// The emulator binary: `AWS_LAMBDA_RIE` when set, else [`RIE_PATH`].
///
/// Panics with the install hint when it is missing: a test that needs the
/// local cloud must fail loudly, never pass without it.
pub fn rie_path() -> PathBuf {
    installed(
        std::env::var_os("AWS_LAMBDA_RIE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(RIE_PATH)),
    )
}

/// `path` when the emulator is there; a panic with the install hint otherwise.
fn installed(path: PathBuf) -> PathBuf {
    if !path.is_file() {
        panic!(
            "the AWS Lambda Runtime Interface Emulator is missing at {}: \
             run `scripts/local-cloud.sh install` (the test command does it for you)",
            path.display()
        );
    }
    path
}

/// What runs under the emulator.
#[derive(Debug, Clone)]
enum Target {
    /// A binary of this machine; the emulator runs as a child of the test.
    Binary(PathBuf),
    /// An image, with the emulator mounted as its entrypoint, and the path of
    /// the function's binary inside the image.
    Image { image: String, binary: String },
}

/// Settings of an emulator run, from [`LambdaEmulator::binary`] or
/// [`LambdaEmulator::image`].
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    target: Target,
    envs: Vec<(String, String)>,
    volumes: Vec<(PathBuf, String)>,
    args: Vec<String>,
}

impl EmulatorBuilder {
    /// Sets an environment variable of the function.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// Sets several environment variables of the function.
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.envs
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// An argument for the function's binary (after the binary's path).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Mounts a host path read-only into the container (image runs only).
    pub fn volume(mut self, host: impl AsRef<Path>, container: impl Into<String>) -> Self {
        self.volumes
            .push((host.as_ref().to_path_buf(), container.into()));
        self
    }

    /// Starts the emulator and waits until it accepts connections.
    ///
    /// The emulator starts the function on the first invocation, as Lambda
    /// does (the `INIT` phase); [`LambdaEmulator::invoke`] waits for it.
    pub async fn start(self) -> LambdaEmulator {
        let rie = rie_path();
        if let Target::Image { .. } = self.target {
            crate::require_docker();
        }
        let mut last_error = String::new();
        // A free port can be taken between the probe and the emulator's bind:
        // try again with new ports.
        for _attempt in 0..4 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let runtime_api: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let emulator = match &self.target {
                Target::Binary(binary) => self.spawn_binary(&rie, binary, addr, runtime_api),
                Target::Image { image, binary } => {
                    self.spawn_image(&rie, image, binary, addr, runtime_api)
                }
            };
            let mut emulator = match emulator {
                Ok(emulator) => emulator,
                Err(error) => {
                    last_error = error;
                    continue;
                }
            };
            match emulator.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => return emulator,
                Err(error) => last_error = error,
            }
        }
        panic!("the Lambda Runtime Interface Emulator did not start: {last_error}");
    }

    /// The emulator's own arguments: where it listens, where the function
    /// finds the runtime API, then the function's command line.
    fn emulator_args(
        &self,
        command: &mut Command,
        addr: SocketAddr,
        runtime_api: SocketAddr,
        binary: &std::ffi::OsStr,
    ) {
        command
            .arg("--runtime-interface-emulator-address")
            .arg(addr.to_string())
            .arg("--runtime-api-address")
            .arg(runtime_api.to_string())
            .arg(binary)
            .args(&self.args);
    }

    fn spawn_binary(
        &self,
        rie: &Path,
        binary: &Path,
        addr: SocketAddr,
        runtime_api: SocketAddr,
    ) -> Result<LambdaEmulator, String> {
        assert!(
            binary.is_file(),
            "the function binary {} does not exist",
            binary.display()
        );
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let log_path = dir.path().join("output.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let mut command = Command::new(rie);
        // Only the variables the test sets (and PATH): nothing of the test
        // runner's environment (a `NO_COLOR`, a `RUST_LOG`, AWS profiles)
        // changes how the function behaves.
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        self.emulator_args(&mut command, addr, runtime_api, binary.as_os_str());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", rie.display()))?;
        Ok(LambdaEmulator {
            running: Running::Process { child, log_path },
            addr,
            _dir: Some(dir),
        })
    }

    fn spawn_image(
        &self,
        rie: &Path,
        image: &str,
        binary: &str,
        addr: SocketAddr,
        runtime_api: SocketAddr,
    ) -> Result<LambdaEmulator, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "lambda-rie-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut command = Command::new("docker");
        command
            .args(["run", "-d", "--name", &name, "--network", "host"])
            .arg("-v")
            .arg(format!("{}:/rie:ro", rie.display()))
            .args(["--entrypoint", "/rie"]);
        for (k, v) in &self.envs {
            command.arg("-e").arg(format!("{k}={v}"));
        }
        for (host, container) in &self.volumes {
            command
                .arg("-v")
                .arg(format!("{}:{container}:ro", host.display()));
        }
        command.arg(image);
        self.emulator_args(&mut command, addr, runtime_api, binary.as_ref());
        command.stdin(Stdio::null());
        let output = command
            .output()
            .map_err(|e| format!("cannot run docker: {e}"))?;
        let emulator = LambdaEmulator {
            running: Running::Container { name },
            addr,
            _dir: None,
        };
        if !output.status.success() {
            // Dropping `emulator` removes whatever was created.
            return Err(format!(
                "docker run {image} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(emulator)
    }
}

#[derive(Debug)]
enum Running {
    Process { child: Child, log_path: PathBuf },
    Container { name: String },
}

/// A function running under the emulator; stopped when dropped.
#[derive(Debug)]
pub struct LambdaEmulator {
    running: Running,
    addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl LambdaEmulator {
    /// A function binary of this machine under the emulator:
    /// `aws-lambda-rie --runtime-interface-emulator-address 127.0.0.1:PORT BINARY`.
    pub fn binary(path: impl AsRef<Path>) -> EmulatorBuilder {
        EmulatorBuilder {
            target: Target::Binary(path.as_ref().to_path_buf()),
            envs: Vec::new(),
            volumes: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A function image under the emulator, mounted as its entrypoint:
    /// `docker run --network host -v RIE:/rie:ro --entrypoint /rie IMAGE
    /// --runtime-interface-emulator-address 127.0.0.1:PORT BINARY`, where
    /// `binary` is the function's path inside the image (e.g. `/detection`).
    pub fn image(image: impl Into<String>, binary: impl Into<String>) -> EmulatorBuilder {
        EmulatorBuilder {
            target: Target::Image {
                image: image.into(),
                binary: binary.into(),
            },
            envs: Vec::new(),
            volumes: Vec::new(),
            args: Vec::new(),
        }
    }

    /// The emulator's address on loopback.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The invocation URL, `http://127.0.0.1:PORT/2015-03-31/functions/function/invocations`.
    pub fn invoke_url(&self) -> String {
        format!("http://{}{INVOKE_PATH}", self.addr)
    }

    /// Invokes the function with a JSON event; returns the emulator's HTTP
    /// status and the JSON it answered (the function's result, or
    /// `{"errorType", "errorMessage"}` when the function reported an error).
    ///
    /// Panics, with the captured output, when the answer is not JSON.
    pub async fn invoke(&self, event: &serde_json::Value) -> (u16, serde_json::Value) {
        let payload = serde_json::to_vec(event).expect("an event serialises");
        let (status, body) = self.invoke_raw(&payload).await;
        let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "the emulator answered {status} with a body that is not JSON ({e}): {}\n\
                 output so far:\n{}",
                String::from_utf8_lossy(&body),
                self.output()
            )
        });
        (status, value)
    }

    /// Invokes the function with raw bytes as the payload.
    pub async fn invoke_raw(&self, payload: &[u8]) -> (u16, Vec<u8>) {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let request = hyper::Request::post(self.invoke_url())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(payload)))
            .expect("a valid request");
        let answer = tokio::time::timeout(INVOKE_TIMEOUT, async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body.to_vec()))
        })
        .await;
        match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => panic!(
                "invoking {} failed: {error}\noutput so far:\n{}",
                self.invoke_url(),
                self.output()
            ),
            Err(_) => panic!(
                "no answer from {} within {INVOKE_TIMEOUT:?}\noutput so far:\n{}",
                self.invoke_url(),
                self.output()
            ),
        }
    }

    /// Everything the emulator and the function printed so far (stdout and
    /// stderr together): the emulator's own lines, `START` / `END` /
    /// `REPORT`, and the function's logs, as CloudWatch would receive them.
    pub fn output(&self) -> String {
        match &self.running {
            Running::Process { log_path, .. } => std::fs::read(log_path)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default(),
            Running::Container { name } => Command::new("docker")
                .args(["logs", name])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout).into_owned()
                        + &String::from_utf8_lossy(&o.stderr)
                })
                .unwrap_or_default(),
        }
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(reason) = self.exited() {
                return Err(format!("{reason}; output:\n{}", self.output()));
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {} within {timeout:?}; output:\n{}",
                    self.addr,
                    self.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Why the emulator is no longer running, if it is not.
    fn exited(&mut self) -> Option<String> {
        match &mut self.running {
            Running::Process { child, .. } => match child.try_wait() {
                Ok(Some(status)) => Some(format!("the emulator exited with {status}")),
                _ => None,
            },
            Running::Container { name } => {
                let output = Command::new("docker")
                    .args(["inspect", "--format", "{{.State.Running}}", name])
                    .output()
                    .ok()?;
                let running = String::from_utf8_lossy(&output.stdout);
                (running.trim() == "false").then(|| format!("container {name} exited"))
            }
        }
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Process { child, .. } => {
                // SIGTERM first: the emulator then stops the function it runs
                // (a SIGKILL would leave the function orphaned).
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::Container { name } => {
                let _ = Command::new("docker")
                    .args(["rm", "-f", name])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "run `scripts/local-cloud.sh install`")]
    fn a_missing_emulator_fails_loudly_with_the_install_hint() {
        installed(PathBuf::from("/nonexistent/aws-lambda-rie"));
    }

    #[test]
    fn the_installed_emulator_is_found() {
        // The local cloud is part of the test command: the emulator must be there.
        assert!(rie_path().is_file());
    }

    #[tokio::test]
    #[should_panic(expected = "does not exist")]
    async fn a_missing_function_binary_is_refused() {
        LambdaEmulator::binary("/nonexistent/bootstrap")
            .start()
            .await;
    }
}
