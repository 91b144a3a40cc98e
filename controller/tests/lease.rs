//! The writers' lease against moto: one writer mutates at a time, a second
//! one waits or fails naming the holder, and a killed holder's lease
//! expires and is taken over.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use controller::lease::{self, LEASE_KEY, Lease};
use serde_json::Value;
use test_harness::{FaultProxy, FaultRates, RequestMatch, ScriptedResponse};

const BUCKET: &str = "anomaly-local-models";

fn options(command: &str, ttl: Duration, wait: Duration) -> lease::Options {
    lease::Options {
        ttl,
        wait,
        command: command.into(),
    }
}

fn json_logs(output: &Output) -> Vec<Value> {
    stderr(output)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn time_of(line: &Value) -> DateTime<Utc> {
    line["timestamp"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_exclusive_renewed_and_released() {
    let aws = common::account().await;
    local_controller(&aws).await.ensure_bucket().await.unwrap();
    let s3 = sdk(&aws).await.s3;
    let ttl = Duration::from_millis(1500);
    let first = Lease::acquire(
        &s3,
        BUCKET,
        "anomaly-local",
        &options("apply", ttl, Duration::ZERO),
    )
    .await
    .unwrap();
    let first_id = first.holder().id;
    // A second writer waits meanwhile.
    let waiting = {
        let s3 = s3.clone();
        tokio::spawn(async move {
            Lease::acquire(
                &s3,
                BUCKET,
                "anomaly-local",
                &options("destroy", ttl, Duration::from_secs(120)),
            )
            .await
        })
    };
    // Renewed past its first expiry, judged by the lease object's own
    // versions (each renewal is a new ETag), not by the wall clock: four
    // versions are the acquisition and three renewals, a full time to live.
    let mut versions = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while versions.len() < 4 {
        let current = lease::current(&s3, BUCKET).await.unwrap().unwrap();
        assert_eq!(
            current.holder.as_ref().map(|holder| holder.id.as_str()),
            Some(first_id.as_str()),
            "never shared while renewed"
        );
        versions.insert(current.etag);
        assert!(Instant::now() < deadline, "the lease was not renewed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!waiting.is_finished(), "the second writer still waits");
    assert!(first.is_held());
    assert!(first.holder().expires_at > Utc::now());
    first.release().await.unwrap();
    // Released: the waiting writer takes it.
    let second = waiting.await.unwrap().expect("the waiting writer takes it");
    assert_eq!(second.holder().command, "destroy");
    assert_eq!(second.holder().pid, std::process::id());
    second.release().await.unwrap();
    assert!(lease::current(&s3, BUCKET).await.unwrap().is_none());
    // Free again: taken at once.
    let again = Lease::acquire(
        &s3,
        BUCKET,
        "anomaly-local",
        &options("apply", ttl, Duration::ZERO),
    )
    .await
    .unwrap();
    again.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_fails_with_a_message_naming_the_holder() {
    let aws = common::account().await;
    let controller = local_controller(&aws).await;
    controller.ensure_bucket().await.unwrap();
    let s3 = sdk(&aws).await.s3;
    let held = Lease::acquire(
        &s3,
        BUCKET,
        "anomaly-local",
        &options(
            "run --mode enforce",
            Duration::from_secs(30),
            Duration::ZERO,
        ),
    )
    .await
    .unwrap();
    let config = write_config(&local_config(aws.endpoint_url()));
    let path = config.path.to_str().unwrap();

    let started = Instant::now();
    let output = run_controller(&["apply", path, "--wait-lease", "1s"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    let message = stderr(&output);
    assert!(
        message.contains("another writer holds the lease of deployment anomaly-local")
            && message.contains("`run --mode enforce`")
            && message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    // Only the bucket (which holds the lease) was created; nothing else.
    assert_eq!(inventory(&sdk(&aws).await).await.functions, 0);
    // Destroy waits for it too (and does not delete the bucket under it).
    let output = run_controller(&[
        "destroy",
        path,
        "--yes",
        "--delete-bucket",
        "--wait-lease",
        "0s",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("holds the lease"));
    assert_eq!(inventory(&sdk(&aws).await).await.buckets, 1);
    // `diff` takes no lease.
    let output = run_controller(&["diff", path]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    held.release().await.unwrap();
    let output = run_controller(&["apply", path, "--wait-lease", "0s"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// From one writer's JSON log: its lease windows and its changes' windows.
struct Writer {
    leases: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    changes: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

fn writer(output: &Output) -> Writer {
    let logs = json_logs(output);
    let mut leases = Vec::new();
    let mut acquired = None;
    let mut changes = Vec::new();
    for line in &logs {
        match line["fields"]["message"].as_str() {
            Some("lease acquired") => acquired = Some(time_of(line)),
            Some("lease released") => leases.push((
                acquired.take().expect("released after acquired"),
                time_of(line),
            )),
            Some("done") if line["span"]["name"] == "change" => {
                let end = time_of(line);
                let seconds = line["fields"]["seconds"].as_f64().unwrap();
                let start = end - chrono::Duration::milliseconds((seconds * 1000.0) as i64 + 1);
                changes.push((start, end));
            }
            _ => {}
        }
    }
    assert!(
        acquired.is_none(),
        "lease never released:\n{}",
        stderr(output)
    );
    Writer { leases, changes }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_never_mutate_at_the_same_time() {
    let aws = common::account().await;
    // The bucket that holds the lease exists (creating it is idempotent and
    // precedes the lease).
    local_controller(&aws).await.ensure_bucket().await.unwrap();
    // Role propagation is slow for a while: each apply mutates for a second or more.
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    proxy.script(
        RequestMatch::lambda("POST", "/2015-03-31/functions"),
        ScriptedResponse::lambda_error(
            400,
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        ),
        2,
    );
    let config = write_config(&local_config(&proxy.endpoint_url()));
    let path = config.path.to_str().unwrap().to_string();
    // The second config differs: whoever goes second has work to do too.
    let other = write_config(&local_config(&proxy.endpoint_url()).replacen(
        "memory_mb = 1024",
        "memory_mb = 2048",
        1,
    ));
    let other_path = other.path.to_str().unwrap().to_string();
    let spawn = |path: &str| {
        controller_command(&["apply", path, "--log-format", "json", "--wait-lease", "60s"])
            // Each change's own `done` line is at debug level.
            .env("CONTROLLER_LOG", "controller=debug,warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&path);
    let second = spawn(&other_path);
    let (first, second) = tokio::task::spawn_blocking(move || {
        (
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    let a = writer(&first);
    let b = writer(&second);
    assert_eq!((a.leases.len(), b.leases.len()), (1, 1));
    let (a_lease, b_lease) = (a.leases[0], b.leases[0]);
    assert!(
        a_lease.1 <= b_lease.0 || b_lease.1 <= a_lease.0,
        "the lease windows overlap: {a_lease:?} {b_lease:?}"
    );
    // Every change each writer made lies within its own lease.
    for (writer, lease) in [(&a, a_lease), (&b, b_lease)] {
        assert!(!writer.changes.is_empty());
        for change in &writer.changes {
            assert!(
                lease.0 <= change.0 && change.1 <= lease.1,
                "a change {change:?} outside the lease {lease:?}"
            );
        }
    }
    // The lease object's history: two holders, one after the other.
    let s3 = sdk(&aws).await.s3;
    let versions = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(LEASE_KEY)
        .send()
        .await
        .unwrap();
    let mut holders = std::collections::BTreeSet::new();
    for version in versions.versions() {
        let body = s3
            .get_object()
            .bucket(BUCKET)
            .key(LEASE_KEY)
            .version_id(version.version_id().unwrap())
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let holder: lease::Holder = serde_json::from_slice(&body).unwrap();
        assert_eq!(holder.command, "apply");
        holders.insert(holder.pid);
    }
    assert_eq!(holders.len(), 2, "{holders:?}");
    assert!(lease::current(&s3, BUCKET).await.unwrap().is_none());
    // The writer that went last planned again under the lease: its desired
    // state is the one that stands.
    let last = if a_lease.0 > b_lease.0 {
        local_config(aws.endpoint_url())
    } else {
        local_config(aws.endpoint_url()).replacen("memory_mb = 1024", "memory_mb = 2048", 1)
    };
    let direct = write_config(&last);
    let diff = run_controller(&["diff", direct.path.to_str().unwrap()]);
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holders_lease_expires_and_is_taken_over() {
    let aws = common::account().await;
    // The holder gets stuck waiting for Lambda to accept its role.
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    proxy.script(
        RequestMatch::lambda("POST", "/2015-03-31/functions"),
        ScriptedResponse::lambda_error(
            400,
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        ),
        100_000,
    );
    let stuck = write_config(&local_config(&proxy.endpoint_url()));
    let mut holder =
        controller_command(&["apply", stuck.path.to_str().unwrap(), "--lease-ttl", "3s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let s3 = sdk(&aws).await.s3;
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        if let Some(current) = lease::current(&s3, BUCKET).await.unwrap() {
            break current.holder.unwrap();
        }
        assert!(Instant::now() < deadline, "the holder never took the lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(held.pid, holder.id());
    // Renewed while alive: a new version of the lease object, same holder.
    let deadline = Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        let current = lease::current(&s3, BUCKET)
            .await
            .unwrap()
            .unwrap()
            .holder
            .unwrap();
        if current.expires_at > held.expires_at {
            break current;
        }
        assert!(Instant::now() < deadline, "the holder never renewed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(renewed.id, held.id);
    holder.kill().unwrap(); // SIGKILL: no release
    holder.wait().unwrap();
    assert!(lease::current(&s3, BUCKET).await.unwrap().is_some());

    // The next writer waits for the expiry, takes it over and converges.
    let direct = write_config(&local_config(aws.endpoint_url()));
    let path = direct.path.to_str().unwrap();
    let started = Utc::now();
    let output = run_controller(&["apply", path, "--log-format", "json", "--wait-lease", "30s"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let logs = json_logs(&output);
    let took_over = logs
        .iter()
        .find(|line| line["fields"]["message"] == "took over an expired lease")
        .unwrap_or_else(|| panic!("{}", stderr(&output)));
    assert!(
        took_over["fields"]["previous"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", held.pid))
    );
    assert!(time_of(took_over) >= renewed.expires_at);
    assert!(time_of(took_over) > started);
    let diff = run_controller(&["diff", path]);
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));
    assert!(lease::current(&s3, BUCKET).await.unwrap().is_none());
}
