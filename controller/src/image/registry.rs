//! The registry side of images, over the Docker Registry HTTP API v2: image
//! names, and the digest of a tag (`HEAD /v2/<repo>/manifests/<tag>`), which
//! tells whether an image is there before anything is built, and which
//! pins a function once it is pushed.

use std::time::Duration;

use http_body_util::Empty;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::ImageError;
use super::ecr::Credentials;

/// Manifest types the lookup accepts, most specific first.
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.index.v1+json";
/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<bytes::Bytes>>;

/// One registry: where it is, how to reach it, and the credentials for it.
#[derive(Clone, Debug)]
pub struct Registry {
    /// `host[:port]`, as it appears in image names.
    host: String,
    /// `http` or `https`.
    scheme: &'static str,
    credentials: Option<Credentials>,
    client: HttpsClient,
}

impl Registry {
    /// A registry at `endpoint` (`host[:port]`, optionally with a scheme).
    /// Without a scheme, loopback hosts are reached over plain HTTP (as the
    /// Docker daemon does) and every other host over HTTPS.
    pub fn new(endpoint: &str, credentials: Option<Credentials>) -> Result<Registry, ImageError> {
        let (scheme, host) = if let Some(host) = endpoint.strip_prefix("http://") {
            ("http", host)
        } else if let Some(host) = endpoint.strip_prefix("https://") {
            ("https", host)
        } else if is_loopback(endpoint) {
            ("http", endpoint)
        } else {
            ("https", endpoint)
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|error| ImageError::Registry {
                registry: host.to_string(),
                message: format!("cannot load the TLS roots: {error}"),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Registry {
            host: host.trim_end_matches('/').to_string(),
            scheme,
            credentials,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The credentials the daemon pushes with.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// `host/repository`.
    pub fn repository(&self, repository: &str) -> String {
        format!("{}/{repository}", self.host)
    }

    /// `host/repository:tag`.
    pub fn tagged(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }

    /// `host/repository@sha256:...`.
    pub fn pinned(&self, repository: &str, digest: &str) -> String {
        format!("{}/{repository}@{digest}", self.host)
    }

    /// The digest of `repository:tag`, or `None` when the registry does not
    /// have it.
    pub async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>, ImageError> {
        let url = format!(
            "{}://{}/v2/{repository}/manifests/{tag}",
            self.scheme, self.host
        );
        let mut request = Request::builder()
            .method(Method::HEAD)
            .uri(&url)
            .header(hyper::header::ACCEPT, MANIFEST_TYPES);
        if let Some(credentials) = &self.credentials {
            request = request.header(hyper::header::AUTHORIZATION, credentials.basic());
        }
        let request = request
            .body(Empty::new())
            .map_err(|error| self.error(format!("bad request {url}: {error}")))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| {
                self.error(format!(
                    "no answer to HEAD {url} within {REQUEST_TIMEOUT:?}"
                ))
            })?
            .map_err(|error| self.error(format!("HEAD {url}: {}", error_chain(&error))))?;
        match response.status() {
            StatusCode::OK => {
                let digest = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|value| value.to_str().ok())
                    .filter(|digest| digest.starts_with("sha256:"))
                    .ok_or_else(|| {
                        self.error(format!("HEAD {url} gave no Docker-Content-Digest"))
                    })?;
                tracing::debug!(%url, digest, "found in the registry");
                Ok(Some(digest.to_string()))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(self.error(format!("HEAD {url} answered {status}"))),
        }
    }

    fn error(&self, message: String) -> ImageError {
        ImageError::Registry {
            registry: self.host.clone(),
            message,
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    name == "localhost" || name == "[::1]" || name.starts_with("127.")
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http_and_others_https() {
        assert_eq!(
            Registry::new("127.0.0.1:5000", None).unwrap().scheme,
            "http"
        );
        assert_eq!(
            Registry::new("localhost:5000", None).unwrap().scheme,
            "http"
        );
        let ecr = Registry::new("123456789012.dkr.ecr.us-east-1.amazonaws.com", None).unwrap();
        assert_eq!(ecr.scheme, "https");
        assert_eq!(
            ecr.pinned("app/detection", "sha256:ab"),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app/detection@sha256:ab"
        );
        let explicit = Registry::new("http://registry.internal:5000", None).unwrap();
        assert_eq!(
            (explicit.scheme, explicit.host()),
            ("http", "registry.internal:5000")
        );
    }
}
