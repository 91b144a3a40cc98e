//! The whole system as the quick start runs it, against the real Docker
//! engine, a local registry and moto: apply from empty (images built,
//! pushed, pinned), a model trained on the shipped sample events, the
//! detection image serving HTTP in a container, drift found and repaired,
//! destroy keeping the bucket, then destroy with it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{controller_command, inventory, sdk, stderr, stdout};
use controller::image::{Progress, build_binaries, workspace as workspace_of};
use controller::spec::Architecture;
use serde_json::Value;
use test_harness::{LocalAws, LocalRegistry, require_docker};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// config/local.toml as shipped, pointed at this test's moto and registry.
fn shipped_config(aws: &LocalAws, registry: &LocalRegistry) -> String {
    // Lambda checks the images it is given (present, one manifest, the
    // function's architecture): the strict layer does so in this registry.
    if let Some(strict) = aws.strict() {
        strict.register_registry(&registry.endpoint());
    }
    let docker = workspace().join("docker");
    std::fs::read_to_string(workspace().join("config/local.toml"))
        .unwrap()
        .replace(
            "endpoint_url = \"http://127.0.0.1:4566\"",
            &format!("endpoint_url = \"{}\"", aws.endpoint_url()),
        )
        .replace(
            "endpoint = \"127.0.0.1:5000\"",
            &format!("endpoint = \"{}\"", registry.endpoint()),
        )
        .replace("\"../docker/", &format!("\"{}/", docker.display()))
}

/// Runs the controller binary on the config; returns exit code and stdout.
fn controller(args: &[&str], config: &Path) -> (i32, String) {
    let mut all = args.to_vec();
    all.insert(1, config.to_str().unwrap());
    let output = controller_command(&all)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("controller runs");
    let code = output.status.code().unwrap_or(-1);
    if code == 1 {
        eprintln!("controller {args:?} failed: {}", stderr(&output));
    }
    (code, stdout(&output))
}

/// A plain HTTP/1.1 request over a real socket; returns status and JSON body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("detection listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let json = response
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// Removes the container when the test ends, however it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_end_to_end() {
    require_docker();
    let aws = common::account().await;
    let registry = LocalRegistry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("local.toml");
    std::fs::write(&config, shipped_config(&aws, &registry)).unwrap();

    // Apply from empty: images built and pushed, every resource created.
    let (code, out) = controller(&["apply"], &config);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Invoke URLs:"), "{out}");
    let (code, out) = controller(&["diff"], &config);
    assert_eq!(code, 0, "in sync after apply: {out}");

    // A model trained on the shipped sample events, published to the bucket.
    let binaries = build_binaries(
        &workspace_of(&workspace().join("docker"), "training").unwrap(),
        &["detection", "training"],
        Architecture::X86_64,
        &Progress::lines(),
    )
    .unwrap();
    let training = binaries
        .iter()
        .find(|binary| binary.name == "training")
        .unwrap();
    let samples = workspace().join("functions/samples/events.jsonl.gz");
    // Each function acts as its own execution role: through the strict
    // layer, S3 allows it only what the role's policy grants.
    let (training_key, training_secret) = aws.role_credentials("anomaly-local-training-role");
    let (detection_key, detection_secret) = aws.role_credentials("anomaly-local-detection-role");
    let trained = std::process::Command::new(&training.path)
        .args([
            "train",
            "--min-events",
            "1000",
            "--bucket",
            "anomaly-local-models",
            "--source",
        ])
        .arg(format!("file:{}", samples.display()))
        .env("AWS_ENDPOINT_URL", aws.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", &training_key)
        .env("AWS_SECRET_ACCESS_KEY", &training_secret)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );

    // The deployed detection image, run as a container serving HTTP.
    let sdk = sdk(&aws).await;
    let function = sdk
        .lambda
        .get_function()
        .function_name("anomaly-local-detection")
        .send()
        .await
        .unwrap();
    let image = function.code().unwrap().image_uri().unwrap().to_string();
    assert!(image.contains("@sha256:"), "pinned by digest: {image}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("anomaly-e2e-{port}");
    let started = std::process::Command::new("docker")
        .args(["run", "-d", "--name", &name, "--network", "host"])
        .args(["-e", &format!("AWS_ENDPOINT_URL={}", aws.endpoint_url())])
        .args(["-e", &format!("AWS_ACCESS_KEY_ID={detection_key}")])
        .args(["-e", &format!("AWS_SECRET_ACCESS_KEY={detection_secret}")])
        .args(["-e", "AWS_REGION=us-east-1"])
        .args([
            "-e",
            "MODEL_BUCKET=anomaly-local-models",
            "-e",
            "MODEL_PREFIX=models/",
        ])
        .arg(&image)
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let _container = Container(name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the container serves within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, health) = http(port, "GET", "/health", "");
    assert_eq!(status, 200, "{health}");
    assert!(health["model_version"].is_string(), "{health}");

    let normal = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc {} | head -n 1", samples.display()))
        .output()
        .unwrap();
    let (status, answer) = http(
        port,
        "POST",
        "/detect",
        String::from_utf8_lossy(&normal.stdout).trim(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["is_anomaly"], false, "{answer}");
    let anomalous = r#"{"eventName": "DeleteConfigRule", "awsRegion": "us-east-1", "sourceIPAddress": "192.168.1.100", "userAgent": "curl/7.68.0", "recipientAccountId": 999999999999, "p_event_time": "2024-06-27 03:15:22"}"#;
    let (status, answer) = http(port, "POST", "/detect", anomalous);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["is_anomaly"], true, "{answer}");
    assert_eq!(
        answer["rarity_analysis"]["eventName"]["level"], "UNSEEN",
        "{answer}"
    );

    // Both functions did their work within their roles' policies.
    let strict = aws.strict().expect("the strict layer");
    assert_eq!(strict.refusals(test_harness::Rule::S3AccessDenied), 0);
    assert_eq!(
        strict.refusals(test_harness::Rule::S3MissingKeyForbidden),
        0
    );

    // Drift: found, repaired, in sync again.
    sdk.lambda
        .update_function_configuration()
        .function_name("anomaly-local-detection")
        .memory_size(256)
        .send()
        .await
        .unwrap();
    let (code, out) = controller(&["diff"], &config);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("memory_mb: 256 -> 1024"), "{out}");
    let (code, out) = controller(&["apply"], &config);
    assert_eq!(code, 0, "{out}");
    let (code, out) = controller(&["diff"], &config);
    assert_eq!(code, 0, "{out}");

    // Destroy keeps the bucket and its models; then with --delete-bucket.
    let (code, out) = controller(&["destroy", "--yes"], &config);
    assert_eq!(code, 0, "{out}");
    let left = inventory(&sdk).await;
    assert_eq!(
        (
            left.buckets,
            left.functions,
            left.rest_apis,
            left.rules,
            left.roles
        ),
        (1, 0, 0, 0, 0),
        "{left:?}"
    );
    let models = sdk
        .s3
        .list_objects_v2()
        .bucket("anomaly-local-models")
        .prefix("models/")
        .send()
        .await
        .unwrap();
    assert!(
        models.key_count().unwrap_or(0) >= 2,
        "the model and its pointer are kept"
    );
    let (code, out) = controller(&["destroy", "--yes", "--delete-bucket"], &config);
    assert_eq!(code, 0, "{out}");
    assert_eq!(inventory(&sdk).await.buckets, 0);
}
