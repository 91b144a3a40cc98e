//! What the controller's test suites share: a local AWS per test, configs
//! pointing at it, and the controller as a library or as a process.

#![allow(dead_code)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use controller::cloud::Clients;
use controller::reconcile::Controller;
use controller::resources::WaitSettings;
use controller::spec::Spec;
use test_harness::LocalAws;

/// The IAM role an account administrator gives API Gateway once per
/// account and Region so that stages may write access logs (the
/// `cloudwatchRoleArn` account setting); not part of any deployment.
pub const ACCOUNT_LOGGING_ROLE: &str = "apigateway-cloudwatch-logs";

/// A fresh local AWS whose API Gateway account setting has the CloudWatch
/// Logs role, as an account that already runs REST APIs with access logs.
pub async fn account() -> LocalAws {
    let aws = LocalAws::start().await;
    set_account_logging_role(&aws).await;
    aws
}

/// Sets API Gateway's account-wide CloudWatch Logs role, as an
/// administrator would once (through moto itself: the role is old news).
pub async fn set_account_logging_role(aws: &LocalAws) {
    let config = test_harness::sdk_config_for(&aws.moto_endpoint_url()).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let arn = iam
        .create_role()
        .role_name(ACCOUNT_LOGGING_ROLE)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("create the account's API Gateway logging role")
        .role()
        .map(|role| role.arn().to_string())
        .expect("a created role has an ARN");
    aws_sdk_apigateway::Client::new(&config)
        .update_account()
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/cloudwatchRoleArn")
                .value(arn)
                .build(),
        )
        .send()
        .await
        .expect("set the account's API Gateway logging role");
}

/// The shipped local configuration, pointed at `endpoint`.
pub fn local_config(endpoint: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml");
    let text = std::fs::read_to_string(path).expect("config/local.toml is readable");
    text.lines()
        .map(|line| {
            if line.starts_with("endpoint_url") {
                format!("endpoint_url = \"{endpoint}\"")
            } else if let Some(rest) = line.strip_prefix("image = {") {
                // Built images need Docker and a registry (tests/images.rs);
                // the other suites take a prebuilt image instead.
                let package = rest
                    .split("package = \"")
                    .nth(1)
                    .and_then(|tail| tail.split('"').next())
                    .expect("the image table names its package");
                format!("image_uri = \"127.0.0.1:5000/anomaly-local/{package}:v1\"")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The Panther token the tests deploy: it must never appear in any output.
pub const PANTHER_TOKEN: &str = "pnthr-test-token-5f0c2b7e9a41d3c8";

/// A config file in a temporary directory, kept alive with the returned guard.
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn write_config(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("deployment.toml");
    std::fs::write(&path, text).expect("write config");
    ConfigFile { _dir: dir, path }
}

/// Short waits: the strict layer settles in well under a second (roles in
/// 1.5 s), and scripted delays are counted in polls.
pub fn fast_waits() -> WaitSettings {
    WaitSettings {
        poll: std::time::Duration::from_millis(20),
        max_poll: std::time::Duration::from_millis(250),
        timeout: std::time::Duration::from_secs(20),
        // Enough for the strict layer's role propagation (1.5 s).
        consistency_attempts: 24,
        requeue_when_pending: false,
        wait_for_shifts: true,
    }
}

/// A controller for `text`, talking to `endpoint` with the test credentials.
pub async fn controller_at(endpoint: &str, text: &str) -> Controller {
    let spec = Spec::parse(Path::new("test.toml"), text).expect("valid test config");
    let sdk_config = test_harness::sdk_config_for(endpoint).await;
    let mut controller =
        Controller::with_clients(spec, Clients::from_sdk_config(&sdk_config, true))
            .await
            .expect("controller connects");
    controller.set_waits(fast_waits());
    controller.set_secret_value(Some(PANTHER_TOKEN.to_string()));
    controller
}

/// A controller for the local config against this test's AWS.
pub async fn local_controller(aws: &LocalAws) -> Controller {
    controller_at(aws.endpoint_url(), &local_config(aws.endpoint_url())).await
}

/// The `controller` binary with the test credentials and no terminal.
pub fn controller_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_controller"));
    command
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("CONTROLLER_LOG", "controller=info,warn")
        .env("PANTHER_API_TOKEN", PANTHER_TOKEN)
        // A killed writer's lease expires in seconds, not the default minute.
        .env("CONTROLLER_LEASE_TTL", "3s")
        .stdin(Stdio::null());
    command
}

/// Runs the binary to completion.
pub fn run_controller(args: &[&str]) -> Output {
    controller_command(args).output().expect("controller runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Direct SDK clients for the test's own out-of-band changes and checks.
pub struct Sdk {
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

pub async fn sdk(aws: &LocalAws) -> Sdk {
    let config = aws.sdk_config().await;
    Sdk {
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        ),
        ecr: aws_sdk_ecr::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        lambda: aws_sdk_lambda::Client::new(&config),
        logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        apigateway: aws_sdk_apigateway::Client::new(&config),
        events: aws_sdk_eventbridge::Client::new(&config),
        secrets: aws_sdk_secretsmanager::Client::new(&config),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
    }
}

/// How many resources of each kind exist in the account.
#[derive(Debug, PartialEq, Eq)]
pub struct Inventory {
    pub buckets: usize,
    pub repositories: usize,
    pub roles: usize,
    pub log_groups: usize,
    pub functions: usize,
    pub rest_apis: usize,
    pub rules: usize,
    pub secrets: usize,
}

pub async fn inventory(sdk: &Sdk) -> Inventory {
    Inventory {
        buckets: sdk.s3.list_buckets().send().await.unwrap().buckets().len(),
        repositories: sdk
            .ecr
            .describe_repositories()
            .send()
            .await
            .unwrap()
            .repositories()
            .len(),
        roles: sdk
            .iam
            .list_roles()
            .send()
            .await
            .unwrap()
            .roles()
            .iter()
            .filter(|role| role.role_name() != ACCOUNT_LOGGING_ROLE)
            .count(),
        log_groups: sdk
            .logs
            .describe_log_groups()
            .send()
            .await
            .unwrap()
            .log_groups()
            .len(),
        functions: sdk
            .lambda
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .len(),
        rest_apis: sdk
            .apigateway
            .get_rest_apis()
            .send()
            .await
            .unwrap()
            .items()
            .len(),
        rules: sdk.events.list_rules().send().await.unwrap().rules().len(),
        secrets: sdk
            .secrets
            .list_secrets()
            .send()
            .await
            .unwrap()
            .secret_list()
            .iter()
            .filter(|secret| secret.deleted_date().is_none())
            .count(),
    }
}

/// The inventory of a whole local deployment.
pub const FULL: Inventory = Inventory {
    buckets: 1,
    repositories: 2,
    roles: 2,
    log_groups: 3,
    functions: 2,
    rest_apis: 1,
    rules: 1,
    secrets: 1,
};

/// What is left after a destroy that keeps the bucket.
pub const ONLY_BUCKET: Inventory = Inventory {
    buckets: 1,
    repositories: 0,
    roles: 0,
    log_groups: 0,
    functions: 0,
    rest_apis: 0,
    rules: 0,
    secrets: 0,
};

/// The id of the account's only REST API and its resource ids by path.
pub async fn rest_api_resources(sdk: &Sdk) -> (String, std::collections::BTreeMap<String, String>) {
    let apis = sdk.apigateway.get_rest_apis().send().await.unwrap();
    let [api] = apis.items() else {
        panic!("one REST API expected, found {:?}", apis.items());
    };
    let id = api.id().unwrap().to_string();
    let resources = sdk
        .apigateway
        .get_resources()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|resource| Some((resource.path()?.to_string(), resource.id()?.to_string())))
        .collect();
    (id, resources)
}
