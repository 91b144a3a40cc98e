//! Invalid desired-state files: each gets an error naming the file, line,
//! column and problem, exit code 1, and no AWS call.

mod common;

use common::*;
use test_harness::{FaultProxy, FaultRates, LocalAws};

/// A valid base config; each case edits it.
fn base() -> String {
    local_config("http://127.0.0.1:1")
}

/// One invalid file: its name, text, the expected text of the error and the
/// line and column (1-based) the error must point at.
struct Case {
    name: &'static str,
    text: String,
    message: &'static str,
    line: usize,
    column: usize,
}

/// The 1-based line and column where `needle` first starts in `text`; a
/// `|` in the needle marks the spot instead of its start
/// (`"memory_mb = |64"` is the `6`).
fn position_of(text: &str, needle: &str) -> Option<(usize, usize)> {
    let marker = needle.find('|').unwrap_or(0);
    let offset = text.find(&needle.replacen('|', "", 1))? + marker;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    Some((line, before[line_start..].chars().count() + 1))
}

/// Every case: the edit applied to the base config, the expected message,
/// and `at`, the text whose first character the error must point at.
fn cases() -> Vec<Case> {
    let b = base();
    let mut cases = Vec::new();
    let mut case = |name: &'static str, text: String, message: &'static str, at: &str| {
        let (line, column) = position_of(&text, at)
            .unwrap_or_else(|| panic!("case {name}: {at:?} not in the config"));
        cases.push(Case {
            name,
            text,
            message,
            line,
            column,
        });
    };
    case(
        "toml syntax",
        b.replace("memory_mb = 1024", "memory_mb = = 1024"),
        "",
        "memory_mb = |= 1024",
    );
    case(
        "unknown top-level key",
        b.replace("[tags]", "colour = \"blue\"\n[tags]"),
        "unknown field `colour`",
        "colour",
    );
    case(
        "unknown function key",
        b.replace("memory_mb = 1024", "memory_mb = 1024\nmemroy = 5"),
        "unknown field `memroy`",
        "memroy",
    );
    case(
        "wrong type",
        b.replace("memory_mb = 1024", "memory_mb = \"1024\""),
        "invalid type",
        "memory_mb = |\"1024\"",
    );
    case(
        "memory too small",
        b.replace("memory_mb = 1024", "memory_mb = 64"),
        "memory_mb: 64 is out of range: it must be 128 to 10240 MB",
        "memory_mb = |64",
    );
    case(
        "memory too large",
        b.replace("memory_mb = 3008", "memory_mb = 20000"),
        "memory_mb: 20000 is out of range",
        "memory_mb = |20000",
    );
    case(
        "timeout zero",
        b.replace("timeout_seconds = 30", "timeout_seconds = 0"),
        "timeout_seconds: 0 is out of range: it must be 1 to 900 seconds",
        "timeout_seconds = |0",
    );
    case(
        "timeout too long",
        b.replace("timeout_seconds = 900", "timeout_seconds = 901"),
        "timeout_seconds: 901 is out of range",
        "timeout_seconds = |901",
    );
    case(
        "ephemeral storage",
        b.replace("ephemeral_storage_mb = 512", "ephemeral_storage_mb = 100"),
        "ephemeral_storage_mb: 100 is out of range",
        "ephemeral_storage_mb = |100",
    );
    case(
        "negative concurrency",
        b.replace("reserved_concurrency = 1", "reserved_concurrency = -1"),
        "reserved_concurrency: -1 is out of range",
        "reserved_concurrency = |-1",
    );
    case(
        "architecture",
        b.replacen("architecture = \"x86_64\"", "architecture = \"sparc\"", 1),
        "\"sparc\" is not \"x86_64\" or \"arm64\"",
        "\"sparc\"",
    );
    case(
        "deployment name",
        b.replace("name = \"anomaly-local\"", "name = \"Anomaly_Local\""),
        "not a valid deployment name",
        "\"Anomaly_Local\"",
    );
    case(
        "region",
        b.replace("region = \"us-east-1\"", "region = \"mars\""),
        "not an AWS region name",
        "\"mars\"",
    );
    case(
        "account id",
        b.replace("[deployment]\n", "[deployment]\naccount_id = \"12345\"\n"),
        "not a 12-digit AWS account id",
        "\"12345\"",
    );
    case(
        "endpoint url",
        b.replace(
            "endpoint_url = \"http://127.0.0.1:1\"",
            "endpoint_url = \"ftp://x\"",
        ),
        "not an http:// or https:// URL",
        "\"ftp://x\"",
    );
    case(
        "bucket name",
        b.replace(
            "model_prefix = \"models/\"",
            "name = \"My_Bucket\"\nmodel_prefix = \"models/\"",
        ),
        "not a valid bucket name",
        "\"My_Bucket\"",
    );
    case(
        "model prefix",
        b.replace("model_prefix = \"models/\"", "model_prefix = \"models\""),
        "must be a key prefix ending in '/'",
        "model_prefix = |\"models\"",
    );
    case(
        "encryption",
        b.replace("encryption = \"AES256\"", "encryption = \"rot13\""),
        "\"rot13\" is not \"AES256\" or \"aws:kms\"",
        "\"rot13\"",
    );
    case(
        "expiry days",
        b.replace(
            "noncurrent_version_expiry_days = 90",
            "noncurrent_version_expiry_days = 0",
        ),
        "noncurrent_version_expiry_days: 0 is out of range",
        "noncurrent_version_expiry_days = |0",
    );
    case(
        "retention",
        b.replacen("retention_days = 7", "retention_days = 8", 1),
        "8 is not a retention CloudWatch Logs accepts",
        "retention_days = |8",
    );
    case(
        "keep last images",
        b.replacen("keep_last_images = 10", "keep_last_images = 0", 1),
        "keep_last_images: 0 is out of range",
        "keep_last_images = |0",
    );
    case(
        "reserved variable",
        b.replacen("LOG_LEVEL = \"info\"", "AWS_REGION = \"eu-west-1\"", 1),
        "\"AWS_REGION\" is reserved",
        "AWS_REGION",
    );
    case(
        "variable name",
        b.replacen("LOG_LEVEL = \"info\"", "\"1BAD\" = \"x\"", 1),
        "not a valid variable name",
        "\"1BAD\"",
    );
    case(
        "image uri",
        b.replacen(
            "image_uri = \"127.0.0.1:5000/anomaly-local/detection:v1\"",
            "image_uri = \"detection\"",
            1,
        ),
        "is not a container image URI",
        "image_uri = |\"detection\"",
    );
    case(
        "model access",
        b.replacen("model_access = \"read\"", "model_access = \"write\"", 1),
        "\"write\" is not \"none\", \"read\" or \"read-write\"",
        "model_access = |\"write\"",
    );
    case(
        "reserved tag",
        b.replace("[tags]\n", "[tags]\n\"managed-by\" = \"me\"\n"),
        "ownership tag",
        "\"managed-by\" = \"me\"",
    );
    case(
        "aws tag",
        b.replace("[tags]\n", "[tags]\n\"aws:owner\" = \"me\"\n"),
        "reserved by AWS",
        "\"aws:owner\"",
    );
    case(
        "description too long",
        b.replacen(
            "description = \"Scores",
            &format!("description = \"{}Scores", "x".repeat(300)),
            1,
        ),
        "at most 256 characters",
        "description = |\"xxxxxxxx",
    );
    case(
        "duplicate function name",
        b.replace(
            "[functions.training]\n",
            "[functions.training]\nname = \"anomaly-local-detection\"\n",
        ),
        "already used by functions.detection",
        "name = |\"anomaly-local-detection\"",
    );
    case(
        "role path",
        b.replace(
            "[functions.training.repository]",
            "[functions.training.role]\npath = \"no-slashes\"\n\n[functions.training.repository]",
        ),
        "not an IAM path",
        "\"no-slashes\"",
    );
    case(
        "misspelt table",
        b.replace("[deployment]", "[deploy]"),
        "unknown field `deploy`",
        "[|deploy]",
    );
    case(
        "schedule expression",
        b.replace("cron(0 6 * * ? *)", "cron(0 6 * * * *)"),
        "exactly one of day-of-month and day-of-week",
        "\"cron(0 6 * * * *)\"",
    );
    case(
        "schedule rate unit",
        b.replace("cron(0 6 * * ? *)", "rate(5 minute)"),
        "plural unit",
        "\"rate(5 minute)\"",
    );
    case(
        "schedule input",
        b.replace(
            "input = '{\"training_source\": \"panther\"}'",
            "input = '{not json'",
        ),
        "the input must be JSON",
        "'{not json",
    );
    case(
        "schedule function",
        b.replace(
            "function = \"training\"\ninput",
            "function = \"trainer\"\ninput",
        ),
        "\"trainer\" is not a function of this file",
        "function = |\"trainer\"",
    );
    case(
        "route method",
        b.replacen("method = \"GET\"", "method = \"FETCH\"", 1),
        "\"FETCH\" is not an HTTP method",
        "\"FETCH\"",
    );
    case(
        "route path",
        b.replacen("path = \"/health\"", "path = \"health\"", 1),
        "must start with '/'",
        "path = |\"health\"",
    );
    case(
        "route function",
        b.replacen(
            "path = \"/detect\"\nfunction = \"detection\"",
            "path = \"/detect\"\nfunction = \"detector\"",
            1,
        ),
        "\"detector\" is not a function",
        "function = |\"detector\"",
    );
    case(
        "throttle",
        b.replace("throttle_rate_limit = 50.0", "throttle_rate_limit = -1.0"),
        "throttle_rate_limit",
        "throttle_rate_limit = |-1.0",
    );
    case(
        "cors origin",
        b.replace(
            "# cors_allow_origins",
            "cors_allow_origins = [\"siem.example.com\"]\n#",
        ),
        "is not an origin",
        "\"siem.example.com\"",
    );
    case(
        "secret variable",
        b.replace(
            "value_from_env = \"PANTHER_API_TOKEN\"",
            "value_from_env = \"pnt-abc 123\"",
        ),
        "not an environment variable name",
        "\"pnt-abc 123\"",
    );
    case(
        "secret in the file",
        b.replace(
            "value_from_env = \"PANTHER_API_TOKEN\"",
            "value_from_env = \"PANTHER_API_TOKEN\"\nvalue = \"abc\"",
        ),
        "unknown field `value`",
        "value = \"abc\"",
    );
    // Environment variables: names Lambda or the controller sets, the key
    // pattern, and the 4 KB of the final environment.
    for (name, variable, message) in [
        (
            "controller variable",
            "MODEL_BUCKET",
            "the controller sets it",
        ),
        (
            "controller prefix",
            "MODEL_PREFIX",
            "the controller sets it",
        ),
        (
            "controller secret",
            "PANTHER_SECRET_ARN",
            "the controller sets it",
        ),
        (
            "controller cors",
            "CORS_ALLOW_ORIGINS",
            "the controller sets it",
        ),
        (
            "lambda variable",
            "AWS_LAMBDA_FUNCTION_NAME",
            "Lambda sets it",
        ),
        ("lambda task root", "LAMBDA_TASK_ROOT", "Lambda sets it"),
        (
            "token in the environment",
            "PANTHER_API_TOKEN",
            "plain text",
        ),
        ("one-letter variable", "A", "not a valid variable name"),
    ] {
        case(
            name,
            b.replacen(
                "TRAINING_DAYS = \"30\"",
                &format!("TRAINING_DAYS = \"30\"\n{variable} = \"x\""),
                1,
            ),
            message,
            &format!("\n|{variable} = \"x\""),
        );
    }
    case(
        "environment too large",
        b.replacen(
            "TRAINING_DAYS = \"30\"",
            &format!("TRAINING_DAYS = \"30\"\nPADDING = \"{}\"", "p".repeat(4000)),
            1,
        ),
        "Lambda allows 4096 in all",
        "[functions.training.environment]",
    );
    case(
        "schedule slash in day-of-week",
        b.replace("cron(0 6 * * ? *)", "cron(0 6 ? * 1/2 *)"),
        "day-of-week: '/' is not allowed",
        "\"cron(0 6 ? * 1/2 *)\"",
    );
    case(
        "schedule two # expressions",
        b.replace("cron(0 6 * * ? *)", "cron(0 6 ? * 3#1,6#3 *)"),
        "one expression only",
        "\"cron(0 6 ? * 3#1,6#3 *)\"",
    );
    case(
        "schedule W in day-of-week",
        b.replace("cron(0 6 * * ? *)", "cron(0 6 ? * 2W *)"),
        "'W' is allowed only in day-of-month",
        "\"cron(0 6 ? * 2W *)\"",
    );
    case(
        "greedy parameter not last",
        b.replacen("path = \"/health\"", "path = \"/files/{proxy+}/x\"", 1),
        "a greedy {parameter+} must be the last segment",
        "path = |\"/files/{proxy+}/x\"",
    );
    case(
        "empty parameter",
        b.replacen("path = \"/health\"", "path = \"/{+}\"", 1),
        "is not a route path",
        "path = |\"/{+}\"",
    );
    case(
        "sibling parameters",
        b.replacen("path = \"/health\"", "path = \"/items/{id}\"", 1)
            .replacen("path = \"/detect\"", "path = \"/items/{name}/parts\"", 1),
        "API Gateway allows one parameter under /items, and another route has {id} there",
        "path = |\"/items/{name}/parts\"",
    );
    case(
        "repository name ECR refuses",
        b.replacen(
            "[functions.training.repository]\n",
            "[functions.training.repository]\nname = \"team//training-\"\n",
            1,
        ),
        "is not a repository name ECR accepts",
        "name = |\"team//training-\"",
    );
    case(
        "schedule input too long",
        b.replace(
            "input = '{\"training_source\": \"panther\"}'",
            &format!("input = '{{\"pad\": \"{}\"}}'", "x".repeat(8200)),
        ),
        "EventBridge takes at most 8192",
        "input = |'{\"pad\"",
    );
    case(
        "second cors origin",
        b.replace(
            "# cors_allow_origins",
            "cors_allow_origins = [\"https://siem.example.com\", \"siem.example.org\"]\n#",
        ),
        "is not an origin",
        "\"siem.example.org\"",
    );
    let release = |body: &str| format!("{b}\n[functions.detection.release]\n{body}\n");
    case(
        "release alias of digits",
        release("alias = \"42\""),
        "reads as a version number",
        "alias = |\"42\"",
    );
    case(
        "release strategy unknown",
        release("strategy = \"blue-green\""),
        "is not \"all-at-once\", \"canary\" or \"linear\"",
        "strategy = |\"blue-green\"",
    );
    case(
        "canary percent out of range",
        release("strategy = \"canary\"\ncanary = { percent = 100, minutes = 10 }"),
        "must be 1 to 99 percent",
        "percent = |100",
    );
    case(
        "linear step of no time",
        release("strategy = \"linear\"\nlinear = { percent = 20, every_minutes = 0 }"),
        "must be above 0",
        "every_minutes = |0",
    );
    case(
        "keep_versions zero",
        release("keep_versions = 0"),
        "must be 1 to 100",
        "keep_versions = |0",
    );
    case(
        "alarm unknown",
        release("alarms = [\"errors\", \"latency\"]"),
        "\"latency\" is not an alarm the controller manages",
        "alarms = |[",
    );
    case(
        "api alarm without a route",
        format!("{b}\n[functions.training.release]\nalarms = [\"api-5xx\"]\n"),
        "no route of [api] invokes functions.training",
        "alarms = |[\"api-5xx\"]",
    );
    case(
        "negative threshold",
        release("thresholds = { errors = -1 }"),
        "must be above 0",
        "errors = |-1",
    );
    case(
        "notify webhook over plain http",
        format!("{b}\n[[notify]]\nwebhook = \"http://hooks.example.com/x\"\n"),
        "must use https://",
        "webhook = |\"http://hooks",
    );
    case(
        "notify event unknown",
        format!(
            "{b}\n[[notify]]\nwebhook = \"https://hooks.example.com/x\"\nevents = [\"drift\"]\n"
        ),
        "\"drift\" is not an event",
        "events = |[\"drift\"]",
    );
    case(
        "notify topic not an ARN",
        format!("{b}\n[[notify]]\nsns_topic_arn = \"drift-topic\"\n"),
        "is not an SNS topic ARN",
        "sns_topic_arn = |\"drift-topic\"",
    );
    case(
        "notify with two targets",
        format!(
            "{b}\n[[notify]]\nwebhook = \"https://hooks.example.com/x\"\nsns_topic_arn = \"arn:aws:sns:us-east-1:123456789012:t\"\n"
        ),
        "one target",
        "[[notify]]",
    );
    case(
        "release key misspelt",
        release("stratgy = \"canary\""),
        "unknown field `stratgy`",
        "stratgy",
    );
    case(
        "ignore rule of an unknown function",
        format!("ignore = [\"tags.team\", \"functions.detecton.memory_mb\"]\n{b}"),
        "\"detecton\" is not a function of this file",
        "\"functions.detecton",
    );
    case(
        "ignore rule on the image",
        b.replace(
            "[functions.detection]\n",
            "[functions.detection]\nignore = [\"image_uri\"]\n",
        ),
        "\"image_uri\" is not a field function can ignore",
        "ignore = [|\"image_uri",
    );
    case(
        "ignore rule on an ownership tag",
        format!("ignore = [\"tags.anomaly-controller:deployment\"]\n{b}"),
        "set by the controller and cannot be ignored",
        "ignore = [|\"tags.",
    );
    case(
        "ignore rule on a whole map",
        format!("ignore = [\"bucket:tags\"]\n{b}"),
        "name the key: tags.<key>",
        "ignore = [|\"bucket",
    );
    cases
}

#[test]
fn every_invalid_config_is_refused_with_its_line_and_column() {
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut misplaced = Vec::new();
    for Case {
        name,
        text,
        message,
        line,
        column,
    } in cases
    {
        let error =
            controller::spec::Spec::parse(std::path::Path::new("bad.toml"), &text).expect_err(name);
        let shown = error.to_string();
        assert!(shown.contains(message), "case {name}: {shown}");
        // A problem with the expected message points at the expected spot.
        let positions: Vec<(usize, usize)> = error
            .problems
            .iter()
            .filter(|problem| format!("{}: {}", problem.field, problem.message).contains(message))
            .filter_map(|problem| problem.position)
            .map(|position| (position.line, position.column))
            .collect();
        if !positions.contains(&(line, column)) {
            misplaced.push(format!(
                "case {name}: expected {line}:{column}, got {positions:?}: {shown}"
            ));
        }
        let first = error.problems[0]
            .position
            .unwrap_or_else(|| panic!("case {name} has a position: {shown}"));
        assert!(
            shown.starts_with(&format!("bad.toml:{}:{}: ", first.line, first.column)),
            "case {name}: {shown}"
        );
    }
    assert!(misplaced.is_empty(), "{}", misplaced.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_exit_one_and_make_no_aws_call() {
    let aws = LocalAws::start().await;
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    for Case {
        name,
        text,
        message,
        line,
        column,
    } in cases()
    {
        let text = text.replace("http://127.0.0.1:1", &proxy.endpoint_url());
        let config = write_config(&text);
        let path = config.path.to_str().unwrap();
        for command in ["validate", "diff", "apply", "destroy"] {
            let output = run_controller(
                &[command, path, "--yes"][..if command == "destroy" { 3 } else { 2 }],
            );
            assert_eq!(output.status.code(), Some(1), "case {name}, {command}");
            let error = stderr(&output);
            assert!(
                error.contains(&format!("{path}:{line}:{column}: ")),
                "case {name}, {command}: expected {line}:{column}: {error}"
            );
            assert!(error.contains(message), "case {name}, {command}: {error}");
        }
    }
    assert_eq!(proxy.stats().forwarded, 0, "no AWS call was made");
}

/// The training function of the local config with one more variable whose
/// value is `padding` bytes long.
fn with_padding(padding: usize) -> String {
    base().replacen(
        "TRAINING_DAYS = \"30\"",
        &format!(
            "TRAINING_DAYS = \"30\"\nPADDING = \"{}\"",
            "p".repeat(padding)
        ),
        1,
    )
}

#[test]
fn the_environment_limit_counts_what_the_controller_adds() {
    use std::collections::BTreeMap;
    // The final environment of the training function as Lambda would
    // measure it, written out here independently of the controller: the
    // file's variables, the model bucket and prefix, and the secret's ARN at
    // its longest (partition `aws-us-gov`, 6-character suffix).
    let own = |padding: usize| {
        BTreeMap::from([
            ("LOG_LEVEL", "info".to_string()),
            ("TRAINING_DAYS", "30".to_string()),
            ("MIN_TRAINING_EVENTS", "1000".to_string()),
            (
                "PANTHER_API_URL",
                "http://127.0.0.1:8081/public/graphql".to_string(),
            ),
            ("PADDING", "p".repeat(padding)),
        ])
    };
    let final_size = |padding: usize| {
        let mut environment = own(padding);
        environment.insert("MODEL_BUCKET", "anomaly-local-models".to_string());
        environment.insert("MODEL_PREFIX", "models/".to_string());
        environment.insert(
            "PANTHER_SECRET_ARN",
            "arn:aws-us-gov:secretsmanager:us-east-1:000000000000:secret:anomaly-local/panther-api-token-XXXXXX"
                .to_string(),
        );
        serde_json::to_string(&environment).unwrap().len()
    };
    let padding = 4096 - final_size(0);
    assert_eq!(final_size(padding), 4096);
    let path = std::path::Path::new("env.toml");
    let spec = controller::spec::Spec::parse(path, &with_padding(padding))
        .unwrap_or_else(|error| panic!("exactly 4096 bytes is allowed: {error}"));
    assert_eq!(
        spec.function("training").unwrap().environment["PADDING"].len(),
        padding
    );
    let error = controller::spec::Spec::parse(path, &with_padding(padding + 1))
        .expect_err("one byte more is refused");
    let shown = error.to_string();
    assert!(
        shown.contains("functions.training.environment: the environment takes 4097 bytes"),
        "{shown}"
    );
    for added in ["MODEL_BUCKET", "MODEL_PREFIX", "PANTHER_SECRET_ARN"] {
        assert!(shown.contains(added), "{shown}");
    }
    // The file's own variables alone are well under the limit: only the
    // controller's variables make it too large.
    let own_size = serde_json::to_string(&own(padding + 1)).unwrap().len();
    assert!(own_size < 4096 - 150, "{own_size}");
}

#[test]
fn routes_api_gateway_takes_are_accepted() {
    let routes = [
        ("GET", "/"),
        ("GET", "/items/{id}"),
        ("PUT", "/items/{id}/parts/{part}"),
        ("GET", "/items/all"),
        ("ANY", "/files/{proxy+}"),
        ("GET", "/files"),
        ("POST", "/v1.2/detect_now-x"),
    ];
    let mut text = base().replacen(
        "[[api.routes]]\nmethod = \"GET\"\npath = \"/health\"\nfunction = \"detection\"\n",
        "",
        1,
    );
    for (method, path) in routes {
        text.push_str(&format!(
            "\n[[api.routes]]\nmethod = \"{method}\"\npath = \"{path}\"\nfunction = \"detection\"\n"
        ));
    }
    let spec = controller::spec::Spec::parse(std::path::Path::new("routes.toml"), &text)
        .unwrap_or_else(|error| panic!("{error}"));
    let api = spec.api.expect("an API");
    for (method, path) in routes {
        assert!(
            api.routes
                .iter()
                .any(|route| route.method == method && route.path == path),
            "{method} {path}"
        );
    }
}

#[test]
fn the_shipped_configs_are_valid() {
    for file in ["prod.toml", "local.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config")
            .join(file);
        let spec = controller::spec::Spec::load(&path).unwrap_or_else(|error| panic!("{error}"));
        let detection = spec.function("detection").unwrap();
        let training = spec.function("training").unwrap();
        assert_eq!((detection.memory_mb, detection.timeout_seconds), (1024, 30));
        assert_eq!((training.memory_mb, training.timeout_seconds), (3008, 900));
        assert_eq!(detection.logs.retention_days, 7);
        assert!(
            spec.bucket.retain_on_destroy
                && spec.bucket.versioning
                && spec.bucket.block_public_access
        );
    }
}

#[test]
fn every_problem_of_a_file_is_reported_at_once_with_the_nearest_key() {
    let text = base()
        .replacen("timeout_seconds = 30", "timout_seconds = 30", 1)
        .replacen("memory_mb = 1024", "memory_mb = 99999", 1)
        .replacen("retention_days = 7", "retention_days = \"seven\"", 1)
        .replacen(
            "stage = \"local\"",
            "stage = \"local\"\nthrotle_rate_limit = 5.0",
            1,
        );
    let error =
        controller::spec::Spec::parse(std::path::Path::new("prod.toml"), &text).unwrap_err();
    let problems: Vec<String> = error
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    assert_eq!(problems.len(), 4, "{error}");
    let expect = [
        (
            "functions.detection.timout_seconds",
            "did you mean `timeout_seconds`?",
            "timout_seconds",
        ),
        (
            "functions.detection.memory_mb",
            "out of range",
            "memory_mb = |99999",
        ),
        (
            "functions.detection.logs.retention_days",
            "invalid type",
            "retention_days = |\"seven\"",
        ),
        (
            "api.throtle_rate_limit",
            "did you mean `throttle_rate_limit`?",
            "throtle_rate_limit",
        ),
    ];
    for (field, message, at) in expect {
        let problem = error
            .problems
            .iter()
            .find(|problem| problem.field == field)
            .unwrap_or_else(|| panic!("no problem for {field}: {error}"));
        assert!(
            problem.message.contains(message),
            "{field}: {}",
            problem.message
        );
        let (line, column) = position_of(&text, at).unwrap();
        let position = problem.position.unwrap();
        assert_eq!((position.line, position.column), (line, column), "{field}");
    }
    // In file order, each as file:line:column: field: problem.
    let lines: Vec<String> = error.to_string().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines.iter().all(|line| line.starts_with("prod.toml:")),
        "{lines:?}"
    );
}

#[test]
fn the_readme_ignore_rules_example_is_valid() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let start = readme
        .find("```toml\n# Top of the file")
        .expect("the README has the ignore rules example");
    let example = &readme[start + "```toml\n".len()..];
    let example = &example[..example.find("```").unwrap()];
    let (top, function) = example
        .split_once("[functions.detection]\n")
        .expect("the example has a function's own rules");
    let text = format!(
        "{top}\n{}",
        base().replacen(
            "[functions.detection]\n",
            &format!("[functions.detection]\n{function}"),
            1
        )
    );
    let spec = controller::spec::Spec::parse(std::path::Path::new("ignore.toml"), &text)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(spec.ignore.len(), 6, "{:?}", spec.ignore);
}
