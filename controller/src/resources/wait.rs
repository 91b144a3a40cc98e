//! Waiting for AWS to settle: polling with a pending/target/timeout shape,
//! and bounded retries of the eventual-consistency errors real AWS returns.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};

use super::{Error, Result};

/// How long and how often the controller waits on AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitSettings {
    /// First pause between two polls (it doubles up to `max_poll`).
    pub poll: Duration,
    pub max_poll: Duration,
    /// Longest wait for a function to become ready.
    pub timeout: Duration,
    /// Attempts at a call failing with an eventual-consistency error.
    pub consistency_attempts: usize,
    /// Instead of waiting for something pending (a function `Pending` or
    /// `InProgress`), fail at once with [`Error::NotReady`] (a conflict) so
    /// that the caller requeues it: the daemon never waits inside a round.
    pub requeue_when_pending: bool,
    /// Whether a release waits for its traffic shift to complete; without,
    /// it moves the shift on as far as is due now and leaves the rest to
    /// the next round (the daemon, or `apply --no-wait`).
    pub wait_for_shifts: bool,
}

impl Default for WaitSettings {
    fn default() -> Self {
        WaitSettings {
            poll: Duration::from_millis(500),
            max_poll: Duration::from_secs(5),
            timeout: Duration::from_secs(300),
            consistency_attempts: 12,
            requeue_when_pending: false,
            wait_for_shifts: true,
        }
    }
}

/// The outcome of one poll.
pub enum Poll {
    Ready,
    Pending(String),
    Failed(String),
}

/// Polls `check` until it says ready or failed, or `timeout` passes.
pub async fn until<F, Fut>(settings: WaitSettings, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll>>,
{
    let started = Instant::now();
    let mut pause = settings.poll;
    loop {
        match check().await? {
            Poll::Ready => return Ok(()),
            Poll::Failed(reason) => return Err(Error::Failed(format!("{what}: {reason}"))),
            Poll::Pending(state) => {
                if settings.requeue_when_pending {
                    return Err(Error::NotReady {
                        what: what.to_string(),
                        state,
                    });
                }
                if started.elapsed() >= settings.timeout {
                    return Err(Error::Timeout {
                        what: format!("{what} (still {state})"),
                        waited: started.elapsed(),
                    });
                }
                tracing::debug!(%what, %state, "waiting");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(settings.max_poll);
    }
}

/// Runs `call` again, with exponential backoff, while `is_transient` says its
/// error is one that goes away by itself (a role not yet assumable, a
/// function still updating), at most `consistency_attempts` times.
pub async fn retry_transient<T, E, F, Fut>(
    settings: WaitSettings,
    call: F,
    is_transient: impl FnMut(&E) -> bool,
) -> std::result::Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(settings.poll)
        .with_max_delay(settings.max_poll)
        .with_max_times(settings.consistency_attempts)
        .with_jitter();
    call.retry(backoff)
        .when(is_transient)
        .notify(|_, pause| tracing::debug!(?pause, "AWS has not settled yet; retrying"))
        .await
}
