//! What `controller releases` shows: for each function of the file, its
//! published versions (number, code digest, description, when published)
//! and its aliases, with the share of each alias's traffic every version
//! takes. Read from Lambda, every page; nothing is changed.

use std::fmt;

use serde::Serialize;

use crate::reconcile::Controller;
use crate::resources::{self, aws_error};

/// One published version of a function.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Version {
    pub version: String,
    /// Lambda's `LastModified` of the version: when it was published.
    pub published: String,
    /// Lambda's `CodeSha256`: the image digest for an image function.
    pub code_sha256: String,
    pub description: String,
    /// `(alias, share)` for each alias that sends this version traffic.
    pub traffic: Vec<(String, f64)>,
}

/// One alias: the version it points at and the extra versions it weights.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alias {
    pub name: String,
    pub version: String,
    /// Additional versions and their weights (routing configuration).
    pub additional: Vec<(String, f64)>,
}

/// The releases of one function.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunctionReleases {
    pub function: String,
    /// Whether the function exists.
    pub deployed: bool,
    pub versions: Vec<Version>,
    pub aliases: Vec<Alias>,
}

/// The releases of every function the file names, in the file's order.
pub async fn list(controller: &Controller) -> resources::Result<Vec<FunctionReleases>> {
    let mut all = Vec::new();
    for function in &controller.spec.functions {
        all.push(of_function(controller, &function.name).await?);
    }
    Ok(all)
}

async fn of_function(
    controller: &Controller,
    function: &str,
) -> resources::Result<FunctionReleases> {
    let lambda = &controller.ctx.clients.lambda;
    let listed_aliases = match lambda
        .list_aliases()
        .function_name(function)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
    {
        Ok(aliases) => aliases,
        Err(error) if resources::error_code(&error) == Some("ResourceNotFoundException") => {
            return Ok(FunctionReleases {
                function: function.to_string(),
                deployed: false,
                versions: Vec::new(),
                aliases: Vec::new(),
            });
        }
        Err(error) => return Err(aws_error("ListAliases")(error)),
    };
    let aliases: Vec<Alias> = listed_aliases
        .iter()
        .map(|alias| {
            let mut additional: Vec<(String, f64)> = alias
                .routing_config()
                .and_then(|routing| routing.additional_version_weights())
                .map(|weights| {
                    weights
                        .iter()
                        .map(|(version, weight)| (version.clone(), *weight))
                        .collect()
                })
                .unwrap_or_default();
            additional.sort_by(|a, b| a.0.cmp(&b.0));
            Alias {
                name: alias.name().unwrap_or_default().to_string(),
                version: alias.function_version().unwrap_or_default().to_string(),
                additional,
            }
        })
        .collect();
    let listed_versions = lambda
        .list_versions_by_function()
        .function_name(function)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(aws_error("ListVersionsByFunction"))?;
    let mut versions: Vec<Version> = listed_versions
        .iter()
        .filter(|version| version.version() != Some("$LATEST"))
        .map(|version| {
            let number = version.version().unwrap_or_default();
            Version {
                version: number.to_string(),
                published: version.last_modified().unwrap_or_default().to_string(),
                code_sha256: version.code_sha256().unwrap_or_default().to_string(),
                description: version.description().unwrap_or_default().to_string(),
                traffic: traffic_of(&aliases, number),
            }
        })
        .collect();
    versions.sort_by_key(|version| version.version.parse::<u64>().unwrap_or(u64::MAX));
    Ok(FunctionReleases {
        function: function.to_string(),
        deployed: true,
        versions,
        aliases,
    })
}

/// The share of each alias's traffic `version` takes: its weight where the
/// alias names it as an additional version, the rest where it is the
/// alias's version.
fn traffic_of(aliases: &[Alias], version: &str) -> Vec<(String, f64)> {
    aliases
        .iter()
        .filter_map(|alias| {
            let extra: f64 = alias.additional.iter().map(|(_, weight)| weight).sum();
            if alias.version == version {
                Some((alias.name.clone(), 1.0 - extra))
            } else {
                alias
                    .additional
                    .iter()
                    .find(|(additional, _)| additional == version)
                    .map(|(_, weight)| (alias.name.clone(), *weight))
            }
        })
        .collect()
}

impl fmt::Display for FunctionReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Function {}:", self.function)?;
        if !self.deployed {
            return writeln!(f, "  not deployed");
        }
        if self.versions.is_empty() {
            writeln!(f, "  no published version")?;
        }
        for version in &self.versions {
            let traffic: Vec<String> = version
                .traffic
                .iter()
                .map(|(alias, share)| format!("{alias} {:.0}%", share * 100.0))
                .collect();
            writeln!(
                f,
                "  {:>5}  {}  sha256:{}  {}{}",
                version.version,
                version.published,
                version.code_sha256,
                if traffic.is_empty() {
                    "-".to_string()
                } else {
                    traffic.join(", ")
                },
                if version.description.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", version.description)
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_takes_the_rest_of_its_alias_and_an_extra_its_weight() {
        let aliases = vec![
            Alias {
                name: "live".into(),
                version: "2".into(),
                additional: vec![("3".into(), 0.1)],
            },
            Alias {
                name: "old".into(),
                version: "1".into(),
                additional: Vec::new(),
            },
        ];
        let share = |version: &str| traffic_of(&aliases, version);
        assert_eq!(share("3"), vec![("live".to_string(), 0.1)]);
        let two = share("2");
        assert_eq!(two.len(), 1);
        assert!((two[0].1 - 0.9).abs() < 1e-9, "{two:?}");
        assert_eq!(share("1"), vec![("old".to_string(), 1.0)]);
        assert!(share("4").is_empty());
    }
}
