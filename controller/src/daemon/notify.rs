//! The daemon's notifications: drift found, repaired or failing to be
//! repaired, orphans found, releases started, completed or rolled back,
//! sent to each `[[notify]]` target: a webhook (generic JSON, or a
//! Slack-compatible `{"text": ...}`, signed with HMAC-SHA256 when a key is
//! given in the environment) or an SNS topic.
//!
//! Never blocking the reconcile: a notice is queued (a bounded channel per
//! target; a full queue drops it, counted) and a task per target delivers
//! it, retrying a failed delivery with bounded exponential backoff. What
//! [`Tracker`] decides is new: the same drift is reported once, until it
//! changes or is repaired.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::spec::{NotifyEvent, NotifySpec, NotifyTarget};

/// Notices waiting for one target before new ones are dropped.
const QUEUE: usize = 256;
/// Attempts at delivering one notice.
const ATTEMPTS: usize = 5;
/// The header carrying the payload's signature: `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "x-anomaly-controller-signature";

/// One thing to tell people.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    pub deployment: String,
    pub event: NotifyEvent,
    /// `kind name`.
    pub resource: String,
    /// One line for people.
    pub summary: String,
    /// The differing fields, key by key (drift), if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<crate::detail::Detail>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Notice {
    fn slack_text(&self) -> String {
        let mut text = format!(
            "*{}* {}: {}",
            self.deployment,
            self.event.name().replace('_', " "),
            self.summary
        );
        for change in self.changes.iter().take(10) {
            let (line, observed, desired) = crate::detail::render(change, false);
            text.push_str(&format!(
                "\n• `{line}`{}{}",
                observed.map(|o| format!(" {o}")).unwrap_or_default(),
                desired.map(|d| format!(" → {d}")).unwrap_or_default()
            ));
        }
        text
    }
}

/// What a delivery did, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    Failed,
    Dropped,
}

/// Called after each delivery with the target's label and what happened.
pub type Report = std::sync::Arc<dyn Fn(&str, NotifyEvent, Delivery) + Send + Sync>;

/// The queues of every target.
pub struct Notifier {
    targets: Vec<(NotifySpec, String, mpsc::Sender<Notice>)>,
    report: Report,
}

impl Notifier {
    /// Starts a delivery task per target.
    pub fn start(specs: &[NotifySpec], sns: aws_sdk_sns::Client, report: Report) -> Notifier {
        let targets = specs
            .iter()
            .map(|spec| {
                let (sender, receiver) = mpsc::channel(QUEUE);
                let label = label(&spec.target);
                tokio::spawn(deliver(
                    spec.clone(),
                    label.clone(),
                    receiver,
                    sns.clone(),
                    report.clone(),
                ));
                (spec.clone(), label, sender)
            })
            .collect();
        Notifier { targets, report }
    }

    /// Queues `notice` for every target that wants its event; never waits.
    pub fn send(&self, notice: &Notice) {
        for (spec, label, sender) in &self.targets {
            if !spec.events.contains(&notice.event) {
                continue;
            }
            if sender.try_send(notice.clone()).is_err() {
                tracing::warn!(target = %label, event = notice.event.name(), "notification queue full; notice dropped");
                (self.report)(label, notice.event, Delivery::Dropped);
            }
        }
    }
}

/// A target as logs and metrics name it: the webhook's host (never its
/// path or query, which may hold a token), or the topic's ARN.
fn label(target: &NotifyTarget) -> String {
    match target {
        NotifyTarget::Webhook { url, url_env, .. } => match url {
            Some(url) => format!(
                "webhook {}",
                url.parse::<hyper::Uri>()
                    .ok()
                    .and_then(|uri| uri.authority().map(|a| a.to_string()))
                    .unwrap_or_default()
            ),
            None => format!("webhook ${}", url_env.as_deref().unwrap_or_default()),
        },
        NotifyTarget::Sns { topic_arn } => format!("sns {topic_arn}"),
    }
}

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Failure {
    message: String,
    retry: bool,
}

async fn deliver(
    spec: NotifySpec,
    label: String,
    mut receiver: mpsc::Receiver<Notice>,
    sns: aws_sdk_sns::Client,
    report: Report,
) {
    let https = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder.https_or_http().enable_http1().build(),
        Err(error) => {
            tracing::error!(target = %label, %error, "cannot load the TLS roots; notifications to this target are off");
            return;
        }
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    while let Some(notice) = receiver.recv().await {
        let attempt = || async { send_once(&spec, &notice, &client, &sns).await };
        let result = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(30))
                    .with_max_times(ATTEMPTS - 1)
                    .with_jitter(),
            )
            .when(|failure: &Failure| failure.retry)
            .await;
        match result {
            Ok(()) => {
                tracing::info!(target = %label, event = notice.event.name(), resource = %notice.resource, "notification sent");
                report(&label, notice.event, Delivery::Sent);
            }
            Err(failure) => {
                tracing::warn!(target = %label, event = notice.event.name(), error = %failure, "notification not delivered");
                report(&label, notice.event, Delivery::Failed);
            }
        }
    }
}

async fn send_once<C>(
    spec: &NotifySpec,
    notice: &Notice,
    client: &Client<C, Full<Bytes>>,
    sns: &aws_sdk_sns::Client,
) -> Result<(), Failure>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    match &spec.target {
        NotifyTarget::Sns { topic_arn } => {
            sns.publish()
                .topic_arn(topic_arn)
                .subject(format!("{}: {}", notice.deployment, notice.event.name()))
                .message(serde_json::to_string(notice).unwrap_or_default())
                .send()
                .await
                .map_err(|error| Failure {
                    message: format!("SNS Publish: {}", crate::resources::error_chain(&error)),
                    retry: true,
                })?;
            Ok(())
        }
        NotifyTarget::Webhook {
            url,
            url_env,
            slack,
        } => {
            let url = match (url, url_env) {
                (Some(url), _) => url.clone(),
                (None, Some(variable)) => std::env::var(variable).map_err(|_| Failure {
                    message: format!(
                        "the environment variable {variable} (the webhook URL) is not set"
                    ),
                    retry: false,
                })?,
                (None, None) => unreachable!("a webhook has a URL or a variable"),
            };
            let body: Value = if *slack {
                serde_json::json!({"text": notice.slack_text()})
            } else {
                serde_json::to_value(notice).unwrap_or_default()
            };
            let body = Bytes::from(body.to_string());
            let mut request = hyper::Request::post(&url)
                .header("content-type", "application/json")
                .header("user-agent", "anomaly-controller");
            if let Some(variable) = &spec.secret_env {
                let key = std::env::var(variable).map_err(|_| Failure {
                    message: format!(
                        "the environment variable {variable} (the signing key) is not set"
                    ),
                    retry: false,
                })?;
                request = request.header(SIGNATURE_HEADER, signature(key.as_bytes(), &body));
            }
            let request = request.body(Full::new(body)).map_err(|error| Failure {
                message: format!("cannot build the request: {error}"),
                retry: false,
            })?;
            let response = client.request(request).await.map_err(|error| Failure {
                message: format!("POST failed: {}", crate::resources::error_chain(&error)),
                retry: true,
            })?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(Failure {
                    message: format!("the webhook answered {status}"),
                    retry: status.is_server_error() || status.as_u16() == 429,
                })
            }
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of the body>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What has been reported, so that the same thing is reported once: each
/// resource's last reported drift, failure, orphan and release, by a
/// fingerprint of what was said.
#[derive(Debug, Default)]
pub struct Tracker {
    reported: BTreeMap<(NotifyEvent, String), String>,
}

impl Tracker {
    /// Whether `event` about `resource` with this `fingerprint` is new
    /// (then it is recorded).
    pub fn is_new(&mut self, event: NotifyEvent, resource: &str, fingerprint: &str) -> bool {
        let key = (event, resource.to_string());
        if self.reported.get(&key).map(String::as_str) == Some(fingerprint) {
            return false;
        }
        self.reported.insert(key, fingerprint.to_string());
        true
    }

    /// Forgets `event` about `resource`: it ended (repaired, gone), so a
    /// new occurrence is reported again.
    pub fn forget(&mut self, event: NotifyEvent, resource: &str) {
        self.reported.remove(&(event, resource.to_string()));
    }

    /// The resources `event` was last reported for.
    pub fn reported(&self, event: NotifyEvent) -> Vec<String> {
        self.reported
            .keys()
            .filter(|(reported, _)| *reported == event)
            .map(|(_, resource)| resource.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_drift_is_new_once_until_it_changes_or_ends() {
        let mut tracker = Tracker::default();
        let event = NotifyEvent::DriftFound;
        assert!(tracker.is_new(event, "function f", "a"));
        assert!(!tracker.is_new(event, "function f", "a"));
        assert!(tracker.is_new(event, "function f", "b"));
        tracker.forget(event, "function f");
        assert!(tracker.is_new(event, "function f", "b"));
        assert!(tracker.is_new(NotifyEvent::RepairFailed, "function f", "b"));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn webhook_labels_never_carry_the_path() {
        let target = NotifyTarget::Webhook {
            url: Some("https://hooks.slack.com/services/T000/B000/secret-token".into()),
            url_env: None,
            slack: true,
        };
        assert_eq!(label(&target), "webhook hooks.slack.com");
    }
}
