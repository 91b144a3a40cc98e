//! `controller releases`: each function's versions, their digests and when
//! they were published, and the share of each alias's traffic they take;
//! read-only.

mod common;

use aws_sdk_lambda::types::AliasRoutingConfiguration;
use common::*;
use serde_json::Value;

const DETECTION: &str = "anomaly-local-detection";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_lists_versions_and_alias_weights() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.unwrap();
    let sdk = sdk(&aws).await;
    // Two versions of detection (a configuration change between them),
    // and an alias shifting a tenth of its traffic to the newer one.
    let publish = |description: &'static str| {
        let lambda = sdk.lambda.clone();
        async move {
            for _ in 0..100 {
                match lambda
                    .publish_version()
                    .function_name(DETECTION)
                    .description(description)
                    .send()
                    .await
                {
                    Ok(version) => return version.version().unwrap().to_string(),
                    // The function may still be settling after its update.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
            panic!("cannot publish a version");
        }
    };
    let first = publish("first").await;
    sdk.lambda
        .update_function_configuration()
        .function_name(DETECTION)
        .memory_size(2048)
        .send()
        .await
        .unwrap();
    let second = publish("second").await;
    assert_ne!(first, second);
    sdk.lambda
        .create_alias()
        .function_name(DETECTION)
        .name("live")
        .function_version(&first)
        .routing_config(
            AliasRoutingConfiguration::builder()
                .additional_version_weights(&second, 0.1)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let config = write_config(&local_config(aws.endpoint_url()));
    let output = run_controller(&[
        "releases",
        config.path.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let functions = report["functions"].as_array().unwrap();
    let detection = functions
        .iter()
        .find(|function| function["function"] == DETECTION)
        .unwrap();
    assert_eq!(detection["deployed"], true);
    let versions = detection["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{detection:#}");
    assert_eq!(versions[0]["version"], first.as_str());
    assert_eq!(versions[0]["description"], "first");
    assert_eq!(versions[1]["description"], "second");
    for version in versions {
        assert!(!version["published"].as_str().unwrap().is_empty());
        assert!(!version["code_sha256"].as_str().unwrap().is_empty());
    }
    let share = |version: &Value| version["traffic"][0][1].as_f64().unwrap();
    assert_eq!(versions[0]["traffic"][0][0], "live");
    assert!((share(&versions[0]) - 0.9).abs() < 1e-9, "{detection:#}");
    assert!((share(&versions[1]) - 0.1).abs() < 1e-9, "{detection:#}");
    assert_eq!(detection["aliases"][0]["name"], "live");
    let training = functions
        .iter()
        .find(|function| function["function"] == "anomaly-local-training")
        .unwrap();
    assert_eq!(training["versions"].as_array().unwrap().len(), 0);

    let text = stdout(&run_controller(&[
        "releases",
        config.path.to_str().unwrap(),
    ]));
    assert!(text.contains(&format!("Function {DETECTION}:")), "{text}");
    assert!(
        text.contains("live 90%") && text.contains("live 10%"),
        "{text}"
    );
    assert!(text.contains("no published version"), "{text}");
    // Read-only: the alias is as it was.
    let alias = sdk
        .lambda
        .get_alias()
        .function_name(DETECTION)
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some(first.as_str()));
    assert_eq!(
        alias
            .routing_config()
            .and_then(|routing| routing.additional_version_weights())
            .and_then(|weights| weights.get(&second))
            .copied(),
        Some(0.1)
    );
    let diff = run_controller(&["diff", config.path.to_str().unwrap()]);
    assert_eq!(
        diff.status.code(),
        Some(2),
        "memory was changed out of band"
    );

    // A function that is not deployed says so.
    let destroyed = local_controller(&aws).await;
    destroyed
        .destroy(controller::reconcile::BucketOnDestroy::Retain)
        .await
        .unwrap();
    let text = stdout(&run_controller(&[
        "releases",
        config.path.to_str().unwrap(),
    ]));
    assert!(text.contains("not deployed"), "{text}");
}
