//! The REST API, the schedule and the Panther secret: created as the old
//! system had them, repaired after drift, scoped permissions, and a secret
//! that never shows in any output.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

const DETECTION: &str = "anomaly-local-detection";
const TRAINING: &str = "anomaly-local-training";
const RULE: &str = "anomaly-local-schedule";
const SECRET: &str = "anomaly-local/panther-api-token";

async fn api_id(sdk: &Sdk) -> String {
    let apis = sdk.apigateway.get_rest_apis().send().await.unwrap();
    assert_eq!(apis.items().len(), 1);
    apis.items()[0].id().unwrap().to_string()
}

/// "METHOD /path" of every method of the API, with its integration URI.
async fn routes(sdk: &Sdk, id: &str) -> Vec<(String, Option<String>)> {
    let mut routes = Vec::new();
    let resources = sdk
        .apigateway
        .get_resources()
        .rest_api_id(id)
        .send()
        .await
        .unwrap();
    for resource in resources.items() {
        for method in resource
            .resource_methods()
            .map(|methods| methods.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let integration = sdk
                .apigateway
                .get_integration()
                .rest_api_id(id)
                .resource_id(resource.id().unwrap())
                .http_method(&method)
                .send()
                .await
                .ok()
                .and_then(|integration| integration.uri().map(str::to_string));
            routes.push((
                format!("{method} {}", resource.path().unwrap()),
                integration,
            ));
        }
    }
    routes.sort();
    routes
}

async fn policy_statements(sdk: &Sdk, function: &str) -> Vec<Value> {
    let policy = sdk
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    policy["Statement"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_the_api_the_schedule_the_permissions_and_the_secret() {
    let aws = common::account().await;
    let config = write_config(&local_config(aws.endpoint_url()));
    let output = run_controller(&["apply", config.path.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let sdk = sdk(&aws).await;
    let id = api_id(&sdk).await;
    let detection_arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{DETECTION}");
    let uri = format!(
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{detection_arn}/invocations"
    );

    // Exactly the two routes, both AWS_PROXY to the detection function.
    assert_eq!(
        routes(&sdk, &id).await,
        vec![
            ("GET /health".to_string(), Some(uri.clone())),
            ("POST /detect".to_string(), Some(uri.clone()))
        ]
    );
    let stage = sdk
        .apigateway
        .get_stage()
        .rest_api_id(&id)
        .stage_name("local")
        .send()
        .await
        .unwrap();
    assert!(stage.deployment_id().is_some());
    let throttle = &stage.method_settings().unwrap()["*/*"];
    assert_eq!(throttle.throttling_rate_limit(), 50.0);
    assert_eq!(throttle.throttling_burst_limit(), 100);
    let invoke = format!("https://{id}.execute-api.us-east-1.amazonaws.com/local/health");
    assert!(
        stdout(&output).contains(&invoke),
        "invoke URL printed: {}",
        stdout(&output)
    );

    // Only this API may invoke detection, one statement per route.
    let statements = policy_statements(&sdk, DETECTION).await;
    assert_eq!(statements.len(), 2);
    let sources: BTreeSet<String> = statements
        .iter()
        .map(|statement| {
            assert_eq!(
                statement["Principal"]["Service"],
                "apigateway.amazonaws.com"
            );
            statement["Condition"]["ArnLike"]["AWS:SourceArn"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let expected: BTreeSet<String> = ["GET/health", "POST/detect"]
        .iter()
        .map(|route| format!("arn:aws:execute-api:us-east-1:123456789012:{id}/*/{route}"))
        .collect();
    assert_eq!(sources, expected);

    // The schedule: the old system's expression, enabled, targeting training.
    let rule = sdk.events.describe_rule().name(RULE).send().await.unwrap();
    assert_eq!(rule.schedule_expression(), Some("cron(0 6 * * ? *)"));
    assert_eq!(rule.state().map(|state| state.as_str()), Some("ENABLED"));
    let targets = sdk
        .events
        .list_targets_by_rule()
        .rule(RULE)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.targets().len(), 1);
    assert_eq!(
        targets.targets()[0].arn(),
        format!("arn:aws:lambda:us-east-1:123456789012:function:{TRAINING}")
    );
    assert_eq!(
        targets.targets()[0].input(),
        Some(r#"{"training_source": "panther"}"#)
    );
    let statements = policy_statements(&sdk, TRAINING).await;
    assert_eq!(statements.len(), 1);
    assert_eq!(
        statements[0]["Principal"]["Service"],
        "events.amazonaws.com"
    );
    assert_eq!(
        statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"],
        rule.arn().unwrap()
    );

    // The secret holds the token; the function gets only its ARN.
    let secret = sdk
        .secrets
        .get_secret_value()
        .secret_id(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(secret.secret_string(), Some(PANTHER_TOKEN));
    let training = sdk
        .lambda
        .get_function()
        .function_name(TRAINING)
        .send()
        .await
        .unwrap();
    let variables = training
        .configuration()
        .unwrap()
        .environment()
        .unwrap()
        .variables()
        .unwrap();
    assert_eq!(
        variables.get("PANTHER_SECRET_ARN").map(String::as_str),
        secret.arn()
    );
    assert!(
        variables
            .values()
            .all(|value| !value.contains(PANTHER_TOKEN))
    );

    // A second apply changes nothing.
    let controller = local_controller(&aws).await;
    let outcome = controller.apply().await.unwrap();
    assert!(!outcome.plan.has_changes(), "{}", outcome.plan);
    assert_eq!(
        controller.calls().mutating,
        0,
        "{:?}",
        controller.calls().mutating_calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_the_api_schedule_permissions_and_secret_is_reported_and_repaired() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    let sdk = sdk(&aws).await;
    let id = api_id(&sdk).await;
    let stage = sdk
        .apigateway
        .get_stage()
        .rest_api_id(&id)
        .stage_name("local")
        .send()
        .await
        .unwrap();
    let first_deployment = stage.deployment_id().unwrap().to_string();
    let resources = sdk
        .apigateway
        .get_resources()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    let resource_id = |path: &str| {
        resources
            .items()
            .iter()
            .find(|resource| resource.path() == Some(path))
            .and_then(|resource| resource.id())
            .unwrap()
            .to_string()
    };

    // A route removed, an integration pointed elsewhere, throttling changed.
    sdk.apigateway
        .delete_method()
        .rest_api_id(&id)
        .resource_id(resource_id("/health"))
        .http_method("GET")
        .send()
        .await
        .unwrap();
    let elsewhere = format!(
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{TRAINING}/invocations"
    );
    sdk.apigateway
        .put_integration()
        .rest_api_id(&id)
        .resource_id(resource_id("/detect"))
        .http_method("POST")
        .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(&elsewhere)
        .send()
        .await
        .unwrap();
    sdk.apigateway
        .update_stage()
        .rest_api_id(&id)
        .stage_name("local")
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/*/*/throttling/rateLimit")
                .value("5")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The schedule changed and disabled, its target removed.
    sdk.events
        .put_rule()
        .name(RULE)
        .schedule_expression("rate(1 hour)")
        .send()
        .await
        .unwrap();
    sdk.events.disable_rule().name(RULE).send().await.unwrap();
    sdk.events
        .remove_targets()
        .rule(RULE)
        .ids("function")
        .send()
        .await
        .unwrap();
    // A permission removed, the secret's value changed.
    let post_detect = statement_id_for_source(&sdk, DETECTION, "/POST/detect").await;
    sdk.lambda
        .remove_permission()
        .function_name(DETECTION)
        .statement_id(&post_detect)
        .send()
        .await
        .unwrap();
    sdk.secrets
        .put_secret_value()
        .secret_id(SECRET)
        .secret_string("rotated-by-hand")
        .send()
        .await
        .unwrap();

    let config = write_config(&local_config(aws.endpoint_url()));
    let path = config.path.to_str().unwrap();
    let output = run_controller(&["diff", path, "--output", "json"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let change = |name: &str| -> Value {
        plan["plan"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|change| change["resource"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in the plan"))
    };
    let diff = |name: &str, field: &str| -> Value {
        change(name)["diffs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|diff| diff["field"] == field)
            .cloned()
            .unwrap_or_else(|| panic!("{name}.{field} reported: {}", change(name)))
    };
    let routes = diff("anomaly-local-api", "routes");
    assert!(routes["observed"].get("GET /health").is_none());
    assert_eq!(routes["observed"]["POST /detect"]["uri"], elsewhere);
    assert!(routes["desired"]["GET /health"].is_object());
    assert_eq!(
        diff("anomaly-local-api", "stage.throttle")["observed"]["rate_limit"],
        5.0
    );
    assert_eq!(
        diff(RULE, "schedule_expression")["observed"],
        "rate(1 hour)"
    );
    assert_eq!(diff(RULE, "state")["observed"], "DISABLED");
    assert_eq!(diff(RULE, "targets")["observed"], serde_json::json!([]));
    assert_eq!(
        change(&format!("{DETECTION}:{post_detect}"))["action"],
        "create"
    );
    let secret = diff(SECRET, "value");
    assert_ne!(secret["desired"], secret["observed"]);
    assert!(
        !stdout(&output).contains("rotated-by-hand") && !stdout(&output).contains(PANTHER_TOKEN)
    );

    let output = run_controller(&["apply", path]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let output = run_controller(&["diff", path]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "after repair: {}",
        stdout(&output)
    );

    // The stage points at a new deployment made from the repaired routes.
    let stage = sdk
        .apigateway
        .get_stage()
        .rest_api_id(&id)
        .stage_name("local")
        .send()
        .await
        .unwrap();
    let deployment = stage.deployment_id().unwrap();
    assert_ne!(deployment, first_deployment);
    let detection_uri = format!(
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{DETECTION}/invocations"
    );
    assert_eq!(
        self::routes(&sdk, &id).await,
        vec![
            ("GET /health".to_string(), Some(detection_uri.clone())),
            ("POST /detect".to_string(), Some(detection_uri))
        ]
    );
    let secret = sdk
        .secrets
        .get_secret_value()
        .secret_id(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(secret.secret_string(), Some(PANTHER_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_appears_in_any_output_or_log() {
    let aws = common::account().await;
    let config = write_config(&local_config(aws.endpoint_url()));
    let path = config.path.to_str().unwrap();
    let mut seen = String::new();
    let mut run = |args: &[&str]| {
        let output = controller_command(args)
            .env("CONTROLLER_LOG", "debug")
            .output()
            .unwrap();
        seen.push_str(&stdout(&output));
        seen.push_str(&stderr(&output));
        output.status.code()
    };
    assert_eq!(run(&["validate", path]), Some(0));
    assert_eq!(run(&["diff", path]), Some(2));
    assert_eq!(run(&["apply", path]), Some(0));
    assert_eq!(run(&["apply", path, "--output", "json"]), Some(0));
    let sdk = sdk(&aws).await;
    sdk.secrets
        .put_secret_value()
        .secret_id(SECRET)
        .secret_string("changed-out-of-band")
        .send()
        .await
        .unwrap();
    assert_eq!(run(&["diff", path]), Some(2));
    assert_eq!(run(&["diff", path, "--output", "json"]), Some(2));
    assert_eq!(run(&["apply", path]), Some(0));
    assert_eq!(run(&["destroy", path, "--yes", "--delete-bucket"]), Some(0));
    assert!(seen.contains("DEBUG"), "debug logs were on");
    assert!(
        seen.contains("panther-api-token"),
        "the secret was talked about"
    );
    assert!(!seen.contains(PANTHER_TOKEN), "the token leaked");
    assert!(
        !seen.contains("changed-out-of-band"),
        "the out-of-band value leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_grants_only_what_its_function_needs() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    let sdk = sdk(&aws).await;
    let secret_arn = sdk
        .secrets
        .describe_secret()
        .secret_id(SECRET)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let bucket = "arn:aws:s3:::anomaly-local-models";
    let models = format!("{bucket}/models/*");
    let logs = |function: &str| {
        format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{function}:*")
    };
    let secret_pattern =
        format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET}-??????");
    assert!(
        secret_arn.starts_with(&secret_pattern[..secret_pattern.len() - 6])
            && secret_arn.len() == secret_pattern.len()
    );

    let grants = |role: &'static str| {
        let iam = sdk.iam.clone();
        async move {
            let names = iam
                .list_role_policies()
                .role_name(role)
                .send()
                .await
                .unwrap();
            assert_eq!(
                names.policy_names(),
                ["function-access"],
                "one inline policy"
            );
            let attached = iam
                .list_attached_role_policies()
                .role_name(role)
                .send()
                .await
                .unwrap();
            assert!(attached.attached_policies().is_empty(), "no managed policy");
            let document = iam
                .get_role_policy()
                .role_name(role)
                .policy_name("function-access")
                .send()
                .await
                .unwrap();
            let decoded = percent_encoding::percent_decode_str(document.policy_document())
                .decode_utf8_lossy()
                .into_owned();
            let policy: Value = serde_json::from_str(&decoded).unwrap();
            let mut grants = BTreeSet::new();
            for statement in policy["Statement"].as_array().unwrap() {
                assert_eq!(statement["Effect"], "Allow");
                let list = |value: &Value| match value {
                    Value::Array(items) => items
                        .iter()
                        .map(|item| item.as_str().unwrap().to_string())
                        .collect(),
                    other => vec![other.as_str().unwrap().to_string()],
                };
                for action in list(&statement["Action"]) {
                    assert!(!action.contains('*'), "no wildcard action: {action}");
                    for resource in list(&statement["Resource"]) {
                        grants.insert((action.clone(), resource));
                    }
                }
                if statement["Action"] == "s3:ListBucket" {
                    // No `s3:prefix` condition: a GetObject request carries
                    // none, and S3 answers a missing key with 404 only to a
                    // caller that may list the bucket (403 otherwise).
                    assert!(
                        statement.get("Condition").is_none(),
                        "an unconditional ListBucket: {statement}"
                    );
                }
            }
            grants
        }
    };
    let expected = |pairs: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        pairs
            .iter()
            .map(|(action, resource)| (action.to_string(), resource.to_string()))
            .collect()
    };
    let detection_logs = logs(DETECTION);
    assert_eq!(
        grants("anomaly-local-detection-role").await,
        expected(&[
            ("logs:CreateLogStream", &detection_logs),
            ("logs:PutLogEvents", &detection_logs),
            ("s3:ListBucket", bucket),
            ("s3:GetObject", &models),
        ])
    );
    let training_logs = logs(TRAINING);
    assert_eq!(
        grants("anomaly-local-training-role").await,
        expected(&[
            ("logs:CreateLogStream", &training_logs),
            ("logs:PutLogEvents", &training_logs),
            ("s3:ListBucket", bucket),
            ("s3:GetObject", &models),
            ("s3:PutObject", &models),
            ("secretsmanager:GetSecretValue", &secret_pattern),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_requirement_brings_a_usage_plan_and_a_key() {
    let aws = common::account().await;
    let with_keys = local_config(aws.endpoint_url())
        .replace("api_key_required = false", "api_key_required = true");
    let controller = controller_at(aws.endpoint_url(), &with_keys).await;
    controller.apply().await.expect("apply with keys");
    let sdk = sdk(&aws).await;
    let id = api_id(&sdk).await;
    let plans = sdk.apigateway.get_usage_plans().send().await.unwrap();
    assert_eq!(plans.items().len(), 1);
    let plan = &plans.items()[0];
    assert_eq!(plan.name(), Some("anomaly-local-api-usage-plan"));
    assert_eq!(plan.api_stages()[0].api_id(), Some(id.as_str()));
    assert_eq!(plan.api_stages()[0].stage(), Some("local"));
    let keys = sdk
        .apigateway
        .get_usage_plan_keys()
        .usage_plan_id(plan.id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(keys.items().len(), 1);
    assert_eq!(keys.items()[0].name(), Some("anomaly-local-api-key"));
    let resources = sdk
        .apigateway
        .get_resources()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    let detect = resources
        .items()
        .iter()
        .find(|resource| resource.path() == Some("/detect"))
        .unwrap();
    let method = sdk
        .apigateway
        .get_method()
        .rest_api_id(&id)
        .resource_id(detect.id().unwrap())
        .http_method("POST")
        .send()
        .await
        .unwrap();
    assert_eq!(method.api_key_required(), Some(true));

    let again = controller_at(aws.endpoint_url(), &with_keys).await;
    assert!(!again.apply().await.unwrap().plan.has_changes());
    assert_eq!(
        again.calls().mutating,
        0,
        "{:?}",
        again.calls().mutating_calls
    );

    // Turning the requirement off removes the plan and the key.
    local_controller(&aws)
        .await
        .apply()
        .await
        .expect("apply without keys");
    assert!(
        sdk.apigateway
            .get_usage_plans()
            .send()
            .await
            .unwrap()
            .items()
            .is_empty()
    );
    assert!(
        sdk.apigateway
            .get_api_keys()
            .send()
            .await
            .unwrap()
            .items()
            .is_empty()
    );
}

/// The id of the statement of `function`'s resource policy whose source ARN
/// ends with `route_suffix` (`/POST/detect`).
async fn statement_id_for_source(sdk: &Sdk, function: &str, route_suffix: &str) -> String {
    let policy = sdk
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .expect("the function has a resource policy");
    let document: serde_json::Value =
        serde_json::from_str(policy.policy().expect("a policy document")).unwrap();
    document["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|statement| {
            statement["Condition"]["ArnLike"]["AWS:SourceArn"]
                .as_str()
                .is_some_and(|arn| arn.ends_with(route_suffix))
        })
        .and_then(|statement| statement["Sid"].as_str())
        .unwrap_or_else(|| panic!("no statement for {route_suffix} in {document}"))
        .to_string()
}
