//! Converging on removal: what the file no longer names is found by its
//! ownership tags and deleted (a removed schedule, a removed route, a
//! renamed function), never what another deployment or nobody owns; apply
//! asks before deleting; `--no-prune` keeps and lists orphans; destroy
//! leaves nothing owned behind, whatever earlier files named.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use controller::plan::{Action, Plan};
use serde_json::Value;

const DEPLOYMENT: &str = "anomaly-local";
const TRAINING: &str = "anomaly-local-training";
const DETECTION: &str = "anomaly-local-detection";
const RULE: &str = "anomaly-local-schedule";
const DEPLOYMENT_TAG: &str = "anomaly-controller:deployment";

/// The local config without the `[section]` table (and its `[[section.*]]`).
fn without(text: &str, section: &str) -> String {
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with('[') {
            let name = line.trim_matches(|c| c == '[' || c == ']');
            skipping = name == section || name.starts_with(&format!("{section}."));
        }
        if !skipping {
            kept.push(line);
        }
    }
    kept.join("\n") + "\n"
}

/// The local config without the `GET /health` route.
fn without_health_route(text: &str) -> String {
    let route = "[[api.routes]]\nmethod = \"GET\"\npath = \"/health\"\nfunction = \"detection\"\n";
    assert!(text.contains(route), "the local config routes GET /health");
    text.replacen(route, "", 1)
}

/// `kind name` of each change of `plan` with `action`.
fn planned(plan: &Plan, action: Action) -> BTreeSet<String> {
    plan.changes
        .iter()
        .filter(|change| change.action == action)
        .map(|change| change.resource.to_string())
        .collect()
}

async fn statement_ids(sdk: &Sdk, function: &str) -> BTreeSet<String> {
    let Ok(policy) = sdk.lambda.get_policy().function_name(function).send().await else {
        return BTreeSet::new();
    };
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|statement| statement["Sid"].as_str().unwrap().to_string())
        .collect()
}

fn tags_of(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().collect()
}

/// Every resource in the account whose tags name `deployment`, listed with
/// each service's own calls (every page), as `kind name`. Waits out the
/// half second a new function's tags take to show first.
async fn owned_by(sdk: &Sdk, deployment: &str) -> BTreeSet<String> {
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let mut owned = BTreeSet::new();
    let mine = |tags: &BTreeMap<String, String>| {
        tags.get(DEPLOYMENT_TAG).map(String::as_str) == Some(deployment)
    };
    for bucket in sdk.s3.list_buckets().send().await.unwrap().buckets() {
        let name = bucket.name().unwrap();
        if let Ok(tagging) = sdk.s3.get_bucket_tagging().bucket(name).send().await {
            let tags = tags_of(
                tagging
                    .tag_set()
                    .iter()
                    .map(|tag| (tag.key().to_string(), tag.value().to_string())),
            );
            if mine(&tags) {
                owned.insert(format!("bucket {name}"));
            }
        }
    }
    let repositories = sdk.ecr.describe_repositories().send().await.unwrap();
    for repository in repositories.repositories() {
        let tags = sdk
            .ecr
            .list_tags_for_resource()
            .resource_arn(repository.repository_arn().unwrap())
            .send()
            .await
            .unwrap();
        let tags = tags_of(
            tags.tags()
                .iter()
                .map(|tag| (tag.key().to_string(), tag.value().to_string())),
        );
        if mine(&tags) {
            owned.insert(format!(
                "repository {}",
                repository.repository_name().unwrap()
            ));
        }
    }
    let roles = sdk
        .iam
        .list_roles()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    for role in roles {
        let tags = sdk
            .iam
            .list_role_tags()
            .role_name(role.role_name())
            .send()
            .await
            .unwrap();
        let tags = tags_of(
            tags.tags()
                .iter()
                .map(|tag| (tag.key().to_string(), tag.value().to_string())),
        );
        if mine(&tags) {
            owned.insert(format!("role {}", role.role_name()));
        }
    }
    for group in sdk
        .logs
        .describe_log_groups()
        .send()
        .await
        .unwrap()
        .log_groups()
    {
        let name = group.log_group_name().unwrap();
        let arn = format!("arn:aws:logs:us-east-1:123456789012:log-group:{name}");
        let tags = sdk
            .logs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        if mine(&tags_of(tags.tags().cloned().unwrap_or_default())) {
            owned.insert(format!("log_group {name}"));
        }
    }
    let functions = sdk
        .lambda
        .list_functions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    for function in functions {
        let name = function.function_name().unwrap();
        let found = sdk
            .lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .unwrap();
        if mine(&tags_of(found.tags().cloned().unwrap_or_default())) {
            owned.insert(format!("function {name}"));
        }
    }
    for rule in sdk.events.list_rules().send().await.unwrap().rules() {
        let tags = sdk
            .events
            .list_tags_for_resource()
            .resource_arn(rule.arn().unwrap())
            .send()
            .await
            .unwrap();
        let tags = tags_of(
            tags.tags()
                .iter()
                .map(|tag| (tag.key().to_string(), tag.value().to_string())),
        );
        if mine(&tags) {
            owned.insert(format!("rule {}", rule.name().unwrap()));
        }
    }
    for secret in sdk
        .secrets
        .list_secrets()
        .send()
        .await
        .unwrap()
        .secret_list()
    {
        let tags = tags_of(secret.tags().iter().map(|tag| {
            (
                tag.key().unwrap_or_default().to_string(),
                tag.value().unwrap_or_default().to_string(),
            )
        }));
        if secret.deleted_date().is_none() && mine(&tags) {
            owned.insert(format!("secret {}", secret.name().unwrap()));
        }
    }
    // API Gateway pages its lists (25 items by default); they carry the tags.
    let api_tags = |tags: Option<&std::collections::HashMap<String, String>>| {
        tags_of(tags.cloned().unwrap_or_default())
    };
    let apigateway = &sdk.apigateway;
    for api in apigateway
        .get_rest_apis()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
    {
        if mine(&api_tags(api.tags())) {
            owned.insert(format!("rest_api {}", api.name().unwrap()));
        }
    }
    for plan in apigateway
        .get_usage_plans()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
    {
        if mine(&api_tags(plan.tags())) {
            owned.insert(format!("usage_plan {}", plan.name().unwrap()));
        }
    }
    for key in apigateway
        .get_api_keys()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
    {
        if mine(&api_tags(key.tags())) {
            owned.insert(format!("api_key {}", key.name().unwrap()));
        }
    }
    owned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_schedule_deletes_its_rule_target_and_permission() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    local_controller(&aws).await.apply().await.unwrap();
    let schedule_statements: BTreeSet<String> = statement_ids(&sdk, TRAINING)
        .await
        .into_iter()
        .filter(|id| id.contains("-schedule-"))
        .collect();
    assert_eq!(schedule_statements.len(), 1);

    let config = write_config(&without(&local_config(aws.endpoint_url()), "schedule"));
    let path = config.path.to_str().unwrap();
    let diff = run_controller(&["diff", path, "--output", "json"]);
    assert_eq!(diff.status.code(), Some(2), "{}", stderr(&diff));
    let plan: Plan = {
        let json: Value = serde_json::from_str(&stdout(&diff)).unwrap();
        plan_from_json(&json["plan"])
    };
    let permission = format!(
        "permission {TRAINING}:{}",
        schedule_statements.first().unwrap()
    );
    assert_eq!(
        planned(&plan, Action::Delete),
        BTreeSet::from([format!("rule {RULE}"), permission.clone()])
    );
    let text = stdout(&run_controller(&["diff", path]));
    assert!(
        text.contains(&format!("- rule         {RULE}")) && text.contains("no longer in the file"),
        "{text}"
    );

    // Without a terminal and without --yes, apply refuses to delete.
    let refused = run_controller(&["apply", path]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("refusing to delete or replace")
            && stderr(&refused).contains(&format!("rule {RULE}")),
        "{}",
        stderr(&refused)
    );
    assert!(sdk.events.describe_rule().name(RULE).send().await.is_ok());

    let applied = run_controller(&["apply", path, "--yes"]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        stdout(&applied),
        stderr(&applied)
    );
    let gone = sdk.events.describe_rule().name(RULE).send().await;
    assert!(
        gone.is_err_and(|error| error
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())),
        "the rule is deleted"
    );
    assert!(
        statement_ids(&sdk, TRAINING)
            .await
            .iter()
            .all(|id| !id.contains("-schedule-")),
        "the rule's invoke permission is removed"
    );
    let again = run_controller(&["apply", path]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));
}

/// The plan of a `diff --output json`, as the library reads it back.
fn plan_from_json(value: &Value) -> Plan {
    let changes = value["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| {
            let kind: &'static str = Box::leak(
                change["resource"]["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
                    .into_boxed_str(),
            );
            controller::plan::Change {
                reason: change["reason"].as_str().map(str::to_string),
                ..controller::plan::Change::new(
                    controller::resources::ResourceId::new(
                        controller::resources::Kind(kind),
                        change["resource"]["name"].as_str().unwrap(),
                    ),
                    serde_json::from_value(change["action"].clone()).unwrap(),
                )
            }
        })
        .collect();
    Plan {
        deployment: value["deployment"].as_str().unwrap().to_string(),
        changes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_route_removes_its_method_integration_and_permission() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    local_controller(&aws).await.apply().await.unwrap();
    let (id, _) = rest_api_resources(&sdk).await;
    let before = statement_ids(&sdk, DETECTION).await;
    let health: Vec<&String> = before
        .iter()
        .filter(|sid| sid.contains("GET-health"))
        .collect();
    assert_eq!(health.len(), 1, "{before:?}");
    let health = health[0].clone();
    let first_deployment = stage_deployment(&sdk, &id).await;

    let text = without_health_route(&local_config(aws.endpoint_url()));
    let controller = controller_at(aws.endpoint_url(), &text).await;
    let plan = controller.plan().await.unwrap();
    assert_eq!(
        planned(&plan, Action::Delete),
        BTreeSet::from([format!("permission {DETECTION}:{health}")])
    );
    assert_eq!(
        planned(&plan, Action::Update),
        BTreeSet::from(["rest_api anomaly-local-api".to_string()])
    );
    let outcome = controller.apply_plan(plan).await.unwrap();
    assert!(outcome.succeeded());

    let (_, resources) = rest_api_resources(&sdk).await;
    // The method goes, and its integration with it (API Gateway keeps no
    // integration without its method).
    if let Some(resource) = resources.get("/health") {
        let methods = sdk
            .apigateway
            .get_resource()
            .rest_api_id(&id)
            .resource_id(resource)
            .send()
            .await
            .unwrap();
        assert!(
            methods
                .resource_methods()
                .is_none_or(|methods| !methods.contains_key("GET")),
            "GET /health is gone: {methods:?}"
        );
    }
    let after = statement_ids(&sdk, DETECTION).await;
    assert!(
        !after.contains(&health),
        "its permission is gone: {after:?}"
    );
    assert_eq!(after.len(), before.len() - 1, "only that permission");
    let deployment = stage_deployment(&sdk, &id).await;
    assert_ne!(deployment, first_deployment, "the stage moved on");
    let description = sdk
        .apigateway
        .get_deployment()
        .rest_api_id(&id)
        .deployment_id(&deployment)
        .send()
        .await
        .unwrap()
        .description()
        .unwrap_or_default()
        .to_string();
    // That deployment was made from the routes without GET /health: the
    // file without it is in sync, the file with it differs in exactly the
    // stage's deployment (and the routes).
    let fresh = controller_at(aws.endpoint_url(), &text).await;
    let plan = fresh.plan().await.unwrap();
    assert!(!plan.has_changes(), "{plan}");
    let full = controller_at(aws.endpoint_url(), &local_config(aws.endpoint_url())).await;
    let plan = full.plan().await.unwrap();
    let api = plan
        .changes
        .iter()
        .find(|change| change.resource.to_string() == "rest_api anomaly-local-api")
        .unwrap();
    assert!(
        api.diffs.iter().any(|diff| diff.field == "stage.deployment"
            && diff.observed == Value::String(description.clone())),
        "{api:?}"
    );
}

async fn stage_deployment(sdk: &Sdk, id: &str) -> String {
    sdk.apigateway
        .get_stage()
        .rest_api_id(id)
        .stage_name("local")
        .send()
        .await
        .unwrap()
        .deployment_id()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_function_replaces_it_and_its_role_logs_and_permissions_in_one_apply() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    local_controller(&aws).await.apply().await.unwrap();
    let old_statements = statement_ids(&sdk, DETECTION).await;
    assert_eq!(old_statements.len(), 2);

    let renamed = local_config(aws.endpoint_url())
        .replace("[functions.detection", "[functions.detector")
        .replace("function = \"detection\"", "function = \"detector\"");
    let controller = controller_at(aws.endpoint_url(), &renamed).await;
    let plan = controller.plan().await.unwrap();
    let new = "anomaly-local-detector";
    let deleted = planned(&plan, Action::Delete);
    for resource in [
        format!("function {DETECTION}"),
        format!("role {DETECTION}-role"),
        format!("log_group /aws/lambda/{DETECTION}"),
    ] {
        assert!(deleted.contains(&resource), "{resource} in {deleted:?}");
    }
    let created = planned(&plan, Action::Create);
    for resource in [
        format!("function {new}"),
        format!("role {new}-role"),
        format!("log_group /aws/lambda/{new}"),
        "repository anomaly-local/detector".to_string(),
    ] {
        assert!(created.contains(&resource), "{resource} in {created:?}");
    }
    // The old repository still holds the image the renamed function runs.
    let kept = plan
        .changes
        .iter()
        .find(|change| change.resource.to_string() == "repository anomaly-local/detection")
        .unwrap();
    assert_eq!(kept.action, Action::Retain, "{kept:?}");
    assert!(kept.reason.as_deref().unwrap().contains(new), "{kept:?}");

    let outcome = controller.apply_plan(plan).await.unwrap();
    assert!(outcome.succeeded());
    assert!(
        sdk.lambda
            .get_function()
            .function_name(DETECTION)
            .send()
            .await
            .is_err()
    );
    assert!(
        sdk.lambda
            .get_function()
            .function_name(new)
            .send()
            .await
            .is_ok()
    );
    assert!(
        sdk.iam
            .get_role()
            .role_name(format!("{DETECTION}-role"))
            .send()
            .await
            .is_err()
    );
    let groups = sdk
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/aws/lambda/")
        .send()
        .await
        .unwrap();
    let names: BTreeSet<&str> = groups
        .log_groups()
        .iter()
        .filter_map(|group| group.log_group_name())
        .collect();
    assert!(!names.contains(format!("/aws/lambda/{DETECTION}").as_str()));
    assert!(names.contains(format!("/aws/lambda/{new}").as_str()));
    let new_statements = statement_ids(&sdk, new).await;
    assert_eq!(new_statements.len(), 2, "{new_statements:?}");
    let (id, resources) = rest_api_resources(&sdk).await;
    let integration = sdk
        .apigateway
        .get_integration()
        .rest_api_id(&id)
        .resource_id(&resources["/detect"])
        .http_method("POST")
        .send()
        .await
        .unwrap();
    assert!(
        integration
            .uri()
            .unwrap()
            .contains(&format!("function:{new}/"))
    );
    let again = controller_at(aws.endpoint_url(), &renamed).await;
    let plan = again.plan().await.unwrap();
    assert!(!plan.has_changes(), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_prune_keeps_and_lists_orphans() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    local_controller(&aws).await.apply().await.unwrap();
    let config = write_config(&without(&local_config(aws.endpoint_url()), "schedule"));
    let path = config.path.to_str().unwrap();
    let diff = run_controller(&["diff", path, "--no-prune"]);
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));
    assert!(
        stdout(&diff).contains(&format!("? rule         {RULE}  (orphan)")),
        "{}",
        stdout(&diff)
    );
    let applied = run_controller(&["apply", path, "--no-prune"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert!(sdk.events.describe_rule().name(RULE).send().await.is_ok());
}

/// The fields of every resource `controller` manages, as AWS holds them.
async fn snapshot(text: &str, aws: &test_harness::LocalAws) -> BTreeMap<String, Value> {
    let controller = controller_at(aws.endpoint_url(), text).await;
    let mut fields = BTreeMap::new();
    for resource in controller.resources().await.unwrap() {
        let observed = resource
            .observe(&controller.ctx)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} exists", resource.id()));
        fields.insert(
            resource.id().to_string(),
            serde_json::to_value(&observed.fields).unwrap(),
        );
    }
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_deployment_and_untagged_look_alikes_are_never_touched() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let mine = local_config(aws.endpoint_url());
    let theirs = mine.replace("name = \"anomaly-local\"", "name = \"anomaly-other\"");
    assert_ne!(mine, theirs);
    local_controller(&aws).await.apply().await.unwrap();
    controller_at(aws.endpoint_url(), &theirs)
        .await
        .apply()
        .await
        .unwrap();
    // Look-alikes without any tag, under the names an orphan of ours would have.
    sdk.logs
        .create_log_group()
        .log_group_name("/aws/lambda/anomaly-local-old")
        .send()
        .await
        .unwrap();
    sdk.iam
        .create_role()
        .role_name("anomaly-local-old-role")
        .path("/anomaly-controller/")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let their_fields = snapshot(&theirs, &aws).await;
    let their_owned = owned_by(&sdk, "anomaly-other").await;
    assert!(their_owned.len() >= 12, "{their_owned:?}");

    // Prune ours (the schedule goes), then destroy ours with its bucket.
    let pruned = controller_at(aws.endpoint_url(), &without(&mine, "schedule")).await;
    let plan = pruned.plan().await.unwrap();
    assert_eq!(
        planned(&plan, Action::Delete).len(),
        2,
        "our rule and its permission only: {plan}"
    );
    pruned.apply_plan(plan).await.unwrap();
    assert_eq!(snapshot(&theirs, &aws).await, their_fields);
    let destroyed = pruned
        .destroy(controller::reconcile::BucketOnDestroy::Delete)
        .await
        .unwrap();
    assert!(destroyed.succeeded());
    assert_eq!(owned_by(&sdk, DEPLOYMENT).await, BTreeSet::new());
    assert_eq!(snapshot(&theirs, &aws).await, their_fields);
    assert_eq!(owned_by(&sdk, "anomaly-other").await, their_owned);
    assert!(
        sdk.logs
            .describe_log_groups()
            .log_group_name_prefix("/aws/lambda/anomaly-local-old")
            .send()
            .await
            .unwrap()
            .log_groups()
            .len()
            == 1
    );
    assert!(
        sdk.iam
            .get_role()
            .role_name("anomaly-local-old-role")
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_leaves_nothing_owned_behind_whatever_earlier_files_named() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let with_keys = local_config(aws.endpoint_url())
        .replace("api_key_required = false", "api_key_required = true");
    assert!(with_keys.contains("api_key_required = true"));
    controller_at(aws.endpoint_url(), &with_keys)
        .await
        .apply()
        .await
        .unwrap();
    let owned = owned_by(&sdk, DEPLOYMENT).await;
    assert!(
        owned.contains("usage_plan anomaly-local-api-usage-plan"),
        "{owned:?}"
    );
    assert!(owned.contains("api_key anomaly-local-api-key"), "{owned:?}");
    // A later file names neither the schedule nor a function key it had:
    // kept with --no-prune, they are the deployment's still.
    let later = without(&with_keys, "schedule")
        .replace("[functions.training", "[functions.trainer")
        .replace("function = \"training\"", "function = \"trainer\"");
    let mut controller = controller_at(aws.endpoint_url(), &later).await;
    controller.set_prune(false);
    controller.apply().await.unwrap();
    let owned = owned_by(&sdk, DEPLOYMENT).await;
    assert!(owned.contains(&format!("rule {RULE}")), "{owned:?}");
    assert!(owned.contains(&format!("function {TRAINING}")), "{owned:?}");
    assert!(
        owned.contains("function anomaly-local-trainer"),
        "{owned:?}"
    );

    let config = write_config(&later);
    let output = run_controller(&[
        "destroy",
        config.path.to_str().unwrap(),
        "--delete-bucket",
        "--yes",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("named by an earlier version of the file"),
        "{}",
        stdout(&output)
    );
    assert_eq!(owned_by(&sdk, DEPLOYMENT).await, BTreeSet::new());
}

/// Runs `make(i)` for `0..count`, sixteen at a time.
async fn many<F, Fut>(count: usize, make: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt;
    futures::stream::iter((0..count).map(make))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

fn api_tags(deployment: Option<&str>) -> Option<std::collections::HashMap<String, String>> {
    deployment.map(|deployment| {
        std::collections::HashMap::from([
            ("managed-by".to_string(), "anomaly-controller".to_string()),
            (DEPLOYMENT_TAG.to_string(), deployment.to_string()),
        ])
    })
}

/// Whose a foreign resource number `i` is: another deployment's or nobody's.
fn foreign_owner(i: usize) -> Option<&'static str> {
    (i % 2 == 0).then_some("anomaly-other")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_found_across_every_page_of_a_crowded_account() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    local_controller(&aws).await.apply().await.unwrap();
    let file_own = owned_by(&sdk, DEPLOYMENT).await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let iam_tags = |deployment: Option<&str>| {
        api_tags(deployment)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| {
                aws_sdk_iam::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    // One role for the functions, old enough for Lambda to assume.
    let role_arn = sdk
        .iam
        .create_role()
        .role_name("crowd-function-role")
        .path("/crowd/")
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string();
    let mut expected = BTreeSet::new();
    // More than a page (100) of Lambda roles under the controller's path,
    // another deployment's or untagged, and one orphan of ours among them.
    many(120, |i| {
        let sdk = &sdk;
        let tags = iam_tags(foreign_owner(i));
        async move {
            sdk.iam
                .create_role()
                .role_name(format!("crowd-role-{i}"))
                .path("/anomaly-controller/")
                .assume_role_policy_document(trust)
                .set_tags(Some(tags))
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    sdk.iam
        .create_role()
        .role_name("anomaly-local-retired-role")
        .path("/anomaly-controller/")
        .assume_role_policy_document(trust)
        .set_tags(Some(iam_tags(Some(DEPLOYMENT))))
        .send()
        .await
        .unwrap();
    expected.insert("role anomaly-local-retired-role".to_string());
    // More than a page (500) of REST APIs and of usage plans, one of ours each.
    many(505, |i| {
        let sdk = &sdk;
        async move {
            sdk.apigateway
                .create_rest_api()
                .name(format!("crowd-api-{i}"))
                .set_tags(api_tags(foreign_owner(i)))
                .send()
                .await
                .unwrap();
            sdk.apigateway
                .create_usage_plan()
                .name(format!("crowd-plan-{i}"))
                .set_tags(api_tags(foreign_owner(i)))
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    sdk.apigateway
        .create_rest_api()
        .name("anomaly-local-retired-api")
        .set_tags(api_tags(Some(DEPLOYMENT)))
        .send()
        .await
        .unwrap();
    sdk.apigateway
        .create_usage_plan()
        .name("anomaly-local-retired-plan")
        .set_tags(api_tags(Some(DEPLOYMENT)))
        .send()
        .await
        .unwrap();
    expected.insert("rest_api anomaly-local-retired-api".to_string());
    expected.insert("usage_plan anomaly-local-retired-plan".to_string());
    // Rules and functions: foreign ones, and more than a page (50) of ours
    // for the tagging API to list.
    many(30, |i| {
        let sdk = &sdk;
        async move {
            let tags = api_tags(foreign_owner(i))
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| {
                    aws_sdk_eventbridge::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build()
                        .unwrap()
                })
                .collect();
            sdk.events
                .put_rule()
                .name(format!("crowd-rule-{i}"))
                .schedule_expression("rate(1 day)")
                .set_tags(Some(tags))
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    let ours = api_tags(Some(DEPLOYMENT)).unwrap();
    sdk.events
        .put_rule()
        .name("anomaly-local-retired-rule")
        .schedule_expression("rate(1 day)")
        .set_tags(Some(
            ours.iter()
                .map(|(key, value)| {
                    aws_sdk_eventbridge::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    expected.insert("rule anomaly-local-retired-rule".to_string());
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    many(90, |i| {
        let sdk = &sdk;
        let role_arn = role_arn.clone();
        let (name, owner) = if i < 30 {
            (format!("crowd-function-{i}"), foreign_owner(i))
        } else {
            (format!("anomaly-local-retired-{i}"), Some(DEPLOYMENT))
        };
        async move {
            sdk.lambda
                .create_function()
                .function_name(name)
                .role(role_arn)
                .package_type(aws_sdk_lambda::types::PackageType::Image)
                .code(
                    aws_sdk_lambda::types::FunctionCode::builder()
                        .image_uri("123456789012.dkr.ecr.us-east-1.amazonaws.com/crowd:1")
                        .build(),
                )
                .set_tags(api_tags(owner))
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    expected.extend((30..90).map(|i| format!("function anomaly-local-retired-{i}")));
    // A new function's tags show a moment after its creation.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;

    let controller = local_controller(&aws).await;
    let plan = controller.plan().await.unwrap();
    assert_eq!(planned(&plan, Action::Delete), expected, "{plan}");
    let outcome = controller.apply_plan(plan).await.unwrap();
    assert!(outcome.succeeded());
    assert_eq!(
        owned_by(&sdk, DEPLOYMENT).await,
        file_own,
        "only the file's own left"
    );
    // Nothing foreign went.
    let apis = sdk
        .apigateway
        .get_rest_apis()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
        .iter()
        .filter(|api| {
            api.name()
                .is_some_and(|name| name.starts_with("crowd-api-"))
        })
        .count();
    assert_eq!(apis, 505);
    assert!(
        sdk.iam
            .get_role()
            .role_name("crowd-role-119")
            .send()
            .await
            .is_ok()
            && sdk
                .lambda
                .get_function()
                .function_name("crowd-function-29")
                .send()
                .await
                .is_ok()
            && sdk
                .events
                .describe_rule()
                .name("crowd-rule-29")
                .send()
                .await
                .is_ok()
    );
    assert!(
        aws.strict()
            .unwrap()
            .refusals(test_harness::Rule::ApiGatewayPages)
            > 0,
        "the API Gateway lists came in pages"
    );
}
