//! The detection function as a container image under AWS's Lambda Runtime Interface
//! Emulator, mounted as the image's entrypoint as Lambda runs an image: `docker run
//! --network host -v RIE:/rie:ro --entrypoint /rie IMAGE ... /detection`, with the
//! model from S3 (moto) and a volume.
//!
//! The image is `FROM scratch` with this build's `detection` binary, the shared
//! libraries it links and the CA bundle (the deployable images hold a static release
//! build; the controller's image tests run those). Needs the Docker daemon and fails without it.

mod common;

use anomaly::store::{ModelStore, s3_client};
use common::small_model;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use test_harness::{LambdaEmulator, LocalAws};

/// A local image removed when dropped.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// Copies `file` into `root` at the same absolute path.
fn copy_into(root: &Path, file: &Path) {
    let target = root.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(file, &target).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// Builds `FROM scratch` + the detection binary at `/detection` + its libraries.
fn build_image(dir: &Path) -> Image {
    test_harness::require_docker();
    let binary = Path::new(env!("CARGO_BIN_EXE_detection"));
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(binary, root.join("detection")).unwrap();
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            copy_into(
                &root,
                &std::fs::canonicalize(path).unwrap_or_else(|_| path.into()),
            );
            // Keep the name the binary asks for when it is a link.
            copy_into(&root, Path::new(path));
        }
    }
    // The SDK's HTTPS client loads the system's roots at start, as in the real image.
    copy_into(&root, Path::new("/etc/ssl/certs/ca-certificates.crt"));
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/detection\"]\n",
    )
    .unwrap();
    let tag = format!("emulator-test/detection:{}", std::process::id());
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(dir)
        .output()
        .expect("docker build runs");
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Image(tag)
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/apigw/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_answers_api_gateway_events_under_the_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(dir.path());
    let aws = LocalAws::start().await;
    let s3 = s3_client(&aws.sdk_config().await);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let model = small_model(6);
    ModelStore::new(s3, "models", "models/")
        .publish(&model)
        .await
        .unwrap();
    let extra = dir.path().join("note.txt");
    std::fs::write(&extra, "mounted").unwrap();

    let emulator = LambdaEmulator::image(&image.0, "/detection")
        .env("MODEL_BUCKET", "models")
        .env("AWS_ENDPOINT_URL", aws.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .volume(&extra, "/note.txt")
        .start()
        .await;

    let (status, answer) = emulator.invoke(&fixture("get_health")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["statusCode"], 200, "{answer}\n{}", emulator.output());
    let health: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(health["model_version"], model.version.as_str(), "{health}");

    let (_, answer) = emulator.invoke(&fixture("post_detect_old_example")).await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let result: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(result["is_anomaly"], true, "{result}");

    let output = emulator.output();
    assert!(output.contains("model loaded"), "{output}");
    assert!(
        !output.contains("\x1b["),
        "ANSI codes in the logs:\n{output}"
    );
}
