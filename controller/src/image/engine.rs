//! The Docker Engine API through bollard: connects (`DOCKER_HOST`, or the
//! default socket), builds an image from an in-memory context, and pushes
//! it with the registry's credentials. Build errors name the step that
//! failed and carry the daemon's message.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use futures::StreamExt;

use super::ImageError;
use super::context::BuildContext;
use super::ecr::Credentials;
use super::progress::Progress;

/// Where the daemon listens when `DOCKER_HOST` is not set.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// How long the daemon may take to answer the first call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Docker daemon that answered.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl Engine {
    /// Connects to `DOCKER_HOST`, or to the default socket when it is not
    /// set, and agrees on an API version with the daemon (20.10 speaks 1.41).
    pub async fn connect() -> Result<Engine, ImageError> {
        let (host, origin) = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => (host, "DOCKER_HOST"),
            _ => (
                DEFAULT_DOCKER_HOST.to_string(),
                "the default socket; DOCKER_HOST is not set",
            ),
        };
        let unreachable = |message: String| ImageError::DaemonUnreachable {
            host: host.clone(),
            origin,
            message,
        };
        let docker =
            Docker::connect_with_host(&host).map_err(|error| unreachable(error.to_string()))?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|error| unreachable(error.to_string()))?;
        tracing::debug!(%host, version = ?docker.client_version(), "connected to the Docker daemon");
        Ok(Engine { docker, host })
    }

    /// Where the daemon is.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Builds `context` as `image` (`host/repo:tag`).
    pub async fn build(
        &self,
        function: &str,
        context: &BuildContext,
        image: &str,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let task = progress.task(function, &format!("build {image}"));
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
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
