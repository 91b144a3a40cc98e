//! The manifest check that stands between a pushed image and a function,
//! against a real registry (Docker's distribution server) with manifests
//! pushed by hand: a single manifest of the function's architecture passes,
//! an OCI index or a Docker manifest list is refused, a wrong architecture
//! is refused, each with an error naming the image and what Lambda
//! requires. Then one small `FROM scratch` image built by the Docker daemon
//! for each architecture and pushed by the controller's own code: the build
//! platform reaches the image config, and the push is a single manifest.

use bytes::Bytes;
use controller::image::{BuildContext, Engine, ImageError, Progress, Registry};
use controller::spec::Architecture;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use test_harness::{LocalRegistry, require_docker};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One request to the registry: status, `Location`, body.
async fn send(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("the registry answers");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Uploads a blob (`POST` an upload, `PUT` its content); gives its digest.
async fn push_blob(registry: &LocalRegistry, repository: &str, data: &[u8]) -> String {
    let base = format!("http://{}", registry.endpoint());
    let digest = sha256(data);
    let (status, location, body) = send(
        Method::POST,
        &format!("{base}/v2/{repository}/blobs/uploads/"),
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let location = location.expect("an upload has a location");
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let (status, _, body) = send(
        Method::PUT,
        &format!("{location}{separator}digest={digest}"),
        Some("application/octet-stream"),
        data.to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    digest
}

/// Stores a manifest under `reference`; gives its digest.
async fn push_manifest(
    registry: &LocalRegistry,
    repository: &str,
    reference: &str,
    media_type: &str,
    manifest: &Value,
) -> String {
    let body = serde_json::to_vec(manifest).unwrap();
    let digest = sha256(&body);
    let (status, _, answer) = send(
        Method::PUT,
        &format!(
            "http://{}/v2/{repository}/manifests/{reference}",
            registry.endpoint()
        ),
        Some(media_type),
        body,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    digest
}

/// A one-layer image for `architecture` as a single manifest of
/// `media_type` (Docker v2 schema 2 or OCI); gives the manifest digest.
async fn push_image(
    registry: &LocalRegistry,
    repository: &str,
    tag: &str,
    media_type: &str,
    architecture: &str,
) -> String {
    let layer_data = format!("layer {repository}:{tag}").into_bytes();
    let layer = push_blob(registry, repository, &layer_data).await;
    let config = serde_json::to_vec(&json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Entrypoint": ["/function"]},
        "rootfs": {"type": "layers", "diff_ids": [layer]}
    }))
    .unwrap();
    let config_digest = push_blob(registry, repository, &config).await;
    let (config_type, layer_type) = if media_type == OCI_MANIFEST {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        )
    } else {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar",
        )
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": layer_type, "digest": layer, "size": layer_data.len()}]
    });
    push_manifest(registry, repository, tag, media_type, &manifest).await
}

/// An index (OCI) or manifest list (Docker) over the given manifests.
fn index(media_type: &str, entry_type: &str, entries: &[(&str, &str)]) -> Value {
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(digest, architecture)| {
            json!({
                "mediaType": entry_type,
                "digest": digest,
                "size": 500,
                "platform": {"architecture": architecture, "os": "linux"}
            })
        })
        .collect();
    json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})
}

fn refusal(error: ImageError) -> (String, String) {
    match error {
        ImageError::NotForLambda { image, reason } => (image, reason),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test]
async fn single_manifests_of_the_right_architecture_pass_and_give_their_digest() {
    let local = LocalRegistry::start().await;
    let registry = Registry::new(&local.endpoint(), None).unwrap();
    let oci = push_image(&local, "app/detection", "oci", OCI_MANIFEST, "amd64").await;
    let docker = push_image(&local, "app/detection", "docker", DOCKER_MANIFEST, "arm64").await;

    let checked = registry
        .check("app/detection", "oci", Architecture::X86_64)
        .await
        .unwrap();
    assert_eq!(
        (
            checked.digest.as_str(),
            checked.media_type.as_str(),
            checked.architecture.as_str(),
            checked.os.as_str()
        ),
        (oci.as_str(), OCI_MANIFEST, "amd64", "linux")
    );
    let checked = registry
        .check("app/detection", "docker", Architecture::Arm64)
        .await
        .unwrap();
    assert_eq!(checked.digest, docker);
    assert_eq!(checked.media_type, DOCKER_MANIFEST);
    // By digest as well as by tag, and the plain lookup agrees.
    let by_digest = registry
        .check("app/detection", &docker, Architecture::Arm64)
        .await
        .unwrap();
    assert_eq!(by_digest.digest, docker);
    assert_eq!(
        registry.digest("app/detection", "docker").await.unwrap(),
        Some(docker)
    );
    assert_eq!(
        registry.digest("app/detection", "missing").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_wrong_architecture_is_refused_naming_the_image_and_both_architectures() {
    let local = LocalRegistry::start().await;
    let registry = Registry::new(&local.endpoint(), None).unwrap();
    push_image(&local, "app/training", "arm", OCI_MANIFEST, "arm64").await;
    push_image(&local, "app/training", "intel", DOCKER_MANIFEST, "amd64").await;

    let (image, reason) = refusal(
        registry
            .check("app/training", "arm", Architecture::X86_64)
            .await
            .unwrap_err(),
    );
    assert_eq!(image, format!("{}/app/training:arm", local.endpoint()));
    assert!(
        reason.contains("architecture \"arm64\"")
            && reason.contains("runs on x86_64")
            && reason.contains("linux/amd64"),
        "{reason}"
    );
    let error = registry
        .check("app/training", "intel", Architecture::Arm64)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("app/training:intel cannot run on Lambda")
            && error.contains("architecture \"amd64\"")
            && error.contains("runs on arm64"),
        "{error}"
    );
}

#[tokio::test]
async fn an_oci_index_is_refused_by_tag_and_by_digest() {
    let local = LocalRegistry::start().await;
    let registry = Registry::new(&local.endpoint(), None).unwrap();
    let amd64 = push_image(&local, "app/detection", "amd64", OCI_MANIFEST, "amd64").await;
    let arm64 = push_image(&local, "app/detection", "arm64", OCI_MANIFEST, "arm64").await;
    let multi = index(
        OCI_INDEX,
        OCI_MANIFEST,
        &[(&amd64, "amd64"), (&arm64, "arm64")],
    );
    let digest = push_manifest(&local, "app/detection", "multi", OCI_INDEX, &multi).await;

    for reference in ["multi", digest.as_str()] {
        let (image, reason) = refusal(
            registry
                .check("app/detection", reference, Architecture::X86_64)
                .await
                .unwrap_err(),
        );
        assert!(
            image.ends_with(&format!(
                "app/detection{}{reference}",
                if reference.starts_with("sha256:") {
                    "@"
                } else {
                    ":"
                }
            )),
            "{image}"
        );
        assert!(
            reason.contains("manifest list / image index")
                && reason.contains(OCI_INDEX)
                && reason.contains("single image manifest for one architecture"),
            "{reason}"
        );
    }
    // The plain lookup never takes the index for an image.
    assert_eq!(
        registry.digest("app/detection", "multi").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_docker_manifest_list_is_refused() {
    let local = LocalRegistry::start().await;
    let registry = Registry::new(&local.endpoint(), None).unwrap();
    let amd64 = push_image(&local, "app/detection", "amd64", DOCKER_MANIFEST, "amd64").await;
    let arm64 = push_image(&local, "app/detection", "arm64", DOCKER_MANIFEST, "arm64").await;
    let list = index(
        DOCKER_LIST,
        DOCKER_MANIFEST,
        &[(&arm64, "arm64"), (&amd64, "amd64")],
    );
    let digest = push_manifest(&local, "app/detection", "multi", DOCKER_LIST, &list).await;
    let (image, reason) = refusal(
        registry
            .check("app/detection", &digest, Architecture::X86_64)
            .await
            .unwrap_err(),
    );
    assert!(
        image.ends_with(&format!("app/detection@{digest}")),
        "{image}"
    );
    assert!(
        reason.contains("manifest list / image index") && reason.contains(DOCKER_LIST),
        "{reason}"
    );
}

/// A `FROM scratch` image of one small file, built by the Docker daemon for
/// `architecture` and pushed with the controller's code; gives the engine.
async fn build_and_push(
    local: &LocalRegistry,
    registry: &Registry,
    repository: &str,
    architecture: Architecture,
) -> String {
    let engine = Engine::connect().await.expect("the Docker daemon answers");
    let progress = Progress::lines();
    let context = BuildContext::from_files(&[
        (
            "Dockerfile",
            b"FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n".to_vec(),
            0o644,
        ),
        (
            "hello",
            format!("not a program, {}", architecture.as_str()).into_bytes(),
            0o755,
        ),
    ])
    .unwrap();
    let image = registry.tagged(repository, context.tag());
    engine
        .build(repository, &context, &image, architecture, &progress)
        .await
        .unwrap();
    engine
        .push(
            repository,
            &registry.repository(repository),
            context.tag(),
            None,
            &progress,
        )
        .await
        .unwrap();
    let _ = std::process::Command::new("docker")
        .args(["image", "rm", "-f", &image])
        .output();
    assert!(
        local
            .tags(repository)
            .await
            .contains(&context.tag().to_string()),
        "{image} is not in the registry"
    );
    context.tag().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_for_each_architecture_pushes_one_manifest_of_that_architecture() {
    require_docker();
    let local = LocalRegistry::start().await;
    let registry = Registry::new(&local.endpoint(), None).unwrap();
    for (architecture, other) in [
        (Architecture::X86_64, Architecture::Arm64),
        (Architecture::Arm64, Architecture::X86_64),
    ] {
        let repository = format!("checks/{}", architecture.as_str().replace('_', "-"));
        let tag = build_and_push(&local, &registry, &repository, architecture).await;
        let checked = registry
            .check(&repository, &tag, architecture)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(
            checked.media_type == DOCKER_MANIFEST || checked.media_type == OCI_MANIFEST,
            "{checked:?}"
        );
        assert_eq!(
            Some(checked.digest.clone()),
            local.digest(&repository, &tag).await
        );
        let error = registry
            .check(&repository, &tag, other)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot run on Lambda"), "{error}");
    }
}

/// What one loopback server saw: the `Authorization` header of each request.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A server that records each request's path and `Authorization` header
/// and answers with `answer(path)`: (status, content type, extra header, body).
async fn recorder(
    answer: impl Fn(&str) -> (u16, &'static str, Option<(&'static str, String)>, Vec<u8>)
    + Send
    + Sync
    + 'static,
) -> (std::net::SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Default::default();
    let answer = std::sync::Arc::new(answer);
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (answer, log) = (answer.clone(), log.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let path = request.uri().path().to_string();
                        let auth = request
                            .headers()
                            .get("authorization")
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_string);
                        log.lock().unwrap().push((path.clone(), auth));
                        let (status, content_type, extra, body) = answer(&path);
                        let mut response = hyper::Response::builder()
                            .status(status)
                            .header("content-type", content_type);
                        if let Some((name, value)) = extra {
                            response = response.header(name, value);
                        }
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                response.body(Full::new(Bytes::from(body))).unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn credentials_go_to_the_registry_host_only_and_not_through_a_blob_redirect() {
    // The blob store a registry redirects to (as ECR redirects blob reads to
    // pre-signed S3 URLs).
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux"})).unwrap();
    let config_digest = sha256(&config);
    let blob = config.clone();
    let (store, store_seen) =
        recorder(move |_| (200, "application/octet-stream", None, blob.clone())).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": []
    }))
    .unwrap();
    let manifest_digest = sha256(&manifest);
    let answer_digest = manifest_digest.clone();
    let (registry_addr, registry_seen) = recorder(move |path| {
        if path.contains("/manifests/") {
            (
                200,
                OCI_MANIFEST,
                Some(("docker-content-digest", answer_digest.clone())),
                manifest.clone(),
            )
        } else {
            (
                307,
                "text/plain",
                Some((
                    "location",
                    format!("http://{store}/layer-store/config?signed=1"),
                )),
                Vec::new(),
            )
        }
    })
    .await;
    let host = registry_addr.to_string();
    let credentials = controller::image::Credentials {
        username: "AWS".into(),
        password: "ecr-token".into(),
        endpoint: host.clone(),
    };
    let registry = Registry::new(&host, Some(credentials.clone())).unwrap();
    let checked = registry
        .check("app/detection", "v1", Architecture::X86_64)
        .await
        .unwrap();
    assert_eq!(checked.digest, manifest_digest);

    let to_registry = registry_seen.lock().unwrap().clone();
    assert_eq!(to_registry.len(), 2, "{to_registry:?}");
    assert!(
        to_registry.iter().all(|(_, auth)| auth
            .as_deref()
            .is_some_and(|auth| auth.starts_with("Basic "))),
        "{to_registry:?}"
    );
    let to_store = store_seen.lock().unwrap().clone();
    assert_eq!(to_store.len(), 1, "the redirect was followed: {to_store:?}");
    assert_eq!(to_store[0].1, None, "the token went to the blob store");

    // A registry on another host never gets them at all.
    let other = format!("127.0.0.1:{}", store.port());
    let error = Registry::new(&other, Some(credentials)).unwrap_err();
    assert!(
        error.to_string().contains("never sent to another host"),
        "{error}"
    );
}
