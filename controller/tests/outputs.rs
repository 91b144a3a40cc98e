//! `controller output`: where the deployment lives, read from AWS: every
//! output as text or JSON, one value alone for the shell, an unknown or
//! undeployed name refused.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_read_from_aws_and_one_prints_alone() {
    let aws = common::account().await;
    let text = local_config(aws.endpoint_url()) + "\n[functions.detection.release]\n";
    controller_at(aws.endpoint_url(), &text)
        .await
        .apply()
        .await
        .expect("apply");
    let sdk = sdk(&aws).await;
    let config = write_config(&text);
    let path = config.path.to_str().unwrap();

    let output = run_controller(&["output", path, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let outputs: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let (api_id, _) = rest_api_resources(&sdk).await;
    assert_eq!(outputs["api_id"], api_id.as_str());
    assert_eq!(outputs["api_stage"], "local");
    assert_eq!(
        outputs["invoke_url.detect"],
        format!("https://{api_id}.execute-api.us-east-1.amazonaws.com/local/detect")
    );
    let function = sdk
        .lambda
        .get_function()
        .function_name("anomaly-local-detection")
        .send()
        .await
        .unwrap();
    assert_eq!(
        outputs["function_arn.detection"],
        function.configuration().unwrap().function_arn().unwrap()
    );
    assert_eq!(
        outputs["alias_arn.detection"],
        format!(
            "{}:live",
            function.configuration().unwrap().function_arn().unwrap()
        )
    );
    assert_eq!(outputs["live_version.detection"], "1");
    assert_eq!(
        outputs["image.training"],
        "127.0.0.1:5000/anomaly-local/training:v1"
    );
    assert!(outputs.get("alias_arn.training").is_none());
    assert_eq!(outputs["bucket"], "anomaly-local-models");
    assert!(
        outputs["secret_arn"]
            .as_str()
            .unwrap()
            .contains(":secret:anomaly-local/panther-api-token-")
    );
    assert!(
        outputs["rule_arn"]
            .as_str()
            .unwrap()
            .ends_with(":rule/anomaly-local-schedule")
    );

    // One value alone, for `curl "$(controller output invoke_url.detect)"`,
    // with the file before or after the name.
    for args in [
        ["output", "invoke_url.detect", path],
        ["output", path, "invoke_url.detect"],
    ] {
        let output = run_controller(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(
            stdout(&output),
            format!("{}\n", outputs["invoke_url.detect"].as_str().unwrap())
        );
    }
    // Text: one `name = value` a line.
    let output = run_controller(&["output", path]);
    assert!(
        stdout(&output)
            .lines()
            .any(|line| line == format!("api_id = {api_id}"))
    );

    // From AWS, not from a record: a rule deleted by hand is no output.
    sdk.events
        .remove_targets()
        .rule("anomaly-local-schedule")
        .ids("function")
        .send()
        .await
        .unwrap();
    sdk.events
        .delete_rule()
        .name("anomaly-local-schedule")
        .send()
        .await
        .unwrap();
    let output = run_controller(&["output", path, "rule_arn"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no output \"rule_arn\""),
        "{}",
        stderr(&output)
    );
    let output = run_controller(&["output", path, "nonsense"]);
    assert_eq!(output.status.code(), Some(1));
}
