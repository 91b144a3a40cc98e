//! `[[notify]]`: where the daemon sends notifications (a webhook or an SNS
//! topic), which events, and the environment variable that holds the key
//! signing webhook payloads. Secrets stay out of the file: a webhook URL
//! with a token in it is read from `webhook_from_env`.

use super::Checker;
use crate::spec::raw::RawNotify;
use crate::spec::{NotifyEvent, NotifySpec, NotifyTarget};

pub(super) fn build_notify(index: usize, raw: &RawNotify, checker: &mut Checker) -> NotifySpec {
    let index_text = index.to_string();
    let at = |field: &'static str| ["notify".to_string(), index_text.clone(), field.to_string()];
    let problem = |checker: &mut Checker, field: &'static str, message: String| {
        let path = at(field);
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        checker.problem(&path, message);
    };
    let slack = match raw.format.as_deref() {
        None | Some("json") => false,
        Some("slack") => true,
        Some(other) => {
            problem(
                checker,
                "format",
                format!("{other:?} is not \"json\" or \"slack\""),
            );
            false
        }
    };
    let targets = [
        raw.webhook.is_some() || raw.webhook_from_env.is_some(),
        raw.sns_topic_arn.is_some(),
    ];
    let target = match (&raw.webhook, &raw.webhook_from_env, &raw.sns_topic_arn) {
        (Some(_), Some(_), _) => {
            problem(
                checker,
                "webhook",
                "give webhook or webhook_from_env, not both".into(),
            );
            NotifyTarget::Webhook {
                url: None,
                url_env: None,
                slack,
            }
        }
        (Some(url), None, None) => {
            if let Err(reason) = check_url(url) {
                problem(checker, "webhook", reason);
            }
            NotifyTarget::Webhook {
                url: Some(url.clone()),
                url_env: None,
                slack,
            }
        }
        (None, Some(variable), None) => {
            if let Err(reason) = crate::spec::environment::check_name(variable) {
                problem(checker, "webhook_from_env", reason);
            }
            NotifyTarget::Webhook {
                url: None,
                url_env: Some(variable.clone()),
                slack,
            }
        }
        (None, None, Some(arn)) => {
            if !is_topic_arn(arn) {
                problem(
                    checker,
                    "sns_topic_arn",
                    format!(
                        "{arn:?} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)"
                    ),
                );
            }
            if raw.format.is_some() {
                problem(
                    checker,
                    "format",
                    "format is for webhooks; SNS gets the JSON payload".into(),
                );
            }
            NotifyTarget::Sns {
                topic_arn: arn.clone(),
            }
        }
        _ => {
            let message = if targets.iter().all(|given| !given) {
                "a notify entry needs webhook, webhook_from_env or sns_topic_arn"
            } else {
                "a notify entry has one target: a webhook or an SNS topic, not both"
            };
            let path = ["notify".to_string(), index_text.clone()];
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            checker.problem(&path, message);
            NotifyTarget::Webhook {
                url: None,
                url_env: None,
                slack,
            }
        }
    };
    let events = match &raw.events {
        None => NotifyEvent::ALL.into_iter().collect(),
        Some(names) => names
            .iter()
            .filter_map(|name| {
                let event = NotifyEvent::ALL
                    .into_iter()
                    .find(|event| event.name() == name);
                if event.is_none() {
                    problem(
                        checker,
                        "events",
                        format!(
                            "{name:?} is not an event ({})",
                            NotifyEvent::ALL.map(NotifyEvent::name).join(", ")
                        ),
                    );
                }
                event
            })
            .collect(),
    };
    if let Some(variable) = &raw.secret_from_env {
        if let Err(reason) = crate::spec::environment::check_name(variable) {
            problem(checker, "secret_from_env", reason);
        }
        if matches!(target, NotifyTarget::Sns { .. }) {
            problem(checker, "secret_from_env", "SNS messages are not signed by the controller; the topic's own policy controls who may publish".into());
        }
    }
    NotifySpec {
        target,
        events,
        secret_env: raw.secret_from_env.clone(),
    }
}

/// An `https://` URL, or `http://` to this machine only.
fn check_url(url: &str) -> Result<(), String> {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return Err(format!("{url:?} is not a URL"));
    };
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if ["127.0.0.1", "localhost", "[::1]", "::1"].contains(&host) => Ok(()),
        Some("http") => Err(format!(
            "{url:?}: a webhook outside this machine must use https://"
        )),
        _ => Err(format!("{url:?} is not an http(s):// URL")),
    }
}

fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && !parts[5].is_empty()
        && parts[5].len() <= 256
        && parts[5]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}
