//! `controller policy`: the IAM policy the controller needs for a
//! deployment allows every AWS operation the controller makes (recorded by
//! its call-counting interceptor over apply from empty, drift repair of
//! every service, a changed file, diff, the daemon's per-resource plan, and
//! both destroys), and AWS's own linter, parliament, finds nothing in it for
//! any shape of deployment.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use common::*;
use controller::reconcile::BucketOnDestroy;
use serde_json::Value;

/// The IAM action(s) an SDK operation needs, as the Service Authorization
/// Reference names them (written here independently of the policy).
fn iam_actions(service: &str, operation: &str) -> Vec<String> {
    let one = |prefix: &str, action: &str| vec![format!("{prefix}:{action}")];
    match service {
        "S3" => match operation {
            "HeadBucket" | "ListObjectsV2" => one("s3", "ListBucket"),
            "ListObjectVersions" => one("s3", "ListBucketVersions"),
            "ListBuckets" => one("s3", "ListAllMyBuckets"),
            "GetBucketEncryption" => one("s3", "GetEncryptionConfiguration"),
            "PutBucketEncryption" => one("s3", "PutEncryptionConfiguration"),
            "GetBucketLifecycleConfiguration" => one("s3", "GetLifecycleConfiguration"),
            "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
                one("s3", "PutLifecycleConfiguration")
            }
            "GetPublicAccessBlock" => one("s3", "GetBucketPublicAccessBlock"),
            "PutPublicAccessBlock" | "DeletePublicAccessBlock" => {
                one("s3", "PutBucketPublicAccessBlock")
            }
            "DeleteBucketTagging" => one("s3", "PutBucketTagging"),
            "HeadObject" => one("s3", "GetObject"),
            "DeleteObjects" => vec!["s3:DeleteObject".into(), "s3:DeleteObjectVersion".into()],
            other => one("s3", other),
        },
        "API Gateway" => {
            let verb = match operation {
                op if op.starts_with("Get") => "GET",
                op if op.starts_with("Create") => "POST",
                op if op.starts_with("Put") || op == "TagResource" => "PUT",
                op if op.starts_with("Update") => "PATCH",
                _ => "DELETE",
            };
            one("apigateway", verb)
        }
        "CloudWatch Logs" => one("logs", operation),
        "CloudWatch" => one("cloudwatch", operation),
        "SNS" => one("sns", operation),
        "ECR" => one("ecr", operation),
        "EventBridge" => one("events", operation),
        "IAM" => one("iam", operation),
        "Lambda" => {
            let mut actions = one("lambda", operation);
            if matches!(operation, "CreateFunction" | "UpdateFunctionConfiguration") {
                actions.push("iam:PassRole".into());
            }
            actions
        }
        "STS" => one("sts", operation),
        "Resource Groups Tagging API" => one("tag", operation),
        "Secrets Manager" => one("secretsmanager", operation),
        other => panic!("no IAM prefix known for the service {other}"),
    }
}

fn allowed_actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|statement| statement["Effect"] == "Allow")
        .flat_map(|statement| {
            statement["Action"]
                .as_array()
                .expect("actions are lists")
                .iter()
                .map(|action| action.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn policy_of(config: &str) -> Value {
    let config = write_config(config);
    let output = run_controller(&[
        "policy",
        config.path.to_str().unwrap(),
        "--account",
        test_harness::TEST_ACCOUNT,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).expect("the policy is JSON")
}

/// parliament's findings for `policy` (empty when clean). Fails loudly when
/// parliament is missing: `scripts/local-cloud.sh install` installs it.
fn parliament(policy: &Value) -> String {
    let output = Command::new("parliament")
        .arg("--string")
        .arg(policy.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run parliament ({error}); run scripts/local-cloud.sh install")
        });
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        if output.status.success() {
            String::new()
        } else {
            format!("(exit {:?})", output.status.code())
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_the_controller_makes_is_allowed_by_its_policy() {
    let aws = account().await;
    // Both functions released through an alias, detection by canary.
    let text = local_config(aws.endpoint_url())
        + "\n[functions.detection.release]\nstrategy = \"canary\"\ncanary = { percent = 50, minutes = 0.01 }\nalarm_check_seconds = 1\n\n[functions.training.release]\n";
    let mut operations: BTreeMap<String, u64> = BTreeMap::new();
    let mut record = |controller: &controller::reconcile::Controller| {
        for (operation, count) in controller.ctx.clients.calls.operations() {
            *operations.entry(operation).or_default() += count;
        }
    };

    let controller = controller_at(aws.endpoint_url(), &text).await;
    controller.apply().await.expect("apply from empty");
    record(&controller);

    // Two releases by canary, then a rollback. (Pruning versions is left
    // to release.rs: moto numbers a version published after a deleted one
    // as an existing one, which real Lambda never does.)
    for image in ["v2", "v3"] {
        let next = text.replace(
            "anomaly-local/detection:v1",
            &format!("anomaly-local/detection:{image}"),
        );
        let controller = controller_at(aws.endpoint_url(), &next).await;
        controller.apply().await.expect("a canary release");
        record(&controller);
    }
    let controller = controller_at(aws.endpoint_url(), &text).await;
    controller::rollback::rollback(&controller, Some("detection"), None)
        .await
        .expect("rollback");
    record(&controller);

    // Drift in every service the controller manages, then diff and repair.
    let sdk = sdk(&aws).await;
    let detection = "anomaly-local-detection";
    sdk.lambda
        .update_function_configuration()
        .function_name(detection)
        .memory_size(256)
        .send()
        .await
        .unwrap();
    sdk.lambda
        .untag_resource()
        .resource(format!(
            "arn:aws:lambda:us-east-1:{}:function:{detection}",
            test_harness::TEST_ACCOUNT
        ))
        .tag_keys("project")
        .send()
        .await
        .unwrap();
    sdk.lambda
        .delete_function_concurrency()
        .function_name("anomaly-local-training")
        .send()
        .await
        .unwrap();
    sdk.s3
        .put_bucket_versioning()
        .bucket("anomaly-local-models")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    sdk.ecr
        .put_image_tag_mutability()
        .repository_name("anomaly-local/detection")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    sdk.iam
        .untag_role()
        .role_name("anomaly-local-detection-role")
        .tag_keys("project")
        .send()
        .await
        .unwrap();
    sdk.logs
        .put_retention_policy()
        .log_group_name("/aws/lambda/anomaly-local-detection")
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    sdk.events
        .disable_rule()
        .name("anomaly-local-schedule")
        .send()
        .await
        .unwrap();
    sdk.secrets
        .put_secret_value()
        .secret_id("anomaly-local/panther-api-token")
        .secret_string("changed-by-hand")
        .send()
        .await
        .unwrap();
    let controller = controller_at(aws.endpoint_url(), &text).await;
    assert!(controller.plan().await.unwrap().has_changes());
    controller.apply().await.expect("drift repaired");
    record(&controller);

    // A changed file: an API key required, a route removed.
    let changed = text
        .replace("api_key_required = false", "api_key_required = true")
        .replace(
            "[[api.routes]]\nmethod = \"GET\"\npath = \"/health\"\nfunction = \"detection\"\n",
            "",
        );
    assert_ne!(changed, text, "the file changed");
    let controller = controller_at(aws.endpoint_url(), &changed).await;
    controller
        .apply()
        .await
        .expect("the changed file converges");
    // The daemon's per-resource plan.
    let (_, unobservable) = controller.plan_each(|_| true, true).await;
    assert!(unobservable.is_empty(), "{unobservable:?}");
    record(&controller);

    let controller = controller_at(aws.endpoint_url(), &changed).await;
    controller
        .destroy(BucketOnDestroy::Retain)
        .await
        .expect("destroy keeping the bucket");
    controller
        .destroy(BucketOnDestroy::Delete)
        .await
        .expect("destroy deleting the bucket");
    record(&controller);

    // The writers' lease has its own S3 client (not counted): its calls.
    for operation in ["GetObject", "PutObject", "DeleteObject"] {
        operations.insert(format!("S3.{operation}"), 1);
    }

    let policy = policy_of(&text);
    let allowed = allowed_actions(&policy);
    let mut missing = Vec::new();
    for operation in operations.keys() {
        let (service, name) = operation.split_once('.').unwrap();
        for action in iam_actions(service, name) {
            if !allowed.contains(&action) {
                missing.push(format!("{operation} needs {action}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the policy misses: {missing:#?}\nfrom {} operations",
        operations.len()
    );
    assert!(
        operations.len() > 60,
        "a broad workload: {} operations",
        operations.len()
    );
    assert!(
        allowed.iter().all(|action| !action.contains('*')),
        "no wildcard action"
    );
}

#[test]
fn the_policy_passes_parliament_for_every_shape_of_deployment() {
    let local = local_config("http://127.0.0.1:1");
    let without = |section: &str| -> String {
        // Drops a `[section]` table (and its `[[section.*]]` children).
        let mut kept = Vec::new();
        let mut skipping = false;
        for line in local.lines() {
            if line.starts_with('[') {
                let name = line.trim_matches(|c| c == '[' || c == ']');
                skipping = name == section || name.starts_with(&format!("{section}."));
            }
            if !skipping {
                kept.push(line);
            }
        }
        kept.join("\n") + "\n"
    };
    let shapes = [
        ("everything", local.clone()),
        ("no API", without("api")),
        ("no schedule", without("schedule")),
        ("no secret", without("panther_secret")),
        (
            "no access logs",
            local.replace("access_logging = true", "access_logging = false"),
        ),
    ];
    for (shape, config) in shapes {
        let policy = policy_of(&config);
        let findings = parliament(&policy);
        assert!(
            findings.trim().is_empty(),
            "{shape}: parliament found: {findings}\n{policy:#}"
        );
        // Scoped: no resource is `*` but the few actions AWS scopes no narrower.
        for statement in policy["Statement"].as_array().unwrap() {
            if statement["Resource"] == "*" {
                let actions = allowed_actions(&serde_json::json!({"Statement": [statement]}));
                for action in actions {
                    assert!(
                        [
                            "sts:GetCallerIdentity",
                            "s3:ListAllMyBuckets",
                            "ecr:GetAuthorizationToken",
                            "logs:DescribeLogGroups",
                            // Listing what carries the deployment's tags.
                            "tag:GetResources",
                            "iam:ListRoles"
                        ]
                        .contains(&action.as_str()),
                        "{shape}: {action} on *"
                    );
                }
            }
        }
    }
}
