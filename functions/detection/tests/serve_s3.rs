//! `detection serve` over a real socket with the model store in S3 (moto): 503 while no
//! model is published, the latest model loaded, a newer one picked up without a
//! restart, a model file of another format version refused with a clear reason in the
//! log; a store that refuses the read (403) or does not exist is logged with the detail
//! and the missing permission, and never shown to the caller.

mod common;

use anomaly::store::{ModelStore, Pointer, s3_client};
use aws_sdk_s3::primitives::ByteStream;
use common::{assert_no_internals, http, small_model, spawn_serve, spawn_serve_logged};
use serde_json::json;
use std::time::{Duration, Instant};
use test_harness::{FaultProxy, FaultRates, RequestMatch, ScriptedResponse};

fn env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MODEL_BUCKET", "models".into()),
        ("MODEL_PREFIX", "models/".into()),
        ("MODEL_REFRESH_SECONDS", "1".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

async fn wait_for_version(addr: &str, version: &str) {
    let start = Instant::now();
    loop {
        let a = http(addr, "GET", "/health", None, b"").await;
        if a.status == 200 && a.body["model_version"] == json!(version) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "model {version} never served; last answer {} {}",
            a.status,
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn serves_the_latest_model_from_s3_and_picks_up_a_newer_one() {
    let aws = test_harness::LocalAws::start().await;
    let conf = aws.sdk_config().await;
    let s3 = s3_client(&conf);
    s3.create_bucket().bucket("models").send().await.unwrap();
    let store = ModelStore::new(s3.clone(), "models", "models/");
    let vars = env(aws.endpoint_url());
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (proc_, addr) = spawn_serve(&pairs);
    let pid = proc_.0.id();

    let a = http(&addr, "GET", "/health", None, b"").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["reason"], "not_published", "{}", a.body);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("no model has been published yet"),
        "{}",
        a.body
    );
    assert_no_internals(&a.body.to_string(), "models");
    let a = http(
        &addr,
        "POST",
        "/detect",
        Some("application/json"),
        br#"{"eventName": "X"}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (503, Some("model_unavailable"))
    );

    let first = small_model(1);
    store.publish(&first).await.unwrap();
    wait_for_version(&addr, &first.version).await;
    let a = http(
        &addr,
        "POST",
        "/detect",
        Some("application/json"),
        br#"[{"eventName": "DeleteTrail", "eventTime": "2024-06-05T03:00:00Z"}]"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["results"][0]["model_version"], json!(first.version));
    assert_eq!(
        a.body["results"][0]["rarity_analysis"]["eventName"]["level"],
        "UNSEEN"
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = small_model(2);
    assert_ne!(first.version, second.version);
    store.publish(&second).await.unwrap();
    wait_for_version(&addr, &second.version).await;
    assert_eq!(proc_.0.id(), pid, "same process, no restart");

    // A pointer to a model of another format version: the current model stays.
    let mut v: serde_json::Value = serde_json::from_slice(&second.to_json()).unwrap();
    v["format_version"] = json!(99);
    v["version"] = json!("from-the-future");
    s3.put_object()
        .bucket("models")
        .key("models/from-the-future.json")
        .body(ByteStream::from(serde_json::to_vec(&v).unwrap()))
        .send()
        .await
        .unwrap();
    let p = Pointer {
        version: "from-the-future".into(),
        key: "models/from-the-future.json".into(),
        trained_at: second.trained_at,
        training_samples: 1,
        format_version: 99,
    };
    s3.put_object()
        .bucket("models")
        .key("models/latest.json")
        .body(ByteStream::from(serde_json::to_vec(&p).unwrap()))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a = http(&addr, "GET", "/health", None, b"").await;
    assert_eq!(
        (a.status, &a.body["model_version"]),
        (200, &json!(second.version))
    );

    // A fresh process that finds only that model refuses it and says why in its log.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let (_p2, addr2) = spawn_serve_logged(&pairs, &log);
    let a = http(&addr2, "GET", "/health", None, b"").await;
    assert_eq!(a.status, 503);
    assert_eq!(a.body["reason"], "model_invalid", "{}", a.body);
    assert_no_internals(&a.body.to_string(), "models");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("format version 99 is not supported"),
        "{logged}"
    );
}

/// S3's answer to a refused request (S3 API reference, "Error responses"): what a
/// role without `s3:ListBucket` gets for a missing pointer.
const ACCESS_DENIED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#;

#[tokio::test]
async fn a_forbidden_or_missing_store_is_logged_and_never_shown() {
    let aws = test_harness::LocalAws::start().await;
    let bucket = "anomaly-models-123456789012-private";
    s3_client(&aws.sdk_config().await)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let upstream = aws
        .endpoint_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream, FaultRates::default()).await;
    proxy.script(
        RequestMatch {
            method: Some("GET".into()),
            path_prefix: Some(format!("/{bucket}/models/latest.json")),
            ..RequestMatch::default()
        },
        ScriptedResponse::new(
            403,
            vec![("Content-Type".into(), "application/xml".into())],
            ACCESS_DENIED,
        ),
        1000,
    );
    let endpoint = proxy.endpoint_url();
    let dir = tempfile::tempdir().unwrap();
    for (name, bucket_var) in [("forbidden", bucket), ("missing", "no-such-model-bucket")] {
        let mut vars = env(&endpoint);
        vars[0].1 = bucket_var.to_string();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let log = dir.path().join(format!("{name}.log"));
        let (_proc, addr) = spawn_serve_logged(&pairs, &log);
        let health = http(&addr, "GET", "/health", None, b"").await;
        assert_eq!(health.status, 503, "{name}: {}", health.body);
        assert_eq!(health.body["reason"], "store_unavailable", "{name}");
        assert_no_internals(&health.body.to_string(), bucket_var);
        let detect = http(
            &addr,
            "POST",
            "/detect",
            Some("application/json"),
            br#"{"eventName": "X"}"#,
        )
        .await;
        assert_eq!(detect.status, 503, "{name}: {}", detect.body);
        assert_no_internals(&detect.body.to_string(), bucket_var);

        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains(bucket_var), "{name}: {logged}");
        if name == "forbidden" {
            // A 403 is a missing permission, never "no model yet".
            assert!(logged.contains("s3:ListBucket"), "{logged}");
            assert!(logged.contains("403"), "{logged}");
            assert!(!logged.contains("no model has been published"), "{logged}");
        } else {
            assert!(logged.contains("NoSuchBucket"), "{logged}");
        }
    }
    assert!(proxy.scripted_count() >= 1);
}
