//! How the model store reads S3's error answers, with real S3 error shapes:
//! `NoSuchKey` and `NoSuchBucket` from the local S3 (moto), and the 403
//! `AccessDenied` that real S3 gives for a missing key when the caller lacks
//! `s3:ListBucket`, sent in S3's own XML by the harness's proxy in front of it.
//!
//! Only `NoSuchKey` is "no model yet"; a 403 and a missing bucket are errors.

use anomaly::store::{ModelStore, ReadFailure, StoreError, classify_sdk_error, s3_client};
use test_harness::{FaultProxy, FaultRates, LocalAws, RequestMatch, ScriptedResponse};

/// S3's answer to a request it refuses (S3 API reference, "Error responses").
const ACCESS_DENIED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#;

async fn local_s3() -> (LocalAws, aws_sdk_s3::Client) {
    let aws = LocalAws::start().await;
    let client = s3_client(&aws.sdk_config().await);
    client
        .create_bucket()
        .bucket("models")
        .send()
        .await
        .unwrap();
    (aws, client)
}

#[tokio::test]
async fn a_missing_pointer_is_absent() {
    let (_aws, client) = local_s3().await;
    let error = client
        .get_object()
        .bucket("models")
        .key("models/latest.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(classify_sdk_error(&error), ReadFailure::NoSuchKey);
    let store = ModelStore::new(client, "models", "models/");
    assert!(store.latest_pointer().await.unwrap().is_none());
}

#[tokio::test]
async fn a_missing_bucket_is_an_error_not_an_absent_model() {
    let (_aws, client) = local_s3().await;
    let error = client
        .get_object()
        .bucket("no-such-bucket")
        .key("models/latest.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(classify_sdk_error(&error), ReadFailure::Other);
    let store = ModelStore::new(client, "no-such-bucket", "models/");
    let error = store.latest_pointer().await.unwrap_err();
    assert!(matches!(error, StoreError::S3 { .. }), "{error}");
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");
}

#[tokio::test]
async fn access_denied_is_a_permission_error_naming_list_bucket() {
    let (aws, _client) = local_s3().await;
    let upstream = aws
        .endpoint_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream, FaultRates::default()).await;
    proxy.script(
        RequestMatch {
            method: Some("GET".into()),
            path_prefix: Some("/models/models/latest.json".into()),
            ..RequestMatch::default()
        },
        ScriptedResponse::new(
            403,
            vec![("Content-Type".into(), "application/xml".into())],
            ACCESS_DENIED,
        ),
        2,
    );
    let client = s3_client(&test_harness::sdk_config_for(&proxy.endpoint_url()).await);
    let error = client
        .get_object()
        .bucket("models")
        .key("models/latest.json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(classify_sdk_error(&error), ReadFailure::AccessDenied);

    let store = ModelStore::new(client, "models", "models/");
    let error = store.latest_pointer().await.unwrap_err();
    assert!(matches!(error, StoreError::AccessDenied { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("s3:ListBucket"), "{text}");
    assert!(text.contains("s3:GetObject"), "{text}");
    assert_eq!(proxy.scripted_count(), 2);
}
