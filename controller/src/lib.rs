//! The controller of the anomaly-detection deployment: reads the desired
//! state from TOML, observes AWS, and converges one to the other.
//!
//! `spec` (TOML in, typed desired state out) -> `desired` (the resources it
//! implies) -> `resources` (one module per kind of AWS object) -> `plan`
//! (what changes, printed or as JSON) -> `reconcile` (carries a plan out) ->
//! `cli`. `access` is the IAM policy the controller itself needs.

pub mod access;
pub mod cli;
pub mod cloud;
pub mod daemon;
pub mod desired;
pub mod detail;
pub mod field;
pub mod ignore;
pub mod image;
pub mod lease;
pub mod outputs;
pub mod ownership;
pub mod plan;
pub mod reconcile;
pub mod releases;
pub mod resources;
pub mod rollback;
pub mod saved_plan;
pub mod spec;
