//! What to do with each resource, decided from what the file wants and what
//! AWS holds: the pure part of planning (no AWS calls).

use crate::field::diff_fields;
use crate::ignore::IgnoreRule;
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

/// A digest of a resource as observed (`absent` when it does not exist),
/// the same from one run to the next: a secret's value, which plans show
/// only as a digest keyed for this run, counts as whether it matches the
/// desired value.
pub fn observed_digest(observed: Option<&Observed>, desired: &crate::field::Fields) -> String {
    use sha2::{Digest, Sha256};
    match observed {
        None => "absent".to_string(),
        Some(observed) => {
            let fields: crate::field::Fields = observed
                .fields
                .iter()
                .map(|(field, value)| {
                    let keyed = value.as_str().is_some_and(|text| {
                        text.starts_with(crate::resources::secret::DIGEST_PREFIX)
                    });
                    let value = if keyed {
                        serde_json::json!({"matches_desired": desired.get(field) == Some(value)})
                    } else {
                        value.clone()
                    };
                    (field.clone(), value)
                })
                .collect();
            let text = serde_json::json!({
                "ownership": format!("{:?}", observed.ownership),
                "fields": fields,
            })
            .to_string();
            hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string()
        }
    }
}

/// Decides what apply does to one resource of the file; fields the
/// `ignore` rules cover are neither compared nor part of the observed
/// digest.
pub fn plan_apply(
    desired: &dyn Resource,
    observed: Option<Observed>,
    deployment: &str,
    ignore: &[IgnoreRule],
) -> Change {
    let rules = crate::ignore::rules_for(ignore, &desired.id());
    let mut wanted = desired.fields();
    let mut ignored = Vec::new();
    let mut digest = observed_digest(None, &wanted);
    if let Some(observed) = &observed {
        ignored = crate::ignore::mask(&mut wanted, &observed.fields, &rules);
        let compared = Observed {
            fields: crate::ignore::strip(&observed.fields, &rules),
            ownership: observed.ownership.clone(),
        };
        digest = observed_digest(Some(&compared), &wanted);
    }
    let change = decide_apply(desired, &wanted, observed, deployment);
    if change.action == Action::Refused {
        ignored.clear();
    }
    Change {
        observed: Some(digest),
        ignored,
        ..change
    }
}

fn decide_apply(
    desired: &dyn Resource,
    wanted: &crate::field::Fields,
    observed: Option<Observed>,
    deployment: &str,
) -> Change {
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
    let diffs = diff_fields(wanted, &observed.fields);
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
    use crate::field::Fields;
    use crate::resources::{
        Context, DeleteOptions, FieldDoc, Inventory, Kind, Result as ResourceResult,
    };
    use async_trait::async_trait;
    use serde_json::json;

    /// A kind and a resource with fixed fields, for the pure decisions.
    struct StubKind;
    static STUB: StubKind = StubKind;

    #[async_trait]
    impl ResourceKind for StubKind {
        fn kind(&self) -> Kind {
            Kind("stub")
        }
        fn adopt_setting(&self) -> &'static str {
            "stub.adopt"
        }
        fn fields(&self) -> &'static [FieldDoc] {
            &[]
        }
        fn desired(
            &self,
            _: &crate::spec::Spec,
            _: &Context,
            _: &crate::desired::Refs,
        ) -> Vec<Box<dyn Resource>> {
            Vec::new()
        }
        async fn orphans(
            &self,
            _: &Context,
            _: &crate::spec::Spec,
            _: &Inventory,
        ) -> ResourceResult<Vec<String>> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &Context, _: &str, _: DeleteOptions) -> ResourceResult<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Stub {
        adopt: bool,
        fields: Fields,
    }

    #[async_trait]
    impl Resource for Stub {
        fn kind(&self) -> &'static dyn ResourceKind {
            &STUB
        }
        fn name(&self) -> String {
            "one".into()
        }
        fn adopt(&self) -> bool {
            self.adopt
        }
        fn fields(&self) -> Fields {
            self.fields.clone()
        }
        fn replacement_fields(&self) -> &'static [&'static str] {
            &["path"]
        }
        async fn observe(&self, _: &Context) -> ResourceResult<Option<Observed>> {
            Ok(None)
        }
        async fn create(&self, _: &Context) -> ResourceResult<()> {
            Ok(())
        }
        async fn update(&self, _: &Context, _: &[crate::field::FieldDiff]) -> ResourceResult<()> {
            Ok(())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    fn stub(adopt: bool) -> Stub {
        Stub {
            adopt,
            fields: Fields::from([("memory".into(), json!(128)), ("path".into(), json!("/a/"))]),
        }
    }

    fn observed(ownership: Ownership, memory: u32, path: &str) -> Observed {
        Observed {
            ownership,
            fields: Fields::from([
                ("memory".into(), json!(memory)),
                ("path".into(), json!(path)),
            ]),
        }
    }

    #[test]
    fn apply_creates_updates_replaces_or_leaves_alone() {
        let desired = stub(false);
        assert_eq!(plan_apply(&desired, None, "d", &[]).action, Action::Create);
        let same = plan_apply(
            &desired,
            Some(observed(Ownership::Owned, 128, "/a/")),
            "d",
            &[],
        );
        assert_eq!(same.action, Action::InSync);
        let update = plan_apply(
            &desired,
            Some(observed(Ownership::Owned, 256, "/a/")),
            "d",
            &[],
        );
        assert_eq!(update.action, Action::Update);
        assert_eq!(update.diffs.len(), 1);
        assert_eq!(update.diffs[0].field, "memory");
        assert_eq!(update.diffs[0].observed, json!(256));
        let replace = plan_apply(
            &desired,
            Some(observed(Ownership::Owned, 128, "/b/")),
            "d",
            &[],
        );
        assert_eq!(replace.action, Action::Replace);
        assert_eq!(
            replace.reason.as_deref(),
            Some("path cannot be changed in place")
        );
    }

    #[test]
    fn apply_refuses_what_is_not_owned_unless_adopted() {
        let other = Some(observed(Ownership::OtherDeployment("e".into()), 128, "/a/"));
        let refused = plan_apply(&stub(true), other, "d", &[]);
        assert_eq!(
            refused.action,
            Action::Refused,
            "another deployment's: never"
        );
        assert!(
            refused
                .reason
                .unwrap()
                .contains("belongs to deployment \"e\"")
        );
        let untagged = plan_apply(
            &stub(false),
            Some(observed(Ownership::Unmanaged, 128, "/a/")),
            "d",
            &[],
        );
        assert_eq!(untagged.action, Action::Refused);
        assert!(untagged.reason.unwrap().contains("stub.adopt = true"));
        let adopted = plan_apply(
            &stub(true),
            Some(Observed {
                ownership: Ownership::Unmanaged,
                fields: Fields::from([("memory".into(), json!(128))]),
            }),
            "d",
            &[],
        );
        assert_eq!(adopted.action, Action::Replace, "the path differs too");
    }

    #[test]
    fn destroy_deletes_keeps_or_refuses() {
        let desired = stub(false);
        assert_eq!(
            plan_destroy(&desired, None, "d", None).action,
            Action::Absent
        );
        let owned = || Some(observed(Ownership::Owned, 128, "/a/"));
        assert_eq!(
            plan_destroy(&desired, owned(), "d", None).action,
            Action::Delete
        );
        let kept = plan_destroy(&desired, owned(), "d", Some("kept".into()));
        assert_eq!(
            (kept.action, kept.reason.as_deref()),
            (Action::Retain, Some("kept"))
        );
        let foreign = Some(observed(Ownership::Unmanaged, 128, "/a/"));
        assert_eq!(
            plan_destroy(&desired, foreign, "d", None).action,
            Action::Refused
        );
    }

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
