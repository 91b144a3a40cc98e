//! Ownership tags: how the controller recognises what belongs to a
//! deployment, without any state file.

use std::collections::BTreeMap;

use serde::Serialize;

/// Tag key naming the tool that manages a resource.
pub const MANAGED_BY_TAG: &str = "managed-by";
/// Value of [`MANAGED_BY_TAG`] on every resource this controller owns.
pub const MANAGED_BY_VALUE: &str = "anomaly-controller";
/// Tag key naming the deployment that owns a resource.
pub const DEPLOYMENT_TAG: &str = "anomaly-controller:deployment";

/// Whose a resource found in AWS is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "owner", content = "deployment")]
pub enum Ownership {
    /// Tagged as this deployment's.
    Owned,
    /// Managed by this controller, but for another deployment.
    OtherDeployment(String),
    /// Not tagged by this controller at all.
    Unmanaged,
}

/// Reads the ownership tags of a resource.
pub fn ownership_of(tags: &BTreeMap<String, String>, deployment: &str) -> Ownership {
    match (tags.get(MANAGED_BY_TAG), tags.get(DEPLOYMENT_TAG)) {
        (Some(manager), Some(owner)) if manager == MANAGED_BY_VALUE => {
            if owner == deployment {
                Ownership::Owned
            } else {
                Ownership::OtherDeployment(owner.clone())
            }
        }
        _ => Ownership::Unmanaged,
    }
}

/// The full tag set of a resource: the user's tags and the ownership tags.
pub fn desired_tags(
    deployment: &str,
    user_tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags = user_tags.clone();
    tags.insert(MANAGED_BY_TAG.to_string(), MANAGED_BY_VALUE.to_string());
    tags.insert(DEPLOYMENT_TAG.to_string(), deployment.to_string());
    tags
}

/// Tags compared for drift: those AWS sets itself (`aws:*`) are left out.
pub fn comparable_tags(tags: BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.into_iter()
        .filter(|(key, _)| !key.to_ascii_lowercase().starts_with("aws:"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_needs_both_tags_and_the_right_deployment() {
        let mine = desired_tags("prod", &BTreeMap::new());
        assert_eq!(ownership_of(&mine, "prod"), Ownership::Owned);
        assert_eq!(
            ownership_of(&mine, "dev"),
            Ownership::OtherDeployment("prod".into())
        );
        let mut half = mine.clone();
        half.remove(MANAGED_BY_TAG);
        assert_eq!(ownership_of(&half, "prod"), Ownership::Unmanaged);
    }
}
