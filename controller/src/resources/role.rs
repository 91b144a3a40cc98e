//! The IAM execution role of a function: its trust policy, its one inline
//! policy, no managed policies, tags. The path cannot change in place, so a
//! new path replaces the role.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use serde_json::{Value, json};

use async_trait::async_trait;

use super::{
    DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceKind, confirmed_orphans,
    owned_by_tags, owned_unless_gone,
};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::{
    Context, Observed, Result, aws_error, changed, done_or, error_code, observed_value, sync_tags,
};
use crate::field::{FieldDiff, Fields, canonical_policy};
use crate::ownership::{comparable_tags, ownership_of};
use crate::spec::RoleSpec;

/// Fields whose change replaces the role.
pub const REPLACEMENT_FIELDS: &[&str] = &["path"];

/// The ARN a role of this spec has (or will have).
pub fn role_arn(ctx: &Context, spec: &RoleSpec) -> String {
    format!(
        "arn:{}:iam::{}:role{}{}",
        ctx.partition, ctx.account_id, spec.path, spec.name
    )
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: RoleSpec,
    pub tags: BTreeMap<String, String>,
    pub trust_policy: String,
    /// Inline policies by name.
    pub policies: BTreeMap<String, String>,
}

impl Desired {
    /// The ARN the role has (or will have).
    pub fn arn(&self, ctx: &Context) -> String {
        role_arn(ctx, &self.spec)
    }

    pub fn fields(&self) -> Fields {
        let policies: BTreeMap<&String, Value> = self
            .policies
            .iter()
            .map(|(name, document)| (name, canonical_policy(document)))
            .collect();
        Fields::from([
            ("path".into(), json!(self.spec.path)),
            ("trust_policy".into(), canonical_policy(&self.trust_policy)),
            ("inline_policies".into(), json!(policies)),
            ("managed_policies".into(), json!([])),
            ("tags".into(), json!(self.tags)),
        ])
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let iam = &ctx.clients.iam;
        let name = &self.spec.name;
        let role = match iam.get_role().role_name(name).send().await {
            Ok(output) => output.role,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(aws_error("GetRole")(error)),
        };
        let Some(role) = role else { return Ok(None) };
        let tags: BTreeMap<String, String> = role
            .tags()
            .iter()
            .map(|tag| (tag.key().to_string(), tag.value().to_string()))
            .collect();
        let tags = comparable_tags(tags);
        let names = iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(aws_error("ListRolePolicies"))?
            .policy_names;
        let mut policies = BTreeMap::new();
        for policy in names {
            let document = iam
                .get_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
                .map_err(aws_error("GetRolePolicy"))?
                .policy_document;
            policies.insert(policy, canonical_policy(&document));
        }
        let managed: Vec<String> = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(aws_error("ListAttachedRolePolicies"))?
            .attached_policies()
            .iter()
            .filter_map(|policy| policy.policy_arn().map(str::to_string))
            .collect();
        let fields = Fields::from([
            ("path".into(), json!(role.path())),
            (
                "trust_policy".into(),
                role.assume_role_policy_document()
                    .map_or(Value::Null, canonical_policy),
            ),
            ("inline_policies".into(), json!(policies)),
            ("managed_policies".into(), json!(managed)),
            ("tags".into(), json!(tags)),
        ]);
        Ok(Some(Observed {
            ownership: ownership_of(&tags, &ctx.deployment),
            fields,
        }))
    }

    fn sdk_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
        Ok(tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect::<std::result::Result<Vec<_>, _>>()?)
    }

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        let result = ctx
            .clients
            .iam
            .create_role()
            .role_name(&self.spec.name)
            .path(&self.spec.path)
            .assume_role_policy_document(&self.trust_policy)
            .description(format!(
                "Execution role of a function of deployment {}",
                ctx.deployment
            ))
            .set_tags(Some(Self::sdk_tags(&self.tags)?))
            .send()
            .await;
        done_or(result, "CreateRole", |e| {
            e.is_entity_already_exists_exception()
        })
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let iam = &ctx.clients.iam;
        let name = &self.spec.name;
        sync_tags(
            diffs,
            |to_set| async move {
                iam.tag_role()
                    .role_name(name)
                    .set_tags(Some(Self::sdk_tags(&to_set)?))
                    .send()
                    .await
                    .map_err(aws_error("TagRole"))?;
                Ok(())
            },
            |to_remove| async move {
                iam.untag_role()
                    .role_name(name)
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagRole"))?;
                Ok(())
            },
        )
        .await?;
        if changed(diffs, "trust_policy") {
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(&self.trust_policy)
                .send()
                .await
                .map_err(aws_error("UpdateAssumeRolePolicy"))?;
        }
        if let Some(observed) = observed_value(diffs, "inline_policies") {
            let observed: BTreeMap<String, Value> =
                serde_json::from_value(observed.clone()).unwrap_or_default();
            for (policy, document) in &self.policies {
                if observed.get(policy) != Some(&canonical_policy(document)) {
                    iam.put_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .policy_document(document)
                        .send()
                        .await
                        .map_err(aws_error("PutRolePolicy"))?;
                }
            }
            for policy in observed
                .keys()
                .filter(|policy| !self.policies.contains_key(*policy))
            {
                iam.delete_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .send()
                    .await
                    .map_err(aws_error("DeleteRolePolicy"))?;
            }
        }
        if let Some(observed) = observed_value(diffs, "managed_policies") {
            let attached: Vec<String> =
                serde_json::from_value(observed.clone()).unwrap_or_default();
            for arn in attached {
                iam.detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(aws_error("DetachRolePolicy"))?;
            }
        }
        Ok(())
    }
}

/// Detaches and deletes every policy of the role, then the role.
async fn delete(ctx: &Context, name: &str) -> Result<()> {
    let iam = &ctx.clients.iam;

    let not_found = |code: Option<&str>| code == Some("NoSuchEntity");
    match iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
    {
        Ok(output) => {
            for policy in output.attached_policies() {
                if let Some(arn) = policy.policy_arn() {
                    iam.detach_role_policy()
                        .role_name(name)
                        .policy_arn(arn)
                        .send()
                        .await
                        .map_err(aws_error("DetachRolePolicy"))?;
                }
            }
        }
        Err(error) if not_found(super::error_code(&error)) => return Ok(()),
        Err(error) => return Err(aws_error("ListAttachedRolePolicies")(error)),
    }
    let names = match iam.list_role_policies().role_name(name).send().await {
        Ok(output) => output.policy_names,
        Err(error) if not_found(super::error_code(&error)) => return Ok(()),
        Err(error) => return Err(aws_error("ListRolePolicies")(error)),
    };
    for policy in names {
        match iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(_) => {}
            Err(error) if not_found(super::error_code(&error)) => {}
            Err(error) => return Err(aws_error("DeleteRolePolicy")(error)),
        }
    }
    match iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(error) if not_found(super::error_code(&error)) => Ok(()),
        Err(error) => Err(aws_error("DeleteRole")(error)),
    }
}

/// The IAM execution role kind.
pub struct RoleKind;
pub static KIND: RoleKind = RoleKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "path",
        doc: "the role's path; a change replaces the role",
    },
    FieldDoc {
        name: "trust_policy",
        doc: "only Lambda may assume it",
    },
    FieldDoc {
        name: "inline_policies",
        doc: "the one inline policy, least privilege",
    },
    FieldDoc {
        name: "managed_policies",
        doc: "must be none",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for RoleKind {
    fn kind(&self) -> Kind {
        Kind("role")
    }

    fn adopt_setting(&self) -> &'static str {
        "functions.<name>.role.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, ctx: &Context, _refs: &Refs) -> Vec<Box<dyn Resource>> {
        let tags = desired_tags(&spec.deployment.name, &spec.tags);
        spec.functions
            .iter()
            .map(|function| {
                let reads_secret = crate::spec::environment::reads_secret(spec, function);
                Box::new(Desired {
                    spec: function.role.clone(),
                    tags: tags.clone(),
                    trust_policy: super::policy::lambda_trust_policy().to_string(),
                    policies: BTreeMap::from([(
                        crate::desired::FUNCTION_POLICY_NAME.to_string(),
                        super::policy::function_policy(
                            &ctx.partition,
                            &ctx.region,
                            &ctx.account_id,
                            function,
                            &spec.bucket,
                            reads_secret.map(|secret| secret.name.as_str()),
                        )
                        .to_string(),
                    )]),
                }) as Box<dyn Resource>
            })
            .collect()
    }

    /// IAM roles are not in the tagging API: the roles under the paths the
    /// file gives its roles (and the default path) are listed, and the tags
    /// of those Lambda may assume that the file does not name are read. A
    /// role an earlier file put under a path the file no longer uses is
    /// not found (README, "Pruning").
    async fn orphans(
        &self,
        ctx: &Context,
        spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        let mut paths: Vec<&str> = spec
            .functions
            .iter()
            .map(|function| function.role.path.as_str())
            .chain([crate::spec::DEFAULT_ROLE_PATH])
            .collect();
        paths.sort_unstable();
        paths.dedup();
        let mut candidates = Vec::new();
        for path in paths {
            candidates.extend(lambda_roles_under(ctx, path).await?);
        }
        let iam = &ctx.clients.iam;
        confirmed_orphans(self.kind(), inventory, candidates, |name| async move {
            owned_unless_gone(
                iam.list_role_tags().role_name(name).send().await,
                "ListRoleTags",
                |error| error_code(error) == Some("NoSuchEntity"),
                |output| {
                    owned_by_tags(
                        ctx,
                        output
                            .tags()
                            .iter()
                            .map(|tag| (tag.key().to_string(), tag.value().to_string())),
                    )
                },
            )
        })
        .await
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        delete(ctx, name).await
    }
}

/// The names of the roles under `path` that Lambda may assume, every page.
async fn lambda_roles_under(ctx: &Context, path: &str) -> Result<Vec<String>> {
    let roles = ctx
        .clients
        .iam
        .list_roles()
        .path_prefix(path)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error("ListRoles"))?;
    Ok(roles
        .iter()
        .filter(|role| {
            role.assume_role_policy_document().is_some_and(|document| {
                percent_encoding::percent_decode_str(document)
                    .decode_utf8_lossy()
                    .contains("lambda.amazonaws.com")
            })
        })
        .map(|role| role.role_name().to_string())
        .collect())
}

delegated_resource!(
    Desired,
    name: |this| this.spec.name.clone(),
    fn adopt(&self) -> bool {
        self.spec.adopt
    }

    fn replacement_fields(&self) -> &'static [&'static str] {
        REPLACEMENT_FIELDS
    }
);
