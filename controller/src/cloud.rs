//! The AWS side of the controller: one `SdkConfig`, every client built from
//! it, and an interceptor that counts the calls each command makes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

use crate::spec::Deployment;

/// How many attempts the SDK makes per call before giving up on throttling,
/// 5xx answers and dropped connections (exponential backoff with jitter).
const MAX_ATTEMPTS: u32 = 10;
/// Upper bound of one backoff between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The API calls made so far, by service and operation.
#[derive(Clone, Debug, Default)]
pub struct CallLog {
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// A summary of the calls made, for people and for `--output json`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CallSummary {
    /// Every call, reading and mutating.
    pub total: u64,
    /// Calls that change something in AWS.
    pub mutating: u64,
    /// Mutating calls by `Service.Operation`.
    pub mutating_calls: BTreeMap<String, u64>,
}

impl CallLog {
    fn record(&self, service: &str, operation: &str) {
        let key = format!("{service}.{operation}");
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *calls.entry(key).or_default() += 1;
    }

    /// Every `Service.Operation` called so far, with its count.
    pub fn operations(&self) -> BTreeMap<String, u64> {
        self.calls
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Counts of all calls so far.
    pub fn summary(&self) -> CallSummary {
        let calls = self
            .calls
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut summary = CallSummary::default();
        for (key, count) in calls.iter() {
            summary.total += count;
            let operation = key.rsplit('.').next().unwrap_or_default();
            if is_mutating(operation) {
                summary.mutating += count;
                summary.mutating_calls.insert(key.clone(), *count);
            }
        }
        summary
    }
}

/// Whether an operation changes state: everything but reads.
pub fn is_mutating(operation: &str) -> bool {
    const READ_PREFIXES: [&str; 5] = ["Get", "List", "Describe", "Head", "BatchGet"];
    !READ_PREFIXES
        .iter()
        .any(|prefix| operation.starts_with(prefix))
}

#[derive(Debug)]
struct CallCounter(CallLog);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.0.record(metadata.service(), metadata.name());
        }
        Ok(())
    }
}

/// Every client the controller uses, sharing one configuration and one call log.
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sts: aws_sdk_sts::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub events: aws_sdk_eventbridge::Client,
    /// The Resource Groups Tagging API: finds what carries the ownership tags.
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    /// CloudWatch metric alarms, which gate releases.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// SNS topics the daemon's notifications go to.
    pub sns: aws_sdk_sns::Client,
    pub calls: CallLog,
}

impl Clients {
    /// Loads the standard credential chain once and builds every client from it,
    /// pointed at the deployment's region and, when set, its endpoint override.
    pub async fn connect(deployment: &Deployment) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(deployment.region.clone()));
        if let Some(endpoint) = &deployment.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk_config = loader.load().await;
        Clients::from_sdk_config(&sdk_config, deployment.endpoint_url.is_some())
    }

    /// Builds every client from an existing configuration (tests, embedding).
    /// Every client gets the controller's retry and timeout settings,
    /// whatever the configuration it is given.
    pub fn from_sdk_config(sdk_config: &aws_config::SdkConfig, path_style_s3: bool) -> Clients {
        let sdk_config = &sdk_config
            .to_builder()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_max_backoff(MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        let calls = CallLog::default();
        let counter = || CallCounter(calls.clone());
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk_config)
                .force_path_style(path_style_s3)
                .interceptor(counter())
                .build(),
        );
        let ecr = aws_sdk_ecr::Client::from_conf(
            aws_sdk_ecr::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let iam = aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let apigateway = aws_sdk_apigateway::Client::from_conf(
            aws_sdk_apigateway::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let events = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let tagging = aws_sdk_resourcegroupstagging::Client::from_conf(
            aws_sdk_resourcegroupstagging::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(sdk_config)
                .interceptor(counter())
                .build(),
        );
        Clients {
            sns,
            cloudwatch,
            s3,
            ecr,
            iam,
            lambda,
            logs,
            sts,
            secrets,
            apigateway,
            events,
            tagging,
            calls,
        }
    }
}
