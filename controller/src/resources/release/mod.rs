//! A function's release: its alias (the kind `alias`, named
//! `function:alias`), which everything invokes, and the published versions
//! behind it. A change of the function's code or configuration is released
//! as a new version, moved to all at once or in canary or linear steps
//! watched by the release's alarms (`shift`); old versions beyond
//! `keep_versions` are deleted (`versions`); where a release stands is
//! written in the alias itself (`journal`).
//!
//! Compared fields: the image digest and the configuration fingerprint of
//! the version the alias sends all its traffic to, the alias's routing
//! weights (a shift in progress), and the versions due for deletion.
//!
//! Lambda API reference: `GetAlias`, `CreateAlias`, `UpdateAlias` (at most
//! one additional version, weights 0 to 1, both versions published;
//! `RevisionId` updates only the alias as it was read), `DeleteAlias`
//! (<https://docs.aws.amazon.com/lambda/latest/api/API_UpdateAlias.html>,
//! <https://docs.aws.amazon.com/lambda/latest/dg/configuring-alias-routing.html>).

pub mod journal;
pub mod shift;
pub mod versions;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use serde_json::json;

use super::{
    Context, DeleteOptions, FieldDoc, Inventory, Kind, Observed, Resource, ResourceId,
    ResourceKind, Result, aws_error, changed, done_or,
};
use crate::desired::Refs;
use crate::field::{FieldDiff, Fields};
use crate::ownership::Ownership;
use crate::spec::{ReleaseSpec, Spec};
use journal::Journal;

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The function's name.
    pub function: String,
    pub release: ReleaseSpec,
    /// The fields a version of the function freezes, as the file wants
    /// them (no image when the image is left to `apply`).
    pub version_fields: Fields,
    /// The image as a release names it ([`versions::image_reference`]),
    /// when known.
    pub image: Option<String>,
    pub alarm_names: Vec<String>,
    pub adopt: bool,
    /// The function's ignore rules: what they cover is not part of the
    /// configuration a release compares.
    pub ignored: Vec<crate::ignore::IgnoreRule>,
}

/// An alias as read from Lambda.
#[derive(Clone, Debug, PartialEq)]
pub struct AliasState {
    /// The version that takes the traffic the routing weights leave.
    pub version: String,
    /// The additional version and its share, during a shift.
    pub weights: BTreeMap<String, f64>,
    pub description: String,
    pub revision: Option<String>,
}

impl AliasState {
    pub fn journal(&self) -> Option<Journal> {
        Journal::parse(&self.description)
    }
}

/// The alias `alias` of `function`; `None` when it (or the function) does
/// not exist.
pub async fn get_alias(ctx: &Context, function: &str, alias: &str) -> Result<Option<AliasState>> {
    match ctx
        .clients
        .lambda
        .get_alias()
        .function_name(function)
        .name(alias)
        .send()
        .await
    {
        Ok(output) => Ok(Some(AliasState {
            version: output.function_version().unwrap_or_default().to_string(),
            weights: output
                .routing_config()
                .and_then(|routing| routing.additional_version_weights())
                .map(|weights| weights.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default(),
            description: output.description().unwrap_or_default().to_string(),
            revision: output.revision_id().map(str::to_string),
        })),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(aws_error("GetAlias")(error)),
    }
}

/// Points an existing alias at `version` with these weights (none: all
/// traffic to `version`) and records `journal`; with `revision`, only if
/// the alias is still as it was read (`PreconditionFailedException`
/// otherwise, a conflict). Gives the alias's new revision.
pub async fn point_alias(
    ctx: &Context,
    function: &str,
    alias: &str,
    version: &str,
    weights: &BTreeMap<String, f64>,
    journal: &Journal,
    revision: Option<&str>,
) -> Result<Option<String>> {
    let weights: HashMap<String, f64> = weights.clone().into_iter().collect();
    let output = ctx
        .clients
        .lambda
        .update_alias()
        .function_name(function)
        .name(alias)
        .function_version(version)
        .description(journal.render())
        .routing_config(
            AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some(weights))
                .build(),
        )
        .set_revision_id(revision.map(str::to_string))
        .send()
        .await
        .map_err(aws_error("UpdateAlias"))?;
    Ok(output.revision_id().map(str::to_string))
}

impl Desired {
    pub fn fields(&self) -> Fields {
        let mut fields = Fields::from([
            (
                "configuration".into(),
                json!(versions::configuration_fingerprint(
                    &self.version_fields,
                    &self.ignored
                )),
            ),
            ("routing".into(), json!({})),
            ("prunable_versions".into(), json!([])),
        ]);
        if let Some(image) = &self.image {
            fields.insert("image".into(), json!(image));
        }
        fields
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let Some(alias) = get_alias(ctx, &self.function, &self.release.alias).await? else {
            return Ok(None);
        };
        let target = match ctx
            .clients
            .lambda
            .get_function()
            .function_name(&self.function)
            .qualifier(&alias.version)
            .send()
            .await
        {
            Ok(output) => output.configuration,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => return Err(aws_error("GetFunction")(error)),
        };
        let (configuration, image) = match &target {
            Some(version) => {
                let (image, configuration) = versions::held_by(version, &self.ignored);
                (json!(configuration), json!(image))
            }
            None => (json!(null), json!(null)),
        };
        let prunable =
            versions::prunable_now(ctx, &self.function, self.release.keep_versions).await?;
        let ownership = if alias.description.starts_with(journal::PREFIX) {
            Ownership::Owned
        } else {
            Ownership::Unmanaged
        };
        Ok(Some(Observed {
            ownership,
            fields: Fields::from([
                ("image".into(), image),
                ("configuration".into(), configuration),
                ("routing".into(), json!(alias.weights)),
                ("prunable_versions".into(), json!(prunable)),
            ]),
        }))
    }

    /// The first release: the version of what the function runs now, and
    /// the alias pointing at it with all traffic (nothing to protect yet).
    pub async fn create(&self, ctx: &Context) -> Result<()> {
        shift::release(ctx, self).await
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        if ["image", "configuration", "routing"]
            .iter()
            .any(|field| changed(diffs, field))
        {
            shift::release(ctx, self).await?;
        }
        versions::prune(ctx, &self.function, self.release.keep_versions).await?;
        Ok(())
    }
}

/// The release alias kind.
pub struct AliasKind;
pub static KIND: AliasKind = AliasKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "image",
        doc: "the image (digest) of the version taking all traffic",
    },
    FieldDoc {
        name: "configuration",
        doc: "a fingerprint of that version's configuration",
    },
    FieldDoc {
        name: "routing",
        doc: "the new version's share while traffic shifts",
    },
    FieldDoc {
        name: "prunable_versions",
        doc: "versions beyond `keep_versions` with no alias weight",
    },
];

#[async_trait]
impl ResourceKind for AliasKind {
    fn kind(&self) -> Kind {
        Kind("alias")
    }

    fn adopt_setting(&self) -> &'static str {
        "functions.<name>.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, ctx: &Context, refs: &Refs) -> Vec<Box<dyn Resource>> {
        super::function::KIND
            .desired(spec, ctx, refs)
            .iter()
            .filter_map(|resource| {
                let function = resource
                    .as_any()
                    .downcast_ref::<super::function::Desired>()?;
                let release = function.spec.release.clone()?;
                Some(Box::new(Desired {
                    function: function.spec.name.clone(),
                    alarm_names: release
                        .alarms
                        .iter()
                        .map(|alarm| alarm.name.clone())
                        .collect(),
                    release,
                    version_fields: function.version_fields(),
                    image: (!function.spec.image_uri.is_empty())
                        .then(|| versions::image_reference(&function.spec.image_uri)),
                    adopt: function.spec.adopt,
                    ignored: crate::ignore::rules_for(&spec.ignore, &resource.id())
                        .into_iter()
                        .cloned()
                        .collect(),
                }) as Box<dyn Resource>)
            })
            .collect()
    }

    /// The controller's aliases (by their description) on the functions the
    /// file names that the file no longer names; the aliases of a function
    /// the file no longer names go with it.
    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        let function_kind = super::function::KIND.kind();
        let listed = futures::future::join_all(
            inventory
                .known
                .iter()
                .filter(|id| id.kind == function_kind)
                .map(|id| async move { (&id.name, versions::aliases(ctx, &id.name).await) }),
        )
        .await;
        let mut orphans = Vec::new();
        for (function, aliases) in listed {
            let aliases = match aliases {
                Ok(aliases) => aliases,
                Err(error) if error.kind() == super::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            for alias in aliases {
                let (Some(name), Some(description)) = (alias.name(), alias.description()) else {
                    continue;
                };
                let id = format!("{function}:{name}");
                if description.starts_with(journal::PREFIX) && !inventory.is_known(self.kind(), &id)
                {
                    orphans.push(id);
                }
            }
        }
        Ok(orphans)
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        let Some((function, alias)) = name.split_once(':') else {
            return Err(super::Error::Failed(format!(
                "{name:?} is not <function>:<alias>"
            )));
        };
        done_or(
            ctx.clients
                .lambda
                .delete_alias()
                .function_name(function)
                .name(alias)
                .send()
                .await,
            "DeleteAlias",
            |e| {
                aws_smithy_types::error::metadata::ProvideErrorMetadata::code(e)
                    == Some("ResourceNotFoundException")
            },
        )
    }
}

delegated_resource!(
    Desired,
    name: |this| format!("{}:{}", this.function, this.release.alias),
    fn adopt(&self) -> bool {
        self.adopt
    }

    fn dependencies(&self) -> Vec<ResourceId> {
        let mut needs = vec![ResourceId::new(super::function::KIND.kind(), &self.function)];
        needs.extend(
            self.alarm_names
                .iter()
                .map(|alarm| ResourceId::new(super::alarm::KIND.kind(), alarm)),
        );
        needs
    }
);
