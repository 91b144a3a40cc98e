//! Function images against the real Docker engine, a local registry (the
//! stand-in for ECR's registry endpoint) and moto: build, push and pin by
//! digest, the pinned image tagged `live-` for the lifecycle policy; no-op
//! applies; a one-file change; the image as a Lambda; and failures that
//! leave nothing half-deployed.
//!
//! The static release binaries are built once (Cargo's `image` profile in
//! `target/image-build`) and reused by every test and every later run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use common::{controller_command, sdk, stderr, stdout};
use controller::image::{
    BuildContext, Engine, Progress, build_binaries, workspace as workspace_of,
};
use controller::spec::Architecture;
use serde_json::Value;
use test_harness::{LambdaEmulator, LocalAws, LocalRegistry, require_docker};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the controller is in the workspace")
        .to_path_buf()
}

/// config/local.toml against this test's moto and registry, with the
/// Dockerfiles of detection and training taken from the given directories.
fn config(aws: &LocalAws, registry: &LocalRegistry, detection: &Path, training: &Path) -> String {
    // Lambda checks the images it is given (present, one manifest, the
    // function's architecture): the strict layer does so in this registry.
    if let Some(strict) = aws.strict() {
        strict.register_registry(&registry.endpoint());
    }
    let text = std::fs::read_to_string(workspace().join("config/local.toml")).unwrap();
    text.replace(
        "endpoint_url = \"http://127.0.0.1:4566\"",
        &format!("endpoint_url = \"{}\"", aws.endpoint_url()),
    )
    .replace(
        "endpoint = \"127.0.0.1:5000\"",
        &format!("endpoint = \"{}\"", registry.endpoint()),
    )
    .replace(
        "\"../docker/detection.Dockerfile\"",
        &format!("{:?}", detection.join("detection.Dockerfile")),
    )
    .replace(
        "\"../docker/training.Dockerfile\"",
        &format!("{:?}", training.join("training.Dockerfile")),
    )
}

/// The shipped config against this test's moto and registry.
fn shipped_config(aws: &LocalAws, registry: &LocalRegistry) -> String {
    let docker = workspace().join("docker");
    config(aws, registry, &docker, &docker)
}

/// Cargo's target directory: the image binaries are built under it, once,
/// and every image test (and the fixture workspace) shares that build.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Held by each image test for its whole run: the tests share one Cargo
/// build directory (the fixture workspace's binaries land at the same paths
/// as the real ones) and one Docker daemon on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Run {
    code: i32,
    json: Value,
    stderr: String,
    seconds: f64,
}

fn controller(args: &[&str], config: &str, env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deployment.toml");
    std::fs::write(&path, config).unwrap();
    let mut all = args.to_vec();
    all.push(path.to_str().unwrap());
    all.extend(["--output", "json"]);
    let mut command = controller_command(&all);
    command.env("CARGO_TARGET_DIR", target_dir());
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output: Output = command.output().expect("controller runs");
    let seconds = started.elapsed().as_secs_f64();
    let json = serde_json::from_str(&stdout(&output)).unwrap_or(Value::Null);
    Run {
        code: output.status.code().unwrap_or(-1),
        json,
        stderr: stderr(&output),
        seconds,
    }
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn image_uri(aws: &LocalAws, function: &str) -> Option<String> {
    let sdk = sdk(aws).await;
    let output = sdk
        .lambda
        .get_function()
        .function_name(function)
        .send()
        .await
        .ok()?;
    output.code()?.image_uri().map(str::to_string)
}

async fn function_count(aws: &LocalAws) -> usize {
    sdk(aws)
        .await
        .lambda
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .len()
}

/// Checks that `uri` is `registry/repo@sha256:...` and the registry has it.
async fn assert_pinned_in_registry(registry: &LocalRegistry, uri: &str, repository: &str) {
    let prefix = format!("{}/{repository}@", registry.endpoint());
    let digest = uri
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{uri} is not pinned by digest in {prefix}"));
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{uri}");
    let tags = registry.tags(repository).await;
    assert!(!tags.is_empty(), "{repository} has no tag in the registry");
    let mut found = false;
    for tag in &tags {
        found |= registry.digest(repository, tag).await.as_deref() == Some(digest);
    }
    assert!(
        found,
        "the registry has no manifest {digest} in {repository} ({tags:?})"
    );
}

/// Checks that the image `uri` pins carries the protected `live-` tag the
/// repository's lifecycle policy never expires.
async fn assert_live_tagged(registry: &LocalRegistry, uri: &str, repository: &str) {
    let digest = uri.rsplit_once('@').map(|(_, digest)| digest).unwrap();
    let mut live = Vec::new();
    for tag in registry.tags(repository).await {
        if tag.starts_with("live-")
            && registry.digest(repository, &tag).await.as_deref() == Some(digest)
        {
            live.push(tag);
        }
    }
    assert_eq!(live.len(), 1, "{uri} has no live- tag in {repository}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_builds_pushes_and_pins_by_digest_and_a_second_apply_does_nothing() {
    require_docker();
    let _serial = SERIAL.lock().await;
    let aws = common::account().await;
    let registry = LocalRegistry::start().await;
    let config = shipped_config(&aws, &registry);

    let first = controller(&["apply"], &config, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let images = &first.json["images"];
    assert_eq!(
        keys(&images["built"]),
        ["detection", "training"],
        "{images}"
    );
    assert_eq!(
        keys(&images["pushed"]),
        ["detection", "training"],
        "{images}"
    );
    for key in ["detection", "training"] {
        let uri = image_uri(&aws, &format!("anomaly-local-{key}"))
            .await
            .expect("function exists");
        assert_pinned_in_registry(&registry, &uri, &format!("anomaly-local/{key}")).await;
        assert_eq!(images["images"][key], uri.as_str());
        assert_live_tagged(&registry, &uri, &format!("anomaly-local/{key}")).await;
        // A FROM-scratch image: the static binary and the CA bundle.
        let size: u64 = run(std::process::Command::new("docker").args([
            "image",
            "inspect",
            "--format",
            "{{.Size}}",
            &uri,
        ]))
        .trim()
        .parse()
        .unwrap();
        eprintln!("{key} image: {:.2} MB", size as f64 / 1e6);
        assert!(size < 15_000_000, "the {key} image is {size} bytes");
    }

    let second = controller(&["apply"], &config, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.json["changed"], false, "{}", second.json);
    let images = &second.json["images"];
    assert!(
        keys(&images["built"]).is_empty() && keys(&images["pushed"]).is_empty(),
        "{images}"
    );
    assert_eq!(keys(&images["unchanged"]), ["detection", "training"]);
    assert_eq!(
        second.json["calls"]["mutating"], 0,
        "{}",
        second.json["calls"]
    );
    eprintln!(
        "apply from empty: {:.1} s; no-op apply with images: {:.1} s",
        first.seconds, second.seconds
    );
}

/// A copy of the function packages in a workspace of its own, so that a
/// test can change a source file without touching the real one. Kept in
/// `target/` and built into the same Cargo target directory, so that the
/// dependencies are compiled once; the packages sit under `crates/` (not
/// `functions/`), which keeps their own artifacts apart from the real ones.
fn functions_fixture() -> PathBuf {
    let root = target_dir().join("image-test-workspace");
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").unwrap();
    let end = start + manifest[start..].find(']').unwrap() + 1;
    let manifest = format!(
        "{}members = [\"crates/anomaly\", \"crates/detection\", \"crates/training\"]{}",
        &manifest[..start],
        &manifest[end..]
    )
    .replace(
        "anomaly = { path = \"functions/anomaly\" }",
        "anomaly = { path = \"crates/anomaly\" }",
    )
    .replace(
        "controller = { path = \"controller\" }",
        &format!(
            "controller = {{ path = {:?} }}",
            workspace().join("controller")
        ),
    )
    .replace(
        "test-harness = { path = \"tests\" }",
        &format!(
            "test-harness = {{ path = {:?} }}",
            workspace().join("tests")
        ),
    );
    assert!(manifest.contains("crates/anomaly\" }"), "{manifest}");
    sync(&root.join("Cargo.toml"), manifest.as_bytes());
    sync(
        &root.join("Cargo.lock"),
        &std::fs::read(workspace().join("Cargo.lock")).unwrap(),
    );
    for package in ["anomaly", "detection", "training"] {
        copy_tree(
            &workspace().join("functions").join(package),
            &root.join("crates").join(package),
        );
        let dockerfile = format!("docker/{package}.Dockerfile");
        if package != "anomaly" {
            sync(
                &root.join(&dockerfile),
                &std::fs::read(workspace().join(&dockerfile)).unwrap(),
            );
        }
    }
    root
}

/// Writes a file only when its content differs (keeps Cargo's cache fresh).
fn sync(path: &Path, data: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(data) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            sync(&to.join(&name), &std::fs::read(entry.path()).unwrap());
        }
    }
}

/// Restores a file when dropped, even when the test fails.
struct Restore(PathBuf, Vec<u8>);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, &self.1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_detection_source_rebuilds_and_updates_only_detection() {
    require_docker();
    let _serial = SERIAL.lock().await;
    let fixture = functions_fixture();
    let aws = common::account().await;
    let registry = LocalRegistry::start().await;
    let docker = fixture.join("docker");
    let config = config(&aws, &registry, &docker, &docker);
    let main = fixture.join("crates/detection/src/main.rs");
    let original = std::fs::read(&main).unwrap();
    let _restore = Restore(main.clone(), original.clone());

    let first = controller(&["apply"], &config, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = image_uri(&aws, "anomaly-local-detection").await.unwrap();
    let training = image_uri(&aws, "anomaly-local-training").await.unwrap();

    let text = String::from_utf8(original).unwrap();
    let changed = text.replacen(
        "Scores CloudTrail events with the latest anomaly model",
        "Scores CloudTrail events with the newest anomaly model",
        1,
    );
    assert_ne!(
        changed, text,
        "the fixture's main.rs has the text the test changes"
    );
    std::fs::write(&main, changed).unwrap();

    let diff = controller(&["diff"], &config, &[]);
    assert_eq!(diff.code, 2, "{}", diff.stderr);
    let changes: Vec<&Value> = diff.json["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|change| change["action"] != "in_sync")
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["resource"]["name"], "anomaly-local-detection");
    let fields: Vec<&Value> = changes[0]["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["field"])
        .collect();
    assert_eq!(fields, ["image_uri"], "{changes:?}");
    assert_eq!(changes[0]["diffs"][0]["observed"], before.as_str());

    let apply = controller(&["apply"], &config, &[]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let images = &apply.json["images"];
    assert_eq!(keys(&images["built"]), ["detection"], "{images}");
    assert_eq!(keys(&images["pushed"]), ["detection"], "{images}");
    assert_eq!(keys(&images["unchanged"]), ["training"], "{images}");
    let mutating = &apply.json["outcome"]["calls"]["mutating_calls"];
    assert_eq!(
        mutating.as_object().map(|calls| calls.len()),
        Some(1),
        "{mutating}"
    );
    assert_eq!(mutating["Lambda.UpdateFunctionCode"], 1, "{mutating}");
    let after = image_uri(&aws, "anomaly-local-detection").await.unwrap();
    assert_ne!(after, before);
    assert_pinned_in_registry(&registry, &after, "anomaly-local/detection").await;
    assert_live_tagged(&registry, &after, "anomaly-local/detection").await;
    assert_eq!(
        image_uri(&aws, "anomaly-local-training").await.unwrap(),
        training
    );
}

/// Runs a command to success; its standard output.
fn run(command: &mut std::process::Command) -> String {
    let output = command.output().expect("the command runs");
    assert!(output.status.success(), "{command:?}: {}", stderr(&output));
    stdout(&output)
}

/// Both images as Lambda runs them: AWS's Runtime Interface Emulator
/// mounted as each image's entrypoint. The training image answers a
/// recorded EventBridge scheduled event by training on mounted events and
/// publishing the model to S3 (the local cloud, through the strict layer);
/// the detection image then answers recorded API Gateway events with that
/// model, and both logs are free of ANSI colour codes.
#[tokio::test(flavor = "multi_thread")]
async fn both_images_answer_under_the_lambda_runtime_interface_emulator() {
    require_docker();
    let _serial = SERIAL.lock().await;
    let docker = workspace().join("docker");
    let progress = Progress::lines();
    let engine = Engine::connect().await.expect("the Docker daemon answers");
    // Both packages in one build, as apply builds them (shared features).
    let cargo_workspace = workspace_of(&docker, "detection, training").unwrap();
    let binaries = build_binaries(
        &cargo_workspace,
        &["detection", "training"],
        Architecture::X86_64,
        &progress,
    )
    .unwrap();
    let include = [PathBuf::from("/etc/ssl/certs/ca-certificates.crt")];
    let mut images = std::collections::BTreeMap::new();
    for binary in &binaries {
        let context = BuildContext::assemble(
            &docker.join(format!("{}.Dockerfile", binary.name)),
            binary,
            &include,
        )
        .unwrap();
        let image = format!("image-test/{}:{}", binary.name, context.tag());
        engine
            .build(
                &binary.name,
                &context,
                &image,
                Architecture::X86_64,
                &progress,
            )
            .await
            .unwrap();
        images.insert(binary.name.clone(), image);
    }

    let aws = LocalAws::start().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("models").send().await.unwrap();
    let environment = [
        ("AWS_ENDPOINT_URL", aws.endpoint_url().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("MODEL_BUCKET", "models".to_string()),
        ("MODEL_PREFIX", "models/".to_string()),
    ];
    let fixture = |path: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(workspace().join(path)).unwrap()).unwrap()
    };

    // Training: a scheduled event, events from a mounted file.
    let training_binary = binaries
        .iter()
        .find(|binary| binary.name == "training")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    run(std::process::Command::new(&training_binary.path)
        .args(["generate", "--count", "3000", "--seed", "7", "--out"])
        .arg(&events));
    let training = LambdaEmulator::image(&images["training"], "/training")
        .envs(environment.clone())
        .env("MIN_TRAINING_EVENTS", "1000")
        .volume(&events, "/events.jsonl")
        .start()
        .await;
    let mut scheduled = fixture("functions/training/tests/fixtures/scheduled_event.json");
    scheduled["detail"] = serde_json::json!({"training_source": "file:/events.jsonl"});
    let (status, answer) = training.invoke(&scheduled).await;
    assert_eq!(status, 200, "{answer}\n{}", training.output());
    assert!(
        answer.get("errorType").is_none(),
        "{answer}\n{}",
        training.output()
    );
    assert!(!training.output().contains("\x1b["), "plain logs");
    let pointer = s3
        .get_object()
        .bucket("models")
        .key("models/latest.json")
        .send()
        .await
        .expect("the training image published a model");
    assert!(pointer.content_length().unwrap_or_default() > 0);
    // An event it cannot take is a named error, as Lambda shows it.
    let (_, refused) = training
        .invoke(&serde_json::json!({"detail": {"min_events": "many"}}))
        .await;
    assert_eq!(refused["errorType"], "InvalidEvent", "{refused}");

    // Detection: recorded API Gateway events, with the model from S3.
    let detection = LambdaEmulator::image(&images["detection"], "/detection")
        .envs(environment)
        .start()
        .await;
    let (status, health) = detection
        .invoke(&fixture(
            "functions/detection/tests/fixtures/apigw/get_health.json",
        ))
        .await;
    assert_eq!(status, 200, "{health}\n{}", detection.output());
    assert_eq!(
        health["statusCode"],
        200,
        "{health}\n{}",
        detection.output()
    );
    let body: Value = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "healthy", "{body}");
    assert!(!detection.output().contains("\x1b["), "plain logs");
    for binary in &binaries {
        let size = std::fs::metadata(&binary.path).unwrap().len();
        eprintln!("{} binary: {:.1} MB", binary.name, size as f64 / 1e6);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn build_and_push_failures_leave_nothing_half_deployed() {
    require_docker();
    let _serial = SERIAL.lock().await;
    let aws = common::account().await;
    let registry = LocalRegistry::start().await;
    let good = shipped_config(&aws, &registry);
    let sdk = sdk(&aws).await;
    let repositories = || async {
        sdk.ecr
            .describe_repositories()
            .send()
            .await
            .unwrap()
            .repositories()
            .len()
    };

    // A Dockerfile that fails at its third step (scratch has no shell).
    let bad_dir = tempfile::tempdir_in(workspace().join("target")).unwrap();
    std::fs::write(
        bad_dir.path().join("detection.Dockerfile"),
        "FROM scratch\nCOPY detection /detection\nRUN /detection --version\n",
    )
    .unwrap();
    std::fs::write(bad_dir.path().join("ca-certificates.crt"), "").unwrap();
    let broken = config(&aws, &registry, bad_dir.path(), &workspace().join("docker"));
    let run = controller(&["apply"], &broken, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("failed to build at Step 3/3 : RUN /detection --version"),
        "{}",
        run.stderr
    );
    assert_eq!((function_count(&aws).await, repositories().await), (0, 0));
    assert!(registry.tags("anomaly-local/detection").await.is_empty());

    // A package without a binary.
    let no_binary = good.replacen("package = \"detection\"", "package = \"anomaly\"", 1);
    let run = controller(&["apply"], &no_binary, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("package anomaly") && run.stderr.contains("no binary"),
        "{}",
        run.stderr
    );
    assert_eq!((function_count(&aws).await, repositories().await), (0, 0));

    // No daemon.
    let run = controller(
        &["apply"],
        &good,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("DOCKER_HOST") && run.stderr.contains("/nonexistent/docker.sock"),
        "{}",
        run.stderr
    );
    assert_eq!((function_count(&aws).await, repositories().await), (0, 0));

    // A registry that refuses the push: the repositories exist, no function does.
    let read_only = LocalRegistry::start_read_only().await;
    let refused = shipped_config(&aws, &read_only);
    let run = controller(&["apply"], &refused, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("pushing") && run.stderr.contains("failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        function_count(&aws).await,
        0,
        "no function points at an image the registry lacks"
    );

    // The same deployment then converges with a registry that takes it.
    let run = controller(&["apply"], &good, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(function_count(&aws).await, 2);
}

/// The size of the pseudo-terminal the controller runs in.
const TERMINAL: (u16, u16) = (2000, 160);

/// What the controller writes under a pseudo-terminal (`script`) of
/// [`TERMINAL`]'s size, both streams together, as bytes.
fn under_terminal(args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<u8>) {
    let command_line = std::iter::once(env!("CARGO_BIN_EXE_controller"))
        .chain(args.iter().copied())
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let command_line = format!(
        "stty rows {} cols {}; {command_line}",
        TERMINAL.0, TERMINAL.1
    );
    let mut command = std::process::Command::new("script");
    command
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("NO_COLOR")
        .env("CONTROLLER_LOG", "controller=info,warn")
        .env("PANTHER_API_TOKEN", common::PANTHER_TOKEN)
        .env("CONTROLLER_LEASE_TTL", "3s")
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(std::process::Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("script runs");
    (output.status.code().unwrap_or(-1), output.stdout)
}

/// The screen a terminal shows after `bytes` (a vt100 emulator).
fn screen_of(bytes: &[u8]) -> String {
    let mut parser = vt100::Parser::new(TERMINAL.0, TERMINAL.1, 0);
    parser.process(bytes);
    // Row by row: a line padded to the full width wraps softly, and
    // `contents` would join it with the next.
    parser
        .screen()
        .rows(0, TERMINAL.1)
        .map(|row| row.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_apply_is_short_when_piped_and_draws_unbroken_bars_on_a_terminal() {
    require_docker();
    let _serial = SERIAL.lock().await;
    // Piped to a file: one line per phase, not one per crate compiled.
    let aws = common::account().await;
    let registry = LocalRegistry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deployment.toml");
    std::fs::write(&path, shipped_config(&aws, &registry)).unwrap();
    let output = controller_command(&["apply", path.to_str().unwrap(), "--yes"])
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let all = format!("{}{}", stdout(&output), stderr(&output));
    let lines = all.lines().count();
    eprintln!("first apply, piped: {lines} lines");
    assert!(lines < 60, "{lines} lines:\n{all}");
    assert!(!all.contains("Compiling"), "{all}");
    assert!(
        !all.contains('\u{1b}'),
        "escape sequences in a file:\n{all}"
    );

    // Under a terminal: bars drawn, and each log line starts a line of its own.
    let aws = common::account().await;
    let registry = LocalRegistry::start().await;
    std::fs::write(&path, shipped_config(&aws, &registry)).unwrap();
    let (code, bytes) = under_terminal(&["apply", path.to_str().unwrap(), "--yes"], &[]);
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(code, 0, "{raw}");
    // Bars were drawn: a spinner, redrawn in place.
    assert!(
        raw.contains("\u{1b}[2K"),
        "no bar redrawn on a terminal:\n{raw}"
    );
    assert!(raw.contains("cargo build --profile image"), "{raw}");
    assert!(raw.contains("built in"), "{raw}");
    let screen = screen_of(&bytes);
    let logs: Vec<&str> = screen
        .lines()
        .filter(|line| line.contains(" INFO "))
        .collect();
    assert!(!logs.is_empty(), "{screen}");
    for line in logs {
        // A log line starts its own line with its timestamp: no bar's text
        // before it, and none after it on the same line.
        assert!(
            line.starts_with("20") && line.find(" INFO ").is_some_and(|at| at < 32),
            "a broken log line: {line:?}\n{screen}"
        );
        assert!(
            !line.contains("cargo build --profile"),
            "a bar inside a log line: {line:?}"
        );
    }
    assert!(screen.contains("Applied in"), "{screen}");
}
