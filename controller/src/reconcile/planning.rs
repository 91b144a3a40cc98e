//! What to do with each resource, decided from what the file wants and what
//! AWS holds: the pure part of planning (no AWS calls).

use crate::field::diff_fields;
use crate::ownership::Ownership;
use crate::plan::{Action, Change};
use crate::resources::{Observed, Resource, ResourceId, ResourceKind};

/// Why a resource that exists is not this deployment's to change, and what
/// the user can do about it.
pub fn refusal(ownership: &Ownership, kind: &dyn ResourceKind, deployment: &str) -> String {
    match ownership {
        Ownership::OtherDeployment(other) => {
            format!("it belongs to deployment {other:?}, not {deployment:?}; choose another name")
        }
        _ => format!(
            "it exists without the ownership tags of deployment {deployment:?}; set {} = true to take it over, or choose another name",
            kind.adopt_setting()
        ),
    }
}

/// Decides what apply does to one resource of the file.
pub fn plan_apply(desired: &dyn Resource, observed: Option<Observed>, deployment: &str) -> Change {
    let resource = desired.id();
    let Some(observed) = observed else {
        return Change::new(resource, Action::Create);
    };
    let may_change = match &observed.ownership {
        Ownership::Owned => true,
        Ownership::Unmanaged => desired.adopt(),
        Ownership::OtherDeployment(_) => false,
    };
    if !may_change {
        return Change {
            reason: Some(refusal(&observed.ownership, desired.kind(), deployment)),
            ..Change::new(resource, Action::Refused)
        };
    }
    let diffs = diff_fields(&desired.fields(), &observed.fields);
    let forcing: Vec<&str> = desired
        .replacement_fields()
        .iter()
        .copied()
        .filter(|field| diffs.iter().any(|diff| diff.field == *field))
        .collect();
    let (action, reason) = if diffs.is_empty() {
        (Action::InSync, None)
    } else if !forcing.is_empty() {
        (
            Action::Replace,
            Some(format!("{} cannot be changed in place", forcing.join(", "))),
        )
    } else if observed.ownership == Ownership::Unmanaged {
        (
            Action::Update,
            Some("adopted: the ownership tags are added".to_string()),
        )
    } else {
        (Action::Update, None)
    };
    Change {
        diffs,
        reason,
        ..Change::new(resource, action)
    }
}

/// Decides what destroy does to one resource of the file.
pub fn plan_destroy(
    desired: &dyn Resource,
    observed: Option<Observed>,
    deployment: &str,
    retain: Option<String>,
) -> Change {
    let resource = desired.id();
    let scheduled_for_deletion = observed.as_ref().is_some_and(|observed| {
        observed.fields.get("scheduled_for_deletion") == Some(&serde_json::Value::Bool(true))
    });
    match observed.map(|observed| observed.ownership) {
        None => Change::new(resource, Action::Absent),
        Some(_) if scheduled_for_deletion => Change {
            reason: Some("scheduled for deletion".to_string()),
            ..Change::new(resource, Action::Absent)
        },
        Some(Ownership::Owned) => match retain {
            Some(reason) => Change {
                reason: Some(reason),
                ..Change::new(resource, Action::Retain)
            },
            None => Change::new(resource, Action::Delete),
        },
        Some(other) => Change {
            reason: Some(refusal(&other, desired.kind(), deployment)),
            ..Change::new(resource, Action::Refused)
        },
    }
}

/// What happens to a resource the deployment owns but the file no longer
/// names: deleted, kept by its kind's rule (`keep`), or listed and kept
/// when pruning is off.
pub fn plan_orphan(resource: ResourceId, keep: Option<String>, prune: bool) -> Change {
    match (keep, prune) {
        (Some(reason), _) => Change {
            reason: Some(reason),
            ..Change::new(resource, Action::Retain)
        },
        (None, true) => Change {
            reason: Some("no longer in the file".to_string()),
            ..Change::new(resource, Action::Delete)
        },
        (None, false) => Change {
            reason: Some("no longer in the file; kept (--no-prune)".to_string()),
            ..Change::new(resource, Action::Orphan)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    #[test]
    fn orphans_are_deleted_kept_by_their_kind_or_listed_without_pruning() {
        let id = ResourceId::new(Kind("rule"), "nightly");
        let deleted = plan_orphan(id.clone(), None, true);
        assert_eq!(deleted.action, Action::Delete);
        assert_eq!(deleted.reason.as_deref(), Some("no longer in the file"));
        let kept = plan_orphan(id.clone(), Some("kept with its models".into()), true);
        assert_eq!(kept.action, Action::Retain);
        assert_eq!(plan_orphan(id, None, false).action, Action::Orphan);
    }
}
