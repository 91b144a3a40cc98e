//! `[deployment]`: the deployment's name, region, account and endpoint.

use super::{Checker, NameRule};
use crate::spec::Deployment;
use crate::spec::raw::RawDeployment;

const DEPLOYMENT_NAME: NameRule = NameRule {
    what: "deployment name",
    min: 1,
    max: 40,
    allowed: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
    allowed_text: "lower-case letters, digits and '-'",
};

pub(super) fn build_deployment(deployment: &RawDeployment, checker: &mut Checker) -> Deployment {
    checker.name(&["deployment", "name"], &deployment.name, &DEPLOYMENT_NAME);
    if deployment.name.starts_with('-') || deployment.name.ends_with('-') {
        checker.problem(
            &["deployment", "name"],
            "the deployment name must not start or end with '-'",
        );
    }
    if !is_region(&deployment.region) {
        checker.problem(
            &["deployment", "region"],
            format!(
                "{:?} is not an AWS region name (like \"us-east-1\")",
                deployment.region
            ),
        );
    }
    if let Some(account) = &deployment.account_id {
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            checker.problem(
                &["deployment", "account_id"],
                format!("{account:?} is not a 12-digit AWS account id"),
            );
        }
    }
    if let Some(endpoint) = &deployment.endpoint_url {
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        if rest.is_none_or(|host| host.is_empty() || host.contains(char::is_whitespace)) {
            checker.problem(
                &["deployment", "endpoint_url"],
                format!("{endpoint:?} is not an http:// or https:// URL"),
            );
        }
    }
    Deployment {
        name: deployment.name.clone(),
        region: deployment.region.clone(),
        account_id: deployment.account_id.clone(),
        endpoint_url: deployment.endpoint_url.clone(),
    }
}

fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()))
}
