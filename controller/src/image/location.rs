//! Where a function's image may live, and who gets ECR's token.
//!
//! Lambda runs only images stored in Amazon ECR in the function's own
//! Region: "The Amazon ECR repository must be in the same AWS Region as the
//! Lambda function. You can create a function using an image in a different
//! AWS account, as long as the image is in the same Region as the Lambda
//! function." and "Lambda does not support Amazon ECR FIPS endpoints for
//! container images" (Lambda developer guide, "Create a Lambda function
//! using a container image",
//! <https://docs.aws.amazon.com/lambda/latest/dg/images-create.html>; the
//! CreateFunction `ImageUri` is "URI of a container image in the Amazon ECR
//! registry"). Any other registry (`[registry] endpoint` naming the local
//! cloud's) is for local use only: against a real AWS endpoint it is refused
//! before any call is made.
//!
//! The ECR authorization token is a password for the registry that
//! `GetAuthorizationToken` names in `proxyEndpoint`; it is sent to that host
//! and to no other ([`Target`] decides whether a token is asked for at all,
//! and [`super::Registry::new`] refuses credentials for another host).

use super::ImageError;
use crate::spec::Spec;

/// An ECR private registry host, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcrHost {
    /// The 12-digit account id the registry belongs to.
    pub account: String,
    pub region: String,
    /// `dkr.ecr-fips.<region>`: Lambda cannot pull from these.
    pub fips: bool,
}

/// Parses `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` and the
/// dual-stack `<account>.dkr-ecr[-fips].<region>.on.aws` (ECR user guide,
/// "Amazon ECR endpoints"). A scheme and a trailing slash are ignored.
pub fn ecr_host(endpoint: &str) -> Option<EcrHost> {
    let host = strip_scheme(endpoint);
    let host = host.trim_end_matches('/');
    let host = host.strip_suffix(":443").unwrap_or(host);
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (service, rest) = rest.split_once('.')?;
    let fips = match service {
        "dkr" => {
            let (ecr, _) = rest.split_once('.')?;
            match ecr {
                "ecr" => false,
                "ecr-fips" => true,
                _ => return None,
            }
        }
        "dkr-ecr" => false,
        "dkr-ecr-fips" => true,
        _ => return None,
    };
    let rest = if service == "dkr" {
        rest.split_once('.')?.1
    } else {
        rest
    };
    let (region, domain) = rest.split_once('.')?;
    let known_domain = matches!(domain, "amazonaws.com" | "amazonaws.com.cn" | "on.aws");
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (known_domain && region_ok).then(|| EcrHost {
        account: account.to_string(),
        region: region.to_string(),
        fips,
    })
}

/// Whether the AWS APIs the controller calls are AWS's own: no
/// `endpoint_url` override, or one that names an AWS host.
pub fn is_real_aws(endpoint_url: Option<&str>) -> bool {
    let Some(url) = endpoint_url else {
        return true;
    };
    let host = strip_scheme(url);
    let host = host.split(['/', '?']).next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["amazonaws.com", "amazonaws.com.cn", "api.aws", "on.aws"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

/// Where built images are pushed, and therefore which credentials they need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The caller's own ECR registry (`[registry]` not set): ECR's token,
    /// for the host its `proxyEndpoint` names.
    AccountEcr,
    /// An ECR registry named in `[registry] endpoint`, in the functions'
    /// Region: ECR's token, used only when its `proxyEndpoint` is that host.
    Ecr { endpoint: String, host: EcrHost },
    /// Any other registry, for a local cloud only: no ECR token is asked
    /// for, and none is ever sent to it.
    Local { endpoint: String },
}

/// Decides where the built images of `spec` go, and refuses a place Lambda
/// cannot pull from when the deployment talks to real AWS. Also checks the
/// prebuilt `image_uri` of every function against the same rule. Makes no
/// call: it runs before anything is built or changed.
pub fn target(spec: &Spec) -> Result<Target, ImageError> {
    let real = is_real_aws(spec.deployment.endpoint_url.as_deref());
    let region = &spec.deployment.region;
    if real {
        for function in spec.functions.iter().filter(|f| f.build.is_none()) {
            let host = function.image_uri.split('/').next().unwrap_or_default();
            if let Err(reason) = lambda_can_pull(host, region) {
                return Err(ImageError::NotPullable {
                    field: format!("functions.{}.image_uri", function.key),
                    value: function.image_uri.clone(),
                    reason,
                    fix: format!(
                        "push the image to an ECR repository in {region} and set image_uri to \
                         <account>.dkr.ecr.{region}.amazonaws.com/<repository>@sha256:..."
                    ),
                });
            }
        }
    }
    let configured = spec
        .functions
        .iter()
        .find_map(|function| function.build.as_ref()?.registry.clone());
    let Some(endpoint) = configured else {
        return Ok(Target::AccountEcr);
    };
    match ecr_host(&endpoint) {
        Some(host) => {
            if real {
                lambda_can_pull(&endpoint, region).map_err(|reason| ImageError::NotPullable {
                    field: "registry.endpoint".into(),
                    value: endpoint.clone(),
                    reason,
                    fix: format!(
                        "remove [registry] to push to this account's ECR registry, or name an \
                         ECR registry in {region} (<account>.dkr.ecr.{region}.amazonaws.com)"
                    ),
                })?;
            }
            Ok(Target::Ecr { endpoint, host })
        }
        None if real => Err(ImageError::NotPullable {
            field: "registry.endpoint".into(),
            value: endpoint,
            reason: format!(
                "Lambda runs only images from an Amazon ECR repository in the function's own \
                 Region ({region}); another registry is for a local cloud \
                 (deployment.endpoint_url) only"
            ),
            fix: format!(
                "remove [registry] to push to this account's ECR registry in {region}, or point \
                 deployment.endpoint_url at a local cloud"
            ),
        }),
        None => Ok(Target::Local { endpoint }),
    }
}

/// Why Lambda in `region` cannot pull from the registry `host`, if it cannot.
fn lambda_can_pull(host: &str, region: &str) -> Result<(), String> {
    let Some(ecr) = ecr_host(host) else {
        return Err(format!(
            "{host} is not an Amazon ECR registry; Lambda runs only images from ECR in the \
             function's own Region ({region})"
        ));
    };
    if ecr.fips {
        return Err(format!(
            "{host} is an ECR FIPS endpoint, which Lambda does not support for container images"
        ));
    }
    if ecr.region != *region {
        return Err(format!(
            "{host} is ECR in {}, but the functions run in {region}; Lambda pulls only from \
             ECR in the function's own Region",
            ecr.region
        ));
    }
    Ok(())
}

fn strip_scheme(endpoint: &str) -> &str {
    endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts_are_recognised_with_account_region_and_fips() {
        assert_eq!(
            ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some(EcrHost {
                account: "123456789012".into(),
                region: "eu-west-1".into(),
                fips: false
            })
        );
        assert_eq!(
            ecr_host("https://123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/").map(|h| h.region),
            Some("cn-north-1".into())
        );
        assert!(
            ecr_host("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com")
                .unwrap()
                .fips
        );
        assert!(
            !ecr_host("123456789012.dkr-ecr.us-east-1.on.aws")
                .unwrap()
                .fips
        );
        for other in [
            "127.0.0.1:5000",
            "localhost:5000",
            "registry.example.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "12345.dkr.ecr.us-east-1.amazonaws.com",
            "public.ecr.aws",
            "123456789012.dkr.ecr.us-east-1.example.com",
        ] {
            assert_eq!(ecr_host(other), None, "{other}");
        }
    }

    #[test]
    fn real_aws_is_no_override_or_an_aws_host() {
        assert!(is_real_aws(None));
        assert!(is_real_aws(Some("https://lambda.us-east-1.amazonaws.com")));
        assert!(is_real_aws(Some(
            "https://s3.cn-north-1.amazonaws.com.cn:443/"
        )));
        assert!(is_real_aws(Some("https://lambda.us-east-1.api.aws")));
        assert!(!is_real_aws(Some("http://127.0.0.1:4566")));
        assert!(!is_real_aws(Some("http://localhost:4566")));
        assert!(!is_real_aws(Some("http://amazonaws.com.local:4566")));
    }

    #[test]
    fn lambda_pulls_only_from_ecr_in_its_own_region_and_not_fips() {
        assert!(
            lambda_can_pull("123456789012.dkr.ecr.us-east-1.amazonaws.com", "us-east-1").is_ok()
        );
        // Another account's registry in the same Region is allowed.
        assert!(
            lambda_can_pull("210987654321.dkr.ecr.us-east-1.amazonaws.com", "us-east-1").is_ok()
        );
        let other_region =
            lambda_can_pull("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "us-east-1")
                .unwrap_err();
        assert!(other_region.contains("eu-west-1") && other_region.contains("us-east-1"));
        assert!(
            lambda_can_pull(
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                "us-east-1"
            )
            .unwrap_err()
            .contains("FIPS")
        );
        assert!(
            lambda_can_pull("127.0.0.1:5000", "us-east-1")
                .unwrap_err()
                .contains("not an Amazon ECR registry")
        );
    }
}

#[cfg(test)]
mod spec_tests {
    use std::path::PathBuf;

    use super::*;

    /// `config/local.toml` with `edit` applied, read as the controller reads it.
    fn spec(edit: impl Fn(String) -> String) -> Spec {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = edit(text.clone());
        Spec::parse(&path, &edited).unwrap_or_else(|error| panic!("{error}"))
    }

    const LOCAL_AWS: &str = "endpoint_url = \"http://127.0.0.1:4566\"\n";
    const LOCAL_REGISTRY: &str = "endpoint = \"127.0.0.1:5000\"";

    fn real_aws(text: String) -> String {
        assert!(text.contains(LOCAL_AWS));
        text.replace(LOCAL_AWS, "")
    }

    #[test]
    fn a_local_registry_with_a_local_cloud_is_local_and_gets_no_token() {
        assert_eq!(
            target(&spec(|text| text)).unwrap(),
            Target::Local {
                endpoint: "127.0.0.1:5000".into()
            }
        );
    }

    #[test]
    fn a_local_registry_against_real_aws_is_refused_naming_the_field_and_the_fix() {
        let aws_host = |text: String| {
            text.replace(
                LOCAL_AWS,
                "endpoint_url = \"https://lambda.us-east-1.amazonaws.com\"\n",
            )
        };
        for edit in [real_aws as fn(String) -> String, aws_host] {
            let error = target(&spec(edit)).unwrap_err();
            let text = error.to_string();
            assert!(
                matches!(&error, ImageError::NotPullable { field, .. } if field == "registry.endpoint"),
                "{text}"
            );
            assert!(
                text.starts_with("registry.endpoint = \"127.0.0.1:5000\"")
                    && text.contains("Lambda runs only images from an Amazon ECR repository")
                    && text.contains("us-east-1")
                    && text.contains("remove [registry]"),
                "{text}"
            );
        }
    }

    #[test]
    fn against_real_aws_only_ecr_in_the_deployment_region_is_a_registry() {
        let spec_with = |endpoint: &str| {
            let endpoint = endpoint.to_string();
            spec(move |text| {
                real_aws(text).replace(LOCAL_REGISTRY, &format!("endpoint = \"{endpoint}\""))
            })
        };
        assert!(matches!(
            target(&spec_with("123456789012.dkr.ecr.us-east-1.amazonaws.com")).unwrap(),
            Target::Ecr { host, .. } if host.region == "us-east-1"
        ));
        let other = target(&spec_with("123456789012.dkr.ecr.eu-west-1.amazonaws.com"))
            .unwrap_err()
            .to_string();
        assert!(
            other.contains("ECR in eu-west-1") && other.contains("registry.endpoint"),
            "{other}"
        );
        let fips = target(&spec_with(
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
        ))
        .unwrap_err()
        .to_string();
        assert!(fips.contains("FIPS"), "{fips}");
        // No [registry]: the account's own ECR registry.
        let without =
            spec(|text| real_aws(text).replace(&format!("[registry]\n{LOCAL_REGISTRY}\n"), ""));
        assert_eq!(target(&without).unwrap(), Target::AccountEcr);
    }

    #[test]
    fn a_prebuilt_image_outside_ecr_in_the_region_is_refused_against_real_aws() {
        let prebuilt = |uri: &'static str| {
            move |text: String| {
                let text = real_aws(text).replace(&format!("[registry]\n{LOCAL_REGISTRY}\n"), "");
                let start = text
                    .find("image = { dockerfile = \"../docker/detection")
                    .unwrap();
                let end = start + text[start..].find('\n').unwrap();
                format!("{}image_uri = \"{uri}\"{}", &text[..start], &text[end..])
            }
        };
        let digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let ok = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/app/detection{digest}");
        let ok: &'static str = Box::leak(ok.into_boxed_str());
        assert_eq!(target(&spec(prebuilt(ok))).unwrap(), Target::AccountEcr);
        let docker_hub = format!("docker.io/library/detection{digest}");
        let docker_hub: &'static str = Box::leak(docker_hub.into_boxed_str());
        let error = target(&spec(prebuilt(docker_hub))).unwrap_err().to_string();
        assert!(
            error.starts_with("functions.detection.image_uri = \"docker.io/")
                && error.contains("not an Amazon ECR registry")
                && error.contains("push the image to an ECR repository in us-east-1"),
            "{error}"
        );
        // The same image against a local cloud is left alone.
        let local = spec(|text| {
            let start = text
                .find("image = { dockerfile = \"../docker/detection")
                .unwrap();
            let end = start + text[start..].find('\n').unwrap();
            format!(
                "{}image_uri = \"{docker_hub}\"{}",
                &text[..start],
                &text[end..]
            )
        });
        assert!(target(&local).is_ok());
    }
}
