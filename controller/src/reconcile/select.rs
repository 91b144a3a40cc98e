//! Selectors: `--only KIND[/NAME]` and `--exclude KIND[/NAME]` narrow a
//! plan to some resources. Dependencies are respected: a selected resource
//! that needs one that does not exist yet (and is not selected) is an
//! error naming it; so is deleting a resource that one left in place needs.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{Action, Plan};
use crate::resources::{KINDS, Kind, ResourceId};

/// One `KIND` or `KIND/NAME` (a trailing `*` in NAME matches any rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub kind: Kind,
    pub name: Option<String>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, SelectError> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) if !name.is_empty() => (kind, Some(name.to_string())),
            Some(_) => {
                return Err(SelectError::Pattern(
                    text.to_string(),
                    "a name after `/`".into(),
                ));
            }
            None => (text, None),
        };
        let kind = KINDS
            .iter()
            .map(|registered| registered.kind())
            .find(|registered| registered.as_str() == kind)
            .ok_or_else(|| {
                SelectError::Pattern(
                    text.to_string(),
                    format!(
                        "{kind:?} is not a kind (kinds: {})",
                        KINDS
                            .iter()
                            .map(|kind| kind.kind().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        Ok(Pattern { kind, name })
    }

    fn matches(&self, id: &ResourceId) -> bool {
        id.kind == self.kind
            && match &self.name {
                None => true,
                Some(name) => match name.strip_suffix('*') {
                    Some(prefix) => id.name.starts_with(prefix),
                    None => id.name == *name,
                },
            }
    }
}

/// Which resources a command acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    only: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// Why a selection was refused.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{0:?} is not KIND or KIND/NAME: {1}")]
    Pattern(String, String),
    #[error("the selection cannot be carried out on its own:\n  {}", .0.join("\n  "))]
    Dependencies(Vec<String>),
}

impl Selector {
    pub fn new(only: &[String], exclude: &[String]) -> Result<Selector, SelectError> {
        Ok(Selector {
            only: only
                .iter()
                .map(|text| Pattern::parse(text))
                .collect::<Result<_, _>>()?,
            exclude: exclude
                .iter()
                .map(|text| Pattern::parse(text))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether every resource is selected.
    pub fn is_everything(&self) -> bool {
        self.only.is_empty() && self.exclude.is_empty()
    }

    pub fn selects(&self, id: &ResourceId) -> bool {
        (self.only.is_empty() || self.only.iter().any(|pattern| pattern.matches(id)))
            && !self.exclude.iter().any(|pattern| pattern.matches(id))
    }

    /// The part of `plan` this selects, checked against `dependencies`
    /// (what each resource of the file needs). `destroy`: the plan deletes.
    pub fn narrow(
        &self,
        plan: Plan,
        dependencies: &BTreeMap<ResourceId, Vec<ResourceId>>,
        destroy: bool,
    ) -> Result<Plan, SelectError> {
        if self.is_everything() {
            return Ok(plan);
        }
        let selected: BTreeSet<ResourceId> = plan
            .changes
            .iter()
            .map(|change| change.resource.clone())
            .filter(|id| self.selects(id))
            .collect();
        let action_of: BTreeMap<&ResourceId, Action> = plan
            .changes
            .iter()
            .map(|change| (&change.resource, change.action))
            .collect();
        let mut problems = Vec::new();
        for change in &plan.changes {
            let id = &change.resource;
            if !destroy && selected.contains(id) && change.action.mutates() {
                for needed in dependencies.get(id).into_iter().flatten() {
                    let missing = matches!(
                        action_of.get(needed),
                        Some(Action::Create | Action::Replace)
                    );
                    if missing && !selected.contains(needed) {
                        problems.push(format!(
                            "{id} needs {needed}, which is not in place yet and not selected (add --only {}/{})",
                            needed.kind, needed.name
                        ));
                    }
                }
            }
            if destroy && !selected.contains(id) && action_of.get(id) == Some(&Action::Delete) {
                for needed in dependencies.get(id).into_iter().flatten() {
                    if selected.contains(needed) && action_of.get(needed) == Some(&Action::Delete) {
                        problems.push(format!(
                            "{needed} is needed by {id}, which is not selected and stays (select it too, or exclude {}/{})",
                            needed.kind, needed.name
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(SelectError::Dependencies(problems));
        }
        Ok(Plan {
            changes: plan
                .changes
                .into_iter()
                .filter(|change| selected.contains(&change.resource))
                .collect(),
            ..plan
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Change;

    fn id(kind: &'static str, name: &str) -> ResourceId {
        ResourceId::new(Kind(kind), name)
    }

    fn plan(changes: &[(ResourceId, Action)]) -> Plan {
        Plan {
            deployment: "d".into(),
            changes: changes
                .iter()
                .map(|(id, action)| Change::new(id.clone(), *action))
                .collect(),
        }
    }

    #[test]
    fn patterns_name_a_kind_and_maybe_a_name() {
        assert!(Pattern::parse("function").is_ok());
        assert!(Pattern::parse("function/detect").is_ok());
        assert!(Pattern::parse("functions").is_err());
        assert!(Pattern::parse("function/").is_err());
        let selector = Selector::new(
            &["function/detect*".into()],
            &["function/detect-old".into()],
        )
        .unwrap();
        assert!(selector.selects(&id("function", "detect-new")));
        assert!(!selector.selects(&id("function", "detect-old")));
        assert!(!selector.selects(&id("role", "detect-new")));
    }

    #[test]
    fn a_selected_resource_whose_dependency_is_missing_is_refused() {
        let function = id("function", "f");
        let role = id("role", "r");
        let dependencies = BTreeMap::from([(function.clone(), vec![role.clone()])]);
        let fresh = plan(&[
            (role.clone(), Action::Create),
            (function.clone(), Action::Create),
        ]);
        let selector = Selector::new(&["function".into()], &[]).unwrap();
        let error = selector
            .narrow(fresh.clone(), &dependencies, false)
            .unwrap_err();
        assert!(
            error.to_string().contains("function f needs role r"),
            "{error}"
        );
        // With the role in place, the function alone is fine.
        let placed = plan(&[
            (role.clone(), Action::InSync),
            (function.clone(), Action::Update),
        ]);
        let narrowed = selector.narrow(placed, &dependencies, false).unwrap();
        assert_eq!(narrowed.changes.len(), 1);
        // Deleting the role while the function stays is refused.
        let destroy = plan(&[
            (function.clone(), Action::Delete),
            (role.clone(), Action::Delete),
        ]);
        let roles = Selector::new(&["role".into()], &[]).unwrap();
        let error = roles
            .narrow(destroy.clone(), &dependencies, true)
            .unwrap_err();
        assert!(
            error.to_string().contains("role r is needed by function f"),
            "{error}"
        );
        let functions = Selector::new(&["function".into()], &[]).unwrap();
        assert_eq!(
            functions
                .narrow(destroy, &dependencies, true)
                .unwrap()
                .changes
                .len(),
            1
        );
    }
}
