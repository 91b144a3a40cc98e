//! The failures a real account showed in its first hour, reproduced through
//! the strict-AWS layer and fixed: the functions' roles reading the first,
//! still missing, model pointer (403 on AWS without an unconditional
//! `s3:ListBucket`); a first apply with access logs on an account without
//! API Gateway's CloudWatch role (refused mid-way by AWS, with the stage's
//! throttling in the same refused patch); and drift on existing routes
//! (PutMethod on an existing method is 409 on AWS).

mod common;

use aws_sdk_apigateway::types::{IntegrationType, Op, PatchOperation};
use aws_sdk_s3::error::ProvideErrorMetadata;
use common::*;
use test_harness::{LocalAws, Rule};

const DETECTION_ROLE: &str = "anomaly-local-detection-role";
const TRAINING_ROLE: &str = "anomaly-local-training-role";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_functions_role_sees_the_missing_first_model_as_absent() {
    let aws = account().await;
    local_controller(&aws)
        .await
        .apply()
        .await
        .expect("apply converges");
    for role in [DETECTION_ROLE, TRAINING_ROLE] {
        let config = aws.sdk_config_as_role(role).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let error = s3
            .get_object()
            .bucket("anomaly-local-models")
            .key("models/latest.json")
            .send()
            .await
            .expect_err("no model was published yet");
        assert_eq!(
            error.code(),
            Some("NoSuchKey"),
            "{role} must see 404 for the missing pointer, not {error:?}"
        );
        // And the model store the functions use agrees.
        let store = anomaly::store::ModelStore::new(s3, "anomaly-local-models", "models/");
        assert!(
            store
                .latest_pointer()
                .await
                .expect("the pointer reads")
                .is_none()
        );
    }
    let strict = aws.strict().expect("strict layer");
    assert_eq!(strict.refusals(Rule::S3MissingKeyForbidden), 0);
    assert_eq!(strict.refusals(Rule::S3AccessDenied), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_without_the_account_role_are_refused_before_any_change() {
    let aws = LocalAws::start().await;
    let sdk = sdk(&aws).await;
    let error = local_controller(&aws)
        .await
        .apply()
        .await
        .expect_err("the account has no API Gateway CloudWatch role");
    let message = error.to_string();
    assert!(
        message.contains("cloudwatchRoleArn") && message.contains("access_logging"),
        "the error says what to set: {message}"
    );
    let nothing = Inventory {
        buckets: 0,
        repositories: 0,
        roles: 0,
        log_groups: 0,
        functions: 0,
        rest_apis: 0,
        rules: 0,
        secrets: 0,
    };
    assert_eq!(inventory(&sdk).await, nothing, "nothing was changed");
    // `diff` says the same, with exit 1.
    let config = write_config(&local_config(aws.endpoint_url()));
    let output = run_controller(&["diff", config.path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("cloudwatchRoleArn"));

    set_account_logging_role(&aws).await;
    local_controller(&aws)
        .await
        .apply()
        .await
        .expect("apply converges once the account has the role");
    let api_id = sdk.apigateway.get_rest_apis().send().await.unwrap().items()[0]
        .id()
        .unwrap()
        .to_string();
    let stage = sdk
        .apigateway
        .get_stage()
        .rest_api_id(&api_id)
        .stage_name("local")
        .send()
        .await
        .unwrap();
    assert!(
        stage
            .access_log_settings()
            .and_then(|settings| settings.destination_arn())
            .is_some_and(|arn| arn.ends_with("/aws/apigateway/anomaly-local-api"))
    );
    let throttle = &stage.method_settings().unwrap()["*/*"];
    assert_eq!(throttle.throttling_rate_limit(), 50.0);
    assert_eq!(throttle.throttling_burst_limit(), 100);

    // The account setting is needed to change the stage, not to remove it:
    // without it, destroy still goes through.
    aws_sdk_apigateway::Client::new(&test_harness::sdk_config_for(&aws.moto_endpoint_url()).await)
        .update_account()
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/cloudwatchRoleArn")
                .value("")
                .build(),
        )
        .send()
        .await
        .expect("clear the account setting");
    local_controller(&aws)
        .await
        .destroy(controller::reconcile::BucketOnDestroy::Retain)
        .await
        .expect("destroy does not need the account's logging role");
    assert_eq!(inventory(&sdk).await, ONLY_BUCKET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_on_existing_routes_is_repaired_without_putting_methods_again() {
    let aws = account().await;
    let sdk = sdk(&aws).await;
    let controller = local_controller(&aws).await;
    controller.apply().await.expect("apply converges");
    let api = &sdk.apigateway;
    let (api_id, resources) = rest_api_resources(&sdk).await;
    let (health, detect) = (resources["/health"].clone(), resources["/detect"].clone());
    let training_uri = format!(
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:{}:function:anomaly-local-training/invocations",
        test_harness::TEST_ACCOUNT
    );
    // Out of band: POST /detect pointed at training, GET /health behind an API key.
    api.put_integration()
        .rest_api_id(&api_id)
        .resource_id(&detect)
        .http_method("POST")
        .r#type(IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(&training_uri)
        .send()
        .await
        .unwrap();
    api.update_method()
        .rest_api_id(&api_id)
        .resource_id(&health)
        .http_method("GET")
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/apiKeyRequired")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let plan = controller.plan().await.unwrap();
    assert!(plan.has_changes(), "the route drift is seen");
    controller.apply().await.expect("the drift is repaired");
    assert!(!controller.plan().await.unwrap().has_changes());
    let method = |resource_id: String, verb: &'static str| {
        let api = api.clone();
        let api_id = api_id.clone();
        async move {
            api.get_method()
                .rest_api_id(api_id)
                .resource_id(resource_id)
                .http_method(verb)
                .send()
                .await
                .unwrap()
        }
    };
    let get_health = method(health, "GET").await;
    assert_eq!(get_health.api_key_required(), Some(false));
    assert!(
        get_health.method_integration().is_some(),
        "integration kept"
    );
    let post_detect = method(detect, "POST").await;
    assert!(
        post_detect
            .method_integration()
            .and_then(|integration| integration.uri())
            .is_some_and(|uri| uri.contains("function:anomaly-local-detection/")),
        "{post_detect:?}"
    );
    assert_eq!(
        aws.strict().unwrap().refusals(Rule::PutMethodExists),
        0,
        "no PutMethod on an existing method"
    );
}

/// `Access-Control-Allow-Origin` holds one origin or `*`: one allowed origin
/// is a MOCK preflight answering with it; several go to the function, which
/// echoes the listed origin, with an invoke permission for each `OPTIONS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_answer_one_origin_each() {
    let aws = account().await;
    let sdk = sdk(&aws).await;
    let base = local_config(aws.endpoint_url());
    let with_origins = |origins: &str| {
        base.replace(
            "# cors_allow_origins = [\"https://siem.example.com\"]   # default: no CORS",
            &format!("cors_allow_origins = {origins}"),
        )
    };
    let one = with_origins(r#"["https://siem.example.com"]"#);
    assert_ne!(one, base, "the config sets CORS");
    controller_at(aws.endpoint_url(), &one)
        .await
        .apply()
        .await
        .expect("one origin");
    let api = &sdk.apigateway;
    let (api_id, resources) = rest_api_resources(&sdk).await;
    let detect = resources["/detect"].clone();
    let preflight = api
        .get_integration_response()
        .rest_api_id(&api_id)
        .resource_id(&detect)
        .http_method("OPTIONS")
        .status_code("200")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight
            .response_parameters()
            .unwrap()
            .get("method.response.header.Access-Control-Allow-Origin")
            .map(String::as_str),
        Some("'https://siem.example.com'")
    );

    let two = with_origins(r#"["https://siem.example.com", "https://soc.example.org"]"#);
    let controller = controller_at(aws.endpoint_url(), &two).await;
    controller.apply().await.expect("two origins");
    assert!(!controller.plan().await.unwrap().has_changes());
    let options = api
        .get_method()
        .rest_api_id(&api_id)
        .resource_id(&detect)
        .http_method("OPTIONS")
        .send()
        .await
        .unwrap();
    let integration = options.method_integration().unwrap();
    assert_eq!(integration.r#type().map(|t| t.as_str()), Some("AWS_PROXY"));
    assert!(
        integration
            .uri()
            .is_some_and(|uri| uri.contains("function:anomaly-local-detection/"))
    );
    let policy = sdk
        .lambda
        .get_policy()
        .function_name("anomaly-local-detection")
        .send()
        .await
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let sources: Vec<String> = document["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|statement| {
            statement["Condition"]["ArnLike"]["AWS:SourceArn"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    for route in [
        "/OPTIONS/health",
        "/OPTIONS/detect",
        "/GET/health",
        "/POST/detect",
    ] {
        assert!(
            sources.iter().any(|source| source.ends_with(route)),
            "an invoke permission for {route}: {sources:?}"
        );
    }

    // Back to one origin: the function's preflight becomes a MOCK again.
    let controller = controller_at(aws.endpoint_url(), &one).await;
    controller.apply().await.expect("back to one origin");
    assert!(!controller.plan().await.unwrap().has_changes());
    let options = api
        .get_method()
        .rest_api_id(&api_id)
        .resource_id(&detect)
        .http_method("OPTIONS")
        .send()
        .await
        .unwrap();
    assert_eq!(
        options
            .method_integration()
            .and_then(|integration| integration.r#type())
            .map(|t| t.as_str()),
        Some("MOCK")
    );
    assert!(
        options
            .method_responses()
            .is_some_and(|responses| responses.contains_key("200")),
        "the MOCK preflight has its 200 method response"
    );
}
