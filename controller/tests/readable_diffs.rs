//! Readable diffs: nested fields diff key by key in `diff`'s text (a
//! removed route by its key, one environment variable, one tag), long
//! values stay short, no colour without a terminal, and `--output json`
//! carries the same as structured changes (path, observed, desired).

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_fields_diff_by_key_in_text_and_json() {
    let aws = common::account().await;
    local_controller(&aws).await.apply().await.expect("apply");
    let changed = local_config(aws.endpoint_url())
        .replacen(
            "[[api.routes]]\nmethod = \"GET\"\npath = \"/health\"\nfunction = \"detection\"\n",
            "",
            1,
        )
        .replacen("LOG_LEVEL = \"info\"", "LOG_LEVEL = \"debug\"", 1)
        .replacen(
            "project = \"aws-config-anomaly-detection\"",
            "project = \"aws-config-anomaly-detection\"\nteam = \"secops\"",
            1,
        );
    let config = write_config(&changed);
    let path = config.path.to_str().unwrap();

    let output = run_controller(&["diff", path]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stdout(&output);
    for line in [
        r#"routes["GET /health"]: removed"#,
        r#"environment.LOG_LEVEL: "info" -> "debug""#,
        r#"tags.team: added "secops""#,
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(
        !text.contains('\u{1b}'),
        "colours without a terminal:\n{text}"
    );
    let longest = text.lines().map(|line| line.chars().count()).max().unwrap();
    assert!(longest <= 200, "a line of {longest} characters:\n{text}");

    let output = run_controller(&["diff", path, "--output", "json"]);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let changes: Vec<&Value> = report["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|change| change["diffs"].as_array().into_iter().flatten())
        .flat_map(|diff| diff["changes"].as_array().into_iter().flatten())
        .collect();
    let find = |path: &str| {
        changes
            .iter()
            .find(|change| change["path"] == path)
            .unwrap_or_else(|| panic!("no change at {path}: {changes:#?}"))
    };
    let route = find(r#"routes["GET /health"]"#);
    assert_eq!(route["desired"], Value::Null);
    assert!(
        route["observed"]["uri"]
            .as_str()
            .unwrap()
            .contains("invocations")
    );
    let level = find("environment.LOG_LEVEL");
    assert_eq!(
        (&level["observed"], &level["desired"]),
        (&Value::from("info"), &Value::from("debug"))
    );
    assert_eq!(find("tags.team")["observed"], Value::Null);
}
