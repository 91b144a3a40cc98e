//! The strict-AWS layer, rule by rule: each test makes the same call to
//! plain moto (which takes it) and through the layer (which answers as AWS
//! does), so a rule that stopped firing, or moto becoming strict itself,
//! shows here.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_lambda::types::{Environment, FunctionCode, LastUpdateStatus, PackageType, State};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::json;
use test_harness::{
    FaultProxy, FaultRates, LocalAws, LocalRegistry, RequestMatch, Rule, StrictSettings,
    TEST_ACCOUNT, sdk_config_for,
};

const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const API_GATEWAY_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Short delays so the tests wait little, long enough to be hit at once.
fn quick() -> StrictSettings {
    StrictSettings {
        role_propagation: Duration::from_millis(1500),
        function_pending: Duration::from_millis(400),
        function_update: Duration::from_millis(400),
        tag_visibility: Duration::from_millis(400),
        tagging_lag: Duration::from_secs(60),
    }
}

async fn strict_aws() -> LocalAws {
    let aws = LocalAws::start().await;
    aws.strict()
        .expect("the strict layer is on by default (unset TEST_AWS)")
        .set_settings(quick());
    aws
}

/// No retries: each test sees AWS's first answer.
async fn no_retry(config: SdkConfig) -> SdkConfig {
    config
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

async fn moto_config(aws: &LocalAws) -> SdkConfig {
    no_retry(sdk_config_for(&aws.moto_endpoint_url()).await).await
}

async fn strict_config(aws: &LocalAws) -> SdkConfig {
    no_retry(aws.sdk_config().await).await
}

fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

async fn role(
    aws: &LocalAws,
    name: &str,
    trust: &str,
    policy: Option<serde_json::Value>,
) -> String {
    let iam = aws_sdk_iam::Client::new(&moto_config(aws).await);
    let arn = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("create role")
        .role()
        .expect("role")
        .arn()
        .to_string();
    if let Some(policy) = policy {
        iam.put_role_policy()
            .role_name(name)
            .policy_name("access")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("put role policy");
    }
    arn
}

/// A role created through the strict layer (so its age is known), then
/// waited on until Lambda may assume it.
async fn settled_role(aws: &LocalAws, name: &str) -> String {
    let iam = aws_sdk_iam::Client::new(&strict_config(aws).await);
    let arn = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(LAMBDA_TRUST)
        .send()
        .await
        .expect("create role")
        .role()
        .expect("role")
        .arn()
        .to_string();
    tokio::time::sleep(quick().role_propagation).await;
    arn
}

fn create_function(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    role: &str,
) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
    lambda
        .create_function()
        .function_name(name)
        .role(role)
        .package_type(PackageType::Image)
        .code(
            FunctionCode::builder()
                .image_uri(format!(
                    "{TEST_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{name}:v1"
                ))
                .build(),
        )
}

fn model_reader_policy(list_condition: bool) -> serde_json::Value {
    let mut list =
        json!({"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::models"});
    if list_condition {
        list["Condition"] = json!({"StringLike": {"s3:prefix": ["models/*"]}});
    }
    json!({"Version": "2012-10-17", "Statement": [
        list,
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::models/models/*"}
    ]})
}

#[tokio::test]
async fn a_missing_key_is_403_unless_the_role_may_list_the_bucket() {
    let aws = strict_aws().await;
    s3(&moto_config(&aws).await)
        .create_bucket()
        .bucket("models")
        .send()
        .await
        .unwrap();
    role(
        &aws,
        "reader",
        LAMBDA_TRUST,
        Some(model_reader_policy(true)),
    )
    .await;

    // moto: a missing key is 404 whoever asks.
    let (key, secret) = aws.role_credentials("reader");
    let moto_as_role = no_retry(
        sdk_config_for(&aws.moto_endpoint_url())
            .await
            .into_builder()
            .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(
                aws_sdk_s3::config::Credentials::new(key, secret, None, None, "test"),
            ))
            .build(),
    )
    .await;
    let error = s3(&moto_as_role)
        .get_object()
        .bucket("models")
        .key("models/latest.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("NoSuchKey"));

    // AWS: 403, the ListBucket grant is conditioned on a prefix.
    let as_role = s3(&no_retry(aws.sdk_config_as_role("reader").await).await);
    let error = as_role
        .get_object()
        .bucket("models")
        .key("models/latest.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDenied"), "{error:?}");
    let head = as_role
        .head_object()
        .bucket("models")
        .key("models/latest.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(head.raw_response().map(|r| r.status().as_u16()), Some(403));
    let strict = aws.strict().unwrap();
    assert_eq!(strict.refusals(Rule::S3MissingKeyForbidden), 2);

    // An unconditional ListBucket turns it back into 404.
    role_policy(&aws, "reader", model_reader_policy(false)).await;
    let error = as_role
        .get_object()
        .bucket("models")
        .key("models/latest.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("NoSuchKey"));
}

async fn role_policy(aws: &LocalAws, role: &str, policy: serde_json::Value) {
    aws_sdk_iam::Client::new(&moto_config(aws).await)
        .put_role_policy()
        .role_name(role)
        .policy_name("access")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_role_may_do_only_what_its_policy_allows_in_s3() {
    let aws = strict_aws().await;
    s3(&moto_config(&aws).await)
        .create_bucket()
        .bucket("models")
        .send()
        .await
        .unwrap();
    role(
        &aws,
        "reader",
        LAMBDA_TRUST,
        Some(model_reader_policy(false)),
    )
    .await;
    let as_role = s3(&no_retry(aws.sdk_config_as_role("reader").await).await);
    let error = as_role
        .put_object()
        .bucket("models")
        .key("models/latest.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDenied"));
    let error = as_role
        .list_objects_v2()
        .bucket("models")
        .prefix("models/")
        .send()
        .await;
    assert!(error.is_ok(), "ListBucket is granted: {error:?}");
    let error = as_role
        .get_object()
        .bucket("models")
        .key("elsewhere/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("AccessDenied"));
    assert!(aws.strict().unwrap().refusals(Rule::S3AccessDenied) >= 2);
    // The administrator (the test credentials) is not bound: allowed.
    s3(&strict_config(&aws).await)
        .put_object()
        .bucket("models")
        .key("models/latest.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_committed_conditional_put_whose_answer_is_lost_is_412_on_retry() {
    let aws = strict_aws().await;
    let client = s3(&aws.sdk_config().await);
    client.create_bucket().bucket("lease").send().await.unwrap();
    // Without the loss, the first try is all the client sees.
    client
        .put_object()
        .bucket("lease")
        .key("first")
        .if_none_match("*")
        .body(ByteStream::from_static(b"a"))
        .send()
        .await
        .unwrap();

    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    proxy.script_drop_after_forwarding(
        RequestMatch {
            method: Some("PUT".into()),
            ..RequestMatch::default()
        }
        .with_header("if-none-match"),
        1,
    );
    let through = s3(&sdk_config_for(&proxy.endpoint_url()).await);
    let error = through
        .put_object()
        .bucket("lease")
        .key("second")
        .if_none_match("*")
        .body(ByteStream::from_static(b"b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("PreconditionFailed"), "{error:?}");
    let stored = client
        .get_object()
        .bucket("lease")
        .key("second")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.body.collect().await.unwrap().into_bytes().as_ref(),
        b"b"
    );
    assert_eq!(proxy.stats().dropped_after, 1);
}

async fn rest_api_with_root(config: &SdkConfig) -> (aws_sdk_apigateway::Client, String, String) {
    let api = aws_sdk_apigateway::Client::new(config);
    let id = api
        .create_rest_api()
        .name("strict")
        .send()
        .await
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let root = api
        .get_resources()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap()
        .items()[0]
        .id()
        .unwrap()
        .to_string();
    (api, id, root)
}

#[tokio::test]
async fn put_method_on_an_existing_method_is_409() {
    let aws = strict_aws().await;
    let (moto_api, id, root) = rest_api_with_root(&moto_config(&aws).await).await;
    for _ in 0..2 {
        moto_api
            .put_method()
            .rest_api_id(&id)
            .resource_id(&root)
            .http_method("GET")
            .authorization_type("NONE")
            .send()
            .await
            .expect("moto overwrites a method");
    }
    let strict_api = aws_sdk_apigateway::Client::new(&strict_config(&aws).await);
    let error = strict_api
        .put_method()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_conflict_exception()),
        "{error:?}"
    );
    // A new method is still created.
    strict_api
        .put_method()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("POST")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap();
    assert_eq!(aws.strict().unwrap().refusals(Rule::PutMethodExists), 1);

    // The same for a method response.
    let response = |client: &aws_sdk_apigateway::Client| {
        client
            .put_method_response()
            .rest_api_id(&id)
            .resource_id(&root)
            .http_method("GET")
            .status_code("200")
            .send()
    };
    response(&moto_api).await.unwrap();
    response(&moto_api)
        .await
        .expect("moto overwrites a method response");
    let error = response(&strict_api).await.unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_conflict_exception()),
        "{error:?}"
    );
    assert_eq!(
        aws.strict()
            .unwrap()
            .refusals(Rule::PutMethodResponseExists),
        1
    );
}

#[tokio::test]
async fn update_method_changes_the_flag_and_keeps_the_integration() {
    let aws = strict_aws().await;
    let (moto_api, id, root) = rest_api_with_root(&moto_config(&aws).await).await;
    moto_api
        .put_method()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap();
    moto_api
        .put_integration()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
        .send()
        .await
        .unwrap();
    let flag = aws_sdk_apigateway::types::PatchOperation::builder()
        .op(aws_sdk_apigateway::types::Op::Replace)
        .path("/apiKeyRequired")
        .value("true")
        .build();
    let update = |client: &aws_sdk_apigateway::Client| {
        client
            .update_method()
            .rest_api_id(&id)
            .resource_id(&root)
            .http_method("GET")
            .patch_operations(flag.clone())
            .send()
    };
    update(&moto_api)
        .await
        .expect_err("moto 5.2.1 has no UpdateMethod");
    let strict_api = aws_sdk_apigateway::Client::new(&strict_config(&aws).await);
    let updated = update(&strict_api).await.unwrap();
    assert_eq!(updated.api_key_required(), Some(true));
    let method = strict_api
        .get_method()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .send()
        .await
        .unwrap();
    assert_eq!(method.api_key_required(), Some(true));
    assert_eq!(
        method
            .method_integration()
            .and_then(|integration| integration.r#type())
            .map(|t| t.as_str()),
        Some("MOCK"),
        "the integration is kept"
    );
    assert_eq!(
        aws.strict().unwrap().refusals(Rule::UpdateMethodEmulated),
        1
    );
}

#[tokio::test]
async fn a_second_resource_of_the_same_name_under_one_parent_is_409() {
    let aws = strict_aws().await;
    let (moto_api, id, root) = rest_api_with_root(&moto_config(&aws).await).await;
    for _ in 0..2 {
        moto_api
            .create_resource()
            .rest_api_id(&id)
            .parent_id(&root)
            .path_part("twice")
            .send()
            .await
            .expect("moto makes a duplicate resource");
    }
    let strict_api = aws_sdk_apigateway::Client::new(&strict_config(&aws).await);
    strict_api
        .create_resource()
        .rest_api_id(&id)
        .parent_id(&root)
        .path_part("once")
        .send()
        .await
        .unwrap();
    let error = strict_api
        .create_resource()
        .rest_api_id(&id)
        .parent_id(&root)
        .path_part("once")
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_conflict_exception()),
        "{error:?}"
    );
    assert_eq!(aws.strict().unwrap().refusals(Rule::ResourceExists), 1);
}

#[tokio::test]
async fn access_logs_need_the_account_cloudwatch_role() {
    let aws = strict_aws().await;
    let config = strict_config(&aws).await;
    let (api, id, root) = rest_api_with_root(&config).await;
    api.put_method()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap();
    api.put_integration()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
        .send()
        .await
        .unwrap();
    let deployment = api
        .create_deployment()
        .rest_api_id(&id)
        .send()
        .await
        .unwrap();
    api.create_stage()
        .rest_api_id(&id)
        .stage_name("prod")
        .deployment_id(deployment.id().unwrap())
        .send()
        .await
        .unwrap();
    let patch = |path: &str, value: &str| {
        aws_sdk_apigateway::types::PatchOperation::builder()
            .op(aws_sdk_apigateway::types::Op::Replace)
            .path(path)
            .value(value)
            .build()
    };
    let update = |client: aws_sdk_apigateway::Client| {
        let id = id.clone();
        async move {
            client
                .update_stage()
                .rest_api_id(&id)
                .stage_name("prod")
                .patch_operations(patch(
                    "/accessLogSettings/destinationArn",
                    "arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/strict",
                ))
                .patch_operations(patch("/*/*/throttling/rateLimit", "50"))
                .send()
                .await
        }
    };
    update(aws_sdk_apigateway::Client::new(&moto_config(&aws).await))
        .await
        .expect("moto takes access logs without an account role");
    let error = update(api.clone()).await.unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_bad_request_exception()),
        "{error:?}"
    );
    assert_eq!(
        aws.strict()
            .unwrap()
            .refusals(Rule::AccessLogsNeedAccountRole),
        1
    );

    // A role API Gateway cannot assume is refused as the account's role.
    let lambda_role = settled_role(&aws, "not-for-apigateway").await;
    let error = api
        .update_account()
        .patch_operations(patch("/cloudwatchRoleArn", &lambda_role))
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_bad_request_exception())
    );
    // One it can, once settled, is taken; then access logs are.
    let iam = aws_sdk_iam::Client::new(&config);
    let logs_role = iam
        .create_role()
        .role_name("apigateway-logs")
        .assume_role_policy_document(API_GATEWAY_TRUST)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string();
    let too_soon = api
        .update_account()
        .patch_operations(patch("/cloudwatchRoleArn", &logs_role))
        .send()
        .await;
    assert!(
        too_soon.is_err(),
        "a role seconds old cannot be assumed yet"
    );
    tokio::time::sleep(quick().role_propagation).await;
    api.update_account()
        .patch_operations(patch("/cloudwatchRoleArn", &logs_role))
        .send()
        .await
        .unwrap();
    update(api).await.unwrap();
    assert_eq!(
        aws.strict()
            .unwrap()
            .refusals(Rule::AccountRoleNotAssumable),
        2
    );
}

#[tokio::test]
async fn a_new_role_cannot_be_assumed_by_lambda_for_a_while() {
    let aws = strict_aws().await;
    let config = strict_config(&aws).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let new_role = |name: &'static str| {
        let iam = iam.clone();
        async move {
            iam.create_role()
                .role_name(name)
                .assume_role_policy_document(LAMBDA_TRUST)
                .send()
                .await
                .unwrap()
                .role()
                .unwrap()
                .arn()
                .to_string()
        }
    };
    // Long enough that a loaded machine still calls within it.
    let propagation = Duration::from_secs(3);
    aws.strict().unwrap().set_settings(StrictSettings {
        role_propagation: propagation,
        ..quick()
    });
    let first = new_role("first").await;
    let error = create_function(&lambda, "f", &first)
        .send()
        .await
        .unwrap_err();
    // moto takes it at once.
    create_function(
        &aws_sdk_lambda::Client::new(&moto_config(&aws).await),
        "eager",
        &first,
    )
    .send()
    .await
    .unwrap();
    assert!(
        error.to_string().contains("cannot be assumed")
            || format!("{error:?}").contains("cannot be assumed by Lambda"),
        "{error:?}"
    );
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception())
    );
    tokio::time::sleep(propagation).await;
    create_function(&lambda, "f", &first).send().await.unwrap();
    tokio::time::sleep(quick().function_pending).await;

    // The same for a role switched to by UpdateFunctionConfiguration.
    let second = new_role("second").await;
    let error = lambda
        .update_function_configuration()
        .function_name("f")
        .role(&second)
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception())
    );
    tokio::time::sleep(propagation).await;
    lambda
        .update_function_configuration()
        .function_name("f")
        .role(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(aws.strict().unwrap().refusals(Rule::RoleNotAssumable), 2);
}

#[tokio::test]
async fn a_function_is_pending_then_in_progress_and_refuses_changes_meanwhile() {
    let aws = strict_aws().await;
    let role = settled_role(&aws, "runner").await;
    let moto_lambda = aws_sdk_lambda::Client::new(&moto_config(&aws).await);
    let created = create_function(&moto_lambda, "eager", &role)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.state(),
        Some(&State::Active),
        "moto is active at once"
    );
    moto_lambda
        .update_function_configuration()
        .function_name("eager")
        .memory_size(256)
        .send()
        .await
        .unwrap();

    let lambda = aws_sdk_lambda::Client::new(&strict_config(&aws).await);
    let created = create_function(&lambda, "f", &role).send().await.unwrap();
    assert_eq!(created.state(), Some(&State::Pending));
    let busy = lambda
        .update_function_configuration()
        .function_name("f")
        .memory_size(256)
        .send()
        .await
        .unwrap_err();
    assert!(
        busy.as_service_error()
            .is_some_and(|e| e.is_resource_conflict_exception())
    );
    let configuration = lambda
        .get_function_configuration()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(configuration.state(), Some(&State::Pending));

    tokio::time::sleep(quick().function_pending).await;
    let updated = lambda
        .update_function_configuration()
        .function_name("f")
        .memory_size(256)
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let function = lambda
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        function.configuration().unwrap().last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let permission = lambda
        .add_permission()
        .function_name("f")
        .statement_id("api")
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .send()
        .await
        .unwrap_err();
    assert!(
        permission
            .as_service_error()
            .is_some_and(|e| e.is_resource_conflict_exception())
    );
    let code = lambda
        .update_function_code()
        .function_name("f")
        .image_uri(format!(
            "{TEST_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/f:v2"
        ))
        .send()
        .await
        .unwrap_err();
    assert!(
        code.as_service_error()
            .is_some_and(|e| e.is_resource_conflict_exception())
    );

    tokio::time::sleep(quick().function_update).await;
    let configuration = lambda
        .get_function_configuration()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        configuration.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert_eq!(configuration.memory_size(), Some(256));
    assert_eq!(aws.strict().unwrap().refusals(Rule::FunctionBusy), 3);
}

#[tokio::test]
async fn an_environment_over_4_kb_is_refused() {
    let aws = strict_aws().await;
    let role = settled_role(&aws, "runner").await;
    let big = Environment::builder()
        .variables("PADDING", "x".repeat(4100))
        .build();
    create_function(
        &aws_sdk_lambda::Client::new(&moto_config(&aws).await),
        "eager",
        &role,
    )
    .environment(big.clone())
    .send()
    .await
    .expect("moto does not measure the environment");
    let lambda = aws_sdk_lambda::Client::new(&strict_config(&aws).await);
    let error = create_function(&lambda, "f", &role)
        .environment(big)
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception())
    );
    // Just under the limit: the JSON `{"PADDING":"..."}` is 4,096 bytes.
    let fits = Environment::builder()
        .variables("PADDING", "x".repeat(4096 - r#"{"PADDING":""}"#.len()))
        .build();
    create_function(&lambda, "f", &role)
        .environment(fits)
        .send()
        .await
        .unwrap();
    assert_eq!(aws.strict().unwrap().refusals(Rule::EnvironmentTooLarge), 1);
}

#[tokio::test]
async fn a_new_functions_tags_show_only_after_a_while() {
    let aws = strict_aws().await;
    let role = settled_role(&aws, "runner").await;
    let moto_lambda = aws_sdk_lambda::Client::new(&moto_config(&aws).await);
    let eager = create_function(&moto_lambda, "eager", &role)
        .tags("owner", "team")
        .send()
        .await
        .unwrap();
    let tags = moto_lambda
        .list_tags()
        .resource(eager.function_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap().get("owner").map(String::as_str),
        Some("team")
    );

    let lambda = aws_sdk_lambda::Client::new(&strict_config(&aws).await);
    let created = create_function(&lambda, "f", &role)
        .tags("owner", "team")
        .send()
        .await
        .unwrap();
    let arn = created.function_arn().unwrap();
    let tags = lambda.list_tags().resource(arn).send().await.unwrap();
    assert!(tags.tags().is_none_or(|tags| tags.is_empty()));
    let function = lambda
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert!(function.tags().is_none());
    tokio::time::sleep(quick().tag_visibility).await;
    let tags = lambda.list_tags().resource(arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap().get("owner").map(String::as_str),
        Some("team")
    );
    assert_eq!(aws.strict().unwrap().refusals(Rule::TagsNotYetVisible), 2);
}

#[tokio::test]
async fn statement_ids_are_checked_as_lambda_does() {
    let aws = strict_aws().await;
    let role = settled_role(&aws, "runner").await;
    let add = |lambda: aws_sdk_lambda::Client, id: String| async move {
        lambda
            .add_permission()
            .function_name("f")
            .statement_id(id)
            .action("lambda:InvokeFunction")
            .principal("events.amazonaws.com")
            .send()
            .await
    };
    let moto_lambda = aws_sdk_lambda::Client::new(&moto_config(&aws).await);
    create_function(&moto_lambda, "f", &role)
        .send()
        .await
        .unwrap();
    let long = "a".repeat(101);
    add(moto_lambda.clone(), long.clone())
        .await
        .expect("moto takes 101 characters");
    add(moto_lambda.clone(), "twice".into()).await.unwrap();
    add(moto_lambda.clone(), "twice".into())
        .await
        .expect("moto takes a duplicate id");

    let lambda = aws_sdk_lambda::Client::new(&strict_config(&aws).await);
    let error = add(lambda.clone(), long).await.unwrap_err();
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    let error = add(lambda.clone(), "route/GET /a".into())
        .await
        .unwrap_err();
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    let error = add(lambda.clone(), "twice".into()).await.unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_resource_conflict_exception())
    );
    add(lambda, "once-only_1.0".into()).await.unwrap();
    assert_eq!(aws.strict().unwrap().refusals(Rule::StatementId), 3);
}

#[tokio::test]
async fn images_must_be_one_manifest_of_the_functions_architecture() {
    let aws = strict_aws().await;
    let registry = LocalRegistry::start().await;
    let host = registry.endpoint();
    aws.strict().unwrap().register_registry(&host);
    let role = settled_role(&aws, "runner").await;
    let amd64 = registry.push_test_image("fn", "amd64", "amd64").await;
    let arm64 = registry.push_test_image("fn", "arm64", "arm64").await;
    let index = registry
        .push_test_index("fn", "multi", &[(&amd64, "amd64"), (&arm64, "arm64")])
        .await;
    let with_image = |lambda: &aws_sdk_lambda::Client, name: &str, uri: String| {
        lambda
            .create_function()
            .function_name(name)
            .role(&role)
            .package_type(PackageType::Image)
            .code(FunctionCode::builder().image_uri(uri).build())
    };
    let moto_lambda = aws_sdk_lambda::Client::new(&moto_config(&aws).await);
    with_image(&moto_lambda, "eager", format!("{host}/fn@{index}"))
        .send()
        .await
        .expect("moto takes an index");

    let lambda = aws_sdk_lambda::Client::new(&strict_config(&aws).await);
    let refused = |result: Result<_, aws_sdk_lambda::error::SdkError<_>>| {
        let error: aws_sdk_lambda::error::SdkError<
            aws_sdk_lambda::operation::create_function::CreateFunctionError,
        > = result
            .map(|_: aws_sdk_lambda::operation::create_function::CreateFunctionOutput| ())
            .unwrap_err();
        assert!(
            error
                .as_service_error()
                .is_some_and(|e| e.is_invalid_parameter_value_exception()),
            "{error:?}"
        );
    };
    refused(
        with_image(&lambda, "f", format!("{host}/fn@{index}"))
            .send()
            .await,
    );
    refused(
        with_image(&lambda, "f", format!("{host}/fn@{arm64}"))
            .send()
            .await,
    );
    refused(
        with_image(&lambda, "f", format!("{host}/missing:v1"))
            .send()
            .await,
    );
    refused(
        with_image(
            &lambda,
            "f",
            format!("{TEST_ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/fn:v1"),
        )
        .send()
        .await,
    );
    with_image(&lambda, "f", format!("{host}/fn@{amd64}"))
        .send()
        .await
        .unwrap();
    let strict = aws.strict().unwrap();
    assert_eq!(strict.refusals(Rule::ImageNotSupported), 1);
    assert_eq!(strict.refusals(Rule::ImageArchitecture), 1);
    assert_eq!(strict.refusals(Rule::ImageNotFound), 1);
    assert_eq!(strict.refusals(Rule::ImageWrongRegion), 1);

    // UpdateFunctionCode is checked against the function's architecture.
    tokio::time::sleep(quick().function_pending).await;
    let error = lambda
        .update_function_code()
        .function_name("f")
        .image_uri(format!("{host}/fn@{arm64}"))
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception())
    );
}

#[tokio::test]
async fn a_role_reads_only_the_secrets_its_policy_names() {
    let aws = strict_aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&strict_config(&aws).await);
    let arn = secrets
        .create_secret()
        .name("panther-token")
        .secret_string("s3cr3t")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let other = secrets
        .create_secret()
        .name("other")
        .secret_string("x")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    role(
        &aws,
        "trainer",
        LAMBDA_TRUST,
        Some(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:panther-token-??????"
        }]})),
    )
    .await;
    let as_role = aws_sdk_secretsmanager::Client::new(
        &no_retry(aws.sdk_config_as_role("trainer").await).await,
    );
    let value = as_role
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("s3cr3t"));
    let error = as_role
        .get_secret_value()
        .secret_id(&other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&error),
        Some("AccessDeniedException")
    );
    assert_eq!(aws.strict().unwrap().refusals(Rule::SecretAccessDenied), 1);
}

#[tokio::test]
async fn get_resources_lists_every_resource_type_with_the_tags() {
    let aws = strict_aws().await;
    let moto = moto_config(&aws).await;
    let tags = std::collections::HashMap::from([("team".to_string(), "t1".to_string())]);
    let repository = aws_sdk_ecr::Client::new(&moto)
        .create_repository()
        .repository_name("tagged/repo")
        .tags(
            aws_sdk_ecr::types::Tag::builder()
                .key("team")
                .value("t1")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .repository()
        .unwrap()
        .repository_arn()
        .unwrap()
        .to_string();
    let rule = aws_sdk_eventbridge::Client::new(&moto)
        .put_rule()
        .name("tagged-rule")
        .schedule_expression("rate(1 day)")
        .tags(
            aws_sdk_eventbridge::types::Tag::builder()
                .key("team")
                .value("t1")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .rule_arn()
        .unwrap()
        .to_string();
    let apigateway = aws_sdk_apigateway::Client::new(&moto);
    let api = apigateway
        .create_rest_api()
        .name("tagged-api")
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .unwrap();
    apigateway
        .create_rest_api()
        .name("untagged-api")
        .send()
        .await
        .unwrap();
    let plan = apigateway
        .create_usage_plan()
        .name("tagged-plan")
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .unwrap();
    let key = apigateway
        .create_api_key()
        .name("tagged-key")
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .unwrap();
    let expected: std::collections::BTreeSet<String> = [
        repository,
        rule,
        format!(
            "arn:aws:apigateway:us-east-1::/restapis/{}",
            api.id().unwrap()
        ),
        format!(
            "arn:aws:apigateway:us-east-1::/usageplans/{}",
            plan.id().unwrap()
        ),
        format!(
            "arn:aws:apigateway:us-east-1::/apikeys/{}",
            key.id().unwrap()
        ),
    ]
    .into();
    let listed = |config: SdkConfig| async move {
        aws_sdk_resourcegroupstagging::Client::new(&config)
            .get_resources()
            .tag_filters(
                aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                    .key("team")
                    .values("t1")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .resource_tag_mapping_list()
            .iter()
            .filter_map(|mapping| mapping.resource_arn().map(str::to_string))
            .collect::<std::collections::BTreeSet<String>>()
    };
    // moto leaves these types out; AWS lists them, and the layer does.
    assert!(listed(moto).await.is_disjoint(&expected));
    assert_eq!(listed(strict_config(&aws).await).await, expected);
    assert!(aws.strict().unwrap().refusals(Rule::TaggingListsEveryType) > 0);
}

#[tokio::test]
async fn api_gateway_lists_come_in_pages() {
    let aws = strict_aws().await;
    let moto = aws_sdk_apigateway::Client::new(&moto_config(&aws).await);
    for i in 0..30 {
        moto.create_rest_api()
            .name(format!("api-{i}"))
            .send()
            .await
            .unwrap();
    }
    // moto: everything at once, whatever the limit.
    let all = moto.get_rest_apis().limit(10).send().await.unwrap();
    assert_eq!((all.items().len(), all.position()), (30, None));
    // AWS: 25 by default, then the rest from the position.
    let strict = aws_sdk_apigateway::Client::new(&strict_config(&aws).await);
    let first = strict.get_rest_apis().send().await.unwrap();
    assert_eq!(first.items().len(), 25);
    let position = first.position().expect("a next page").to_string();
    let rest = strict
        .get_rest_apis()
        .position(position)
        .send()
        .await
        .unwrap();
    assert_eq!((rest.items().len(), rest.position()), (5, None));
    let ids: std::collections::BTreeSet<&str> = first
        .items()
        .iter()
        .chain(rest.items())
        .filter_map(|api| api.id())
        .collect();
    assert_eq!(ids.len(), 30, "no API twice, none left out");
    let big = strict.get_rest_apis().limit(500).send().await.unwrap();
    assert_eq!((big.items().len(), big.position()), (30, None));
    assert!(aws.strict().unwrap().refusals(Rule::ApiGatewayPages) > 0);
}

#[tokio::test]
async fn get_resources_keeps_listing_a_deleted_resource_for_a_while() {
    let aws = strict_aws().await;
    let moto = moto_config(&aws).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&moto);
    logs.create_log_group()
        .log_group_name("/gone/soon")
        .tags("team", "t1")
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:logs:us-east-1:123456789012:log-group:/gone/soon";
    let listed = |config: SdkConfig| async move {
        aws_sdk_resourcegroupstagging::Client::new(&config)
            .get_resources()
            .tag_filters(
                aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                    .key("team")
                    .values("t1")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .resource_tag_mapping_list()
            .iter()
            .filter_map(|mapping| mapping.resource_arn().map(str::to_string))
            .collect::<Vec<String>>()
    };
    let strict = strict_config(&aws).await;
    assert_eq!(listed(strict.clone()).await, [arn]);
    logs.delete_log_group()
        .log_group_name("/gone/soon")
        .send()
        .await
        .unwrap();
    // moto forgets it at once; AWS lists it a while longer.
    assert!(listed(moto).await.is_empty());
    assert_eq!(listed(strict.clone()).await, [arn]);
    assert!(aws.strict().unwrap().refusals(Rule::TaggingListsDeleted) > 0);
    // Not under other tags.
    let other = aws_sdk_resourcegroupstagging::Client::new(&strict)
        .get_resources()
        .tag_filters(
            aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                .key("team")
                .values("t2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(other.resource_tag_mapping_list().is_empty());
}

/// A function with versions 1 and 2, made through moto directly.
async fn function_with_two_versions(aws: &LocalAws, role: &str) -> aws_sdk_lambda::Client {
    let moto_lambda = aws_sdk_lambda::Client::new(&moto_config(aws).await);
    create_function(&moto_lambda, "f", role)
        .send()
        .await
        .unwrap();
    moto_lambda
        .publish_version()
        .function_name("f")
        .send()
        .await
        .unwrap();
    moto_lambda
        .update_function_configuration()
        .function_name("f")
        .memory_size(256)
        .send()
        .await
        .unwrap();
    let second = moto_lambda
        .publish_version()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(second.version(), Some("2"));
    moto_lambda
}

/// An alias as CreateAlias gets it: name, version, routing weights,
/// description.
type AliasCase = (&'static str, &'static str, Vec<(&'static str, f64)>, String);

fn routing(weights: &[(&str, f64)]) -> aws_sdk_lambda::types::AliasRoutingConfiguration {
    aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(
            weights
                .iter()
                .map(|(version, weight)| (version.to_string(), *weight))
                .collect(),
        ))
        .build()
}

#[tokio::test]
async fn alias_names_and_routing_are_checked_as_lambda_does() {
    let aws = strict_aws().await;
    let role = settled_role(&aws, "runner").await;
    let moto_lambda = function_with_two_versions(&aws, &role).await;
    let lambda = aws_sdk_lambda::Client::new(&strict_config(&aws).await);
    // (alias name, its version, routing weights, description)
    let refused: Vec<AliasCase> = vec![
        ("123", "1", vec![], String::new()),
        ("a.b", "1", vec![], String::new()),
        ("over-weight", "1", vec![("2", 1.5)], String::new()),
        ("two-more", "1", vec![("2", 0.1), ("3", 0.1)], String::new()),
        (
            "latest-weighted",
            "1",
            vec![("$LATEST", 0.1)],
            String::new(),
        ),
        ("itself", "1", vec![("1", 0.1)], String::new()),
        ("latest-target", "$LATEST", vec![("2", 0.1)], String::new()),
        ("long-description", "1", vec![], "d".repeat(257)),
    ];
    for (name, version, weights, description) in &refused {
        let create = |client: &aws_sdk_lambda::Client, name: String| {
            client
                .create_alias()
                .function_name("f")
                .name(name)
                .function_version(*version)
                .description(description.clone())
                .routing_config(routing(weights))
                .send()
        };
        create(&moto_lambda, format!("moto{}", name.replace('.', "")))
            .await
            .unwrap_or_else(|error| panic!("moto refused {name}: {error:?}"));
        let error = create(&lambda, name.to_string()).await.unwrap_err();
        assert!(
            error
                .as_service_error()
                .is_some_and(|e| e.is_invalid_parameter_value_exception()),
            "{name}: {error:?}"
        );
    }
    // What Lambda takes: a canary step, then its routing cleared.
    lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .routing_config(routing(&[("2", 0.1)]))
        .send()
        .await
        .unwrap();
    lambda
        .update_alias()
        .function_name("f")
        .name("live")
        .function_version("2")
        .routing_config(routing(&[]))
        .send()
        .await
        .unwrap();
    let error = lambda
        .update_alias()
        .function_name("f")
        .name("live")
        .function_version("2")
        .routing_config(routing(&[("2", 0.5)]))
        .send()
        .await
        .unwrap_err();
    assert!(error.as_service_error().is_some());
    assert_eq!(
        aws.strict().unwrap().refusals(Rule::AliasRouting),
        refused.len() as u64 + 1
    );
}

#[tokio::test]
async fn a_version_an_alias_routes_to_cannot_be_deleted() {
    let aws = strict_aws().await;
    let role = settled_role(&aws, "runner").await;
    let moto_lambda = function_with_two_versions(&aws, &role).await;
    let lambda = aws_sdk_lambda::Client::new(&strict_config(&aws).await);
    lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("2")
        .send()
        .await
        .unwrap();
    let error = lambda
        .delete_function()
        .function_name("f")
        .qualifier("2")
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_resource_conflict_exception()),
        "{error:?}"
    );
    // An unrouted version goes.
    lambda
        .delete_function()
        .function_name("f")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    // moto deletes a routed one.
    moto_lambda
        .delete_function()
        .function_name("f")
        .qualifier("2")
        .send()
        .await
        .expect("moto deletes a version an alias routes to");
    assert_eq!(aws.strict().unwrap().refusals(Rule::DeleteRoutedVersion), 1);
}
