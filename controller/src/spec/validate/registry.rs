//! `[registry]`: the registry built images are pushed to instead of ECR.

use super::Checker;
use crate::spec::raw::RawRegistry;

/// `[registry] endpoint`: `host[:port]`, optionally behind `http://` or `https://`.
pub(super) fn check_registry(raw: Option<&RawRegistry>, checker: &mut Checker) -> Option<String> {
    let endpoint = &raw?.endpoint;
    let host = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let well_formed = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !well_formed {
        checker.problem(
            &["registry", "endpoint"],
            format!(
                "{endpoint:?} is not a registry host (like \"127.0.0.1:5000\" or \"https://registry.example.com\")"
            ),
        );
        return None;
    }
    Some(endpoint.clone())
}
