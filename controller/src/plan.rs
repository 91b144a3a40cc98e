//! The plan: for each resource, what has to happen to reach the desired
//! state, and how that reads for people and for machines.

use std::fmt;

use serde::Serialize;

use crate::detail;
use crate::field::FieldDiff;
use crate::resources::ResourceId;

/// What happens to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// Deleted and created again: a field that forces replacement differs.
    Replace,
    Delete,
    /// Kept on destroy (the bucket, unless told otherwise).
    Retain,
    InSync,
    /// Absent, and nothing is to be done (destroy of what is gone).
    Absent,
    /// Exists but is not this deployment's: the controller will not touch it.
    Refused,
    /// The deployment's, no longer in the file, and kept because pruning is off.
    Orphan,
}

impl Action {
    /// Whether carrying out this action calls a mutating API.
    pub fn mutates(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update | Action::Replace | Action::Delete
        )
    }

    fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Retain => "=",
            Action::InSync | Action::Absent => " ",
            Action::Refused => "!",
            Action::Orphan => "?",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Retain => "retain",
            Action::InSync => "in sync",
            Action::Absent => "absent",
            Action::Refused => "refused",
            Action::Orphan => "orphan",
        }
    }
}

/// The change planned for one resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub resource: ResourceId,
    pub action: Action,
    /// The differing fields (updates and replacements), desired and observed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<FieldDiff>,
    /// Why: the field that forces a replacement, the owner of a refused resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A digest of the resource as observed (its ownership and every
    /// compared field; secrets only as their keyed digest), `absent` when it
    /// does not exist; what a saved plan is checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// Paths (`tags.team`, `environment.FEATURE_FLAG`) that differ but an
    /// ignore rule covers: not drift, not changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

impl Change {
    /// A change with no differing fields and no reason.
    pub fn new(resource: ResourceId, action: Action) -> Change {
        Change {
            resource,
            action,
            diffs: Vec::new(),
            reason: None,
            observed: None,
            ignored: Vec::new(),
        }
    }
}

/// Every planned change of a deployment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub deployment: String,
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether anything differs from the desired state.
    pub fn has_changes(&self) -> bool {
        self.changes
            .iter()
            .any(|change| change.action.mutates() || change.action == Action::Refused)
    }

    /// Whether carrying out the plan deletes or replaces anything.
    pub fn destroys(&self) -> bool {
        self.changes
            .iter()
            .any(|change| matches!(change.action, Action::Delete | Action::Replace))
    }

    /// The resources the controller refuses to touch.
    pub fn refused(&self) -> Vec<&Change> {
        self.changes
            .iter()
            .filter(|change| change.action == Action::Refused)
            .collect()
    }

    /// How many differing fields (or keys) ignore rules set aside.
    pub fn ignored(&self) -> usize {
        self.changes.iter().map(|change| change.ignored.len()).sum()
    }

    /// How many changes of each action, for the summary line.
    pub fn count(&self, action: Action) -> usize {
        self.changes
            .iter()
            .filter(|change| change.action == action)
            .count()
    }
}

/// How a plan is coloured on a terminal (nothing otherwise).
#[derive(Clone, Copy, Debug, Default)]
pub struct Colours {
    pub on: bool,
}

impl Colours {
    fn paint(self, style: anstyle::Style, text: &str) -> String {
        if self.on {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    fn action(self, action: Action, text: &str) -> String {
        let colour = match action {
            Action::Create => anstyle::AnsiColor::Green,
            Action::Update => anstyle::AnsiColor::Yellow,
            Action::Replace | Action::Delete | Action::Refused => anstyle::AnsiColor::Red,
            Action::Retain | Action::Orphan => anstyle::AnsiColor::Cyan,
            Action::InSync | Action::Absent => return text.to_string(),
        };
        self.paint(anstyle::Style::new().fg_color(Some(colour.into())), text)
    }

    fn observed(self, text: &str) -> String {
        self.paint(
            anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Red.into())),
            text,
        )
    }

    fn desired(self, text: &str) -> String {
        self.paint(
            anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Green.into())),
            text,
        )
    }
}

impl Plan {
    /// The plan as people read it, coloured when `colours.on` (a terminal).
    pub fn render(&self, colours: Colours) -> String {
        let mut text = String::new();
        let _ = self.write(&mut text, colours);
        text
    }

    fn write(&self, f: &mut impl fmt::Write, colours: Colours) -> fmt::Result {
        writeln!(f, "Deployment {}:", self.deployment)?;
        for change in &self.changes {
            let head = format!(
                "  {:>3} {:<12} {}",
                change.action.symbol(),
                change.resource.kind.as_str(),
                change.resource.name
            );
            write!(f, "{}", colours.action(change.action, &head))?;
            if matches!(
                change.action,
                Action::InSync | Action::Absent | Action::Retain | Action::Refused | Action::Orphan
            ) {
                write!(f, "  ({})", change.action.verb())?;
            }
            writeln!(f)?;
            if let Some(reason) = &change.reason {
                writeln!(f, "        {reason}")?;
            }
            if !change.ignored.is_empty() {
                writeln!(
                    f,
                    "        ignored (ignore rules): {}",
                    change.ignored.join(", ")
                )?;
            }
            for diff in &change.diffs {
                let top_level = diff.changes.len() == 1 && diff.changes[0].path == diff.field;
                for detail in &diff.changes {
                    let (line, observed, desired) = detail::render(detail, top_level);
                    match (observed, desired) {
                        (Some(observed), Some(desired)) => writeln!(
                            f,
                            "        {line}: {} -> {}",
                            colours.observed(&observed),
                            colours.desired(&desired)
                        )?,
                        (Some(observed), None) => {
                            writeln!(f, "        {line} (was {})", colours.observed(&observed))?
                        }
                        (None, Some(desired)) => {
                            writeln!(f, "        {line} {}", colours.desired(&desired))?
                        }
                        (None, None) => writeln!(f, "        {line}")?,
                    }
                }
            }
        }
        write!(
            f,
            "Plan: {} to create, {} to update, {} to replace, {} to delete, {} in sync",
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Replace),
            self.count(Action::Delete),
            self.count(Action::InSync),
        )?;
        let refused = self.count(Action::Refused);
        if refused > 0 {
            write!(f, ", {refused} refused")?;
        }
        let orphans = self.count(Action::Orphan);
        if orphans > 0 {
            write!(f, ", {orphans} orphaned and kept")?;
        }
        let ignored = self.ignored();
        if ignored > 0 {
            let fields = if ignored == 1 { "field" } else { "fields" };
            write!(f, ", {ignored} differing {fields} ignored")?;
        }
        Ok(())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Colours::default())
    }
}
