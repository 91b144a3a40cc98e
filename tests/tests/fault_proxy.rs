//! The fault proxy against a real moto server: transparent at rate 0, each
//! fault spelled so the SDK classifies it as real AWS failures would be, the
//! SDK's standard retry converging through a mix of all of them, and scripted
//! answers imitating AWS behaviour moto lacks.

use std::net::SocketAddr;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::{ErrorKind, RetryConfig};
use aws_sdk_lambda::types::{FunctionCode, LastUpdateStatus, PackageType, State};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;
use test_harness::{
    FaultProxy, FaultRates, FaultStats, LocalAws, RequestMatch, ScriptedResponse, sdk_config_for,
};

const ASSUME_ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The SDK's standard retry codes for throttling (aws-runtime's classifier).
const SDK_THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

async fn config(proxy: &FaultProxy, retry: RetryConfig) -> SdkConfig {
    sdk_config_for(&proxy.endpoint_url())
        .await
        .into_builder()
        .retry_config(retry)
        .build()
}

fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

fn only(kind: &str) -> FaultRates {
    let mut rates = FaultRates {
        seed: 7,
        ..FaultRates::default()
    };
    match kind {
        "throttle" => rates.throttle = 1.0,
        "server_error" => rates.server_error = 1.0,
        "drop_before" => rates.drop_before = 1.0,
        "drop_after" => rates.drop_after = 1.0,
        other => panic!("unknown fault kind {other}"),
    }
    rates
}

/// A plain HTTP/1.1 request on a fresh connection. `None` when the connection
/// was closed without an answer.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &'static str,
) -> Option<(u16, Option<String>, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|value| value.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        error_type,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

fn assert_dispatch_failure<E: std::fmt::Debug, R: std::fmt::Debug>(error: &SdkError<E, R>) {
    match error {
        SdkError::DispatchFailure(failure) => assert!(
            failure.is_io() || failure.as_other() == Some(ErrorKind::TransientError),
            "a dropped connection must be a retryable I/O failure: {failure:?}"
        ),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
}

fn assert_service_error<E>(error: &SdkError<E, HttpResponse>, status: u16, code: &str)
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    assert!(
        matches!(error, SdkError::ServiceError(_)),
        "expected a service error, got {error:?}"
    );
    assert_eq!(error.code(), Some(code), "{error:?}");
    let raw = error
        .raw_response()
        .expect("a service error has a response");
    assert_eq!(raw.status().as_u16(), status, "{error:?}");
}

#[tokio::test]
async fn transparent_at_rate_zero() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::default()).await;
    let config = config(&proxy, RetryConfig::disabled()).await;
    let client = s3(&config);

    client
        .create_bucket()
        .bucket("through-proxy")
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket("through-proxy")
        .key("a/b.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let listed = client
        .list_objects_v2()
        .bucket("through-proxy")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/b.txt"]);
    let object = client
        .get_object()
        .bucket("through-proxy")
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"hello");

    // The same state is visible directly on moto.
    let direct = s3(&aws.sdk_config().await);
    let buckets = direct.list_buckets().send().await.unwrap();
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["through-proxy"]);

    // Other protocols go through too.
    let iam = aws_sdk_iam::Client::new(&config);
    iam.create_role()
        .role_name("through-proxy")
        .assume_role_policy_document(ASSUME_ROLE_POLICY)
        .send()
        .await
        .unwrap();
    let role = iam
        .get_role()
        .role_name("through-proxy")
        .send()
        .await
        .unwrap();
    assert_eq!(role.role().unwrap().role_name(), "through-proxy");
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    logs.create_log_group()
        .log_group_name("/through/proxy")
        .send()
        .await
        .unwrap();
    let groups = logs.describe_log_groups().send().await.unwrap();
    assert_eq!(groups.log_groups().len(), 1);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let functions = lambda.list_functions().send().await.unwrap();
    assert!(functions.functions().is_empty());

    assert_eq!(
        proxy.stats(),
        FaultStats {
            forwarded: 9,
            ..FaultStats::default()
        }
    );
}

#[tokio::test]
async fn throttle_is_spelled_per_protocol() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), only("throttle")).await;

    let json = raw(
        proxy.addr(),
        "POST",
        "/",
        Some("application/x-amz-json-1.1"),
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(json.0, 400);
    assert_eq!(json.1.as_deref(), Some("ThrottlingException"));
    assert_eq!(
        json.2,
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#
    );
    let query = raw(
        proxy.addr(),
        "POST",
        "/",
        Some("application/x-www-form-urlencoded"),
        "Action=ListRoles&Version=2010-05-08",
    )
    .await
    .unwrap();
    assert_eq!(query.0, 400);
    assert!(query.2.contains("<Code>Throttling</Code>"), "{}", query.2);
    let lambda = raw(proxy.addr(), "GET", "/2015-03-31/functions", None, "")
        .await
        .unwrap();
    assert_eq!(lambda.0, 429);
    assert_eq!(lambda.1.as_deref(), Some("TooManyRequestsException"));
    let s3_raw = raw(proxy.addr(), "GET", "/some-bucket", None, "")
        .await
        .unwrap();
    assert_eq!(s3_raw.0, 503);
    assert!(s3_raw.2.contains("<Code>SlowDown</Code>"), "{}", s3_raw.2);
    assert_eq!(proxy.stats().throttled, 4);

    // moto's control API is never faulted.
    let control = raw(proxy.addr(), "GET", "/moto-api/", None, "")
        .await
        .unwrap();
    assert_eq!(control.0, 200);

    let config = config(&proxy, RetryConfig::disabled()).await;
    let error = s3(&config).list_buckets().send().await.unwrap_err();
    assert_service_error(&error, 503, "SlowDown");
    let error = aws_sdk_iam::Client::new(&config)
        .list_roles()
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 400, "Throttling");
    let error = aws_sdk_cloudwatchlogs::Client::new(&config)
        .describe_log_groups()
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 400, "ThrottlingException");
    let error = aws_sdk_lambda::Client::new(&config)
        .list_functions()
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 429, "TooManyRequestsException");
    assert!(
        error
            .as_service_error()
            .unwrap()
            .is_too_many_requests_exception()
    );
    for code in ["SlowDown", "Throttling", "ThrottlingException"] {
        assert!(SDK_THROTTLING_CODES.contains(&code));
    }

    // The standard retry retries it until attempts run out.
    let before = proxy.stats();
    let config = config_with_attempts(&proxy, 3).await;
    let error = s3(&config).list_buckets().send().await.unwrap_err();
    assert_service_error(&error, 503, "SlowDown");
    assert_eq!(proxy.stats().throttled - before.throttled, 3);
    assert_eq!(proxy.stats().forwarded, before.forwarded);
}

#[tokio::test]
async fn server_error_is_a_500_per_protocol() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), only("server_error")).await;
    let config = config(&proxy, RetryConfig::disabled()).await;

    let error = s3(&config).list_buckets().send().await.unwrap_err();
    assert_service_error(&error, 500, "InternalError");
    let error = aws_sdk_iam::Client::new(&config)
        .list_roles()
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 500, "InternalFailure");
    let error = aws_sdk_cloudwatchlogs::Client::new(&config)
        .describe_log_groups()
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 500, "InternalFailure");
    let error = aws_sdk_lambda::Client::new(&config)
        .list_functions()
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 500, "ServiceException");
    assert!(error.as_service_error().unwrap().is_service_exception());
    assert_eq!(
        proxy.stats(),
        FaultStats {
            server_errors: 4,
            ..FaultStats::default()
        }
    );

    let config = config_with_attempts(&proxy, 2).await;
    let error = s3(&config).list_buckets().send().await.unwrap_err();
    assert_service_error(&error, 500, "InternalError");
    assert_eq!(proxy.stats().server_errors, 6, "a 500 is retried");
}

#[tokio::test]
async fn drop_before_never_reaches_the_server() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), only("drop_before")).await;

    assert_eq!(
        raw(proxy.addr(), "GET", "/some-bucket", None, "").await,
        None
    );
    let config = config(&proxy, RetryConfig::disabled()).await;
    let error = s3(&config)
        .create_bucket()
        .bucket("never-created")
        .send()
        .await
        .unwrap_err();
    assert_dispatch_failure(&error);
    let error = aws_sdk_iam::Client::new(&config)
        .list_roles()
        .send()
        .await
        .unwrap_err();
    assert_dispatch_failure(&error);

    let direct = s3(&aws.sdk_config().await);
    let buckets = direct.list_buckets().send().await.unwrap();
    assert!(buckets.buckets().is_empty(), "{buckets:?}");
    assert_eq!(
        proxy.stats(),
        FaultStats {
            dropped_before: 3,
            ..FaultStats::default()
        }
    );

    let config = config_with_attempts(&proxy, 3).await;
    let error = s3(&config).list_buckets().send().await.unwrap_err();
    assert_dispatch_failure(&error);
    assert_eq!(proxy.stats().dropped_before, 6, "a drop is retried");
}

#[tokio::test]
async fn drop_after_applies_the_change_but_loses_the_answer() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), only("drop_after")).await;
    let config = config(&proxy, RetryConfig::disabled()).await;

    let error = s3(&config)
        .create_bucket()
        .bucket("created-anyway")
        .send()
        .await
        .unwrap_err();
    assert_dispatch_failure(&error);
    let error = aws_sdk_iam::Client::new(&config)
        .create_role()
        .role_name("created-anyway")
        .assume_role_policy_document(ASSUME_ROLE_POLICY)
        .send()
        .await
        .unwrap_err();
    assert_dispatch_failure(&error);

    let direct = aws.sdk_config().await;
    let buckets = s3(&direct).list_buckets().send().await.unwrap();
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["created-anyway"]);
    aws_sdk_iam::Client::new(&direct)
        .get_role()
        .role_name("created-anyway")
        .send()
        .await
        .expect("the dropped create_role happened on the server");
    assert_eq!(
        proxy.stats(),
        FaultStats {
            dropped_after: 2,
            ..FaultStats::default()
        }
    );

    // Once the faults stop, the retried create meets its own earlier effect.
    proxy.set_rates(FaultRates::default());
    let error = aws_sdk_iam::Client::new(&config)
        .create_role()
        .role_name("created-anyway")
        .assume_role_policy_document(ASSUME_ROLE_POLICY)
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_entity_already_exists_exception()),
        "{error:?}"
    );
    assert_eq!(proxy.stats().forwarded, 1);
}

async fn config_with_attempts(proxy: &FaultProxy, attempts: u32) -> SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(20))
        .with_max_backoff(Duration::from_millis(200));
    config(proxy, retry).await
}

/// Treats "it already exists" as success: what a converging controller does
/// when a create whose answer was lost is retried.
fn created<T, E, R>(result: Result<T, SdkError<E, R>>, already_exists: impl Fn(&E) -> bool)
where
    E: std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => {}
        Err(SdkError::ServiceError(error)) if already_exists(error.err()) => {}
        Err(error) => panic!("create failed despite retries: {error:?}"),
    }
}

#[tokio::test]
async fn standard_retry_converges_through_mixed_faults() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::uniform(0.3, 20_240_607)).await;
    let config = config_with_attempts(&proxy, 10).await;
    let s3 = s3(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);

    for round in 0..4 {
        let bucket = format!("converge-{round}");
        // In us-east-1 creating a bucket one already owns succeeds.
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        s3.put_object()
            .bucket(&bucket)
            .key("state.json")
            .body(ByteStream::from(
                format!("{{\"round\":{round}}}").into_bytes(),
            ))
            .send()
            .await
            .unwrap();
        let object = s3
            .get_object()
            .bucket(&bucket)
            .key("state.json")
            .send()
            .await
            .unwrap();
        let body = object.body.collect().await.unwrap().into_bytes();
        assert_eq!(body, format!("{{\"round\":{round}}}").as_bytes());

        let role = format!("converge-{round}");
        created(
            iam.create_role()
                .role_name(&role)
                .assume_role_policy_document(ASSUME_ROLE_POLICY)
                .send()
                .await,
            |e| e.is_entity_already_exists_exception(),
        );
        let got = iam.get_role().role_name(&role).send().await.unwrap();
        assert_eq!(got.role().unwrap().role_name(), role);

        let group = format!("/converge/{round}");
        created(
            logs.create_log_group().log_group_name(&group).send().await,
            |e| e.is_resource_already_exists_exception(),
        );
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(&group)
            .send()
            .await
            .unwrap();
        assert_eq!(groups.log_groups().len(), 1);
    }

    let direct = aws.sdk_config().await;
    let buckets = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&direct)
            .force_path_style(true)
            .build(),
    )
    .list_buckets()
    .send()
    .await
    .unwrap();
    assert_eq!(buckets.buckets().len(), 4);
    let stats = proxy.stats();
    println!("{stats:?}");
    assert!(stats.forwarded >= 24, "{stats:?}");
    assert!(stats.throttled >= 1, "{stats:?}");
    assert!(stats.server_errors >= 1, "{stats:?}");
    assert!(stats.dropped_before >= 1, "{stats:?}");
    assert!(stats.dropped_after >= 1, "{stats:?}");
}

#[tokio::test]
async fn keep_alive_concurrency_and_shutdown() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::default()).await;

    // Several requests on one kept-alive connection.
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    for _ in 0..3 {
        sender.ready().await.unwrap();
        let request = Request::get("/moto-api/")
            .header("host", proxy.addr().to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
    }

    // Many SDK calls at once.
    let config = config(&proxy, RetryConfig::disabled()).await;
    let client = s3(&config);
    client.create_bucket().bucket("busy").send().await.unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..16 {
        let client = client.clone();
        calls.spawn(async move {
            client
                .put_object()
                .bucket("busy")
                .key(format!("object-{i}"))
                .body(ByteStream::from(vec![b'x'; 1000 * i]))
                .send()
                .await
        });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    let listed = client
        .list_objects_v2()
        .bucket("busy")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(16));
    assert_eq!(proxy.stats().forwarded, 3 + 1 + 16 + 1);

    // Dropping the proxy closes the kept-alive connection and the port.
    let addr = proxy.addr();
    drop(proxy);
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the client connection is closed when the proxy is dropped")
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

const IMAGE_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1";
const ROLE_NOT_ASSUMABLE: &str = "The role defined for the function cannot be assumed by Lambda.";

/// Creates the execution role a function needs and returns its ARN.
async fn lambda_role(config: &SdkConfig, name: &str) -> String {
    let created = aws_sdk_iam::Client::new(config)
        .create_role()
        .role_name(name)
        .assume_role_policy_document(ASSUME_ROLE_POLICY)
        .send()
        .await
        .unwrap();
    created.role().unwrap().arn().to_string()
}

async fn create_image_function(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    role_arn: &str,
) -> Result<
    aws_sdk_lambda::operation::create_function::CreateFunctionOutput,
    SdkError<aws_sdk_lambda::operation::create_function::CreateFunctionError, HttpResponse>,
> {
    lambda
        .create_function()
        .function_name(name)
        .role(role_arn)
        .package_type(PackageType::Image)
        .code(FunctionCode::builder().image_uri(IMAGE_URI).build())
        .send()
        .await
}

#[tokio::test]
async fn scripted_lambda_error_then_the_real_answer() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::default()).await;
    let config = config(&proxy, RetryConfig::disabled()).await;
    let role_arn = lambda_role(&config, "fresh-role").await;
    let lambda = aws_sdk_lambda::Client::new(&config);

    // A role just created is not assumable by Lambda for a few seconds.
    proxy.script(
        RequestMatch::lambda("POST", "/2015-03-31/functions"),
        ScriptedResponse::lambda_error(400, "InvalidParameterValueException", ROLE_NOT_ASSUMABLE),
        2,
    );
    for attempt in 1..=2 {
        let error = create_image_function(&lambda, "scripted", &role_arn)
            .await
            .unwrap_err();
        assert_service_error(&error, 400, "InvalidParameterValueException");
        assert!(
            error
                .as_service_error()
                .unwrap()
                .is_invalid_parameter_value_exception(),
            "attempt {attempt}: {error:?}"
        );
        assert_eq!(error.message(), Some(ROLE_NOT_ASSUMABLE));
        assert_eq!(proxy.scripted_count(), attempt);
    }
    // The scripted answers never reached moto.
    let direct = aws_sdk_lambda::Client::new(&aws.sdk_config().await);
    let missing = direct
        .get_function()
        .function_name("scripted")
        .send()
        .await
        .unwrap_err();
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{missing:?}"
    );

    let created = create_image_function(&lambda, "scripted", &role_arn)
        .await
        .unwrap();
    assert_eq!(created.function_name(), Some("scripted"));
    assert_eq!(created.package_type(), Some(&PackageType::Image));
    assert_eq!(proxy.scripted_count(), 2);
    // create_role and the successful create_function.
    assert_eq!(proxy.stats().forwarded, 2);
}

#[tokio::test]
async fn json_override_reports_pending_then_the_real_state() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::default()).await;
    let config = config(&proxy, RetryConfig::disabled()).await;
    let role_arn = lambda_role(&config, "pending-role").await;
    let lambda = aws_sdk_lambda::Client::new(&config);
    create_image_function(&lambda, "pending", &role_arn)
        .await
        .unwrap();

    proxy.script_json_override(
        RequestMatch::lambda("GET", "/2015-03-31/functions/pending/configuration"),
        json!({"State": "Pending", "LastUpdateStatus": "InProgress"}),
        2,
    );
    for call in 1..=2 {
        let configuration = lambda
            .get_function_configuration()
            .function_name("pending")
            .send()
            .await
            .unwrap();
        assert_eq!(configuration.state(), Some(&State::Pending), "call {call}");
        assert_eq!(
            configuration.last_update_status(),
            Some(&LastUpdateStatus::InProgress)
        );
        // Everything else is moto's own answer.
        assert_eq!(configuration.function_name(), Some("pending"));
        assert_eq!(configuration.role(), Some(role_arn.as_str()));
        assert_eq!(proxy.scripted_count(), call);

        // GetFunction shares the path prefix but not the script.
        let function = lambda
            .get_function()
            .function_name("pending")
            .send()
            .await
            .unwrap();
        assert_eq!(
            function.configuration().unwrap().state(),
            Some(&State::Active)
        );
    }

    let configuration = lambda
        .get_function_configuration()
        .function_name("pending")
        .send()
        .await
        .unwrap();
    assert_eq!(configuration.state(), Some(&State::Active));
    assert_eq!(proxy.scripted_count(), 2);

    // An error answer is relayed as is and not counted as scripted.
    proxy.script_json_override(
        RequestMatch::lambda("GET", "/2015-03-31/functions/absent/configuration"),
        json!({"State": "Pending"}),
        1,
    );
    let error = lambda
        .get_function_configuration()
        .function_name("absent")
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{error:?}"
    );
    assert_eq!(proxy.scripted_count(), 2);
}

#[tokio::test]
async fn forward_first_applies_the_change_but_answers_the_script() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::default()).await;
    let config = config(&proxy, RetryConfig::disabled()).await;
    let role_arn = lambda_role(&config, "conflict-role").await;
    let lambda = aws_sdk_lambda::Client::new(&config);
    let created = create_image_function(&lambda, "conflict", &role_arn)
        .await
        .unwrap();
    let arn = created.function_arn().unwrap().to_string();
    let before = proxy.stats();

    let message = format!(
        "The operation cannot be performed at this time. \
         An update is in progress for resource: {arn}"
    );
    proxy.script(
        RequestMatch::lambda("PUT", "/2015-03-31/functions/conflict/configuration"),
        ScriptedResponse::lambda_error(409, "ResourceConflictException", &message)
            .after_forwarding(),
        1,
    );
    let error = lambda
        .update_function_configuration()
        .function_name("conflict")
        .memory_size(512)
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 409, "ResourceConflictException");
    assert!(
        error
            .as_service_error()
            .unwrap()
            .is_resource_conflict_exception()
    );
    assert_eq!(error.message(), Some(message.as_str()));
    assert_eq!(proxy.scripted_count(), 1);
    assert_eq!(proxy.stats(), before, "a scripted answer is no fault");

    // The change happened in moto all the same.
    let direct = aws_sdk_lambda::Client::new(&aws.sdk_config().await);
    let configuration = direct
        .get_function_configuration()
        .function_name("conflict")
        .send()
        .await
        .unwrap();
    assert_eq!(configuration.memory_size(), Some(512));
}

#[tokio::test]
async fn scripts_match_by_action_in_order_and_before_faults() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::default()).await;
    let config = config(&proxy, RetryConfig::disabled()).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);

    // The query protocol's Action form field.
    proxy.script(
        RequestMatch::action("CreateRole"),
        ScriptedResponse::query_error(409, "EntityAlreadyExists", "Role with name x exists."),
        1,
    );
    let error = iam
        .create_role()
        .role_name("scripted")
        .assume_role_policy_document(ASSUME_ROLE_POLICY)
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 409, "EntityAlreadyExists");
    assert!(
        error
            .as_service_error()
            .unwrap()
            .is_entity_already_exists_exception()
    );
    assert!(
        aws_sdk_iam::Client::new(&aws.sdk_config().await)
            .get_role()
            .role_name("scripted")
            .send()
            .await
            .is_err(),
        "a script without forward_first never reaches moto"
    );

    // The awsJson X-Amz-Target header, by operation or in full.
    proxy.script(
        RequestMatch::action("CreateLogGroup"),
        ScriptedResponse::json_error(
            400,
            "OperationAbortedException",
            "Multiple requests to modify the same resource were in conflict.",
        ),
        1,
    );
    proxy.script(
        RequestMatch {
            target: Some("Logs_20140328.DescribeLogGroups".to_string()),
            ..RequestMatch::default()
        },
        ScriptedResponse::json_error(400, "ServiceUnavailableException", "try later"),
        1,
    );
    let error = logs
        .create_log_group()
        .log_group_name("/scripted")
        .send()
        .await
        .unwrap_err();
    assert_service_error(&error, 400, "OperationAbortedException");
    let error = logs.describe_log_groups().send().await.unwrap_err();
    assert_service_error(&error, 400, "ServiceUnavailableException");
    assert!(logs.describe_log_groups().send().await.is_ok());
    assert_eq!(proxy.scripted_count(), 3);

    // Scripts in the order they were added, each for its count, and ahead of
    // the random faults.
    proxy.set_rates(only("throttle"));
    proxy.script(
        RequestMatch::action("ListRoles"),
        ScriptedResponse::query_error(403, "AccessDenied", "first"),
        1,
    );
    proxy.script(
        RequestMatch::action("ListRoles"),
        ScriptedResponse::query_error(400, "ServiceFailure", "second"),
        2,
    );
    let mut codes = Vec::new();
    for _ in 0..4 {
        let error = iam.list_roles().send().await.unwrap_err();
        codes.push(error.code().unwrap().to_string());
    }
    assert_eq!(
        codes,
        [
            "AccessDenied",
            "ServiceFailure",
            "ServiceFailure",
            "Throttling"
        ]
    );
    assert_eq!(proxy.scripted_count(), 6);
    assert_eq!(proxy.stats().throttled, 1);
}

#[tokio::test]
async fn script_paths_ignore_the_query_and_percent_encoding() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.moto_addr(), FaultRates::default()).await;
    let conflict =
        || ScriptedResponse::lambda_error(409, "ResourceConflictException", "update in progress");

    proxy.script(
        RequestMatch::lambda("GET", "/2015-03-31/functions/f/configuration"),
        conflict(),
        1,
    );
    let answer = raw(
        proxy.addr(),
        "GET",
        "/2015-03-31/functions/f/configuration?Qualifier=%24LATEST",
        None,
        "",
    )
    .await
    .unwrap();
    assert_eq!(answer.0, 409);
    assert_eq!(answer.1.as_deref(), Some("ResourceConflictException"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.2).unwrap(),
        json!({"Type": "User", "message": "update in progress"})
    );

    // A function ARN matches percent-encoded.
    proxy.script(
        RequestMatch::lambda(
            "get",
            "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:g",
        )
        .with_path_suffix("/configuration"),
        conflict(),
        1,
    );
    let arn_path =
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Ag";
    // Neither the wrong method nor the wrong suffix matches.
    let other = raw(
        proxy.addr(),
        "PUT",
        &format!("{arn_path}/configuration"),
        None,
        "",
    )
    .await
    .unwrap();
    assert_ne!(other.0, 409, "{other:?}");
    let other = raw(proxy.addr(), "GET", arn_path, None, "").await.unwrap();
    assert_ne!(other.0, 409, "{other:?}");
    let answer = raw(
        proxy.addr(),
        "GET",
        &format!("{arn_path}/configuration"),
        None,
        "",
    )
    .await
    .unwrap();
    assert_eq!(answer.0, 409);
    assert_eq!(proxy.scripted_count(), 2);

    // An exhausted script no longer matches; moto's control API never does.
    let answer = raw(
        proxy.addr(),
        "GET",
        &format!("{arn_path}/configuration"),
        None,
        "",
    )
    .await
    .unwrap();
    assert_eq!(answer.0, 404, "{answer:?}");
    proxy.script(RequestMatch::default(), conflict(), 1);
    let control = raw(proxy.addr(), "GET", "/moto-api/", None, "")
        .await
        .unwrap();
    assert_eq!(control.0, 200);
    assert_eq!(proxy.scripted_count(), 2);
}
