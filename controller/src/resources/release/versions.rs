//! A function's published versions: what identifies one (the digest of its
//! image and a fingerprint of its configuration, written in its
//! description when it is published), which are kept, and deleting the
//! rest.
//!
//! Lambda API reference: `PublishVersion` publishes nothing when `$LATEST`
//! is unchanged since the last version and answers with that version; its
//! `CodeSha256` and `RevisionId` make it publish only what was read
//! (<https://docs.aws.amazon.com/lambda/latest/api/API_PublishVersion.html>).
//! `ListVersionsByFunction` pages with `Marker` and lists `$LATEST` too
//! (<https://docs.aws.amazon.com/lambda/latest/api/API_ListVersionsByFunction.html>).
//! `DeleteFunction` with a `Qualifier` deletes one version, never one an
//! alias references (<https://docs.aws.amazon.com/lambda/latest/api/API_DeleteFunction.html>).

use std::collections::BTreeSet;

use aws_sdk_lambda::types::{AliasConfiguration, FunctionConfiguration};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::field::Fields;
use crate::ignore::IgnoreRule;
use crate::resources::{Context, Result, aws_error, done_or};

/// Every version description the controller writes starts with this.
pub const DESCRIPTION_PREFIX: &str = "anomaly-controller release ";
/// Hex digits of a fingerprint.
const FINGERPRINT_DIGITS: usize = 12;

fn fingerprint_of(value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    hex::encode(digest)[..FINGERPRINT_DIGITS].to_string()
}

/// The fingerprint of a version's configuration: every field it freezes
/// but the image, the description (a published version's description is
/// the one `PublishVersion` gives it, not the function's) and what the
/// function's ignore rules cover.
pub fn configuration_fingerprint(fields: &Fields, ignored: &[IgnoreRule]) -> String {
    let rules: Vec<&IgnoreRule> = ignored.iter().collect();
    let mut configuration = crate::ignore::strip(fields, &rules);
    configuration.remove("image_uri");
    configuration.remove("description");
    fingerprint_of(&serde_json::to_value(configuration).unwrap_or_default())
}

/// The digest part (`sha256:...`) of an image URI pinned by digest.
pub fn image_digest(image_uri: &str) -> Option<&str> {
    image_uri
        .rsplit_once('@')
        .map(|(_, digest)| digest)
        .filter(|digest| digest.starts_with("sha256:"))
}

/// The longest image reference written as it is; a longer one is written
/// as a fingerprint, so that a version's description stays within
/// Lambda's 256 characters.
const LONGEST_IMAGE_REFERENCE: usize = 160;

/// How a release names its image: the digest of an image pinned by digest
/// (`sha256:...`), else the URI as given (a tag), or its fingerprint
/// (`uri-sha256:...`) when too long to write in a description.
pub fn image_reference(image_uri: &str) -> String {
    match image_digest(image_uri) {
        Some(digest) => digest.to_string(),
        None if image_uri.len() <= LONGEST_IMAGE_REFERENCE => image_uri.to_string(),
        None => format!(
            "uri-sha256:{}",
            fingerprint_of(&Value::String(image_uri.to_string()))
        ),
    }
}

/// What identifies a release: its image and configuration together.
pub fn release_id(image: &str, configuration: &str) -> String {
    fingerprint_of(&Value::String(format!("{image} {configuration}")))
}

/// The description a published version gets.
pub fn version_description(release: &str, image: &str, configuration: &str) -> String {
    format!("{DESCRIPTION_PREFIX}{release}: image {image}, configuration {configuration}")
}

/// The image reference a version's description records (versions the
/// controller published).
pub fn image_in_description(description: &str) -> Option<&str> {
    let rest = description.strip_prefix(DESCRIPTION_PREFIX)?;
    let (_, rest) = rest.split_once(": image ")?;
    let (image, _) = rest.rsplit_once(", configuration ")?;
    Some(image)
}

/// What a published version holds: the image its description records
/// (versions the controller published) and the fingerprint of its
/// configuration.
pub fn held_by<'a>(
    version: &'a FunctionConfiguration,
    ignored: &[IgnoreRule],
) -> (Option<&'a str>, String) {
    let fields = crate::resources::function::version_fields(version, None);
    (
        version.description().and_then(image_in_description),
        configuration_fingerprint(&fields, ignored),
    )
}

/// Every published version of a function (not `$LATEST`), every page.
pub async fn published(ctx: &Context, function: &str) -> Result<Vec<FunctionConfiguration>> {
    let mut pages = ctx
        .clients
        .lambda
        .list_versions_by_function()
        .function_name(function)
        .into_paginator()
        .send();
    let mut versions = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_error("ListVersionsByFunction"))?;
        versions.extend(
            page.versions()
                .iter()
                .filter(|version| version.version().is_some_and(is_number))
                .cloned(),
        );
    }
    Ok(versions)
}

/// The image digests the published versions of `function` pin, read from
/// the descriptions the controller publishes them with: those images keep
/// their protected tag, so that the repository's lifecycle policy never
/// expires an image a rollback could go back to. `None` when a version's
/// image cannot be read this way (published by someone else, or from an
/// image not pinned by digest): then every protected image is kept.
pub async fn pinned_digests(ctx: &Context, function: &str) -> Result<Option<Vec<String>>> {
    Ok(published(ctx, function)
        .await?
        .iter()
        .map(|version| {
            version
                .description()
                .and_then(image_in_description)
                .filter(|image| image.starts_with("sha256:"))
                .map(str::to_string)
        })
        .collect())
}

/// Every alias of a function, every page.
pub async fn aliases(ctx: &Context, function: &str) -> Result<Vec<AliasConfiguration>> {
    let mut pages = ctx
        .clients
        .lambda
        .list_aliases()
        .function_name(function)
        .into_paginator()
        .send();
    let mut aliases = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_error("ListAliases"))?;
        aliases.extend(page.aliases().iter().cloned());
    }
    Ok(aliases)
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}

/// The versions any alias routes traffic to (its target and its weighted
/// version).
pub fn routed(aliases: &[AliasConfiguration]) -> BTreeSet<String> {
    let mut routed = BTreeSet::new();
    for alias in aliases {
        routed.extend(alias.function_version().map(str::to_string));
        if let Some(weights) = alias
            .routing_config()
            .and_then(|routing| routing.additional_version_weights())
        {
            routed.extend(weights.keys().cloned());
        }
    }
    routed
}

/// The versions to delete: all but the `keep` most recent and those an
/// alias routes to, oldest first.
pub fn prunable(versions: &[String], routed: &BTreeSet<String>, keep: u32) -> Vec<String> {
    let mut numbered: Vec<u64> = versions
        .iter()
        .filter_map(|version| version.parse().ok())
        .collect();
    numbered.sort_unstable_by(|a, b| b.cmp(a));
    numbered.dedup();
    let mut prunable: Vec<u64> = numbered
        .into_iter()
        .skip(keep as usize)
        .filter(|version| !routed.contains(&version.to_string()))
        .collect();
    prunable.sort_unstable();
    prunable
        .into_iter()
        .map(|version| version.to_string())
        .collect()
}

/// The versions of `function` that [`prunable`] would delete now.
pub async fn prunable_now(ctx: &Context, function: &str, keep: u32) -> Result<Vec<String>> {
    let (versions, aliases) = futures::try_join!(published(ctx, function), aliases(ctx, function))?;
    let numbers: Vec<String> = versions
        .iter()
        .filter_map(|version| version.version().map(str::to_string))
        .collect();
    Ok(prunable(&numbers, &routed(&aliases), keep))
}

/// Deletes the versions beyond `keep` that no alias routes to (read again
/// just before); gives the versions deleted. One an alias took meanwhile
/// is refused by Lambda (`ResourceConflictException`) and kept.
pub async fn prune(ctx: &Context, function: &str, keep: u32) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for version in prunable_now(ctx, function, keep).await? {
        let result = ctx
            .clients
            .lambda
            .delete_function()
            .function_name(function)
            .qualifier(&version)
            .send()
            .await;
        if result
            .as_ref()
            .err()
            .and_then(|error| error.as_service_error())
            .is_some_and(|error| error.is_resource_conflict_exception())
        {
            tracing::info!(function, version, "kept: an alias routes to it now");
            continue;
        }
        done_or(result, "DeleteFunction", |error| {
            error.is_resource_not_found_exception()
        })?;
        tracing::info!(function, version, keep, "deleted an old version");
        deleted.push(version);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn the_newest_versions_and_every_routed_one_are_kept() {
        let versions = strings(&["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
        let routed: BTreeSet<String> = ["2", "10"].map(String::from).into();
        assert_eq!(
            prunable(&versions, &routed, 5),
            strings(&["1", "3", "4", "5"])
        );
        assert_eq!(prunable(&versions, &routed, 10), Vec::<String>::new());
        assert_eq!(
            prunable(&versions, &BTreeSet::new(), 1),
            strings(&["1", "2", "3", "4", "5", "6", "7", "8", "9"])
        );
    }

    #[test]
    fn versions_sort_as_numbers_not_text() {
        let versions = strings(&["9", "10", "11"]);
        assert_eq!(prunable(&versions, &BTreeSet::new(), 2), strings(&["9"]));
    }

    #[test]
    fn a_description_gives_back_its_image() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let text = version_description("0123456789ab", &digest, "cdef01234567");
        assert!(text.len() <= 256, "{text}");
        assert_eq!(image_in_description(&text), Some(digest.as_str()));
        assert_eq!(image_in_description("hand-made version"), None);
        let long = format!("registry.example.com/{}:v1", "a".repeat(250));
        for uri in [
            format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/detection@{digest}"),
            "127.0.0.1:5000/anomaly-local/detection:v1".to_string(),
            long,
        ] {
            let image = image_reference(&uri);
            let text = version_description("0123456789ab", &image, "cdef01234567");
            assert!(text.len() <= 256, "{text}");
            assert_eq!(image_in_description(&text), Some(image.as_str()));
        }
        assert_eq!(
            image_reference(&format!("a.example/b@{digest}")),
            digest.as_str()
        );
        assert_eq!(
            image_digest(&format!("1.dkr.ecr.eu-west-1.amazonaws.com/a/b@{digest}")),
            Some(digest.as_str())
        );
        assert_eq!(image_digest("registry/a:latest"), None);
    }

    #[test]
    fn the_configuration_fingerprint_ignores_the_image_and_the_description_only() {
        let mut fields = Fields::from([
            ("image_uri".to_string(), Value::from("a@sha256:1")),
            ("description".to_string(), Value::from("scores events")),
            ("memory_mb".to_string(), Value::from(128)),
        ]);
        let before = configuration_fingerprint(&fields, &[]);
        fields.insert("image_uri".into(), Value::from("a@sha256:2"));
        fields.insert(
            "description".into(),
            Value::from("anomaly-controller release x"),
        );
        assert_eq!(configuration_fingerprint(&fields, &[]), before);
        fields.insert("memory_mb".into(), Value::from(256));
        assert_ne!(configuration_fingerprint(&fields, &[]), before);
    }
}
