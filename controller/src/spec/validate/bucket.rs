//! `[bucket]`: the model bucket's name, key prefix, encryption and versioning.

use super::{Checker, NameRule};
use crate::spec::raw::RawSpec;
use crate::spec::{BucketSpec, Encryption};

const BUCKET_NAME: NameRule = NameRule {
    what: "bucket name",
    min: 3,
    max: 63,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.',
    allowed_text: "lower-case letters, digits, '-' and '.'",
};

pub(super) fn build_bucket(raw: &RawSpec, checker: &mut Checker) -> BucketSpec {
    let bucket = &raw.bucket;
    let name = bucket
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-models", raw.deployment.name));
    checker.name(&["bucket", "name"], &name, &BUCKET_NAME);
    if name.starts_with(['-', '.']) || name.ends_with(['-', '.']) || name.contains("..") {
        checker.problem(
            &["bucket", "name"],
            format!("{name:?} must start and end with a letter or digit and have no '..'"),
        );
    }
    if name.split('.').count() == 4 && name.split('.').all(|part| part.parse::<u8>().is_ok()) {
        checker.problem(
            &["bucket", "name"],
            format!("{name:?} must not look like an IP address"),
        );
    }
    let model_prefix = bucket
        .model_prefix
        .clone()
        .unwrap_or_else(|| "models/".to_string());
    if model_prefix.is_empty()
        || !model_prefix.ends_with('/')
        || model_prefix.starts_with('/')
        || model_prefix.contains('*')
    {
        checker.problem(
            &["bucket", "model_prefix"],
            format!("{model_prefix:?} must be a key prefix ending in '/', not starting with '/', without '*'"),
        );
    }
    let encryption = match bucket.encryption.as_deref() {
        None | Some("AES256") => Encryption::S3Managed,
        Some("aws:kms") => Encryption::Kms,
        Some(other) => {
            checker.problem(
                &["bucket", "encryption"],
                format!("{other:?} is not \"AES256\" or \"aws:kms\""),
            );
            Encryption::S3Managed
        }
    };
    let noncurrent_version_expiry_days = bucket.noncurrent_version_expiry_days.map(|days| {
        checker.ranged(
            &["bucket", "noncurrent_version_expiry_days"],
            Some(days),
            30,
            1,
            36500,
            " days",
        )
    });
    let versioning = bucket.versioning.unwrap_or(true);
    if !versioning && noncurrent_version_expiry_days.is_some() {
        checker.problem(
            &["bucket", "noncurrent_version_expiry_days"],
            "noncurrent versions exist only with versioning = true",
        );
    }
    BucketSpec {
        name,
        model_prefix,
        versioning,
        encryption,
        block_public_access: bucket.block_public_access.unwrap_or(true),
        noncurrent_version_expiry_days,
        retain_on_destroy: bucket.retain_on_destroy.unwrap_or(true),
        adopt: bucket.adopt.unwrap_or(false),
    }
}
