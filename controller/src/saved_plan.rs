//! Saved plans: `diff --out FILE` writes the plan with a digest of the
//! desired-state file and of every resource as observed; `apply --plan
//! FILE` carries out exactly that plan, and refuses, naming what moved,
//! when the file or any observed resource changed since. The file holds
//! what the plan shows (field values, digests), never a secret: the
//! Panther token is compared as a keyed digest only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::plan::{Action, Plan};

/// The format of the files this module writes.
pub const FORMAT: &str = "anomaly-controller-plan/1";

/// A plan as saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub deployment: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The desired-state file the plan was made from, and the SHA-256 of
    /// its text.
    pub config: SavedConfig,
    pub changes: Vec<SavedChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedConfig {
    pub path: PathBuf,
    pub sha256: String,
}

/// One resource of a saved plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedChange {
    /// `kind name`.
    pub resource: String,
    pub action: Action,
    /// The digest of the resource as observed (see [`crate::plan::Change`]).
    #[serde(default)]
    pub observed: Option<String>,
    /// Each differing field: its observed and desired values.
    #[serde(default)]
    pub diffs: BTreeMap<String, (Value, Value)>,
}

/// Why a saved plan was not written, read or carried out.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot write the plan to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the plan {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a saved plan: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("the saved plan {path} no longer holds, nothing was changed:\n  {}", moved.join("\n  "))]
    Stale { path: PathBuf, moved: Vec<String> },
}

/// The SHA-256 of a file's text, hex.
pub fn file_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl SavedPlan {
    /// The plan made from the file `config_path` whose text is `config_text`.
    pub fn new(plan: &Plan, config_path: &Path, config_text: &str) -> SavedPlan {
        SavedPlan {
            format: FORMAT.to_string(),
            deployment: plan.deployment.clone(),
            created_at: chrono::Utc::now(),
            config: SavedConfig {
                path: config_path.to_path_buf(),
                sha256: file_digest(config_text),
            },
            changes: plan
                .changes
                .iter()
                .map(|change| SavedChange {
                    resource: change.resource.to_string(),
                    action: change.action,
                    observed: change.observed.clone(),
                    diffs: change
                        .diffs
                        .iter()
                        .map(|diff| {
                            (
                                diff.field.clone(),
                                (run_free(&diff.observed), run_free(&diff.desired)),
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        let text = serde_json::to_string_pretty(self).expect("a plan serialises");
        std::fs::write(path, text + "\n").map_err(|source| SavedPlanError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<SavedPlan, SavedPlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| SavedPlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let saved: SavedPlan =
            serde_json::from_str(&text).map_err(|error| SavedPlanError::Invalid {
                path: path.to_path_buf(),
                reason: error.to_string(),
            })?;
        if saved.format != FORMAT {
            return Err(SavedPlanError::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "format {:?}, this controller reads {FORMAT:?}",
                    saved.format
                ),
            });
        }
        Ok(saved)
    }

    /// What differs between this saved plan and `current`, made now from
    /// the file whose text is `config_text`: each difference names what
    /// moved. Empty: `current` is exactly the saved plan. An image the
    /// saved plan left to be built at apply matches any digest.
    pub fn moved(&self, config_path: &Path, config_text: &str, current: &Plan) -> Vec<String> {
        let mut moved = Vec::new();
        let digest = file_digest(config_text);
        if digest != self.config.sha256 {
            moved.push(format!(
                "the file {} changed since the plan was saved (SHA-256 {} then, {} now)",
                config_path.display(),
                &self.config.sha256[..12.min(self.config.sha256.len())],
                &digest[..12]
            ));
        }
        if current.deployment != self.deployment {
            moved.push(format!(
                "the plan is for deployment {:?}, the file names {:?}",
                self.deployment, current.deployment
            ));
        }
        let now = SavedPlan::new(current, config_path, config_text);
        let saved: BTreeMap<&str, &SavedChange> = self
            .changes
            .iter()
            .map(|change| (change.resource.as_str(), change))
            .collect();
        let made: BTreeMap<&str, &SavedChange> = now
            .changes
            .iter()
            .map(|change| (change.resource.as_str(), change))
            .collect();
        for (resource, then) in &saved {
            let Some(now) = made.get(resource) else {
                moved.push(format!("{resource}: planned then, not any more"));
                continue;
            };
            if then.action != now.action {
                moved.push(format!(
                    "{resource}: planned to {:?}, now {:?}",
                    then.action, now.action
                ));
            } else if then.observed != now.observed {
                moved.push(format!(
                    "{resource}: changed in AWS since the plan was saved"
                ));
            } else if !same_diffs(&then.diffs, &now.diffs) {
                moved.push(format!(
                    "{resource}: its differences changed since the plan was saved"
                ));
            }
        }
        for resource in made
            .keys()
            .filter(|resource| !saved.contains_key(*resource))
        {
            moved.push(format!("{resource}: not in the saved plan"));
        }
        moved
    }
}

/// A value as saved: a secret's digest, keyed for one run of the
/// controller only, is saved as that it was one.
fn run_free(value: &Value) -> Value {
    match value.as_str() {
        Some(text) if text.starts_with(crate::resources::secret::DIGEST_PREFIX) => {
            Value::String(format!(
                "{}(keyed for one run)",
                crate::resources::secret::DIGEST_PREFIX
            ))
        }
        _ => value.clone(),
    }
}

/// Whether two sets of differing fields are the same, a desired image the
/// saved plan left to apply's build matching any.
fn same_diffs(
    then: &BTreeMap<String, (Value, Value)>,
    now: &BTreeMap<String, (Value, Value)>,
) -> bool {
    then.len() == now.len()
        && then.iter().all(|(field, (observed, desired))| {
            now.get(field).is_some_and(|(now_observed, now_desired)| {
                observed == now_observed
                    && (desired == now_desired
                        || desired
                            .as_str()
                            .is_some_and(|text| text.ends_with(crate::image::BUILT_AT_APPLY)))
            })
        })
}
