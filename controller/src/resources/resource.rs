//! The two traits every kind of resource implements: [`ResourceKind`], what
//! a kind is (its name, its fields, which resources a file implies, how the
//! deployment's resources of that kind are found, how one is deleted by
//! name), and [`Resource`], one resource of the desired state (observe,
//! create, update, delete, its dependencies). The engine in `reconcile`
//! works through these traits only and names no kind.

use std::any::Any;
use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use super::{Context, Observed, Result};
use crate::desired::Refs;
use crate::field::{FieldDiff, Fields};
use crate::spec::Spec;

/// The kind of a resource, by its name (`function`, `rest_api`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Kind(pub &'static str);

impl Kind {
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Names one resource: its kind and its name in plans.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceId {
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: Kind, name: impl Into<String>) -> ResourceId {
        ResourceId {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

/// How a delete goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// The bucket only: every object version goes first.
    pub delete_contents: bool,
}

/// One managed field of a kind and what it means (the README's tables are
/// checked against these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDoc {
    pub name: &'static str,
    pub doc: &'static str,
}

/// What a kind of resource is. One value per kind, registered in
/// [`super::KINDS`].
#[async_trait]
pub trait ResourceKind: Send + Sync {
    /// The kind's name in plans, logs and metrics.
    fn kind(&self) -> Kind;

    /// The setting that lets an existing resource without ownership tags be
    /// taken over (for refusal messages).
    fn adopt_setting(&self) -> &'static str;

    /// The fields compared for drift, with what each means.
    fn fields(&self) -> &'static [FieldDoc];

    /// The fields an ignore rule may name ([`crate::ignore`]): those this
    /// kind's update changes on their own, without sending the others.
    /// By default its tags, when it has any.
    fn ignorable(&self) -> &'static [&'static str] {
        if self.fields().iter().any(|field| field.name == "tags") {
            &["tags"]
        } else {
            &[]
        }
    }

    /// The resources of this kind the file implies, with every derived
    /// value filled in (`refs`: what AWS chose, as far as it is known).
    fn desired(&self, spec: &Spec, ctx: &Context, refs: &Refs) -> Vec<Box<dyn Resource>>;

    /// The orphans of this kind: resources that exist and carry this
    /// deployment's ownership tags (confirmed by the service itself, not
    /// only by the tagging API, which lists deleted resources for a while)
    /// but that the file no longer names (`inventory.known`).
    async fn orphans(
        &self,
        ctx: &Context,
        spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>>;

    /// Deletes the owned resource of this kind with this name; one already
    /// gone is done.
    async fn delete(&self, ctx: &Context, name: &str, options: DeleteOptions) -> Result<()>;

    /// Why an owned resource the file no longer names is kept rather than
    /// deleted (`None`: it is deleted).
    fn keep_orphan(&self, _spec: &Spec, _name: &str) -> Option<String> {
        None
    }

    /// Why destroy keeps a resource of this kind (`None`: it is deleted).
    fn keep_on_destroy(&self, _spec: &Spec, _name: &str) -> Option<String> {
        None
    }

    /// The options a delete of an orphan of this kind uses.
    fn orphan_delete_options(&self, _spec: &Spec) -> DeleteOptions {
        DeleteOptions::default()
    }
}

/// One resource of the desired state.
#[async_trait]
pub trait Resource: Send + Sync + fmt::Debug {
    /// The kind this resource is of.
    fn kind(&self) -> &'static dyn ResourceKind;

    /// Its name in plans (the AWS name, or `function:statement` for a permission).
    fn name(&self) -> String;

    fn id(&self) -> ResourceId {
        ResourceId::new(self.kind().kind(), self.name())
    }

    /// Whether an existing resource without ownership tags may be taken over.
    fn adopt(&self) -> bool {
        false
    }

    /// The desired value of every managed field.
    fn fields(&self) -> Fields;

    /// Fields AWS cannot change in place: a difference replaces the resource.
    fn replacement_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The resources that must exist before this one is created or changed
    /// (and that are deleted after it).
    fn dependencies(&self) -> Vec<ResourceId> {
        Vec::new()
    }

    /// Records the values AWS chose for this resource (an id, an ARN) that
    /// other resources refer to.
    async fn lookup(&self, _ctx: &Context, _refs: &mut Refs) -> Result<()> {
        Ok(())
    }

    /// Checks what AWS requires outside the resource before it can be made
    /// as desired (an account-wide setting); run when an apply is planned,
    /// never for destroy. An error stops the plan before any change.
    async fn preflight(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }

    /// Reads the resource from AWS; `None` when it does not exist.
    async fn observe(&self, ctx: &Context) -> Result<Option<Observed>>;

    /// Creates the resource with as much of its configuration as the create
    /// call takes; an "already exists" answer (a retried create) is success.
    async fn create(&self, ctx: &Context) -> Result<()>;

    /// Changes the differing fields in place, one call per group of fields.
    async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()>;

    /// Deletes the resource; "not found" is success.
    async fn delete(&self, ctx: &Context, options: DeleteOptions) -> Result<()> {
        self.kind().delete(ctx, &self.name(), options).await
    }

    /// The concrete type, for callers that need a kind's own data (the
    /// API's invoke URLs).
    fn as_any(&self) -> &dyn Any;
}

/// What the discovery of a deployment's resources shares between kinds:
/// the ARNs that carry the deployment's tags (one paginated Resource Groups
/// Tagging API query) and the names the file gives.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Every ARN tagged as this deployment's, as the tagging API lists it.
    pub tagged_arns: Vec<String>,
    /// The resources the file names, by id.
    pub known: std::collections::BTreeSet<ResourceId>,
}

impl Inventory {
    /// The resource part of each tagged ARN of `service` whose resource part
    /// starts with `prefix` (`function:`, `log-group:`, ...), prefix removed.
    pub fn tagged(&self, service: &str, prefix: &str) -> Vec<String> {
        self.tagged_arns
            .iter()
            .filter_map(|arn| {
                let mut parts = arn.splitn(6, ':');
                let (_, _, arn_service, _, _, resource) = (
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                );
                (arn_service == service)
                    .then(|| resource.strip_prefix(prefix).map(str::to_string))
                    .flatten()
            })
            .collect()
    }

    /// Whether the file names this resource.
    pub fn is_known(&self, kind: Kind, name: &str) -> bool {
        self.known.contains(&ResourceId::new(kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_arns_are_split_by_service_and_resource_type() {
        let inventory = Inventory {
            tagged_arns: vec![
                "arn:aws:lambda:eu-west-1:123456789012:function:detect".into(),
                "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/detect".into(),
                "arn:aws:s3:::models".into(),
                "arn:aws:apigateway:eu-west-1::/restapis/a1b2c3".into(),
                "arn:aws:apigateway:eu-west-1::/usageplans/u1".into(),
                "arn:aws:events:eu-west-1:123456789012:rule/nightly".into(),
            ],
            ..Inventory::default()
        };
        assert_eq!(inventory.tagged("lambda", "function:"), ["detect"]);
        assert_eq!(
            inventory.tagged("logs", "log-group:"),
            ["/aws/lambda/detect"]
        );
        assert_eq!(inventory.tagged("s3", ""), ["models"]);
        assert_eq!(inventory.tagged("apigateway", "/restapis/"), ["a1b2c3"]);
        assert_eq!(inventory.tagged("apigateway", "/usageplans/"), ["u1"]);
        assert_eq!(inventory.tagged("events", "rule/"), ["nightly"]);
        assert!(inventory.tagged("lambda", "layer:").is_empty());
    }
}
