//! AddPermission's `ResourceConflictException` means two things on AWS: the
//! statement id is taken (a retried create whose first answer was lost), or
//! the function is being updated and the call must be made again (Lambda
//! API reference, AddPermission, "Errors"). The controller tells them apart
//! by reading the policy back; neither may leave a route without its
//! permission. And a statement an earlier version of the controller made
//! under another id is removed once its replacement is in place.

mod common;

use common::*;
use serde_json::Value;
use test_harness::{FaultProxy, FaultRates, RequestMatch, ScriptedResponse};

const DETECTION: &str = "anomaly-local-detection";

/// The statements of `function`'s resource policy.
async fn statements(sdk: &Sdk, function: &str) -> Vec<Value> {
    let policy = sdk
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .expect("the function has a resource policy");
    let document: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    document["Statement"]
        .as_array()
        .expect("statements")
        .clone()
}

/// `field` of each statement of `function`'s resource policy that has it, sorted.
async fn each_statement(
    sdk: &Sdk,
    function: &str,
    field: impl Fn(&Value) -> &Value,
) -> Vec<String> {
    let mut values: Vec<String> = statements(sdk, function)
        .await
        .iter()
        .filter_map(|statement| field(statement).as_str().map(str::to_string))
        .collect();
    values.sort();
    values
}

/// The source ARNs of the statements of `function`'s resource policy.
async fn sources(sdk: &Sdk, function: &str) -> Vec<String> {
    each_statement(sdk, function, |statement| {
        &statement["Condition"]["ArnLike"]["AWS:SourceArn"]
    })
    .await
}

fn add_permission(function: &str) -> RequestMatch {
    RequestMatch::lambda("POST", &format!("/2015-03-31/functions/{function}/policy"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_being_updated_gets_its_permission_once_it_settles() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    // The first two AddPermission calls on detection meet an update in
    // progress and change nothing.
    proxy.script(
        add_permission(DETECTION),
        ScriptedResponse::lambda_error(
            409,
            "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:123456789012:function:anomaly-local-detection",
        ),
        2,
    );
    let endpoint = proxy.endpoint_url();
    let controller = controller_at(&endpoint, &local_config(&endpoint)).await;
    controller.apply().await.expect("apply");
    assert_eq!(proxy.scripted_count(), 2, "both conflicts were met");
    let sources = sources(&sdk(&aws).await, DETECTION).await;
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert!(sources[0].ends_with("/*/GET/health"), "{sources:?}");
    assert!(sources[1].ends_with("/*/POST/detect"), "{sources:?}");
    // Nothing is left to do.
    let again = controller_at(&endpoint, &local_config(&endpoint)).await;
    assert!(!again.plan().await.unwrap().has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_whose_answer_was_lost_is_taken_as_done() {
    let aws = common::account().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    // The statement is added, but the answer says the id is taken (what a
    // retry of a create whose first answer was lost gets).
    proxy.script(
        add_permission(DETECTION),
        ScriptedResponse::lambda_error(
            409,
            "ResourceConflictException",
            "The statement id provided already exists. Please provide a new statement id, or remove the existing statement.",
        )
        .after_forwarding(),
        1,
    );
    let endpoint = proxy.endpoint_url();
    let controller = controller_at(&endpoint, &local_config(&endpoint)).await;
    controller.apply().await.expect("apply");
    assert_eq!(proxy.scripted_count(), 1);
    assert_eq!(sources(&sdk(&aws).await, DETECTION).await.len(), 2);
    let again = controller_at(&endpoint, &local_config(&endpoint)).await;
    assert!(!again.plan().await.unwrap().has_changes());
}

/// The ids of the statements of `function`'s resource policy.
async fn statement_ids(sdk: &Sdk, function: &str) -> Vec<String> {
    each_statement(sdk, function, |statement| &statement["Sid"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_made_by_an_earlier_version_is_replaced_not_left_behind() {
    use controller::resources::permission::{legacy_route_statement_id, route_statement_id};
    let aws = common::account().await;
    let endpoint = aws.endpoint_url().to_string();
    controller_at(&endpoint, &local_config(&endpoint))
        .await
        .apply()
        .await
        .expect("apply");
    let sdk = sdk(&aws).await;
    // The deployment as an earlier version left it: POST /detect granted
    // under the old id.
    let new = route_statement_id("POST", "/detect");
    let legacy = legacy_route_statement_id("POST", "/detect");
    let source = sources(&sdk, DETECTION)
        .await
        .into_iter()
        .find(|source| source.ends_with("/POST/detect"))
        .expect("POST /detect is granted");
    sdk.lambda
        .remove_permission()
        .function_name(DETECTION)
        .statement_id(&new)
        .send()
        .await
        .unwrap();
    sdk.lambda
        .add_permission()
        .function_name(DETECTION)
        .statement_id(&legacy)
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(&source)
        .send()
        .await
        .unwrap();
    assert!(statement_ids(&sdk, DETECTION).await.contains(&legacy));

    controller_at(&endpoint, &local_config(&endpoint))
        .await
        .apply()
        .await
        .expect("apply");
    let ids = statement_ids(&sdk, DETECTION).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&new), "{ids:?}");
    assert!(!ids.contains(&legacy), "{ids:?}");
}
