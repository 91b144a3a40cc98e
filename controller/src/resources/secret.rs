//! The Panther API token in Secrets Manager. The value comes from an
//! environment variable at apply time and is never printed, logged or put
//! in a plan: drift in the value is found by comparing HMAC-SHA256 digests
//! (RFC 2104) keyed by 32 random bytes drawn once per process and held only
//! in its memory. A plain hash of the token in a plan or a log could be
//! checked offline against guessed tokens; these digests cannot, and they
//! differ from one run of the controller to the next (within one run, equal
//! values have equal digests, which is all a comparison needs).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use aws_sdk_secretsmanager::types::Tag;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use async_trait::async_trait;

use super::{
    DeleteOptions, FieldDoc, Inventory, Kind, Resource, ResourceKind, confirmed_orphans,
    owned_by_tags,
};
use crate::desired::Refs;
use crate::ownership::desired_tags;
use crate::spec::Spec;

use super::{Context, Observed, Result, aws_error, changed, done_or, sync_tags};
use crate::field::{FieldDiff, Fields};
use crate::ownership::{comparable_tags, ownership_of};
use crate::spec::SecretSpec;

/// A secret value: compared and sent, never shown (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> SecretValue {
        SecretValue(value)
    }

    /// What plans show instead of the value: a short keyed digest.
    pub fn digest(&self) -> String {
        digest_of(&self.0)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<hidden>)")
    }
}

/// The key of this process's digests: random, never written anywhere.
fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// How every keyed digest of a secret value starts.
pub const DIGEST_PREFIX: &str = "hmac-sha256:";

fn digest_of(value: &str) -> String {
    let mac = hmac_sha256(process_key(), value.as_bytes());
    format!("{DIGEST_PREFIX}{}", &hex::encode(mac)[..16])
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub spec: SecretSpec,
    pub tags: BTreeMap<String, String>,
    /// `None` when the environment variable is not set: the stored value is
    /// then left as it is, and a create is refused.
    pub value: Option<SecretValue>,
}

impl Desired {
    pub fn fields(&self) -> Fields {
        let mut fields = Fields::from([
            ("description".into(), json!(self.spec.description)),
            ("scheduled_for_deletion".into(), json!(false)),
            ("tags".into(), json!(self.tags)),
        ]);
        if let Some(value) = &self.value {
            fields.insert("value".into(), json!(value.digest()));
        }
        fields
    }

    pub async fn observe(&self, ctx: &Context) -> Result<Option<Observed>> {
        let secrets = &ctx.clients.secrets;
        let described = match secrets
            .describe_secret()
            .secret_id(&self.spec.name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(aws_error("DescribeSecret")(error)),
        };
        let tags: BTreeMap<String, String> = described
            .tags()
            .iter()
            .filter_map(|tag| {
                Some((
                    tag.key()?.to_string(),
                    tag.value().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        let tags = comparable_tags(tags);
        let ownership = ownership_of(&tags, &ctx.deployment);
        let scheduled = described.deleted_date().is_some();
        let mut fields = Fields::from([
            (
                "description".into(),
                json!(described.description().unwrap_or_default()),
            ),
            ("scheduled_for_deletion".into(), json!(scheduled)),
            ("tags".into(), json!(tags)),
        ]);
        // The value is read only to compare digests, and only when there is
        // a desired value to compare with and the secret is ours.
        if self.value.is_some() && !scheduled && ownership == crate::ownership::Ownership::Owned {
            let current = match secrets
                .get_secret_value()
                .secret_id(&self.spec.name)
                .send()
                .await
            {
                Ok(output) => output.secret_string().map(digest_of),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    None
                }
                Err(error) => return Err(aws_error("GetSecretValue")(error)),
            };
            fields.insert("value".into(), json!(current));
        }
        Ok(Some(Observed { ownership, fields }))
    }

    fn value(&self) -> Result<&str> {
        self.value
            .as_ref()
            .map(|value| value.0.as_str())
            .ok_or_else(|| {
                super::Error::Failed(format!(
                    "the environment variable {} is not set; it holds the value of secret {}",
                    self.spec.value_from_env, self.spec.name
                ))
            })
    }

    fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
        tags.iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect()
    }

    pub async fn create(&self, ctx: &Context) -> Result<()> {
        let value = self.value()?;
        let result = ctx
            .clients
            .secrets
            .create_secret()
            .name(&self.spec.name)
            .description(&self.spec.description)
            .secret_string(value)
            .set_tags(Some(Self::sdk_tags(&self.tags)))
            .send()
            .await;
        done_or(result, "CreateSecret", |e| e.is_resource_exists_exception())
    }

    pub async fn update(&self, ctx: &Context, diffs: &[FieldDiff]) -> Result<()> {
        let secrets = &ctx.clients.secrets;
        let name = &self.spec.name;
        if changed(diffs, "scheduled_for_deletion") {
            secrets
                .restore_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(aws_error("RestoreSecret"))?;
        }
        sync_tags(
            diffs,
            |to_set| async move {
                secrets
                    .tag_resource()
                    .secret_id(name)
                    .set_tags(Some(Self::sdk_tags(&to_set)))
                    .send()
                    .await
                    .map_err(aws_error("TagResource"))?;
                Ok(())
            },
            |to_remove| async move {
                secrets
                    .untag_resource()
                    .secret_id(name)
                    .set_tag_keys(Some(to_remove))
                    .send()
                    .await
                    .map_err(aws_error("UntagResource"))?;
                Ok(())
            },
        )
        .await?;
        if changed(diffs, "description") {
            secrets
                .update_secret()
                .secret_id(name)
                .description(&self.spec.description)
                .send()
                .await
                .map_err(aws_error("UpdateSecret"))?;
        }
        if changed(diffs, "value")
            || changed(diffs, "scheduled_for_deletion") && self.value.is_some()
        {
            secrets
                .put_secret_value()
                .secret_id(name)
                .secret_string(self.value()?)
                .send()
                .await
                .map_err(aws_error("PutSecretValue"))?;
        }
        Ok(())
    }

    /// The ARN of the secret, if it exists.
    pub async fn arn(ctx: &Context, name: &str) -> Result<Option<String>> {
        match ctx
            .clients
            .secrets
            .describe_secret()
            .secret_id(name)
            .send()
            .await
        {
            Ok(output) => Ok(output.arn().map(str::to_string)),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(aws_error("DescribeSecret")(error)),
        }
    }
}

/// Schedules the deletion with AWS's 7-day recovery window; an apply
/// within that window restores the secret.
async fn delete(ctx: &Context, name: &str) -> Result<()> {
    done_or(
        ctx.clients
            .secrets
            .delete_secret()
            .secret_id(name)
            .recovery_window_in_days(7)
            .send()
            .await,
        "DeleteSecret",
        |e| e.is_resource_not_found_exception(),
    )
}

/// The Secrets Manager secret kind.
pub struct SecretKind;
pub static KIND: SecretKind = SecretKind;

const FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "description",
        doc: "the secret's description",
    },
    FieldDoc {
        name: "value",
        doc: "compared as a keyed digest, never the value",
    },
    FieldDoc {
        name: "scheduled_for_deletion",
        doc: "a secret pending deletion is restored",
    },
    FieldDoc {
        name: "tags",
        doc: "user and ownership tags",
    },
];

#[async_trait]
impl ResourceKind for SecretKind {
    fn kind(&self) -> Kind {
        Kind("secret")
    }

    fn adopt_setting(&self) -> &'static str {
        "panther_secret.adopt"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn desired(&self, spec: &Spec, _ctx: &Context, refs: &Refs) -> Vec<Box<dyn Resource>> {
        spec.panther_secret
            .iter()
            .map(|secret| {
                Box::new(Desired {
                    spec: secret.clone(),
                    tags: desired_tags(&spec.deployment.name, &spec.tags),
                    value: refs.secret_value.clone(),
                }) as Box<dyn Resource>
            })
            .collect()
    }

    async fn orphans(
        &self,
        ctx: &Context,
        _spec: &Spec,
        inventory: &Inventory,
    ) -> Result<Vec<String>> {
        // A secret's ARN ends in `-` and six random characters.
        let names = inventory
            .tagged("secretsmanager", "secret:")
            .into_iter()
            .filter_map(|name| {
                let cut = name.len().checked_sub(7)?;
                (name.as_bytes().get(cut) == Some(&b'-')).then(|| name[..cut].to_string())
            })
            .collect();
        confirmed_orphans(self.kind(), inventory, names, |name| async move {
            match ctx
                .clients
                .secrets
                .describe_secret()
                .secret_id(name)
                .send()
                .await
            {
                Ok(output) => Ok(output.deleted_date().is_none()
                    && owned_by_tags(
                        ctx,
                        output.tags().iter().map(|tag| {
                            (
                                tag.key().unwrap_or_default().to_string(),
                                tag.value().unwrap_or_default().to_string(),
                            )
                        }),
                    )),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    Ok(false)
                }
                Err(error) => Err(aws_error("DescribeSecret")(error)),
            }
        })
        .await
    }

    async fn delete(&self, ctx: &Context, name: &str, _options: DeleteOptions) -> Result<()> {
        delete(ctx, name).await
    }
}

delegated_resource!(
    Desired,
    name: |this| this.spec.name.clone(),
    fn adopt(&self) -> bool {
        self.spec.adopt
    }

    async fn lookup(&self, ctx: &Context, refs: &mut Refs) -> Result<()> {
        refs.secret_arn = Desired::arn(ctx, &self.spec.name).await?;
        Ok(())
    }
);

#[cfg(test)]
mod tests {
    use sha2::Digest;

    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test cases 1, 2 and 6 (a key longer than the block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hex::encode(hmac_sha256(key, message)), expected);
        }
    }

    #[test]
    fn digests_compare_values_without_revealing_them() {
        let token = "pnthr-example-token-0123456789";
        let value = SecretValue::new(token.to_string());
        let digest = value.digest();
        assert!(digest.starts_with("hmac-sha256:"), "{digest}");
        assert_eq!(digest, SecretValue::new(token.to_string()).digest());
        assert_ne!(digest, SecretValue::new(format!("{token}x")).digest());
        let plain = hex::encode(Sha256::digest(token.as_bytes()));
        assert!(!digest.contains(&plain[..8]), "{digest} holds a plain hash");
        assert!(!digest.contains(token));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let token = "pnthr-example-token-0123456789";
        let desired = Desired {
            spec: SecretSpec {
                name: "d/panther-api-token".into(),
                description: String::new(),
                value_from_env: "PANTHER_API_TOKEN".into(),
                function: "training".into(),
                adopt: false,
            },
            tags: BTreeMap::new(),
            value: Some(SecretValue::new(token.to_string())),
        };
        let refs = crate::desired::Refs {
            secret_value: desired.value.clone(),
            ..Default::default()
        };
        for shown in [
            format!("{desired:?}"),
            format!("{desired:#?}"),
            format!("{refs:?}"),
            format!("{:?}", desired.fields()),
        ] {
            assert!(!shown.contains(token), "{shown}");
            assert!(!shown.contains("pnthr"), "{shown}");
        }
    }
}
