//! Model storage in S3.
//!
//! A model is written under its own immutable key `<prefix><version>.json` first; only
//! when that upload has succeeded is the small pointer object `<prefix>latest.json`
//! replaced. S3 `PutObject` is atomic per object, so a reader that follows the pointer
//! always finds a complete model, and a failed or refused training run leaves the
//! serving model in place.
//!
//! Reading a key that does not exist is "absent" only when S3 says so
//! (`NoSuchKey`, 404). S3 answers **403 AccessDenied, not 404**, for a missing
//! key when the caller may not `s3:ListBucket` the bucket (a ListBucket grant
//! conditioned on `s3:prefix` does not count: a GetObject request carries no
//! prefix), so a 403 is never taken for "no model yet": it is
//! [`StoreError::AccessDenied`], whose message names both permissions.

use crate::model::{Model, ModelError};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The pointer object's name under the prefix.
pub const LATEST: &str = "latest.json";

/// Errors of the model store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An S3 call failed.
    #[error("S3 {operation} s3://{bucket}/{key} failed: {message}")]
    S3 {
        /// The operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The SDK's error, with its cause chain.
        message: String,
    },
    /// S3 refused the call (403): a permission is missing. For a read, S3 gives
    /// this answer for a missing key too when `s3:ListBucket` is not granted.
    #[error(
        "S3 {operation} s3://{bucket}/{key} was refused with 403 AccessDenied: {needs} ({message})"
    )]
    AccessDenied {
        /// The operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The permissions the call needs, as a sentence.
        needs: &'static str,
        /// The SDK's error, with its cause chain.
        message: String,
    },
    /// The pointer object is not a pointer.
    #[error("the pointer s3://{bucket}/{key} is invalid: {message}")]
    Pointer {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Why.
        message: String,
    },
    /// The model the pointer names is not a valid model.
    #[error("model s3://{bucket}/{key}: {source}")]
    Model {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Why.
        source: ModelError,
    },
}

/// The content of `latest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    /// Model version.
    pub version: String,
    /// Key of the model object.
    pub key: String,
    /// When the model was trained.
    pub trained_at: DateTime<Utc>,
    /// Events it was trained on.
    pub training_samples: u64,
    /// Model file format version.
    pub format_version: u32,
}

/// Builds an S3 client from a shared config. Path-style addressing is used when an
/// endpoint override is configured (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`) or when
/// `S3_FORCE_PATH_STYLE=true`, as local S3 servers need it.
pub fn s3_client(config: &aws_types::SdkConfig) -> Client {
    let forced = std::env::var("S3_FORCE_PATH_STYLE").map(|v| v == "true" || v == "1");
    let force = match forced {
        Ok(f) => f,
        Err(_) => {
            config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        }
    };
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(force)
            .build(),
    )
}

/// Renders an SDK error with its whole cause chain.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What a refused read needs, as the log and the error say it.
pub const READ_PERMISSIONS: &str = "the function's role needs s3:GetObject on the key and an \
     unconditional s3:ListBucket on the bucket (without s3:ListBucket, S3 answers 403 instead of \
     404 for a key that does not exist)";

/// How a failed S3 read is to be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// The key does not exist (`NoSuchKey`, or a bodiless 404): "absent".
    NoSuchKey,
    /// 403 / `AccessDenied`: a missing permission, never "absent".
    AccessDenied,
    /// Anything else (`NoSuchBucket`, throttling, 5xx, the network...).
    Other,
}

/// Classifies a failed `GetObject` / `HeadObject` by its HTTP status and its
/// S3 error code (absent for bodiless answers such as HEAD's).
///
/// Only `NoSuchKey` (or a 404 without a code) means the key is absent; a
/// `NoSuchBucket` 404 is a deployment error, and a 403 is a permission
/// problem even when the key is in fact missing.
pub fn classify_read_failure(status: Option<u16>, code: Option<&str>) -> ReadFailure {
    match (status, code) {
        (_, Some("NoSuchKey")) => ReadFailure::NoSuchKey,
        (_, Some("AccessDenied")) | (Some(403), _) => ReadFailure::AccessDenied,
        (Some(404), None) => ReadFailure::NoSuchKey,
        _ => ReadFailure::Other,
    }
}

/// [`classify_read_failure`] for an SDK error.
pub fn classify_sdk_error<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> ReadFailure
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match error {
        aws_sdk_s3::error::SdkError::ServiceError(service) => {
            classify_read_failure(Some(service.raw().status().as_u16()), service.err().code())
        }
        _ => ReadFailure::Other,
    }
}

/// Models in one bucket under one prefix.
#[derive(Debug, Clone)]
pub struct ModelStore {
    client: Client,
    bucket: String,
    prefix: String,
}

impl ModelStore {
    /// A store at `s3://bucket/prefix`; a non-empty prefix gets a trailing `/`.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> ModelStore {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        ModelStore {
            client,
            bucket: bucket.into(),
            prefix,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Key of the pointer object.
    pub fn pointer_key(&self) -> String {
        format!("{}{LATEST}", self.prefix)
    }

    /// Key of a model version.
    pub fn model_key(&self, version: &str) -> String {
        format!("{}{version}.json", self.prefix)
    }

    fn s3_err(
        &self,
        operation: &'static str,
        key: &str,
        e: &(dyn std::error::Error + 'static),
    ) -> StoreError {
        StoreError::S3 {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            message: error_chain(e),
        }
    }

    fn put_err(
        &self,
        key: &str,
        e: &aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::put_object::PutObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    ) -> StoreError {
        match classify_sdk_error(e) {
            ReadFailure::AccessDenied => StoreError::AccessDenied {
                operation: "PutObject",
                bucket: self.bucket.clone(),
                key: key.to_string(),
                needs: "the function's role needs s3:PutObject on the model prefix",
                message: error_chain(e),
            },
            _ => self.s3_err("PutObject", key, e),
        }
    }

    /// Writes the model under its versioned key, then moves the pointer to it.
    pub async fn publish(&self, model: &Model) -> Result<Pointer, StoreError> {
        let key = self.model_key(&model.version);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(model.to_json()))
            .send()
            .await
            .map_err(|e| self.put_err(&key, &e))?;
        let pointer = Pointer {
            version: model.version.clone(),
            key,
            trained_at: model.trained_at,
            training_samples: model.training_samples,
            format_version: model.format_version,
        };
        let pkey = self.pointer_key();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&pkey)
            .content_type("application/json")
            .body(ByteStream::from(
                serde_json::to_vec(&pointer).expect("a pointer serialises"),
            ))
            .send()
            .await
            .map_err(|e| self.put_err(&pkey, &e))?;
        tracing::info!(version = %pointer.version, key = %pointer.key, "model published");
        Ok(pointer)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.s3_err("GetObject", key, &e))?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(e) => match classify_sdk_error(&e) {
                ReadFailure::NoSuchKey => Ok(None),
                ReadFailure::AccessDenied => Err(StoreError::AccessDenied {
                    operation: "GetObject",
                    bucket: self.bucket.clone(),
                    key: key.to_string(),
                    needs: READ_PERMISSIONS,
                    message: error_chain(&e),
                }),
                ReadFailure::Other => Err(self.s3_err("GetObject", key, &e)),
            },
        }
    }

    /// The current pointer, or `None` when no model has been published.
    pub async fn latest_pointer(&self) -> Result<Option<Pointer>, StoreError> {
        let key = self.pointer_key();
        let Some(bytes) = self.get(&key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Pointer {
                bucket: self.bucket.clone(),
                key,
                message: e.to_string(),
            })
    }

    /// Loads the model a pointer names.
    pub async fn load(&self, pointer: &Pointer) -> Result<Model, StoreError> {
        let bytes = self
            .get(&pointer.key)
            .await?
            .ok_or_else(|| StoreError::Pointer {
                bucket: self.bucket.clone(),
                key: self.pointer_key(),
                message: format!("it names {} which does not exist", pointer.key),
            })?;
        Model::from_json(&bytes).map_err(|source| StoreError::Model {
            bucket: self.bucket.clone(),
            key: pointer.key.clone(),
            source,
        })
    }

    /// The latest model with its pointer, or `None` when none has been published.
    pub async fn load_latest(&self) -> Result<Option<(Pointer, Model)>, StoreError> {
        let Some(p) = self.latest_pointer().await? else {
            return Ok(None);
        };
        let m = self.load(&p).await?;
        Ok(Some((p, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        )
    }

    #[test]
    fn only_no_such_key_is_absent_and_403_is_a_permission_problem() {
        // GetObject of a missing key, with s3:ListBucket: 404 NoSuchKey.
        assert_eq!(
            classify_read_failure(Some(404), Some("NoSuchKey")),
            ReadFailure::NoSuchKey
        );
        // HeadObject answers have no body, hence no code.
        assert_eq!(
            classify_read_failure(Some(404), None),
            ReadFailure::NoSuchKey
        );
        // A missing key without s3:ListBucket, or a missing s3:GetObject.
        assert_eq!(
            classify_read_failure(Some(403), Some("AccessDenied")),
            ReadFailure::AccessDenied
        );
        assert_eq!(
            classify_read_failure(Some(403), None),
            ReadFailure::AccessDenied
        );
        // A missing bucket is a deployment error, not "no model yet".
        assert_eq!(
            classify_read_failure(Some(404), Some("NoSuchBucket")),
            ReadFailure::Other
        );
        assert_eq!(
            classify_read_failure(Some(503), Some("SlowDown")),
            ReadFailure::Other
        );
        assert_eq!(classify_read_failure(None, None), ReadFailure::Other);
    }

    #[test]
    fn the_access_denied_message_names_both_permissions() {
        let e = StoreError::AccessDenied {
            operation: "GetObject",
            bucket: "b".into(),
            key: "models/latest.json".into(),
            needs: READ_PERMISSIONS,
            message: "AccessDenied".into(),
        };
        let text = e.to_string();
        assert!(text.contains("s3:GetObject"), "{text}");
        assert!(text.contains("s3:ListBucket"), "{text}");
        assert!(text.contains("403"), "{text}");
    }

    #[test]
    fn keys_under_the_prefix() {
        let s = ModelStore::new(client(), "b", "models");
        assert_eq!(s.pointer_key(), "models/latest.json");
        assert_eq!(s.model_key("v1"), "models/v1.json");
        let s = ModelStore::new(client(), "b", "models/");
        assert_eq!(s.pointer_key(), "models/latest.json");
        let s = ModelStore::new(client(), "b", "");
        assert_eq!(s.model_key("v1"), "v1.json");
    }
}
