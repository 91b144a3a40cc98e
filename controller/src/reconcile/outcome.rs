//! What carrying out a plan did, resource by resource: done, failed (with
//! the AWS operation and error code), skipped because something it needs
//! failed, refused, or left as it was. The exit code and `--output json`
//! come from these.

use std::fmt;

use serde::Serialize;

use crate::cloud::CallSummary;
use crate::plan::{Action, Plan};
use crate::resources::{self, ErrorKind, ResourceId};

/// How one resource's change ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// The change was made.
    Done,
    /// Nothing to do (in sync, absent, retained, orphan kept).
    Unchanged,
    /// The change failed.
    Failed {
        /// What a retry can do about it.
        error_kind: ErrorKind,
        /// The AWS operation that failed, if an AWS call failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        operation: Option<String>,
        /// AWS's error code, when AWS answered with one.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        message: String,
    },
    /// Not attempted: a resource it needs (or that needs it, for a delete)
    /// failed.
    Skipped { because: ResourceId },
    /// Exists but is not this deployment's.
    Refused { reason: String },
}

impl Status {
    /// The status of a failed change.
    pub fn failed(error: &resources::Error) -> Status {
        Status::Failed {
            error_kind: error.kind(),
            operation: error.operation().map(str::to_string),
            code: error.code().map(str::to_string),
            message: error.to_string(),
        }
    }

    /// Whether the resource is as the plan wanted it.
    pub fn succeeded(&self) -> bool {
        matches!(self, Status::Done | Status::Unchanged)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Done => f.write_str("done"),
            Status::Unchanged => f.write_str("unchanged"),
            Status::Failed { code, message, .. } => match code {
                Some(code) if !message.contains(code.as_str()) => {
                    write!(f, "failed ({code}): {message}")
                }
                _ => write!(f, "failed: {message}"),
            },
            Status::Skipped { because } => write!(f, "skipped: {because} failed"),
            Status::Refused { reason } => write!(f, "refused: {reason}"),
        }
    }
}

/// How one resource's change ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceResult {
    pub resource: ResourceId,
    pub action: Action,
    #[serde(flatten)]
    pub status: Status,
}

/// The result of carrying out a plan.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The plan as carried out (a change re-planned once what it needs was
    /// in place shows as it was made).
    pub plan: Plan,
    /// One result per change of the plan.
    pub results: Vec<ResourceResult>,
    pub calls: CallSummary,
    pub seconds: f64,
}

impl Outcome {
    /// The results that are not success (failed, skipped, refused).
    pub fn problems(&self) -> Vec<&ResourceResult> {
        self.results
            .iter()
            .filter(|result| !result.status.succeeded())
            .collect()
    }

    /// Whether every change succeeded.
    pub fn succeeded(&self) -> bool {
        self.problems().is_empty()
    }

    /// How many changes were attempted (mutating actions that ran).
    pub fn attempted(&self) -> usize {
        self.results
            .iter()
            .filter(|result| {
                result.action.mutates()
                    && matches!(result.status, Status::Done | Status::Failed { .. })
            })
            .count()
    }
}
