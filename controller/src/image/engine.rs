//! The Docker Engine API through bollard: connects (`DOCKER_HOST`, or the
//! default socket), builds an image from an in-memory context for the
//! function's platform, and pushes it with the registry's credentials.
//! Build errors name the step that failed and carry the daemon's message.
//!
//! The transport follows the Docker CLI's environment ("Use the Docker
//! command line", environment variables; "Protect the Docker daemon
//! socket"): `unix://` is the local socket; `tcp://` (or `https://`) uses
//! TLS, verifying the daemon against `ca.pem` and presenting `cert.pem` /
//! `key.pem` from `DOCKER_CERT_PATH` (default `~/.docker`), when
//! `DOCKER_TLS_VERIFY`, `DOCKER_TLS` or `DOCKER_CERT_PATH` is set. Plain
//! TCP is accepted only to a loopback address: the Engine API without TLS
//! gives whoever can reach the port root on the daemon's host, and the
//! push credentials travel over it, so it is refused for any other host.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures::StreamExt;

use super::ImageError;
use super::context::BuildContext;
use super::ecr::Credentials;
use super::progress::Progress;
use super::registry::{is_loopback, oci_architecture};
use crate::resources::error_chain;
use crate::spec::Architecture;

/// Where the daemon listens when `DOCKER_HOST` is not set.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// How long the daemon may take to answer the first call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// bollard's per-request timeout, in seconds (its own default).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How the controller reaches the Docker daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket (`unix:///var/run/docker.sock`).
    Unix { host: String },
    /// Plain HTTP over TCP, to a loopback address only.
    PlainTcp { host: String },
    /// TLS over TCP, the daemon verified against `ca.pem`, the client
    /// presenting `cert.pem` and `key.pem`, all three in `cert_path`.
    Tls { host: String, cert_path: PathBuf },
}

/// Decides the transport from the Docker CLI's environment variables, read
/// through `env` (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_TLS`,
/// `DOCKER_CERT_PATH`, `HOME`); an empty value counts as unset, as for the
/// Docker CLI. Also says where the host came from. Refuses plain TCP to a
/// host that is not loopback, and schemes bollard is not built for.
pub fn transport(
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Transport, &'static str), ImageError> {
    let var = |name: &str| env(name).filter(|value| !value.is_empty());
    let (host, origin) = match var("DOCKER_HOST") {
        Some(host) => (host, "DOCKER_HOST"),
        None => (
            DEFAULT_DOCKER_HOST.to_string(),
            "the default socket; DOCKER_HOST is not set",
        ),
    };
    if host.starts_with("unix://") {
        return Ok((Transport::Unix { host }, origin));
    }
    let address = if let Some(rest) = host.strip_prefix("tcp://") {
        rest
    } else if let Some(rest) = host.strip_prefix("https://") {
        rest
    } else if let Some(rest) = host.strip_prefix("http://") {
        rest
    } else {
        return Err(ImageError::DaemonUnreachable {
            host: host.clone(),
            origin,
            message: "only unix:// and tcp:// daemons are supported".into(),
        });
    };
    let address = address.trim_end_matches('/').to_string();
    let tls = host.starts_with("https://")
        || var("DOCKER_TLS_VERIFY").is_some()
        || var("DOCKER_TLS").is_some()
        || var("DOCKER_CERT_PATH").is_some();
    if tls {
        let cert_path = match var("DOCKER_CERT_PATH") {
            Some(path) => PathBuf::from(path),
            None => match var("HOME") {
                Some(home) => PathBuf::from(home).join(".docker"),
                None => {
                    return Err(ImageError::InsecureDaemon {
                        host,
                        reason: "TLS is asked for but neither DOCKER_CERT_PATH nor HOME says \
                                 where the certificates are"
                            .into(),
                    });
                }
            },
        };
        return Ok((
            Transport::Tls {
                host: format!("tcp://{address}"),
                cert_path,
            },
            origin,
        ));
    }
    if !is_loopback(&address) {
        return Err(ImageError::InsecureDaemon {
            host,
            reason: format!(
                "plain TCP to {address}, which is not a loopback address, would hand the \
                 daemon (root on its host) and the registry credentials to anyone on the path"
            ),
        });
    }
    Ok((
        Transport::PlainTcp {
            host: format!("tcp://{address}"),
        },
        origin,
    ))
}

/// A Docker daemon that answered.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl Engine {
    /// Connects as [`transport`] decides from the process environment, and
    /// agrees on an API version with the daemon (20.10 speaks 1.41).
    pub async fn connect() -> Result<Engine, ImageError> {
        let (transport, origin) = transport(|name| std::env::var(name).ok())?;
        Engine::connect_with(transport, origin).await
    }

    /// Connects over `transport`.
    pub async fn connect_with(
        transport: Transport,
        origin: &'static str,
    ) -> Result<Engine, ImageError> {
        let host = match &transport {
            Transport::Unix { host }
            | Transport::PlainTcp { host }
            | Transport::Tls { host, .. } => host.clone(),
        };
        let unreachable = |message: String| ImageError::DaemonUnreachable {
            host: host.clone(),
            origin,
            message,
        };
        let docker = match &transport {
            Transport::Unix { host } => {
                Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
            Transport::PlainTcp { host } => {
                Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
            Transport::Tls { host, cert_path } => {
                let files = ["ca.pem", "cert.pem", "key.pem"].map(|name| cert_path.join(name));
                if let Some(missing) = files.iter().find(|file| !file.is_file()) {
                    return Err(ImageError::InsecureDaemon {
                        host: host.clone(),
                        reason: format!(
                            "TLS is asked for, but {} is missing (DOCKER_CERT_PATH, default \
                             ~/.docker)",
                            missing.display()
                        ),
                    });
                }
                let [ca, cert, key] = files;
                Docker::connect_with_ssl(
                    host,
                    &key,
                    &cert,
                    &ca,
                    REQUEST_TIMEOUT_SECS,
                    API_DEFAULT_VERSION,
                )
            }
        }
        .map_err(|error| unreachable(error_chain(&error)))?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|error| unreachable(error_chain(&error)))?;
        tracing::debug!(%host, version = ?docker.client_version(), "connected to the Docker daemon");
        Ok(Engine { docker, host })
    }

    /// Where the daemon is.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Builds `context` as `image` (`host/repo:tag`) for
    /// `linux/<architecture>`: the image config then names the function's
    /// architecture, which Lambda requires. The classic builder makes one
    /// image with one manifest (no index, no attestations), which is what a
    /// push then puts in the registry; the registry check after the push
    /// refuses anything else.
    pub async fn build(
        &self,
        function: &str,
        context: &BuildContext,
        image: &str,
        architecture: Architecture,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let task = progress.task(function, &format!("build {image}"));
        let platform = format!("linux/{}", oci_architecture(architecture));
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .platform(&platform)
            .t(image)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream = self.docker.build_image(
            options,
            None::<HashMap<String, DockerCredentials>>,
            Some(bollard::body_full(context.tar())),
        );
        let mut step = String::from("the start of the build");
        let failed = |step: &str, message: String| ImageError::Build {
            function: function.to_string(),
            step: step.to_string(),
            message: message.trim().to_string(),
        };
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(error) => {
                    task.fail("failed");
                    return Err(failed(&step, daemon_message(error)));
                }
            };
            if let Some(detail) = info.error_detail.and_then(|detail| detail.message) {
                task.fail("failed");
                return Err(failed(&step, detail));
            }
            if let Some(line) = info
                .stream
                .as_deref()
                .map(str::trim)
                .filter(|line| !line.is_empty())
            {
                if line.starts_with("Step ") {
                    step = line.to_string();
                    task.line(line);
                }
            }
        }
        task.finish("built");
        Ok(())
    }

    /// Pushes `repository:tag` with `credentials`.
    pub async fn push(
        &self,
        function: &str,
        repository: &str,
        tag: &str,
        credentials: Option<&Credentials>,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let image = format!("{repository}:{tag}");
        let task = progress.task(function, &format!("push {image}"));
        let credentials = credentials.map(|credentials| DockerCredentials {
            username: Some(credentials.username.clone()),
            password: Some(credentials.password.clone()),
            serveraddress: Some(credentials.endpoint.clone()),
            ..DockerCredentials::default()
        });
        let options = PushImageOptionsBuilder::new().tag(tag).build();
        let mut stream = self
            .docker
            .push_image(repository, Some(options), credentials);
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(error) => {
                    task.fail("refused");
                    return Err(ImageError::Push {
                        image,
                        message: daemon_message(error),
                    });
                }
            };
            if let Some(message) = info.error_detail.and_then(|detail| detail.message) {
                task.fail("refused");
                return Err(ImageError::Push { image, message });
            }
            let status = info.status.unwrap_or_default();
            match info.progress_detail {
                Some(detail) if status == "Pushing" => task.bytes(
                    detail.current.unwrap_or(0).max(0) as u64,
                    detail.total.unwrap_or(0).max(0) as u64,
                ),
                _ if !status.is_empty() => task.line(&status),
                _ => {}
            }
        }
        task.finish("pushed");
        Ok(())
    }
}

/// The daemon's own message from a bollard error, without the wrapping.
fn daemon_message(error: bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError {
            message,
            status_code,
        } => {
            format!("{message} (HTTP {status_code})")
        }
        bollard::errors::Error::DockerStreamError { error } => error,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(vars: &[(&str, &str)]) -> Result<Transport, ImageError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        transport(|name| vars.get(name).cloned()).map(|(transport, _)| transport)
    }

    #[test]
    fn no_docker_host_is_the_default_socket() {
        assert_eq!(
            decide(&[]).unwrap(),
            Transport::Unix {
                host: DEFAULT_DOCKER_HOST.into()
            }
        );
        // Empty counts as unset, and TLS settings do not apply to a socket.
        assert_eq!(
            decide(&[
                ("DOCKER_HOST", "unix:///run/user/docker.sock"),
                ("DOCKER_TLS_VERIFY", "1")
            ])
            .unwrap(),
            Transport::Unix {
                host: "unix:///run/user/docker.sock".into()
            }
        );
        assert!(matches!(
            decide(&[("DOCKER_HOST", "")]).unwrap(),
            Transport::Unix { .. }
        ));
    }

    #[test]
    fn tcp_uses_tls_when_the_environment_says_so() {
        for vars in [
            vec![("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/certs")],
            vec![("DOCKER_CERT_PATH", "/certs")],
            vec![("DOCKER_TLS", "1"), ("DOCKER_CERT_PATH", "/certs")],
        ] {
            let mut all = vec![("DOCKER_HOST", "tcp://build.internal:2376")];
            all.extend(vars.iter().copied());
            assert_eq!(
                decide(&all).unwrap(),
                Transport::Tls {
                    host: "tcp://build.internal:2376".into(),
                    cert_path: "/certs".into()
                },
                "{vars:?}"
            );
        }
        // Without DOCKER_CERT_PATH the certificates are in ~/.docker.
        assert_eq!(
            decide(&[
                ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("HOME", "/home/ci")
            ])
            .unwrap(),
            Transport::Tls {
                host: "tcp://127.0.0.1:2376".into(),
                cert_path: "/home/ci/.docker".into()
            }
        );
        // An https:// host is TLS by itself.
        assert!(matches!(
            decide(&[
                ("DOCKER_HOST", "https://build.internal:2376"),
                ("HOME", "/root")
            ])
            .unwrap(),
            Transport::Tls { .. }
        ));
    }

    #[test]
    fn plain_tcp_only_to_loopback() {
        for host in [
            "tcp://127.0.0.1:2375",
            "tcp://localhost:2375",
            "tcp://[::1]:2375",
            "tcp://127.0.0.2:2375/",
        ] {
            assert!(
                matches!(
                    decide(&[("DOCKER_HOST", host)]).unwrap(),
                    Transport::PlainTcp { .. }
                ),
                "{host}"
            );
        }
        for host in [
            "tcp://10.0.0.5:2375",
            "tcp://build.internal:2375",
            "http://192.168.1.10:2375",
            "tcp://127.0.0.1.example.com:2375",
        ] {
            let error = decide(&[("DOCKER_HOST", host)]).unwrap_err();
            let text = error.to_string();
            assert!(
                matches!(error, ImageError::InsecureDaemon { .. })
                    && text.contains(host)
                    && text.contains("not a loopback address")
                    && text.contains("DOCKER_TLS_VERIFY=1"),
                "{host}: {text}"
            );
        }
    }

    #[test]
    fn unsupported_schemes_are_named() {
        let error = decide(&[("DOCKER_HOST", "ssh://builder@build.internal")]).unwrap_err();
        assert!(
            error.to_string().contains("ssh://builder@build.internal"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn tls_without_the_certificates_says_which_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "").unwrap();
        let error = Engine::connect_with(
            Transport::Tls {
                host: "tcp://127.0.0.1:1".into(),
                cert_path: dir.path().to_path_buf(),
            },
            "DOCKER_HOST",
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("cert.pem is missing"), "{error}");
    }
}
