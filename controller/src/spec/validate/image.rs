//! A function's image: a prebuilt `image_uri` or a `[functions.<key>.image]`
//! that `apply` builds, exactly one of them.

use std::path::Path;

use super::Checker;
use crate::spec::ImageBuild;
use crate::spec::raw::RawFunction;

/// What a function's built image is resolved against.
pub(super) struct ImageContext<'a> {
    /// The desired-state file: relative Dockerfile paths start at its directory.
    pub(super) spec_path: &'a Path,
    /// `[registry] endpoint`, when set and valid.
    pub(super) registry: Option<&'a str>,
}

/// `image_uri` or `[functions.<key>.image]`: exactly one of them.
pub(super) fn build_image(
    key: &str,
    raw: &RawFunction,
    images: &ImageContext,
    checker: &mut Checker,
) -> (String, Option<ImageBuild>) {
    match (&raw.image_uri, &raw.image) {
        (Some(_), Some(_)) => {
            checker.problem(
                &["functions", key, "image"],
                "set either image_uri (a prebuilt image) or image (built by apply), not both",
            );
            (String::new(), None)
        }
        (None, None) => {
            checker.problem(
                &["functions", key],
                "the function needs an image: image_uri = \"registry/repo@sha256:...\" or image = { dockerfile = \"...\", package = \"...\" }",
            );
            (String::new(), None)
        }
        (Some(uri), None) => {
            if let Err(reason) = check_image_uri(uri) {
                checker.problem(
                    &["functions", key, "image_uri"],
                    format!("{uri:?} is not a container image URI: {reason}"),
                );
            }
            (uri.clone(), None)
        }
        (None, Some(image)) => {
            let base = images.spec_path.parent().unwrap_or(Path::new(""));
            let dockerfile = base.join(&image.dockerfile);
            if !dockerfile.is_file() {
                checker.problem(
                    &["functions", key, "image", "dockerfile"],
                    format!(
                        "{} is not a file (relative paths start at the directory of this file)",
                        dockerfile.display()
                    ),
                );
            }
            let package_ok = !image.package.is_empty()
                && image
                    .package
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !package_ok {
                checker.problem(
                    &["functions", key, "image", "package"],
                    format!("{:?} is not a Cargo package name", image.package),
                );
            }
            let include = image
                .include
                .iter()
                .enumerate()
                .map(|(index, file)| {
                    let path = base.join(file);
                    if !path.is_file() {
                        let index = index.to_string();
                        checker.problem(
                            &["functions", key, "image", "include", &index],
                            format!("{} is not a file", path.display()),
                        );
                    }
                    path
                })
                .collect();
            let build = ImageBuild {
                dockerfile,
                package: image.package.clone(),
                include,
                registry: images.registry.map(str::to_string),
            };
            (String::new(), Some(build))
        }
    }
}

/// `registry/repository:tag` or `registry/repository@sha256:<64 hex>`.
fn check_image_uri(uri: &str) -> Result<(), &'static str> {
    let (registry, rest) = uri.split_once('/').ok_or("it has no registry host")?;
    if registry.is_empty() || registry.contains(char::is_whitespace) {
        return Err("the registry host is empty");
    }
    if let Some((repository, digest)) = rest.split_once('@') {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or("the digest must start with sha256:")?;
        if repository.is_empty() || hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("the digest must be sha256: and 64 hex digits");
        }
        return Ok(());
    }
    let (repository, tag) = rest
        .rsplit_once(':')
        .ok_or("it needs a :tag or an @sha256: digest")?;
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if repository.is_empty() || !tag_ok {
        return Err("the tag must be 1-128 letters, digits and _.-");
    }
    Ok(())
}
