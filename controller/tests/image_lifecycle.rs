//! The protected `live-` tag against the ECR API (moto): releasing it from
//! images no function runs removes that tag only, keeps the images (their
//! content tags stay) and leaves the pinned image protected; and the
//! lifecycle policy the controller writes is accepted by `PutLifecyclePolicy`
//! and read back as written; the images the kept versions of a released
//! function pin stay protected.

mod common;

use aws_sdk_ecr::types::{ImageIdentifier, ListImagesFilter, TagStatus};
use common::sdk;
use controller::resources::repository::{lifecycle_policy, live_tag, release_live_tags};
use serde_json::json;
use test_harness::LocalAws;

/// A distinct single manifest per name (moto derives its digest, which is
/// not a real one, from the layer digests: one layer per name).
fn manifest(name: &str) -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 100,
            "digest": format!("sha256:{}", hex_of(&format!("config {name}")))
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 100,
            "digest": format!("sha256:{}", hex_of(name))
        }]
    })
    .to_string()
}

fn hex_of(name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// Puts the manifest of `name` under each of `tags`; gives its digest.
async fn put(ecr: &aws_sdk_ecr::Client, repository: &str, name: &str, tags: &[String]) -> String {
    let mut digest = String::new();
    for tag in tags {
        let output = ecr
            .put_image()
            .repository_name(repository)
            .image_manifest(manifest(name))
            .image_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json")
            .image_tag(tag)
            .send()
            .await
            .unwrap_or_else(|error| panic!("PutImage {name}:{tag}: {error:?}"));
        digest = output
            .image()
            .and_then(|image| image.image_id())
            .and_then(ImageIdentifier::image_digest)
            .expect("PutImage gives the digest")
            .to_string();
    }
    digest
}

/// (digest, tag) of every tagged image.
async fn tagged(ecr: &aws_sdk_ecr::Client, repository: &str) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = ecr
        .list_images()
        .repository_name(repository)
        .filter(
            ListImagesFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .image_ids()
        .iter()
        .map(|id| {
            (
                id.image_digest().unwrap_or_default().to_string(),
                id.image_tag().unwrap_or_default().to_string(),
            )
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn releasing_live_tags_keeps_the_images_and_the_pinned_one_protected() {
    let aws = LocalAws::start().await;
    let ecr = sdk(&aws).await.ecr;
    let repository = "anomaly-local/detection";
    ecr.create_repository()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    // Three deployments: each image has its content tag and was given a
    // live- tag when a function ran it; the function now runs the second
    // (a rollback), and two other repositories' images are not touched.
    let mut digests = Vec::new();
    for (index, content) in ["00aa", "00bb", "00cc"].iter().enumerate() {
        let name = format!("image-{index}");
        let tags = [content.to_string(), live_tag(content)];
        digests.push(put(&ecr, repository, &name, &tags).await);
    }
    let pinned = digests[1].clone();
    assert_eq!(digests.iter().filter(|d| **d == pinned).count(), 1);

    let released = release_live_tags(&ecr, repository, &[&pinned])
        .await
        .unwrap();
    let mut released_sorted = released.clone();
    released_sorted.sort();
    assert_eq!(released_sorted, ["live-00aa", "live-00cc"]);

    let after = tagged(&ecr, repository).await;
    let live: Vec<&(String, String)> = after
        .iter()
        .filter(|(_, tag)| tag.starts_with("live-"))
        .collect();
    assert_eq!(live, [&(pinned.clone(), "live-00bb".to_string())]);
    // Every image is still there under its content tag.
    for (digest, content) in digests.iter().zip(["00aa", "00bb", "00cc"]) {
        assert!(
            after.contains(&(digest.clone(), content.to_string())),
            "{content} lost: {after:?}"
        );
    }
    // Nothing left to release the second time.
    assert!(
        release_live_tags(&ecr, repository, &[&pinned])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_lifecycle_policy_is_accepted_and_read_back() {
    let aws = LocalAws::start().await;
    let ecr = sdk(&aws).await.ecr;
    ecr.create_repository()
        .repository_name("anomaly-local/training")
        .send()
        .await
        .unwrap();
    let policy = lifecycle_policy(10);
    ecr.put_lifecycle_policy()
        .repository_name("anomaly-local/training")
        .lifecycle_policy_text(policy.to_string())
        .send()
        .await
        .unwrap();
    let text = ecr
        .get_lifecycle_policy()
        .repository_name("anomaly-local/training")
        .send()
        .await
        .unwrap()
        .lifecycle_policy_text()
        .unwrap()
        .to_string();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        policy
    );
}

/// The images kept versions of a released function pin stay protected;
/// the others of the repository are released.
#[tokio::test]
async fn images_the_kept_versions_pin_stay_protected() {
    use controller::resources::release::versions;
    let aws = LocalAws::start().await;
    let sdk = sdk(&aws).await;
    let repository = "anomaly-local/detection";
    sdk.ecr
        .create_repository()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    let mut digests = Vec::new();
    for (index, content) in ["0011", "0022", "0033", "0044"].iter().enumerate() {
        let name = format!("image-{index}");
        let tags = [content.to_string(), live_tag(content)];
        digests.push(put(&sdk.ecr, repository, &name, &tags).await);
    }
    // Versions 1 and 2 of the function run images 0 and 1 (as the
    // controller publishes them); the function now runs image 2.
    let moto = test_harness::sdk_config_for(&aws.moto_endpoint_url()).await;
    let lambda = aws_sdk_lambda::Client::new(&moto);
    let role = aws_sdk_iam::Client::new(&moto)
        .create_role()
        .role_name("runner")
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string();
    let image = |digest: &str| {
        format!(
            "{}.dkr.ecr.us-east-1.amazonaws.com/{repository}@{digest}",
            test_harness::TEST_ACCOUNT
        )
    };
    lambda
        .create_function()
        .function_name("detection")
        .role(&role)
        .package_type(aws_sdk_lambda::types::PackageType::Image)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .image_uri(image(&digests[0]))
                .build(),
        )
        .send()
        .await
        .unwrap();
    for (memory, digest) in [(256, &digests[0]), (512, &digests[1])] {
        lambda
            .update_function_configuration()
            .function_name("detection")
            .memory_size(memory)
            .send()
            .await
            .unwrap();
        lambda
            .publish_version()
            .function_name("detection")
            .description(versions::version_description(
                "0123456789ab",
                digest,
                "cdef01234567",
            ))
            .send()
            .await
            .unwrap();
    }
    let ctx = controller::resources::Context::new(
        controller::cloud::Clients::from_sdk_config(
            &test_harness::sdk_config_for(aws.endpoint_url()).await,
            true,
        ),
        "anomaly-local",
        "us-east-1",
        test_harness::TEST_ACCOUNT,
    );
    let kept = versions::pinned_digests(&ctx, "detection")
        .await
        .unwrap()
        .expect("both versions name their image");
    assert_eq!(kept, [digests[0].clone(), digests[1].clone()]);
    let mut pinned: Vec<&str> = kept.iter().map(String::as_str).collect();
    pinned.push(&digests[2]);
    let released = release_live_tags(&sdk.ecr, repository, &pinned)
        .await
        .unwrap();
    assert_eq!(released, ["live-0044"]);
    let live: Vec<String> = tagged(&sdk.ecr, repository)
        .await
        .into_iter()
        .filter(|(_, tag)| tag.starts_with("live-"))
        .map(|(_, tag)| tag)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(live, ["live-0011", "live-0022", "live-0033"]);

    // A version published by hand, whose image cannot be read: every
    // protected image stays.
    lambda
        .update_function_configuration()
        .function_name("detection")
        .memory_size(1024)
        .send()
        .await
        .unwrap();
    lambda
        .publish_version()
        .function_name("detection")
        .description("hot fix")
        .send()
        .await
        .unwrap();
    assert_eq!(
        versions::pinned_digests(&ctx, "detection").await.unwrap(),
        None
    );
}
