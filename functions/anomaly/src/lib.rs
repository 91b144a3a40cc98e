//! Events, features and the anomaly model shared by the training and detection
//! functions.
//!
//! - [`event`]: parsing flat events and CloudTrail records into a typed [`Event`].
//! - [`features`]: rarity and cyclic encoding into the model's feature vector.
//! - [`forest`]: the isolation forest, implementing linfa's `Fit` and `PredictInplace`.
//! - [`model`]: training, scoring, explanation and the versioned model file.
//! - [`generator`]: a seeded synthetic organisation with labelled anomalies.
//! - [`evaluation`]: AUC, recall at 1 % false positives and alert rate of a scorer.
//! - [`organisation`]: a realistic organisation over weeks, with subtle labelled anomalies.
//! - [`wire`]: reading an event straight from JSON text, keeping only what the model reads.
//! - [`store`]: model storage in S3 (versioned key, then the `latest` pointer).
//! - [`logging`]: the functions' log format (no colour codes in Lambda, JSON on request).

pub mod baseline;
pub mod evaluation;
pub mod event;
pub mod features;
pub mod forest;
pub mod generator;
pub mod identity;
pub mod logging;
pub mod model;
pub mod organisation;
pub mod store;
pub mod wire;

pub use event::{Event, EventError, Value};
pub use model::{Detection, Model, ModelError, Rarity, TrainParams};
