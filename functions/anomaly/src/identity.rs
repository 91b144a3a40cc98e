//! Who acted, from where, with what: the normalised forms the model conditions on.
//!
//! - The **principal** from `userIdentity`: a person signed in through SSO (or any
//!   role session named like a person) is that person whatever the role or account;
//!   any other role session is its role (instances, functions and CI runs change
//!   their session names); IAM users, root, federated users, AWS services and
//!   anonymous callers are their own principals. Accounts are left out, so a person
//!   seen in a new account is still that person.
//! - The **source network**: an IPv4 address's /16, an IPv6 address's /48; a service
//!   name (`config.amazonaws.com`) as it is.
//! - The **user agent family**: the tool without its version (`aws-cli`, `boto3`,
//!   `terraform`, `browser`, `curl`), so that routine upgrades are not new tools.

use std::borrow::Cow;

/// The principal of a CloudTrail `userIdentity` object, `None` when nothing in it
/// names one. `field` gives the string under exactly a key of the object.
pub fn principal_of<'a>(field: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let text = |key: &str| field(key).map(str::trim).filter(|value| !value.is_empty());
    let kind = text("type").unwrap_or("");
    let arn = text("arn");
    let principal_id = text("principalId");
    if principal_id == Some("ANONYMOUS_PRINCIPAL") || kind == "Unknown" && arn.is_none() {
        return Some("anonymous".into());
    }
    match kind {
        "AWSService" => {
            return Some(format!(
                "service/{}",
                text("invokedBy").unwrap_or("unknown")
            ));
        }
        "Root" => return Some("root".into()),
        _ => {}
    }
    if let Some(arn) = arn {
        // arn:partition:service::account:resource
        let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
        let mut parts = resource.split('/');
        let head = parts.next().unwrap_or("");
        return Some(match head {
            "assumed-role" => {
                let role = parts.next().unwrap_or("");
                let session = parts.next().unwrap_or("");
                if role.starts_with("AWSReservedSSO_") || session.contains('@') {
                    format!("person/{session}")
                } else {
                    format!("role/{role}")
                }
            }
            "user" => format!("user/{}", parts.next_back().unwrap_or("")),
            "federated-user" => format!("federated/{}", parts.next_back().unwrap_or("")),
            "root" | "" if resource.ends_with("root") => "root".into(),
            _ => resource.to_string(),
        });
    }
    if let Some(name) = text("userName") {
        return Some(format!("user/{name}"));
    }
    principal_id.map(|id| format!("id/{}", id.split(':').next().unwrap_or(id)))
}

/// The network an address belongs to: `a.b.0.0/16`, `x:y:z::/48`, or the value as
/// it is when it is not an address (a service's name).
pub fn network_of(address: &str) -> String {
    if let Ok(v4) = address.parse::<std::net::Ipv4Addr>() {
        let [a, b, _, _] = v4.octets();
        return format!("{a}.{b}.0.0/16");
    }
    if let Ok(v6) = address.parse::<std::net::Ipv6Addr>() {
        let s = v6.segments();
        return format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]);
    }
    address.to_ascii_lowercase()
}

/// Tools recognised anywhere in a user agent, most specific first.
const FAMILIES: [(&str, &str); 16] = [
    ("terraform", "terraform"),
    ("exec-env/cloudshell", "cloudshell"),
    ("aws-cli", "aws-cli"),
    ("boto3", "boto3"),
    ("botocore", "botocore"),
    ("aws-sdk-java", "aws-sdk-java"),
    ("aws-sdk-go", "aws-sdk-go"),
    ("aws-sdk-nodejs", "aws-sdk-js"),
    ("aws-sdk-js", "aws-sdk-js"),
    ("aws-sdk-rust", "aws-sdk-rust"),
    ("aws-sdk-dotnet", "aws-sdk-dotnet"),
    ("aws-sdk-ruby", "aws-sdk-ruby"),
    ("aws-sdk-php", "aws-sdk-php"),
    ("cloud9", "cloud9"),
    ("console.amazonaws.com", "console"),
    ("signin.amazonaws.com", "console"),
];

/// The family of a user agent: a known tool, `browser`, an AWS service, or the first
/// product name without its version.
pub fn agent_family(agent: &str) -> Cow<'static, str> {
    let lower = agent.to_ascii_lowercase();
    if let Some((_, family)) = FAMILIES.iter().find(|(needle, _)| lower.contains(needle)) {
        return Cow::Borrowed(family);
    }
    if lower.starts_with("mozilla/") {
        return Cow::Borrowed("browser");
    }
    if lower.ends_with(".amazonaws.com") || lower == "aws internal" {
        return Cow::Borrowed("aws-service");
    }
    let product = lower
        .split([' ', '/', '(', ';'])
        .find(|token| !token.is_empty())
        .unwrap_or("");
    let name = product.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    if name.is_empty() {
        Cow::Borrowed("<unknown>")
    } else {
        Cow::Owned(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    fn principal(identity: Json) -> Option<String> {
        principal_of(|key| identity.get(key).and_then(Json::as_str))
    }

    #[test]
    fn principals_are_people_roles_users_and_services() {
        assert_eq!(
            principal(json!({"type": "AssumedRole",
                "arn": "arn:aws:sts::111:assumed-role/AWSReservedSSO_Dev_abc/user02@example.com"})),
            Some("person/user02@example.com".into())
        );
        assert_eq!(
            principal(json!({"type": "AssumedRole",
                "arn": "arn:aws:sts::111:assumed-role/ingest-role/i-0abc"})),
            Some("role/ingest-role".into())
        );
        assert_eq!(
            principal(json!({"type": "IAMUser", "arn": "arn:aws:iam::111:user/ops/bob"})),
            Some("user/bob".into())
        );
        assert_eq!(
            principal(json!({"type": "AWSService", "invokedBy": "config.amazonaws.com"})),
            Some("service/config.amazonaws.com".into())
        );
        assert_eq!(
            principal(json!({"type": "Root", "arn": "arn:aws:iam::111:root"})),
            Some("root".into())
        );
        assert_eq!(
            principal(json!({"type": "FederatedUser",
                "arn": "arn:aws:sts::111:federated-user/carol"})),
            Some("federated/carol".into())
        );
        assert_eq!(
            principal(json!({"type": "AWSAccount", "principalId": "ANONYMOUS_PRINCIPAL"})),
            Some("anonymous".into())
        );
        assert_eq!(
            principal(json!({"principalId": "AIDAEXAMPLE"})),
            Some("id/AIDAEXAMPLE".into())
        );
        assert_eq!(principal(json!({})), None);
    }

    #[test]
    fn networks_and_families_drop_what_changes_routinely() {
        assert_eq!(network_of("203.0.113.7"), "203.0.0.0/16");
        assert_eq!(
            network_of("2001:db8:85a3::8a2e:370:7334"),
            "2001:db8:85a3::/48"
        );
        assert_eq!(network_of("config.amazonaws.com"), "config.amazonaws.com");
        for (agent, family) in [
            ("aws-cli/2.15.3 md/awscrt#0.19.19 os/linux#6.5.0", "aws-cli"),
            ("aws-cli/2.17.9 os/macos#23.4.0", "aws-cli"),
            ("Boto3/1.34.100 md/Botocore#1.34.100", "boto3"),
            (
                "APN/1.0 HashiCorp/1.0 Terraform/1.8.2 terraform-provider-aws/5.50.0",
                "terraform",
            ),
            ("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0", "browser"),
            ("curl/8.4.0", "curl"),
            ("python-requests/2.31.0", "python-requests"),
            ("config.amazonaws.com", "aws-service"),
            ("console.amazonaws.com", "console"),
        ] {
            assert_eq!(agent_family(agent), family, "{agent}");
        }
    }
}
