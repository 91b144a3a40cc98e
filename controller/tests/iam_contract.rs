//! The IAM contract, checked with a tool nobody here wrote: every IAM policy
//! document the controller can generate (each execution role's inline
//! policies and its trust policy), over permutations of the settings that
//! shape them, passes `parliament` (the IAM policy linter from PyPI, which
//! `scripts/local-cloud.sh install` installs) with zero findings, at its
//! most verbose severity (`INFO`). A missing `parliament` fails the test.
//!
//! Parliament lints identity policies: it reports a statement without
//! `Resource` as malformed, and says in its own source that trust policies
//! (which must not have one) are out of its reach. Trust policies are
//! therefore linted with the role's own ARN as their `Resource`, which lets
//! parliament check the rest of them (principal, action, conditions), and
//! checked separately to have no `Resource` of their own.
//!
//! Also checked for each document, from the IAM User Guide, "IAM and AWS STS
//! quotas" (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>):
//! a role's inline policies at most 10,240 characters in all, a trust
//! policy at most 2,048 (both without white space, as IAM counts them).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use controller::cloud::Clients;
use controller::desired::{Refs, desired_resources};
use controller::resources::{Context, Resource, role};
use controller::spec::Spec;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";
/// One region of each partition: `aws`, `aws-cn`, `aws-us-gov`.
const REGIONS: [&str; 3] = ["us-east-1", "cn-north-1", "us-gov-west-1"];

/// One combination of the settings that change the generated policies.
#[derive(Clone, Debug)]
struct Settings {
    region: &'static str,
    cors: bool,
    api_key: bool,
    secret: bool,
    access_logs: bool,
    detection_access: &'static str,
    training_access: &'static str,
    bucket: Option<&'static str>,
    prefix: &'static str,
    role_path: Option<&'static str>,
}

fn ecr_host(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{ACCOUNT}.dkr.ecr.{region}.{suffix}")
}

/// The desired-state file of `settings`.
fn config(settings: &Settings) -> String {
    let image = |name: &str| {
        format!(
            "{}/iam-contract/{name}@sha256:{}",
            ecr_host(settings.region),
            "ab".repeat(32)
        )
    };
    let role = settings
        .role_path
        .map(|path| format!("\n[functions.{{key}}.role]\npath = \"{path}\"\n"))
        .unwrap_or_default();
    let mut text = format!(
        r#"[deployment]
name = "iam-contract"
region = "{region}"
account_id = "{ACCOUNT}"

[bucket]
{bucket}model_prefix = "{prefix}"

[functions.detection]
image_uri = "{detection_image}"
model_access = "{detection_access}"
{detection_role}
[functions.training]
image_uri = "{training_image}"
model_access = "{training_access}"
{training_role}
[api]
api_key_required = {api_key}
access_logging = {access_logs}
cors_allow_origins = {cors}

[[api.routes]]
method = "GET"
path = "/health"
function = "detection"

[[api.routes]]
method = "POST"
path = "/detect"
function = "detection"

[[api.routes]]
method = "ANY"
path = "/items/{{proxy+}}"
function = "detection"

[schedule]
expression = "cron(0 6 * * ? *)"
function = "training"
"#,
        region = settings.region,
        bucket = settings
            .bucket
            .map(|name| format!("name = \"{name}\"\n"))
            .unwrap_or_default(),
        prefix = settings.prefix,
        detection_image = image("detection"),
        training_image = image("training"),
        detection_access = settings.detection_access,
        training_access = settings.training_access,
        detection_role = role.replace("{key}", "detection"),
        training_role = role.replace("{key}", "training"),
        api_key = settings.api_key,
        access_logs = settings.access_logs,
        cors = if settings.cors {
            r#"["https://siem.example.com", "https://soc.example.org"]"#
        } else {
            "[]"
        },
    );
    if settings.secret {
        text.push_str(
            "\n[panther_secret]\nvalue_from_env = \"PANTHER_API_TOKEN\"\nfunction = \"training\"\n",
        );
    }
    text
}

/// Every combination: partitions, CORS, API key, secret, access logs, each
/// function's model access, bucket names and prefixes, role paths.
fn permutations() -> Vec<Settings> {
    let accesses = ["none", "read", "read-write"];
    let mut all = Vec::new();
    for region in REGIONS {
        for flags in 0..16u8 {
            for detection_access in accesses {
                for training_access in accesses {
                    for (bucket, prefix, role_path) in [
                        (None, "models/", None),
                        (Some("team.models-1"), "a/b/c/", Some("/")),
                        (None, "team_1.x-y/", Some("/platform/anomaly/")),
                    ] {
                        all.push(Settings {
                            region,
                            cors: flags & 1 != 0,
                            api_key: flags & 2 != 0,
                            secret: flags & 4 != 0,
                            access_logs: flags & 8 != 0,
                            detection_access,
                            training_access,
                            bucket,
                            prefix,
                            role_path,
                        });
                    }
                }
            }
        }
    }
    all
}

/// One context per region of the permutations (building SDK clients is
/// the slow part of generating a deployment).
fn contexts() -> BTreeMap<&'static str, Context> {
    REGIONS
        .iter()
        .map(|region| (*region, context(region)))
        .collect()
}

fn context(region: &str) -> Context {
    let sdk_config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .build();
    Context::new(
        Clients::from_sdk_config(&sdk_config, false),
        "iam-contract",
        region,
        ACCOUNT,
    )
}

/// What the controller would deploy for `settings`, with the values AWS
/// chooses (API id, secret ARN) filled in as AWS would.
fn resources(
    settings: &Settings,
    contexts: &BTreeMap<&str, Context>,
) -> (Spec, Vec<Box<dyn Resource>>) {
    let text = config(settings);
    let spec = Spec::parse(Path::new("iam-contract.toml"), &text)
        .unwrap_or_else(|error| panic!("{settings:?}: {error}\n{text}"));
    let ctx = &contexts[settings.region];
    let refs = Refs {
        api_id: Some("a1b2c3d4e5".into()),
        secret_arn: spec.panther_secret.as_ref().map(|secret| {
            format!(
                "arn:{}:secretsmanager:{}:{ACCOUNT}:secret:{}-AbCdEf",
                ctx.partition, settings.region, secret.name
            )
        }),
        secret_value: None,
    };
    let resources = desired_resources(&spec, ctx, &refs);
    (spec, resources)
}

/// A policy document to lint, and where it came from.
struct Document {
    origin: String,
    text: String,
}

/// Every IAM document of every permutation, each distinct text once.
fn documents() -> Vec<Document> {
    let mut unique: BTreeMap<String, String> = BTreeMap::new();
    let contexts = contexts();
    for settings in permutations() {
        let ctx = &contexts[settings.region];
        let (_, resources) = resources(&settings, &contexts);
        let roles: Vec<_> = resources
            .iter()
            .filter_map(|resource| resource.as_any().downcast_ref::<role::Desired>())
            .collect();
        assert!(roles.len() >= 2, "{settings:?}: a role per function");
        for role in roles {
            let arn = role.arn(ctx);
            let trust: Value = serde_json::from_str(&role.trust_policy).expect("trust JSON");
            let trust_size = serde_json::to_string(&trust).unwrap().len();
            assert!(trust_size <= 2048, "{arn}: trust policy of {trust_size}");
            let mut linted = trust.clone();
            for statement in linted["Statement"].as_array_mut().expect("statements") {
                assert!(
                    statement.get("Resource").is_none() && statement.get("NotResource").is_none(),
                    "{arn}: a trust policy has no Resource: {statement}"
                );
                statement["Resource"] = json!(arn);
            }
            unique
                .entry(serde_json::to_string_pretty(&linted).unwrap())
                .or_insert_with(|| format!("trust policy of {arn} ({settings:?})"));
            let mut inline_size = 0;
            for (name, policy) in &role.policies {
                let policy: Value = serde_json::from_str(policy).expect("policy JSON");
                inline_size += serde_json::to_string(&policy).unwrap().len();
                unique
                    .entry(serde_json::to_string_pretty(&policy).unwrap())
                    .or_insert_with(|| format!("inline policy {name} of {arn} ({settings:?})"));
            }
            assert!(
                inline_size <= 10240,
                "{arn}: inline policies of {inline_size}"
            );
        }
    }
    unique
        .into_iter()
        .map(|(text, origin)| Document { origin, text })
        .collect()
}

/// Runs parliament over a directory of `.json` documents, as a user would
/// (stdin closed: its `--file` refuses a non-terminal stdin, `--directory`
/// does not). Returns its exit status and its findings, one JSON per line.
fn parliament(directory: &Path) -> (Option<i32>, Vec<Value>) {
    let output = Command::new("parliament")
        .arg("--directory")
        .arg(directory)
        .args(["--json", "--minimum_severity", "INFO"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!("parliament (PyPI) must be installed (scripts/local-cloud.sh install): {error}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Traceback") && !stderr.contains("error:"),
        "parliament failed: {stderr}"
    );
    let findings = stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("a finding per line ({error}): {line}"))
        })
        .collect();
    (output.status.code(), findings)
}

fn write_documents(documents: &[(String, String)]) -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("temp dir");
    for (name, text) in documents {
        std::fs::write(directory.path().join(name), text).expect("write a document");
    }
    directory
}

#[test]
fn the_linter_finds_what_it_should() {
    // A control: the same run finds problems in documents that have them,
    // so a clean run below means clean documents, not a silent linter.
    let directory = write_documents(&[
        (
            "object-action-on-bucket.json".into(),
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b"
            }]})
            .to_string(),
        ),
        (
            "trust-without-resource.json".into(),
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"
            }]})
            .to_string(),
        ),
    ]);
    let (status, findings) = parliament(directory.path());
    assert_ne!(status, Some(0), "{findings:?}");
    let issues: Vec<&str> = findings
        .iter()
        .filter_map(|finding| finding["issue"].as_str())
        .collect();
    assert!(issues.contains(&"RESOURCE_MISMATCH"), "{issues:?}");
    assert!(issues.contains(&"MALFORMED"), "{issues:?}");
}

#[test]
fn every_generated_policy_passes_parliament_with_zero_findings() {
    let documents = documents();
    eprintln!("{} distinct IAM documents", documents.len());
    // Two functions, three partitions, three role paths, access and
    // secret variants: far more than a handful of distinct documents.
    assert!(documents.len() >= 30, "{} documents", documents.len());
    let named: Vec<(String, String)> = documents
        .iter()
        .enumerate()
        .map(|(index, document)| (format!("{index:04}.json"), document.text.clone()))
        .collect();
    let directory = write_documents(&named);
    let (status, findings) = parliament(directory.path());
    let report: Vec<String> = findings
        .iter()
        .map(|finding| {
            let file = finding["location"]["filepath"].as_str().unwrap_or_default();
            let index: usize = Path::new(file)
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(|stem| stem.parse().ok())
                .unwrap_or(usize::MAX);
            let document = documents.get(index);
            format!(
                "{finding}\n  in {}\n{}",
                document.map_or("?", |document| document.origin.as_str()),
                document.map_or("", |document| document.text.as_str())
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "parliament findings:\n{}",
        report.join("\n")
    );
    assert_eq!(status, Some(0), "parliament's exit status");
}

/// Each action a policy allows on each resource, as (action, resource,
/// whether a condition limits it).
fn grants(policy: &Value) -> Vec<(String, String, bool)> {
    let list = |value: &Value| -> Vec<String> {
        match value {
            Value::String(text) => vec![text.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut grants = Vec::new();
    for statement in policy["Statement"].as_array().expect("statements") {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        assert!(statement.get("NotAction").is_none(), "{statement}");
        assert!(statement.get("NotResource").is_none(), "{statement}");
        for action in list(&statement["Action"]) {
            for resource in list(&statement["Resource"]) {
                grants.push((
                    action.clone(),
                    resource,
                    statement.get("Condition").is_some(),
                ));
            }
        }
    }
    grants
}

#[test]
fn roles_get_exactly_the_model_access_their_function_has() {
    let contexts = contexts();
    for settings in permutations() {
        let (spec, resources) = resources(&settings, &contexts);
        let partition = match settings.region {
            "cn-north-1" => "aws-cn",
            "us-gov-west-1" => "aws-us-gov",
            _ => "aws",
        };
        let bucket = format!("arn:{partition}:s3:::{}", spec.bucket.name);
        let models = format!("{bucket}/{}*", settings.prefix);
        for function in &spec.functions {
            let role = resources
                .iter()
                .filter_map(|resource| resource.as_any().downcast_ref::<role::Desired>())
                .find(|role| role.spec.name == function.role.name)
                .unwrap_or_else(|| panic!("{settings:?}: the role of {}", function.key));
            let grants: Vec<(String, String, bool)> = role
                .policies
                .values()
                .flat_map(|policy| grants(&serde_json::from_str(policy).unwrap()))
                .collect();
            let allowed = |action: &str, resource: &str| {
                grants.iter().any(|(a, r, _)| a == action && r == resource)
            };
            let context = format!("{settings:?}, {}: {grants:?}", function.key);
            // No wildcard action, no wildcard service, anywhere.
            for (action, resource, _) in &grants {
                assert!(!action.contains('*'), "{context}");
                assert!(resource != "*", "{context}");
            }
            let access = match function.key.as_str() {
                "detection" => settings.detection_access,
                _ => settings.training_access,
            };
            let reads = access != "none";
            // Listing the bucket lets a missing model key answer 404, not
            // 403 (S3 API reference, GetObject, "Permissions"). Whether the
            // grant carries a condition is the policy's business; that it
            // is on the bucket ARN itself, and only for model readers, is
            // the contract.
            assert_eq!(allowed("s3:ListBucket", &bucket), reads, "{context}");
            assert_eq!(allowed("s3:GetObject", &models), reads, "{context}");
            assert_eq!(
                allowed("s3:PutObject", &models),
                access == "read-write",
                "{context}"
            );
            // Nothing else of S3, on anything else.
            for (action, resource, _) in &grants {
                if action.starts_with("s3:") {
                    assert!(resource == &bucket || resource == &models, "{context}");
                    assert!(
                        ["s3:ListBucket", "s3:GetObject", "s3:PutObject"]
                            .contains(&action.as_str()),
                        "{context}"
                    );
                }
            }
            // The token: only the function that reads it, only that secret.
            let reads_secret = settings.secret && function.key == "training";
            let secret_grants: Vec<&(String, String, bool)> = grants
                .iter()
                .filter(|(action, _, _)| action.starts_with("secretsmanager:"))
                .collect();
            assert_eq!(!secret_grants.is_empty(), reads_secret, "{context}");
            for (action, resource, _) in secret_grants {
                assert_eq!(action, "secretsmanager:GetSecretValue", "{context}");
                assert_eq!(
                    resource,
                    &format!(
                        "arn:{partition}:secretsmanager:{}:{ACCOUNT}:secret:iam-contract/panther-api-token-??????",
                        settings.region
                    ),
                    "{context}"
                );
            }
            // Logs: its own log group only.
            let log_group = format!(
                "arn:{partition}:logs:{}:{ACCOUNT}:log-group:/aws/lambda/{}:*",
                settings.region, function.name
            );
            assert!(allowed("logs:PutLogEvents", &log_group), "{context}");
            for (action, resource, _) in &grants {
                if action.starts_with("logs:") {
                    assert_eq!(resource, &log_group, "{context}");
                }
            }
            // Lambda, and only Lambda, may assume it.
            let trust: Value = serde_json::from_str(&role.trust_policy).unwrap();
            for statement in trust["Statement"].as_array().unwrap() {
                assert_eq!(
                    statement["Principal"],
                    json!({"Service": "lambda.amazonaws.com"}),
                    "{context}"
                );
                assert_eq!(statement["Action"], "sts:AssumeRole", "{context}");
            }
        }
    }
}
