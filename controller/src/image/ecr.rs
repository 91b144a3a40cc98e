//! Push and pull credentials from ECR's authorization token: a base64
//! `user:password` pair valid for the registry named by the answer's
//! `proxyEndpoint`, and for no other host ("The registry URL to use for
//! this authorization token in a docker login command": ECR API reference,
//! `AuthorizationData`). [`super::Registry::new`] refuses these credentials
//! for any other host.

use base64::Engine as _;

use super::ImageError;
use crate::resources::aws_error;

/// A registry user and password, and the registry they are for.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// The registry host the token is for, from `proxyEndpoint`
    /// (`123456789012.dkr.ecr.us-east-1.amazonaws.com`).
    pub endpoint: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Credentials {
    /// The value of an HTTP `Authorization: Basic` header.
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// Calls `GetAuthorizationToken` and decodes its token, for the caller's
/// own registry (the `registryIds` parameter is deprecated: it does not
/// change what the token is for).
pub async fn credentials(ecr: &aws_sdk_ecr::Client) -> Result<Credentials, ImageError> {
    let output = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|error| {
            ImageError::Credentials(aws_error("GetAuthorizationToken")(error).to_string())
        })?;
    let data = output
        .authorization_data()
        .first()
        .ok_or_else(|| ImageError::Credentials("the answer holds no authorization data".into()))?;
    let token = data
        .authorization_token()
        .ok_or_else(|| ImageError::Credentials("the answer holds no token".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|error| ImageError::Credentials(format!("the token is not base64: {error}")))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| ImageError::Credentials("the token is not UTF-8".into()))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| ImageError::Credentials("the token is not user:password".into()))?;
    let endpoint = data
        .proxy_endpoint()
        .unwrap_or_default()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if endpoint.is_empty() {
        return Err(ImageError::Credentials(
            "the answer names no proxyEndpoint: the token's registry is unknown".into(),
        ));
    }
    Ok(Credentials {
        username: username.to_string(),
        password: password.to_string(),
        endpoint,
    })
}
