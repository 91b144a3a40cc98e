//! Where the model comes from and when it is reloaded.
//!
//! The latest model is loaded at start; afterwards the `latest` pointer is checked at
//! most once per refresh interval (a minute by default), on the request path, and a
//! newer model replaces the current one without a restart. A failed check keeps the
//! current model.
//!
//! A failure is logged with its detail (the S3 error, bucket, key, file path);
//! the public answers only get an [`Unavailable`] reason. A 403 from S3 is a
//! missing permission, logged as such, and never "no model yet".

use crate::cors::Cors;
use crate::routes::{Limits, ModelView, Unavailable};
use anomaly::Model;
use anomaly::store::{ModelStore, StoreError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Where models are read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The `latest` pointer of a model store in S3.
    S3(ModelStore),
    /// A local model file (re-read when it changes).
    File(PathBuf),
}

/// Shared state of the detection function.
#[derive(Debug)]
pub struct AppState {
    source: Source,
    /// Request limits.
    pub limits: Limits,
    /// CORS configuration.
    pub cors: Cors,
    refresh: Duration,
    view: RwLock<ModelView>,
    last_check: Mutex<Option<Instant>>,
}

impl AppState {
    /// State with no model loaded yet.
    pub fn new(source: Source, limits: Limits, refresh: Duration) -> AppState {
        AppState {
            source,
            limits,
            cors: Cors::default(),
            refresh,
            view: RwLock::new(ModelView::Unavailable(Unavailable::NotLoaded)),
            last_check: Mutex::new(None),
        }
    }

    /// The current model or the reason there is none.
    pub fn view(&self) -> ModelView {
        self.view
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn current_version(&self) -> Option<String> {
        match self.view() {
            ModelView::Ready(m) => Some(m.version.clone()),
            ModelView::Unavailable(_) => None,
        }
    }

    fn set(&self, v: ModelView) {
        match self.view.write() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    /// The same state with this CORS configuration.
    pub fn with_cors(mut self, cors: Cors) -> AppState {
        self.cors = cors;
        self
    }

    fn failed(&self, reason: Unavailable, detail: String) {
        match reason {
            Unavailable::NotPublished | Unavailable::NotLoaded => {
                tracing::warn!(reason = reason.code(), %detail, "no model to serve")
            }
            _ => tracing::error!(reason = reason.code(), %detail, "model check failed"),
        }
        // Keep a loaded model; only record the reason when there is none.
        if self.current_version().is_none() {
            self.set(ModelView::Unavailable(reason));
        }
    }

    fn store_failed(&self, error: StoreError) {
        let reason = match &error {
            StoreError::Model { .. } | StoreError::Pointer { .. } => Unavailable::ModelInvalid,
            StoreError::S3 { .. } | StoreError::AccessDenied { .. } => {
                Unavailable::StoreUnavailable
            }
        };
        self.failed(reason, error.to_string());
    }

    /// Checks the source when the refresh interval has passed since the last check.
    pub async fn refresh_if_due(&self) {
        let due = {
            let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            match *last {
                Some(t) if t.elapsed() < self.refresh => false,
                _ => {
                    *last = Some(Instant::now());
                    true
                }
            }
        };
        if due {
            self.reload().await;
        }
    }

    /// Checks the source now and loads a model newer than the current one.
    pub async fn reload(&self) {
        *self.last_check.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        match &self.source {
            Source::S3(store) => match store.latest_pointer().await {
                Ok(Some(p)) => {
                    if self.current_version().as_deref() == Some(p.version.as_str()) {
                        return;
                    }
                    match store.load(&p).await {
                        Ok(m) => {
                            tracing::info!(version = %m.version, "model loaded");
                            self.set(ModelView::Ready(Arc::new(m)));
                        }
                        Err(e) => self.store_failed(e),
                    }
                }
                Ok(None) => self.failed(
                    Unavailable::NotPublished,
                    format!(
                        "no model has been published yet (s3://{}/{} does not exist)",
                        store.bucket(),
                        store.pointer_key()
                    ),
                ),
                Err(e) => self.store_failed(e),
            },
            Source::File(path) => match std::fs::read(path) {
                Ok(bytes) => match Model::from_json(&bytes) {
                    Ok(m) => {
                        if self.current_version().as_deref() != Some(m.version.as_str()) {
                            tracing::info!(version = %m.version, "model loaded");
                            self.set(ModelView::Ready(Arc::new(m)));
                        }
                    }
                    Err(e) => self.failed(
                        Unavailable::ModelInvalid,
                        format!("model file {}: {e}", path.display()),
                    ),
                },
                Err(e) => self.failed(
                    Unavailable::StoreUnavailable,
                    format!("cannot read model file {}: {e}", path.display()),
                ),
            },
        }
    }
}
