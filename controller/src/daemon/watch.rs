//! Notices edits of the configuration file by reading it every period and
//! comparing a SHA-256 of its bytes: robust against editors that replace
//! the file, and cheap for a file of a few kilobytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// The digest of the file's bytes, or `None` when it cannot be read.
pub fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).into())
}

/// Watches `path` from the state `initial`; `notify` is woken on each change.
pub fn spawn(
    path: PathBuf,
    initial: Option<[u8; 32]>,
    period: Duration,
    notify: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = initial;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = digest(&path);
            if now != last {
                last = now;
                tracing::info!(config = %path.display(), "configuration file changed");
                notify.notify_one();
            }
        }
    })
}
