//! Builds the static binaries the images hold: one `cargo build` of every
//! package of a workspace that has an image, with the `image` profile,
//! `+crt-static` and an explicit target, so that they run in a `FROM
//! scratch` image. The packages are built in one call so that the features
//! of their shared dependencies are unified the same way every time (built
//! one by one, each would get its own copy of the AWS SDK). Cargo runs in
//! the Dockerfile's directory, so the packages are looked up in the
//! workspace the Dockerfile belongs to. The output goes to
//! `<target>/image-build`, away from the debug builds, whose cache other
//! flags would invalidate.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Deserialize;

use super::ImageError;
use super::progress::Progress;
use crate::spec::Architecture;

/// The Cargo profile the image binaries are built with (declared in the
/// workspace's `Cargo.toml`: size-optimised release, without symbols).
pub const BUILD_PROFILE: &str = "image";
/// How many of Cargo's last lines an error quotes.
const ERROR_LINES: usize = 25;

/// A binary built for an image.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The package it was built from.
    pub package: String,
    /// The file name it gets in the image (`detection`).
    pub name: String,
    pub path: PathBuf,
}

fn target_triple(architecture: Architecture) -> &'static str {
    match architecture {
        Architecture::X86_64 => "x86_64-unknown-linux-gnu",
        Architecture::Arm64 => "aarch64-unknown-linux-gnu",
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// What `cargo metadata --no-deps` says about a workspace.
#[derive(Debug, Deserialize)]
pub struct Workspace {
    pub workspace_root: PathBuf,
    target_directory: PathBuf,
    packages: Vec<MetaPackage>,
}

#[derive(Debug, Deserialize)]
struct MetaPackage {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<MetaTarget>,
}

#[derive(Debug, Deserialize)]
struct MetaTarget {
    name: String,
    kind: Vec<String>,
}

/// The directory a Dockerfile is in (`.` for a bare file name).
pub fn dockerfile_dir(dockerfile: &Path) -> &Path {
    dockerfile
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The Cargo workspace `dir` belongs to (`packages` names the packages
/// wanted from it, for the error message).
pub fn workspace(dir: &Path, packages: &str) -> Result<Workspace, ImageError> {
    let failed = |message: String| ImageError::Binary {
        package: packages.to_string(),
        message,
    };
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| failed(format!("cannot run cargo: {error}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{} is not in a Cargo workspace: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|error| failed(format!("cannot read `cargo metadata`: {error}")))
}

impl Workspace {
    /// The binary target of `package` an image holds: its only one, or the
    /// one named after the package.
    fn binary_target(&self, package: &str) -> Result<(&MetaPackage, String), ImageError> {
        let failed = |message: String| ImageError::Binary {
            package: package.to_string(),
            message,
        };
        let found = self
            .packages
            .iter()
            .find(|candidate| candidate.name == package)
            .ok_or_else(|| {
                failed(format!(
                    "the workspace at {} has no such package",
                    self.workspace_root.display()
                ))
            })?;
        let bins: Vec<&str> = found
            .targets
            .iter()
            .filter(|target| target.kind.iter().any(|kind| kind == "bin"))
            .map(|target| target.name.as_str())
            .collect();
        match bins.as_slice() {
            [] => Err(failed(
                "the package has no binary target: an image holds one executable".into(),
            )),
            [only] => Ok((found, only.to_string())),
            several if several.contains(&package) => Ok((found, package.to_string())),
            several => Err(failed(format!(
                "the package has {} binaries and none is named {package}",
                several.len()
            ))),
        }
    }
}

/// Builds the binary of each of `packages` (all in `workspace`), static
/// and for `architecture`, in one `cargo build`, and returns them in the
/// order asked. Cargo's no-op build takes about a second, so this runs on
/// every `diff` and `apply`: the content hash is that of the binary that
/// would ship.
pub fn build_binaries(
    workspace: &Workspace,
    packages: &[&str],
    architecture: Architecture,
    progress: &Progress,
) -> Result<Vec<Binary>, ImageError> {
    let all = packages.join(", ");
    let failed = |message: String| ImageError::Binary {
        package: all.clone(),
        message,
    };
    // Every package must have its binary before anything is built.
    let wanted = packages
        .iter()
        .map(|package| workspace.binary_target(package))
        .collect::<Result<Vec<_>, _>>()?;
    let target_dir = workspace.target_directory.join("image-build");
    let triple = target_triple(architecture);
    let started = Instant::now();
    let task = progress.task(&all, &format!("cargo build --profile {BUILD_PROFILE}"));
    let mut command = cargo();
    command.args(["build", "--profile", BUILD_PROFILE, "--target", triple]);
    for (package, bin) in &wanted {
        command.args(["-p", &package.name, "--bin", bin]);
    }
    let mut child = command
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(&workspace.workspace_root)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-C\u{1f}target-feature=+crt-static",
        )
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(format!("cannot run cargo: {error}")))?;
    let stderr = child.stderr.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    // Cargo's messages (stdout) and its errors (stderr) are read at once:
    // either pipe could fill up while the other one is read.
    let (artifacts, errors) = std::thread::scope(|scope| {
        let errors = scope.spawn(|| {
            let mut tail: Vec<String> = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tracing::debug!(packages = %all, "cargo: {line}");
                let trimmed = line.trim();
                if trimmed.starts_with("Compiling") || trimmed.starts_with("Blocking") {
                    task.line(trimmed);
                }
                tail.push(line);
                if tail.len() > ERROR_LINES {
                    tail.remove(0);
                }
            }
            tail
        });
        let mut artifacts: Vec<(PathBuf, String, PathBuf)> = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if message["reason"] != "compiler-artifact" {
                continue;
            }
            if let (Some(manifest), Some(name), Some(path)) = (
                message["manifest_path"].as_str(),
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                artifacts.push((manifest.into(), name.to_string(), path.into()));
            }
        }
        (artifacts, errors.join().unwrap_or_default())
    });
    let status = child
        .wait()
        .map_err(|error| failed(format!("cargo did not finish: {error}")))?;
    if !status.success() {
        task.fail("failed");
        return Err(failed(format!(
            "cargo build failed ({status}):\n{}",
            errors.join("\n")
        )));
    }
    task.finish(&format!(
        "built in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    wanted
        .into_iter()
        .map(|(package, bin)| {
            artifacts
                .iter()
                .find(|(manifest, name, _)| *manifest == package.manifest_path && *name == bin)
                .map(|(_, _, path)| Binary {
                    package: package.name.clone(),
                    name: bin.clone(),
                    path: path.clone(),
                })
                .ok_or_else(|| ImageError::Binary {
                    package: package.name.clone(),
                    message: format!("cargo built no executable named {bin}"),
                })
        })
        .collect()
}

/// Builds the binary of one package: [`build_binaries`] for the workspace
/// `dockerfile` belongs to.
pub fn build_binary(
    package: &str,
    dockerfile: &Path,
    architecture: Architecture,
    progress: &Progress,
) -> Result<Binary, ImageError> {
    let workspace = workspace(dockerfile_dir(dockerfile), package)?;
    let mut binaries = build_binaries(&workspace, &[package], architecture, progress)?;
    Ok(binaries.remove(0))
}
