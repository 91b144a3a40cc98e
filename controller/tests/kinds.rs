//! The registry of kinds against its documentation: every field a kind
//! compares is documented by the kind, and the README's per-kind table is
//! exactly the one the kinds give (no AWS call).

use std::collections::BTreeSet;
use std::path::Path;

use controller::cloud::Clients;
use controller::desired::Refs;
use controller::resources::{Context, KINDS};
use controller::spec::Spec;

/// The local config with every optional section on (API keys, access logs,
/// schedule, secret, a release with every alarm), prebuilt images instead
/// of builds.
fn spec() -> Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .map(|line| {
            if let Some(rest) = line.strip_prefix("image = {") {
                let package = rest
                    .split("package = \"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                format!("image_uri = \"127.0.0.1:5000/anomaly-local/{package}:v1\"\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect::<String>()
        .replace("api_key_required = false", "api_key_required = true")
        + "\n[functions.detection.release]\nstrategy = \"canary\"\nalarms = [\"errors\", \"throttles\", \"api-5xx\", \"api-latency-p99\"]\n";
    Spec::parse(&path, &text).expect("the local config parses")
}

fn context() -> Context {
    let sdk_config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .build();
    Context::new(
        Clients::from_sdk_config(&sdk_config, true),
        "anomaly-local",
        "us-east-1",
        "123456789012",
    )
}

/// The README's table of compared fields, as the kinds give it.
fn table() -> String {
    let mut lines = vec![
        "| kind | field | what it is |".to_string(),
        "| --- | --- | --- |".to_string(),
    ];
    for kind in KINDS {
        for field in kind.fields() {
            lines.push(format!(
                "| {} | `{}` | {} |",
                kind.kind(),
                field.name,
                field.doc
            ));
        }
    }
    lines.join("\n")
}

#[test]
fn every_compared_field_is_documented_by_its_kind() {
    let spec = spec();
    let ctx = context();
    let refs = Refs {
        api_id: Some("a1b2c3d4e5".into()),
        secret_arn: Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf".into()),
        secret_value: Some(controller::resources::secret::SecretValue::new(
            "token".into(),
        )),
    };
    for kind in KINDS {
        let resources = kind.desired(&spec, &ctx, &refs);
        assert!(
            !resources.is_empty(),
            "{}: the local config has one",
            kind.kind()
        );
        let documented: BTreeSet<&str> = kind.fields().iter().map(|field| field.name).collect();
        for resource in resources {
            let compared: BTreeSet<String> = resource.fields().into_keys().collect();
            let compared: BTreeSet<&str> = compared.iter().map(String::as_str).collect();
            assert_eq!(compared, documented, "{}", resource.id());
            assert_eq!(resource.id().kind, kind.kind());
            for field in resource.replacement_fields() {
                assert!(documented.contains(field), "{}: {field}", resource.id());
            }
        }
    }
}

#[test]
fn kinds_are_registered_once_in_dependency_order() {
    let spec = spec();
    let ctx = context();
    let refs = Refs::default();
    let names: Vec<&str> = KINDS.iter().map(|kind| kind.kind().as_str()).collect();
    let unique: BTreeSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    // A kind is registered after every kind its resources depend on.
    for (index, kind) in KINDS.iter().enumerate() {
        for resource in kind.desired(&spec, &ctx, &refs) {
            for needed in resource.dependencies() {
                let at = names.iter().position(|name| *name == needed.kind.as_str());
                assert!(
                    at.is_some_and(|at| at < index),
                    "{} needs {needed}, registered later or not at all",
                    resource.id()
                );
            }
        }
    }
}

#[test]
fn the_readme_table_is_the_one_the_kinds_give() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find("<!-- kinds:start -->\n")
        .expect("README has the kinds table markers")
        + "<!-- kinds:start -->\n".len();
    let end = readme.find("\n<!-- kinds:end -->").expect("end marker");
    assert_eq!(
        readme[start..end],
        table(),
        "README.md's table of compared fields differs from the kinds; replace it with:\n{}",
        table()
    );
}
