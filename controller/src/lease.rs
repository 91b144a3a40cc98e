//! One writer at a time: a lease object in the deployment's model bucket,
//! taken and renewed with S3 conditional writes, so no other AWS service is
//! needed.
//!
//! Acquire is a `PutObject` with `If-None-Match: *`. A lease whose time has
//! run out (its holder crashed) is taken over with `If-Match: <etag>`, so two
//! writers cannot both take it over. The holder renews it every third of its
//! time to live, again with `If-Match`; release reads it, checks it is still
//! ours, and deletes it.
//!
//! Three rules make it hold on a real network and real clocks:
//! - a conditional write whose answer was lost is retried by the SDK and then
//!   fails its precondition (412) although it committed: after any failed
//!   precondition the lease is read back, and when it holds our id it is ours;
//! - expiry is judged on S3's clock alone: the object's `LastModified` plus
//!   the holder's time to live, against the `Date` of S3's answer, never
//!   against a writer's own clock;
//! - [`Guard::verify`] reads the lease back before each wave of changes
//!   (fencing): a writer that lost it (paused past its time to live, say)
//!   stops before it changes anything more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::Deployment;

/// Where the lease lives in the model bucket.
pub const LEASE_KEY: &str = ".anomaly-controller/lease.json";
/// How long a lease lasts without renewal, unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Who holds the lease, as written in the lease object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Unique per acquisition.
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// `apply`, `destroy` or `run --mode enforce`.
    pub command: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The time to live the holder renews by; expiry is `LastModified` plus
    /// this, on S3's clock. Absent in leases written before it was recorded.
    #[serde(default)]
    pub ttl_millis: Option<u64>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (pid {} on {}) since {}, expiring {}",
            self.command,
            self.pid,
            self.host,
            self.acquired_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    }
}

/// Why the lease could not be taken or given back.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "another writer holds the lease of deployment {deployment}: {holder}; try again later or wait longer with --wait-lease"
    )]
    Held {
        deployment: String,
        holder: Box<Holder>,
    },
    #[error(
        "the writers' lease s3://{bucket}/{LEASE_KEY} is no longer held by this writer (now: {now}); stopped before changing anything more"
    )]
    Lost { bucket: String, now: String },
    #[error("lease {operation} on s3://{bucket}/{LEASE_KEY} failed: {message}")]
    Aws {
        operation: &'static str,
        bucket: String,
        message: String,
    },
}

/// How to take the lease.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long the lease lasts without renewal.
    pub ttl: Duration,
    /// How long to wait for another holder to let go before giving up.
    pub wait: Duration,
    /// What the holder is doing, shown to the writers that wait.
    pub command: String,
}

/// An S3 client for the lease alone, so that its calls are not counted
/// among the deployment's API calls.
pub async fn connect(deployment: &Deployment) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(deployment.region.clone()));
    if let Some(endpoint) = &deployment.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(deployment.endpoint_url.is_some())
            .build(),
    )
}

/// The lease as found in the bucket, with the ETag to change it by.
#[derive(Clone, Debug)]
pub struct Current {
    /// `None` when the body cannot be read as a lease.
    pub holder: Option<Holder>,
    pub etag: String,
    pub last_modified: Option<DateTime<Utc>>,
    /// S3's clock when it answered (its `Date` header).
    pub server_now: Option<DateTime<Utc>>,
}

impl Current {
    /// Whether the holder's time ran out, on S3's clock: its last write
    /// (`LastModified`, plus a second for its precision) plus its time to
    /// live, against the answer's `Date`.
    /// An unreadable lease, or one without a recorded time to live, lasts
    /// `ttl`. Without S3's dates (no `Date` header) the local clock is used.
    pub fn expired(&self, ttl: Duration) -> bool {
        let now = self.server_now.unwrap_or_else(Utc::now);
        let lasts = self
            .holder
            .as_ref()
            .and_then(|holder| holder.ttl_millis)
            .map(Duration::from_millis)
            .unwrap_or(ttl);
        // `LastModified` and `Date` are whole seconds, both cut down: the
        // write may have been up to a second after `LastModified`, and the
        // present is at or after `Date`; adding that second never lets a
        // lease expire early.
        let precision = chrono::Duration::seconds(1);
        match self.last_modified {
            Some(modified) => {
                modified + precision + chrono::Duration::from_std(lasts).unwrap_or_default() <= now
            }
            None => self
                .holder
                .as_ref()
                .is_none_or(|holder| holder.expires_at <= now),
        }
    }

    fn held_by(&self, id: &str) -> bool {
        self.holder.as_ref().is_some_and(|holder| holder.id == id)
    }
}

/// Reads the lease object; `None` when nobody holds the lease.
pub async fn current(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<Current>, Error> {
    let server_date = Arc::new(Mutex::new(None));
    let record_date = server_date.clone();
    let answer = s3
        .get_object()
        .bucket(bucket)
        .key(LEASE_KEY)
        .customize()
        .interceptor(ServerDate(record_date))
        .send()
        .await;
    let server_now = *lock(&server_date);
    let output = match answer {
        Ok(output) => output,
        Err(error) if status_of(&error) == Some(404) => return Ok(None),
        Err(error) => return Err(aws("GetObject", bucket, error)),
    };
    let etag = output.e_tag().unwrap_or_default().to_string();
    let last_modified = output
        .last_modified()
        .and_then(|date| DateTime::<Utc>::from_timestamp(date.secs(), date.subsec_nanos()));
    let body = output
        .body
        .collect()
        .await
        .map_err(|error| Error::Aws {
            operation: "GetObject",
            bucket: bucket.to_string(),
            message: error.to_string(),
        })?
        .into_bytes();
    Ok(Some(Current {
        holder: serde_json::from_slice(&body).ok(),
        etag,
        last_modified,
        server_now,
    }))
}

/// Records the `Date` header of S3's answer: S3's clock, by which expiry
/// is judged.
#[derive(Debug)]
struct ServerDate(Arc<Mutex<Option<DateTime<Utc>>>>);

impl Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "ServerDate"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *lock(&self.0) = context
            .response()
            .headers()
            .get("date")
            .and_then(|date| DateTime::parse_from_rfc2822(date).ok())
            .map(|date| date.with_timezone(&Utc));
        Ok(())
    }
}

/// A held lease. Renewed in the background until [`Lease::release`].
pub struct Lease {
    s3: aws_sdk_s3::Client,
    bucket: String,
    ttl: Duration,
    state: Arc<Mutex<(Holder, String)>>,
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
}

enum Put {
    Done(String),
    /// The precondition failed: someone else wrote or removed it.
    Conflict,
}

impl Lease {
    /// Takes the lease of `deployment` in `bucket`, waiting up to
    /// `options.wait` for another holder to release it or for it to expire.
    pub async fn acquire(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        deployment: &str,
        options: &Options,
    ) -> Result<Lease, Error> {
        let deadline = tokio::time::Instant::now() + options.wait;
        let id = format!("{:016x}", rand::random::<u64>());
        let mut announced = false;
        loop {
            let holder = new_holder(&id, &options.command, options.ttl);
            if let Put::Done(etag) = put(s3, bucket, &holder, Condition::Absent).await? {
                return Ok(Lease::held(s3, bucket, holder, etag, options.ttl));
            }
            let Some(current) = current(s3, bucket).await? else {
                continue; // released in between: try again at once
            };
            if current.held_by(&id) {
                // Our write committed but its answer was lost; the SDK's
                // retry then failed the precondition on our own lease.
                let holder = current.holder.clone().unwrap_or(holder);
                return Ok(Lease::held(s3, bucket, holder, current.etag, options.ttl));
            }
            if current.expired(options.ttl) {
                if let Put::Done(etag) =
                    put(s3, bucket, &holder, Condition::Matches(&current.etag)).await?
                {
                    match &current.holder {
                        Some(old) => {
                            tracing::warn!(previous = %old, "took over an expired lease")
                        }
                        None => tracing::warn!("took over an expired, unreadable lease"),
                    }
                    return Ok(Lease::held(s3, bucket, holder, etag, options.ttl));
                }
                continue;
            }
            let held_by = current
                .holder
                .clone()
                .unwrap_or_else(|| unknown_holder(&current));
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Held {
                    deployment: deployment.to_string(),
                    holder: Box::new(held_by),
                });
            }
            if !announced {
                tracing::info!(holder = %held_by, wait = ?options.wait, "waiting for the lease");
                announced = true;
            }
            let pause = (options.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
        }
    }

    fn held(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        holder: Holder,
        etag: String,
        ttl: Duration,
    ) -> Lease {
        tracing::info!(holder = %holder.id, command = %holder.command, expires_at = %holder.expires_at, "lease acquired");
        let state = Arc::new(Mutex::new((holder, etag)));
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew(
            s3.clone(),
            bucket.to_string(),
            state.clone(),
            lost.clone(),
            ttl,
        ));
        Lease {
            s3: s3.clone(),
            bucket: bucket.to_string(),
            ttl,
            state,
            lost,
            renewal,
        }
    }

    /// Who holds it: this writer.
    pub fn holder(&self) -> Holder {
        lock(&self.state).0.clone()
    }

    /// A handle that checks, against S3, that this lease is still held.
    pub fn guard(&self) -> Guard {
        Guard {
            s3: self.s3.clone(),
            bucket: self.bucket.clone(),
            id: lock(&self.state).0.id.clone(),
            ttl: self.ttl,
            lost: self.lost.clone(),
        }
    }

    /// Whether the lease is still ours and not expired.
    pub fn is_held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst) && lock(&self.state).0.expires_at > Utc::now()
    }

    /// Stops renewing and deletes the lease object if it is still ours.
    pub async fn release(self) -> Result<(), Error> {
        self.renewal.abort();
        let (holder, _) = lock(&self.state).clone();
        match current(&self.s3, &self.bucket).await? {
            Some(found) if found.holder.as_ref().is_some_and(|h| h.id == holder.id) => {
                self.s3
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(LEASE_KEY)
                    .send()
                    .await
                    .map_err(|error| aws("DeleteObject", &self.bucket, error))?;
                tracing::info!(holder = %holder.id, "lease released");
            }
            _ => tracing::warn!(holder = %holder.id, "the lease was no longer ours at release"),
        }
        Ok(())
    }
}

/// Checks that a held lease is still this writer's, on S3 (fencing): the
/// reconcile calls [`Guard::verify`] before each wave of changes.
#[derive(Clone)]
pub struct Guard {
    s3: aws_sdk_s3::Client,
    bucket: String,
    id: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
}

impl Guard {
    /// Reads the lease back: `Ok` while it holds this writer's id and its
    /// time has not run out on S3's clock.
    pub async fn verify(&self) -> Result<(), Error> {
        let lost = |now: String| Error::Lost {
            bucket: self.bucket.clone(),
            now,
        };
        if self.lost.load(Ordering::SeqCst) {
            return Err(lost("taken over by another writer".into()));
        }
        match current(&self.s3, &self.bucket).await? {
            Some(found) if found.held_by(&self.id) && !found.expired(self.ttl) => Ok(()),
            Some(found) => {
                self.lost.store(true, Ordering::SeqCst);
                Err(lost(match &found.holder {
                    Some(holder) if holder.id == self.id => "expired".to_string(),
                    Some(holder) => format!("held by {holder}"),
                    None => "an unreadable lease object".to_string(),
                }))
            }
            None => {
                self.lost.store(true, Ordering::SeqCst);
                Err(lost("released by someone else".into()))
            }
        }
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("bucket", &self.bucket)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropped without release (an error path): it expires on its own.
        self.renewal.abort();
    }
}

async fn renew(
    s3: aws_sdk_s3::Client,
    bucket: String,
    state: Arc<Mutex<(Holder, String)>>,
    lost: Arc<AtomicBool>,
    ttl: Duration,
) {
    let period = ttl / 3;
    loop {
        tokio::time::sleep(period).await;
        let (mut holder, etag) = lock(&state).clone();
        holder.expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        match put(&s3, &bucket, &holder, Condition::Matches(&etag)).await {
            Ok(Put::Done(etag)) => *lock(&state) = (holder, etag),
            Ok(Put::Conflict) => match current(&s3, &bucket).await {
                // Our renewal committed, its answer was lost: carry on.
                Ok(Some(found)) if found.held_by(&holder.id) => {
                    let holder = found.holder.clone().unwrap_or(holder);
                    *lock(&state) = (holder, found.etag);
                }
                Ok(_) => {
                    tracing::error!(holder = %holder.id, "lost the lease: another writer took it over");
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(error) => tracing::warn!(%error, "cannot read the lease back; trying again"),
            },
            Err(error) => tracing::warn!(%error, "cannot renew the lease; trying again"),
        }
    }
}

enum Condition<'a> {
    Absent,
    Matches(&'a str),
}

async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    holder: &Holder,
    condition: Condition<'_>,
) -> Result<Put, Error> {
    let body = serde_json::to_vec_pretty(holder).unwrap_or_default();
    let request = s3
        .put_object()
        .bucket(bucket)
        .key(LEASE_KEY)
        .content_type("application/json")
        .body(ByteStream::from(body));
    let request = match condition {
        Condition::Absent => request.if_none_match("*"),
        Condition::Matches(etag) => request.if_match(etag),
    };
    match request.send().await {
        Ok(output) => Ok(Put::Done(output.e_tag().unwrap_or_default().to_string())),
        // 412: the precondition failed; 409: a concurrent conditional write
        // won; 404: the object is gone (If-Match on a deleted lease).
        Err(error) if matches!(status_of(&error), Some(412 | 409 | 404)) => Ok(Put::Conflict),
        Err(error) => Err(aws("PutObject", bucket, error)),
    }
}

fn new_holder(id: &str, command: &str, ttl: Duration) -> Holder {
    let now = Utc::now();
    Holder {
        id: id.to_string(),
        host: hostname(),
        pid: std::process::id(),
        command: command.to_string(),
        acquired_at: now,
        expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
        ttl_millis: Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    }
}

fn unknown_holder(current: &Current) -> Holder {
    let when = current.last_modified.unwrap_or_else(Utc::now);
    Holder {
        id: "unknown".into(),
        host: "unknown".into(),
        pid: 0,
        command: "an unreadable lease object".into(),
        acquired_at: when,
        expires_at: when,
        ttl_millis: None,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn status_of<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|raw| raw.status().as_u16())
}

fn aws<E: std::error::Error + 'static>(
    operation: &'static str,
    bucket: &str,
    error: SdkError<E, HttpResponse>,
) -> Error {
    Error::Aws {
        operation,
        bucket: bucket.to_string(),
        message: aws_smithy_types::error::display::DisplayErrorContext(&error).to_string(),
    }
}
