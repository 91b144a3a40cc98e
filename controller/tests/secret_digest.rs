//! The Panther secret's value in plans and logs: only a keyed digest
//! (HMAC-SHA256 under a key that lives in one process's memory), never the
//! token, never a plain SHA-256 of it that could be checked offline against
//! guessed tokens.

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const SECRET: &str = "anomaly-local/panther-api-token";
const OUT_OF_BAND: &str = "changed-out-of-band-7d1e";

/// The `value` diff of the secret in a JSON plan: (desired, observed).
fn value_diff(plan: &str) -> (String, String) {
    let plan: Value = serde_json::from_str(plan).expect("a JSON plan");
    let diff = plan["plan"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|change| change["resource"]["name"] == SECRET)
        .flat_map(|change| change["diffs"].as_array().cloned().unwrap_or_default())
        .find(|diff| diff["field"] == "value")
        .unwrap_or_else(|| panic!("the secret's value differs: {plan}"));
    let text = |value: &Value| value.as_str().expect("a digest").to_string();
    (text(&diff["desired"]), text(&diff["observed"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_show_a_keyed_digest_never_the_token_nor_its_plain_hash() {
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
        (output.status.code(), stdout(&output))
    };
    assert_eq!(run(&["apply", path]).0, Some(0));
    // Within one run equal values have equal digests: in sync.
    assert_eq!(run(&["diff", path]).0, Some(0));

    sdk(&aws)
        .await
        .secrets
        .put_secret_value()
        .secret_id(SECRET)
        .secret_string(OUT_OF_BAND)
        .send()
        .await
        .unwrap();
    let (code, first) = run(&["diff", path, "--output", "json"]);
    assert_eq!(code, Some(2));
    let (code, second) = run(&["diff", path, "--output", "json"]);
    assert_eq!(code, Some(2));
    assert_eq!(run(&["diff", path]).0, Some(2));
    let (desired, observed) = value_diff(&first);
    assert!(desired.starts_with("hmac-sha256:"), "{desired}");
    assert!(observed.starts_with("hmac-sha256:"), "{observed}");
    assert_ne!(desired, observed, "the drift in the value is seen");
    // Another run, another key: the same token shows another digest, so a
    // digest copied from a plan cannot be checked against a guess.
    let (desired_again, observed_again) = value_diff(&second);
    assert_ne!(desired, desired_again);
    assert_ne!(observed, observed_again);
    assert_eq!(run(&["apply", path]).0, Some(0));
    assert_eq!(run(&["diff", path]).0, Some(0));

    assert!(seen.contains("DEBUG"), "debug logs were on");
    for value in [PANTHER_TOKEN, OUT_OF_BAND] {
        assert!(!seen.contains(value), "{value} leaked");
        let plain = hex::encode(Sha256::digest(value.as_bytes()));
        // Any 8 or more leading hex digits of the plain hash, in any case.
        let seen = seen.to_ascii_lowercase();
        assert!(
            !seen.contains(&plain[..8]),
            "the plain SHA-256 of {value} shows"
        );
    }
}
