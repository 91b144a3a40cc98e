//! The registry side of images, over the Docker Registry HTTP API v2 (the
//! OCI distribution API, which ECR's registry endpoint speaks): image names;
//! the digest of a tag (`HEAD /v2/<repo>/manifests/<tag>`), which tells
//! whether an image is there before anything is built; the check that a
//! pushed manifest is one Lambda can run, which gives the digest a function
//! is pinned to; and tags added to a pushed manifest.
//!
//! Lambda runs a single image manifest for one architecture: "Lambda
//! provides multi-architecture base images. However, the image you build
//! for your function must target only one of the architectures. Lambda does
//! not support functions that use multi-architecture container images", and
//! "Lambda supports only Linux-based container images" (Lambda developer
//! guide, "Create a Lambda function using a container image",
//! <https://docs.aws.amazon.com/lambda/latest/dg/images-create.html>). So
//! manifests are asked for with the two single-manifest media types only
//! (Docker image manifest v2 schema 2, OCI image manifest), and what comes
//! back is checked all the same: no manifest list or OCI image index, and
//! a config blob whose `architecture` is the function's (`amd64` for
//! `x86_64`, `arm64` for `arm64`; the OCI image spec's GOARCH values) and
//! whose `os` is `linux`.
//!
//! Credentials are sent only to the registry host they are for (see
//! [`super::location`]); a blob request that the registry redirects (ECR
//! answers blob GETs with a redirect to a pre-signed S3 URL) is followed
//! without them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ImageError;
use super::ecr::Credentials;
use crate::resources::error_chain;
use crate::spec::Architecture;

/// Docker image manifest v2, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list: several images, one per platform.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image index: several manifests (platforms, attestations).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The only manifests asked for: a single image manifest Lambda can run.
const SINGLE_MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json";
/// Asked only to tell a user why a lookup found no single manifest.
const INDEX_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.index.v1+json";
/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest manifest or config blob read (the distribution server's own
/// manifest limit is 4 MiB).
const MAX_DOCUMENT: usize = 4 << 20;
/// Redirects followed for one blob.
const MAX_REDIRECTS: usize = 3;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

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

/// A manifest the registry answered, checked to be one Lambda can run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedImage {
    /// `sha256:...` of the manifest bytes: what the function is pinned to.
    pub digest: String,
    pub media_type: String,
    /// `config.architecture` (`amd64`, `arm64`).
    pub architecture: String,
    pub os: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    /// Present in a manifest list / index only.
    manifests: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
}

#[derive(Deserialize)]
struct ImageConfig {
    architecture: Option<String>,
    os: Option<String>,
}

/// A registry's answer: status, content type, digest header, body.
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    digest: Option<String>,
    location: Option<String>,
    body: Bytes,
}

/// The `architecture` an image config must name for a function's architecture.
pub fn oci_architecture(architecture: Architecture) -> &'static str {
    match architecture {
        Architecture::X86_64 => "amd64",
        Architecture::Arm64 => "arm64",
    }
}

impl Registry {
    /// A registry at `endpoint` (`host[:port]`, optionally with a scheme).
    /// Without a scheme, loopback hosts are reached over plain HTTP (as the
    /// Docker daemon does) and every other host over HTTPS. `credentials`
    /// must be for this very host (their `endpoint`): ECR's token is never
    /// handed to another registry.
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
        let host = host.trim_end_matches('/').to_string();
        if let Some(credentials) = &credentials {
            if !same_host(&credentials.endpoint, &host) {
                return Err(ImageError::Registry {
                    registry: host.clone(),
                    message: format!(
                        "ECR's authorization token is for {}, not for this registry: it is never \
                         sent to another host; remove [registry] to push to {}",
                        credentials.endpoint, credentials.endpoint
                    ),
                });
            }
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|error| ImageError::Registry {
                registry: host.clone(),
                message: format!("cannot load the TLS roots: {error}"),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Registry {
            host,
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

    /// The digest of the single image manifest `repository:tag`, or `None`
    /// when the registry has no such manifest. Only single-manifest types
    /// are accepted: an index under the tag is not an image Lambda can run.
    pub async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>, ImageError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{tag}"));
        let answer = self
            .send(Method::HEAD, &url, SINGLE_MANIFEST_TYPES, None, true)
            .await?;
        match answer.status {
            StatusCode::OK => {
                let digest = answer
                    .digest
                    .filter(|digest| digest.starts_with("sha256:"))
                    .ok_or_else(|| {
                        self.error(format!("HEAD {url} gave no Docker-Content-Digest"))
                    })?;
                tracing::debug!(%url, digest, "found in the registry");
                Ok(Some(digest))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(self.error(format!("HEAD {url} answered {status}"))),
        }
    }

    /// Reads the manifest `repository:reference` (a tag or a digest) with
    /// single-manifest media types only, and checks that Lambda can run it
    /// on `architecture`: a Docker v2 schema 2 or OCI image manifest (no
    /// manifest list, no index), whose bytes hash to the digest the
    /// registry gives, and whose config blob names that architecture and
    /// `linux`. Gives the digest to pin the function to.
    pub async fn check(
        &self,
        repository: &str,
        reference: &str,
        architecture: Architecture,
    ) -> Result<CheckedImage, ImageError> {
        if let Some(checked) = self.find(repository, reference, architecture).await? {
            return Ok(checked);
        }
        let image = self.reference(repository, reference);
        // A registry that holds an index under this reference may answer
        // 404 to a request that does not accept one: say so.
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let probe = self
            .send(Method::HEAD, &url, INDEX_TYPES, None, true)
            .await?;
        if let (StatusCode::OK, Some(kind)) = (probe.status, probe.content_type.as_deref()) {
            if is_index(kind) {
                return Err(ImageError::NotForLambda {
                    image,
                    reason: index_reason(kind),
                });
            }
        }
        Err(self.error(format!("{image} is not in the registry")))
    }

    /// [`Registry::check`] in one manifest read, but `None` when the
    /// registry has no single manifest under `reference` (one GET answers
    /// both whether the image is there and whether Lambda can run it).
    pub async fn find(
        &self,
        repository: &str,
        reference: &str,
        architecture: Architecture,
    ) -> Result<Option<CheckedImage>, ImageError> {
        let image = self.reference(repository, reference);
        let refuse = |reason: String| ImageError::NotForLambda {
            image: image.clone(),
            reason,
        };
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let answer = self
            .send(Method::GET, &url, SINGLE_MANIFEST_TYPES, None, true)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if answer.status != StatusCode::OK {
            return Err(self.error(format!("GET {url} answered {}", answer.status)));
        }
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&answer.body)));
        if let Some(claimed) = &answer.digest {
            if *claimed != actual {
                return Err(self.error(format!(
                    "{image}: the manifest hashes to {actual}, the registry says {claimed}"
                )));
            }
        }
        if reference.starts_with("sha256:") && reference != actual {
            return Err(self.error(format!("{image}: the manifest hashes to {actual}")));
        }
        let manifest: Manifest = serde_json::from_slice(&answer.body)
            .map_err(|error| refuse(format!("its manifest is not JSON: {error}")))?;
        let media_type = manifest
            .media_type
            .clone()
            .or(answer.content_type.clone())
            .unwrap_or_default();
        let media_type = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if is_index(&media_type) || manifest.manifests.is_some() {
            let kind = if media_type.is_empty() {
                OCI_INDEX
            } else {
                &media_type
            };
            return Err(refuse(index_reason(kind)));
        }
        if media_type != DOCKER_MANIFEST && media_type != OCI_MANIFEST {
            return Err(refuse(format!(
                "its manifest is {media_type:?}; Lambda runs a single image manifest \
                 ({DOCKER_MANIFEST} or {OCI_MANIFEST})"
            )));
        }
        if manifest.schema_version != Some(2) {
            return Err(refuse(format!(
                "its manifest has schemaVersion {:?}, not 2",
                manifest.schema_version
            )));
        }
        let config = manifest
            .config
            .ok_or_else(|| refuse("its manifest names no config blob".into()))?;
        let config_type = config.media_type.as_deref().unwrap_or_default();
        if !matches!(
            config_type,
            "application/vnd.docker.container.image.v1+json"
                | "application/vnd.oci.image.config.v1+json"
        ) {
            return Err(refuse(format!(
                "its config is {config_type:?}, not a container image config"
            )));
        }
        let blob = self.blob(repository, &config.digest).await?;
        let config: ImageConfig = serde_json::from_slice(&blob)
            .map_err(|error| refuse(format!("its config blob is not JSON: {error}")))?;
        let found = config.architecture.unwrap_or_default();
        let os = config.os.unwrap_or_default();
        let wanted = oci_architecture(architecture);
        if found != wanted {
            return Err(refuse(format!(
                "its config says architecture {found:?}, but the function runs on {} \
                 (images for it are {wanted:?}); build for linux/{wanted}, or set the \
                 function's architecture to match the image",
                architecture.as_str()
            )));
        }
        if os != "linux" {
            return Err(refuse(format!(
                "its config says os {os:?}; Lambda runs only Linux images"
            )));
        }
        Ok(Some(CheckedImage {
            digest: actual,
            media_type,
            architecture: found,
            os,
        }))
    }

    /// `host/repository@digest` or `host/repository:tag`.
    fn reference(&self, repository: &str, reference: &str) -> String {
        if reference.starts_with("sha256:") {
            self.pinned(repository, reference)
        } else {
            self.tagged(repository, reference)
        }
    }

    /// Puts the manifest `digest` of `repository` under `tag` as well (a
    /// retag: the same bytes under another reference, as a push does).
    pub async fn add_tag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
    ) -> Result<(), ImageError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{digest}"));
        let answer = self
            .send(Method::GET, &url, SINGLE_MANIFEST_TYPES, None, true)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(self.error(format!("GET {url} answered {}", answer.status)));
        }
        let content_type = answer
            .content_type
            .ok_or_else(|| self.error(format!("GET {url} gave no Content-Type")))?;
        let put = self.url(&format!("/v2/{repository}/manifests/{tag}"));
        let done = self
            .send(
                Method::PUT,
                &put,
                "",
                Some((content_type, answer.body)),
                true,
            )
            .await?;
        match done.status {
            StatusCode::CREATED | StatusCode::OK => Ok(()),
            status => Err(self.error(format!(
                "PUT {put} answered {status}: {}",
                String::from_utf8_lossy(&done.body).trim()
            ))),
        }
    }

    /// A blob, following redirects without the credentials, checked
    /// against its digest.
    async fn blob(&self, repository: &str, digest: &str) -> Result<Bytes, ImageError> {
        let mut url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let mut own_host = true;
        for _ in 0..=MAX_REDIRECTS {
            let answer = self.send(Method::GET, &url, "", None, own_host).await?;
            match answer.status {
                StatusCode::OK => {
                    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&answer.body)));
                    if actual != digest {
                        return Err(self.error(format!("blob {digest} hashes to {actual}")));
                    }
                    return Ok(answer.body);
                }
                StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT => {
                    let location = answer.location.ok_or_else(|| {
                        self.error(format!("GET {url} redirected without a Location"))
                    })?;
                    let next = if location.starts_with('/') {
                        self.url(&location)
                    } else {
                        location
                    };
                    // A redirect to another host gets no credentials.
                    own_host = own_host && url_host(&next) == Some(self.host.as_str());
                    url = next;
                }
                status => return Err(self.error(format!("GET {url} answered {status}"))),
            }
        }
        Err(self.error(format!(
            "blob {digest}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.host)
    }

    /// One request. The credentials go with it only when `own_host` is set
    /// and the URL's host is this registry's.
    async fn send(
        &self,
        method: Method,
        url: &str,
        accept: &str,
        body: Option<(String, Bytes)>,
        own_host: bool,
    ) -> Result<Answer, ImageError> {
        let mut request = Request::builder().method(method.clone()).uri(url);
        if !accept.is_empty() {
            request = request.header(hyper::header::ACCEPT, accept);
        }
        if let Some(credentials) = &self.credentials {
            if own_host && url_host(url) == Some(self.host.as_str()) {
                request = request.header(hyper::header::AUTHORIZATION, credentials.basic());
            }
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(hyper::header::CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|error| self.error(format!("bad request {url}: {error}")))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| {
                self.error(format!(
                    "no answer to {method} {url} within {REQUEST_TIMEOUT:?}"
                ))
            })?
            .map_err(|error| self.error(format!("{method} {url}: {}", error_chain(&error))))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status();
        let content_type = header("content-type");
        let digest = header("docker-content-digest");
        let location = header("location");
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|error| {
                    self.error(format!("{method} {url}: reading the answer: {error}"))
                })?
                .to_bytes()
        };
        Ok(Answer {
            status,
            content_type,
            digest,
            location,
            body,
        })
    }

    fn error(&self, message: String) -> ImageError {
        ImageError::Registry {
            registry: self.host.clone(),
            message,
        }
    }
}

fn is_index(media_type: &str) -> bool {
    media_type.starts_with(DOCKER_MANIFEST_LIST) || media_type.starts_with(OCI_INDEX)
}

fn index_reason(media_type: &str) -> String {
    format!(
        "it is a manifest list / image index ({media_type}); Lambda runs only a single image \
         manifest for one architecture ({DOCKER_MANIFEST} or {OCI_MANIFEST}): build for one \
         platform and push without attestations (docker buildx: --provenance=false \
         --sbom=false)"
    )
}

/// `host[:port]` of an `http(s)://` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    rest.split(['/', '?']).next()
}

/// Whether two `host[:port]` (or URL) spellings name the same registry.
fn same_host(a: &str, b: &str) -> bool {
    let normal = |host: &str| {
        let host = host
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        host.strip_suffix(":443")
            .unwrap_or(host)
            .to_ascii_lowercase()
    };
    normal(a) == normal(b)
}

/// `127.0.0.0/8`, `localhost` or `[::1]`, with an optional port: the
/// registries reached over plain HTTP, and the Docker daemons reached over
/// plain TCP.
pub(super) fn is_loopback(address: &str) -> bool {
    let name = if let Some(rest) = address.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(name, _)| name)
    } else {
        address.split(':').next().unwrap_or_default()
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ecr_token(endpoint: &str) -> Credentials {
        Credentials {
            username: "AWS".into(),
            password: "token".into(),
            endpoint: endpoint.into(),
        }
    }

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

    #[test]
    fn ecr_credentials_are_refused_for_any_host_but_their_proxy_endpoint() {
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let own = Registry::new(&format!("https://{ecr}/"), Some(ecr_token(ecr))).unwrap();
        assert!(own.credentials().is_some());
        for other in [
            "127.0.0.1:5000",
            "registry.example.com",
            "210987654321.dkr.ecr.us-east-1.amazonaws.com",
        ] {
            let error = Registry::new(other, Some(ecr_token(ecr))).unwrap_err();
            assert!(
                error.to_string().contains("never sent to another host"),
                "{other}: {error}"
            );
        }
    }

    #[test]
    fn credentials_go_only_to_urls_on_the_registry_host() {
        assert_eq!(
            url_host("https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/a/blobs/sha256:1"),
            Some("123456789012.dkr.ecr.us-east-1.amazonaws.com")
        );
        assert_eq!(
            url_host("https://bucket.s3.amazonaws.com/x?X-Amz-Signature=1"),
            Some("bucket.s3.amazonaws.com")
        );
        assert!(same_host(
            "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:443"
        ));
        assert!(!same_host("127.0.0.1:5000", "127.0.0.1:5001"));
    }
}
