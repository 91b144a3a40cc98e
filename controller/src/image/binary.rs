//! Builds the static binary an image holds: `cargo build` of one package
//! with the `image` profile, `+crt-static` and an explicit target, so that
//! it runs in a `FROM scratch` image. Cargo runs in the Dockerfile's
//! directory, so the package is looked up in the workspace the Dockerfile
//! belongs to. Its output goes to `<target>/image-build`, away from the
//! debug builds, whose cache other flags would invalidate.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::ImageError;
use crate::spec::Architecture;

/// The Cargo profile the image binaries are built with (declared in the
/// workspace's `Cargo.toml`: release, without symbols).
pub const BUILD_PROFILE: &str = "image";
/// How many of Cargo's last lines an error quotes.
const ERROR_LINES: usize = 25;

/// A binary built for an image.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The file name it gets in the image (`/detection`).
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

/// The root of the Cargo workspace `dir` belongs to.
fn workspace_root(dir: &Path, package: &str) -> Result<PathBuf, ImageError> {
    let output = cargo()
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .current_dir(dir)
        .output()
        .map_err(|error| ImageError::Binary {
            package: package.to_string(),
            message: format!("cannot run cargo: {error}"),
        })?;
    if !output.status.success() {
        return Err(ImageError::Binary {
            package: package.to_string(),
            message: format!(
                "{} is not in a Cargo workspace: {}",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    Ok(manifest.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Builds the binary of `package` (release, static) and returns where it is.
/// Cargo's no-op build takes about a second, so this runs on every `diff`
/// and `apply`: the content hash is that of the binary that would ship.
pub fn build_binary(
    package: &str,
    dockerfile: &Path,
    architecture: Architecture,
) -> Result<Binary, ImageError> {
    let dir = dockerfile
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let root = workspace_root(dir, package)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("image-build");
    let triple = target_triple(architecture);
    let started = Instant::now();
    tracing::info!(
        package,
        profile = BUILD_PROFILE,
        target = triple,
        "building the binary"
    );
    let mut child = cargo()
        .args([
            "build",
            "--profile",
            BUILD_PROFILE,
            "--target",
            triple,
            "--bins",
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-C\u{1f}target-feature=+crt-static",
        )
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| ImageError::Binary {
            package: package.to_string(),
            message: format!("cannot run cargo: {error}"),
        })?;
    let stderr = child.stderr.take().expect("piped");
    let package_name = package.to_string();
    let errors = std::thread::spawn(move || {
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tracing::debug!(package = %package_name, "cargo: {line}");
            tail.push(line);
            if tail.len() > ERROR_LINES {
                tail.remove(0);
            }
        }
        tail
    });
    let stdout = child.stdout.take().expect("piped");
    let mut binaries = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_bin = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"));
        if let (true, Some(path)) = (is_bin, message["executable"].as_str()) {
            binaries.push(Binary {
                name: message["target"]["name"]
                    .as_str()
                    .unwrap_or(package)
                    .to_string(),
                path: PathBuf::from(path),
            });
        }
    }
    let status = child.wait().map_err(|error| ImageError::Binary {
        package: package.to_string(),
        message: format!("cargo did not finish: {error}"),
    })?;
    let tail = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(ImageError::Binary {
            package: package.to_string(),
            message: format!("cargo build failed ({status}):\n{}", tail.join("\n")),
        });
    }
    tracing::info!(
        package,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "binary ready"
    );
    let named = binaries.iter().position(|binary| binary.name == package);
    match (binaries.len(), named) {
        (0, _) => Err(ImageError::Binary {
            package: package.to_string(),
            message: "the package has no binary target: an image holds one executable".into(),
        }),
        (1, _) => Ok(binaries.remove(0)),
        (_, Some(index)) => Ok(binaries.remove(index)),
        (_, None) => Err(ImageError::Binary {
            package: package.to_string(),
            message: format!(
                "the package has {} binaries and none is named {package}",
                binaries.len()
            ),
        }),
    }
}
