//! The lease on a real network and real clocks: a conditional write whose
//! answer was lost is recognised as ours, expiry is judged on S3's clock
//! whatever the writer's clock says, and a writer that no longer holds the
//! lease stops before its next wave of changes (fencing).

mod common;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use chrono::Utc;
use common::*;
use controller::lease::{self, LEASE_KEY, Lease};
use controller::reconcile;
use test_harness::{FaultProxy, FaultRates, RequestMatch};

const BUCKET: &str = "anomaly-local-models";

fn options(ttl: Duration, wait: Duration) -> lease::Options {
    lease::Options {
        ttl,
        wait,
        command: "apply".into(),
    }
}

fn s3_at(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// A lease object written by another writer whose clock is `skew` off.
async fn foreign_lease(s3: &aws_sdk_s3::Client, skew: chrono::Duration, ttl: Duration) {
    let now = Utc::now() + skew;
    let holder = lease::Holder {
        id: "other-writer".into(),
        host: "elsewhere".into(),
        pid: 7,
        command: "apply".into(),
        acquired_at: now,
        expires_at: now + chrono::Duration::from_std(ttl).unwrap(),
        ttl_millis: Some(ttl.as_millis() as u64),
    };
    s3.put_object()
        .bucket(BUCKET)
        .key(LEASE_KEY)
        .body(ByteStream::from(serde_json::to_vec(&holder).unwrap()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_our_own_conditional_write_is_recognised() {
    let aws = account().await;
    local_controller(&aws).await.ensure_bucket().await.unwrap();
    let proxy = FaultProxy::start(aws.addr(), FaultRates::default()).await;
    let s3 = s3_at(&test_harness::sdk_config_for(&proxy.endpoint_url()).await);
    let conditional_put = |header: &str| {
        RequestMatch {
            method: Some("PUT".into()),
            path_suffix: Some(LEASE_KEY.into()),
            ..RequestMatch::default()
        }
        .with_header(header)
    };
    // Acquire: If-None-Match commits, its answer is lost, the retry is 412.
    proxy.script_drop_after_forwarding(conditional_put("if-none-match"), 1);
    let ttl = Duration::from_millis(900);
    let held = Lease::acquire(&s3, BUCKET, "anomaly-local", &options(ttl, Duration::ZERO))
        .await
        .expect("our own committed write is ours, not another writer's");
    assert_eq!(proxy.scripted_count(), 1);
    // Renew: If-Match commits, its answer is lost, the retry is 412.
    proxy.script_drop_after_forwarding(conditional_put("if-match"), 1);
    tokio::time::sleep(ttl).await;
    assert_eq!(proxy.scripted_count(), 2, "a renewal's answer was lost");
    tokio::time::sleep(ttl).await;
    assert!(held.is_held(), "the lease survives its lost renewal answer");
    held.guard().verify().await.expect("still ours on S3");
    held.release().await.unwrap();
    assert!(lease::current(&s3, BUCKET).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_judged_on_s3s_clock_not_the_writers() {
    let aws = account().await;
    local_controller(&aws).await.ensure_bucket().await.unwrap();
    let s3 = sdk(&aws).await.s3;
    let ttl = Duration::from_millis(800);

    // A writer whose clock is an hour behind: its `expires_at` has long
    // passed, but it wrote just now: held.
    foreign_lease(&s3, chrono::Duration::hours(-1), Duration::from_secs(30)).await;
    let current = lease::current(&s3, BUCKET).await.unwrap().unwrap();
    assert!(current.server_now.is_some(), "S3's Date header is read");
    assert!(!current.expired(ttl));
    let taken = Lease::acquire(&s3, BUCKET, "anomaly-local", &options(ttl, Duration::ZERO)).await;
    assert!(
        matches!(taken, Err(lease::Error::Held { .. })),
        "a fresh lease is not taken over because its writer's clock is behind"
    );

    // A writer whose clock is an hour ahead: its `expires_at` is far off,
    // but its time to live ran out on S3's clock: taken over.
    foreign_lease(&s3, chrono::Duration::hours(1), Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let held = Lease::acquire(
        &s3,
        BUCKET,
        "anomaly-local",
        &options(ttl, Duration::from_secs(5)),
    )
    .await
    .expect("an expired lease is taken over whatever its writer's clock said");
    held.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_lost_the_lease_stops_before_its_next_wave() {
    let aws = account().await;
    let mut controller = local_controller(&aws).await;
    controller.ensure_bucket().await.unwrap();
    let s3 = sdk(&aws).await.s3;
    let held = Lease::acquire(
        &s3,
        BUCKET,
        "anomaly-local",
        &options(Duration::from_secs(30), Duration::ZERO),
    )
    .await
    .unwrap();
    controller.set_fence(Some(held.guard()));
    // Another writer takes it over (as after a long pause of this one).
    foreign_lease(&s3, chrono::Duration::zero(), Duration::from_secs(30)).await;
    let error = controller
        .apply()
        .await
        .expect_err("the fence stops the apply");
    assert!(
        matches!(error, reconcile::Error::Lease(lease::Error::Lost { .. })),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("held by `apply` (pid 7 on elsewhere)"),
        "{error}"
    );
    let inventory = inventory(&sdk(&aws).await).await;
    assert_eq!(
        inventory.functions, 0,
        "nothing after the bucket was changed"
    );
    assert_eq!(inventory.roles, 0);
    drop(held);
}
