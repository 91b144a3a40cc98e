//! Drift notifications from the daemon: to a local webhook receiver
//! (generic JSON signed with HMAC-SHA256, and Slack's `{"text": ...}`) and
//! to an SNS topic in moto (read back through an SQS queue subscribed to
//! it); the same drift sent once until it changes, a failed delivery
//! retried, a repair notified.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::*;
use serde_json::Value;

const GROUP: &str = "log_group /aws/lambda/anomaly-local-detection";
const KEY: &str = "webhook-signing-key-for-tests";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    signature: Option<String>,
    body: String,
}

/// An HTTP receiver on loopback that answers 500 to its first request and
/// 200 to the others.
struct Receiver {
    address: String,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<Mutex<usize>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let (sink, count) = (received.clone(), attempts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                let mut signature = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("x-anomaly-controller-signature:") {
                        signature = Some(line.split_once(':').unwrap().1.trim().to_string());
                    }
                    if head.is_empty() {
                        head = line;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let first = {
                    let mut count = count.lock().unwrap();
                    *count += 1;
                    *count == 1
                };
                let status = if first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                if !first {
                    sink.lock().unwrap().push(Received {
                        path: head.split(' ').nth(1).unwrap_or_default().to_string(),
                        signature,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                }
            }
        });
        Receiver {
            address,
            received,
            attempts,
        }
    }

    fn notices(&self, path: &str) -> Vec<(Value, Option<String>, String)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|request| request.path == path)
            .map(|request| {
                (
                    serde_json::from_str(&request.body).unwrap(),
                    request.signature.clone(),
                    request.body.clone(),
                )
            })
            .collect()
    }

    async fn wait_for(&self, path: &str, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((notice, _, _)) = self
                .notices(path)
                .into_iter()
                .find(|(notice, _, _)| matches(notice))
            {
                return notice;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on {path}: {:?}",
                self.notices(path)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn set_retention(sdk: &Sdk, days: i32) {
    sdk.logs
        .put_retention_policy()
        .log_group_name("/aws/lambda/anomaly-local-detection")
        .retention_in_days(days)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reaches_webhooks_and_sns_once_per_change_and_repairs_are_told() {
    let aws = common::account().await;
    let sdk = sdk(&aws).await;
    let receiver = Receiver::start();
    // An SNS topic with an SQS queue subscribed, to read what was published.
    let config = test_harness::sdk_config_for(aws.endpoint_url()).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("drift")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let queue = sqs
        .create_queue()
        .queue_name("drift")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let hook = format!("http://{}", receiver.address);
    let text = format!(
        "{}\n[[notify]]\nwebhook = \"{hook}/hook\"\nsecret_from_env = \"NOTIFY_KEY\"\n\n[[notify]]\nwebhook = \"{hook}/slack\"\nformat = \"slack\"\nevents = [\"drift_found\"]\n\n[[notify]]\nsns_topic_arn = \"{topic}\"\nevents = [\"drift_found\", \"drift_repaired\"]\n",
        local_config(aws.endpoint_url()),
    );
    local_controller(&aws).await.apply().await.expect("apply");
    let file = write_config(&text);

    set_retention(&sdk, 30).await;
    let daemon = Daemon::start_with(&file.path, "report", "1s", &[("NOTIFY_KEY", KEY)]).await;
    let drift = receiver
        .wait_for("/hook", "drift_found", |notice| {
            notice["event"] == "drift_found" && notice["resource"] == GROUP
        })
        .await;
    assert_eq!(drift["deployment"], "anomaly-local");
    assert_eq!(drift["changes"][0]["path"], "retention_days");
    assert_eq!(drift["changes"][0]["observed"], 30);
    assert_eq!(drift["changes"][0]["desired"], 7);
    // Signed: sha256=<HMAC of the body with the key from the environment>.
    for (_, signature, body) in receiver.notices("/hook") {
        assert_eq!(
            signature,
            Some(controller::daemon::notify::signature(
                KEY.as_bytes(),
                body.as_bytes()
            ))
        );
    }
    // The first delivery was answered 500 and retried.
    assert!(*receiver.attempts.lock().unwrap() >= 2);
    let slack = receiver
        .wait_for("/slack", "slack text", |notice| notice["text"].is_string())
        .await;
    assert!(
        slack["text"].as_str().unwrap().contains("retention_days"),
        "{slack}"
    );

    // Several rounds later: still one notice for that drift.
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon
        .logs()
        .iter()
        .filter(|line| line["fields"]["message"] == "reconciled")
        .count()
        < 4
    {
        assert!(Instant::now() < deadline, "{}", daemon.dump());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let count = |days: i64| {
        receiver
            .notices("/hook")
            .iter()
            .filter(|(notice, _, _)| {
                notice["event"] == "drift_found"
                    && notice["resource"] == GROUP
                    && notice["changes"][0]["observed"] == days
            })
            .count()
    };
    assert_eq!(count(30), 1, "{:?}", receiver.notices("/hook"));
    // A changed drift is a new notice.
    set_retention(&sdk, 60).await;
    receiver
        .wait_for("/hook", "the changed drift", |notice| {
            notice["resource"] == GROUP && notice["changes"][0]["observed"] == 60
        })
        .await;
    daemon.stop().await;

    // Enforce mode repairs it and says so.
    let daemon = Daemon::start_with(&file.path, "enforce", "1s", &[("NOTIFY_KEY", KEY)]).await;
    receiver
        .wait_for("/hook", "drift_repaired", |notice| {
            notice["event"] == "drift_repaired" && notice["resource"] == GROUP
        })
        .await;
    daemon.stop().await;

    // SNS got the drift and the repair.
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(events.contains(&"drift_found".to_string())
        && events.contains(&"drift_repaired".to_string()))
    {
        assert!(Instant::now() < deadline, "SNS messages: {events:?}");
        let messages = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in messages.messages() {
            let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            let notice: Value = match body.get("Message").and_then(Value::as_str) {
                Some(inner) => serde_json::from_str(inner).unwrap(),
                None => body,
            };
            events.push(notice["event"].as_str().unwrap().to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_the_daemon_runs_is_told_when_it_starts_and_when_it_completes() {
    let aws = common::account().await;
    let receiver = Receiver::start();
    let release = "\n[functions.detection.release]\nstrategy = \"canary\"\ncanary = { percent = 10, minutes = 0.05 }\nalarm_check_seconds = 1\n";
    let text = local_config(aws.endpoint_url()) + release;
    controller_at(aws.endpoint_url(), &text)
        .await
        .apply()
        .await
        .expect("first release");
    let next = format!(
        "{}\n[[notify]]\nwebhook = \"http://{}/hook\"\nevents = [\"release_started\", \"release_completed\"]\n",
        text.replace("anomaly-local/detection:v1", "anomaly-local/detection:v2"),
        receiver.address
    );
    let file = write_config(&next);
    let daemon = Daemon::start(&file.path, "enforce", "1s").await;
    let alias = "alias anomaly-local-detection:live";
    let started = receiver
        .wait_for("/hook", "release_started", |notice| {
            notice["event"] == "release_started" && notice["resource"] == alias
        })
        .await;
    assert!(
        started["summary"].as_str().unwrap().contains("10 %"),
        "{started}"
    );
    receiver
        .wait_for("/hook", "release_completed", |notice| {
            notice["event"] == "release_completed" && notice["resource"] == alias
        })
        .await;
    daemon.stop().await;
    // Each told once, whatever the number of rounds the shift took.
    let told = |event: &str| {
        receiver
            .notices("/hook")
            .iter()
            .filter(|(notice, _, _)| notice["event"] == event)
            .count()
    };
    assert_eq!((told("release_started"), told("release_completed")), (1, 1));
}
