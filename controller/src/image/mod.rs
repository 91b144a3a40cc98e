//! Function images: each function whose TOML names a Dockerfile and a
//! package gets a static binary built by Cargo, a `FROM scratch` image built
//! by the Docker Engine (through bollard) from an in-memory context, tagged
//! with the content hash of that context, pushed to the function's
//! repository, and pinned by digest.
//!
//! The content hash is looked up in the registry before anything is built:
//! an image whose context is already there is neither built, pushed nor
//! updated. `binary` builds the binary, `context` assembles and hashes the
//! build context, `registry` reads digests, `ecr` gets push credentials,
//! `engine` talks to the Docker daemon, `progress` shows what happens, and
//! `deploy` fits the images into a plan and an apply.

mod binary;
mod context;
mod deploy;
mod ecr;
mod engine;
mod location;
mod progress;
mod registry;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::cloud::Clients;
use crate::resources::repository::{live_tag, release_live_tags};
use crate::spec::{Architecture, Spec};

pub use binary::{BUILD_PROFILE, Binary, Workspace, build_binaries, build_binary, workspace};
pub use context::BuildContext;
pub use deploy::{DeployError, apply, plan};
pub use ecr::Credentials;
pub use engine::{Engine, Transport, transport};
pub use location::{EcrHost, Target, ecr_host, is_real_aws, target};
pub use progress::{LogWriter, Progress};
pub use registry::{CheckedImage, Registry, oci_architecture};

/// What the image URI of a function reads as in a plan while its image is
/// still to be built: the digest is known only once it is pushed.
pub const BUILT_AT_APPLY: &str = "(built at apply)";

/// Why a function image could not be built, found or pushed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot build the binary of package {package}: {message}")]
    Binary { package: String, message: String },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no Docker daemon answers at {host} ({origin}): {message}; start dockerd, or set DOCKER_HOST to a daemon that runs"
    )]
    DaemonUnreachable {
        host: String,
        origin: &'static str,
        message: String,
    },
    #[error("the image of function {function} failed to build at {step}: {message}")]
    Build {
        function: String,
        step: String,
        message: String,
    },
    #[error("pushing {image} failed: {message}")]
    Push { image: String, message: String },
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("cannot get registry credentials from ECR: {0}")]
    Credentials(String),
    #[error("{field} = {value:?}: {reason}; {fix}")]
    NotPullable {
        /// The desired-state field, dotted (`registry.endpoint`).
        field: String,
        value: String,
        reason: String,
        /// What to do about it.
        fix: String,
    },
    #[error("{image} cannot run on Lambda: {reason}")]
    NotForLambda { image: String, reason: String },
    #[error(
        "DOCKER_HOST={host}: {reason}; use the local socket (unix://), or set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to a directory with ca.pem, cert.pem and key.pem"
    )]
    InsecureDaemon { host: String, reason: String },
}

/// What happened to the images of one command, for people and for JSON.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ImageReport {
    /// Function keys whose image was built by the Docker daemon.
    pub built: Vec<String>,
    /// Function keys whose image was pushed.
    pub pushed: Vec<String>,
    /// Function keys whose image was already in the registry.
    pub unchanged: Vec<String>,
    /// Function key -> image, pinned by digest once known.
    pub images: BTreeMap<String, String>,
    /// Function key -> size of the build context in bytes (the binary and
    /// the Dockerfile: the image holds nothing else).
    pub context_bytes: BTreeMap<String, u64>,
}

impl ImageReport {
    /// One line for people: `2 built, 2 pushed, 0 unchanged`.
    pub fn summary(&self) -> String {
        format!(
            "{} built, {} pushed, {} unchanged",
            self.built.len(),
            self.pushed.len(),
            self.unchanged.len()
        )
    }
}

/// One function's built image.
#[derive(Debug)]
struct Entry {
    key: String,
    repository: String,
    architecture: Architecture,
    context: BuildContext,
    /// `sha256:...` once the image is in the registry.
    digest: Option<String>,
}

impl Entry {
    fn tag(&self) -> &str {
        self.context.tag()
    }
}

/// The built images of a deployment: resolved against the registry by
/// [`Images::prepare`], built and pushed by [`Images::publish`].
#[derive(Debug, Default)]
pub struct Images {
    registry: Option<Registry>,
    entries: Vec<Entry>,
    report: ImageReport,
}

impl Images {
    /// Builds the binary of every function with a built image, assembles its
    /// context, and looks its content hash up in the registry. Makes no
    /// change anywhere and does not need the Docker daemon. A deployment
    /// without built images costs nothing here.
    pub async fn prepare(
        spec: &Spec,
        clients: &Clients,
        progress: &Progress,
    ) -> Result<Images, ImageError> {
        // Refuses a registry Lambda cannot pull from before anything else.
        let target = location::target(spec)?;
        let builds: Vec<_> = spec
            .functions
            .iter()
            .filter_map(|function| function.build.as_ref().map(|build| (function, build)))
            .collect();
        if builds.is_empty() {
            return Ok(Images::default());
        }
        let registry = match &target {
            Target::AccountEcr => {
                let credentials = ecr::credentials(&clients.ecr).await?;
                Registry::new(&credentials.endpoint.clone(), Some(credentials))?
            }
            // ECR's token goes to the host its proxyEndpoint names, or nowhere.
            Target::Ecr { endpoint, .. } => {
                Registry::new(endpoint, Some(ecr::credentials(&clients.ecr).await?))?
            }
            // No token for a registry that is not ECR's.
            Target::Local { endpoint } => Registry::new(endpoint, None)?,
        };
        let mut images = Images {
            registry: Some(registry),
            ..Images::default()
        };
        // One cargo build per workspace and architecture, of all its packages.
        let mut groups: Vec<(PathBuf, Architecture, Workspace, Vec<&str>)> = Vec::new();
        // The group each function's binary is built in.
        let mut group_of: Vec<usize> = Vec::new();
        for (function, build) in &builds {
            let dir = binary::dockerfile_dir(&build.dockerfile);
            let known = groups.iter().position(|(seen, architecture, ..)| {
                seen == dir && *architecture == function.architecture
            });
            let index = match known {
                Some(index) => index,
                None => {
                    let found = workspace(dir, &build.package)?;
                    let same = groups.iter().position(|(_, architecture, other, _)| {
                        other.workspace_root == found.workspace_root
                            && *architecture == function.architecture
                    });
                    match same {
                        Some(index) => index,
                        None => {
                            groups.push((
                                dir.to_path_buf(),
                                function.architecture,
                                found,
                                Vec::new(),
                            ));
                            groups.len() - 1
                        }
                    }
                }
            };
            if !groups[index].3.contains(&build.package.as_str()) {
                groups[index].3.push(&build.package);
            }
            group_of.push(index);
        }
        let mut binaries: Vec<(usize, Binary)> = Vec::new();
        for (index, (_, architecture, workspace, packages)) in groups.iter().enumerate() {
            for binary in build_binaries(workspace, packages, *architecture, progress)? {
                binaries.push((index, binary));
            }
        }
        for ((function, build), group) in builds.into_iter().zip(group_of) {
            let binary = binaries
                .iter()
                .find(|(index, binary)| *index == group && binary.package == build.package)
                .map(|(_, binary)| binary)
                .expect("every package was built above");
            let context = BuildContext::assemble(&build.dockerfile, binary, &build.include)?;
            let registry = images.registry.as_ref().expect("set above");
            // An image already there is pinned only if Lambda can run it.
            let digest = registry
                .find(
                    &function.repository.name,
                    context.tag(),
                    function.architecture,
                )
                .await?
                .map(|checked| checked.digest);
            let image = registry.tagged(&function.repository.name, context.tag());
            match &digest {
                Some(digest) => {
                    progress.note(
                        &function.key,
                        &format!("{image} is in the registry ({digest})"),
                    );
                    images.report.unchanged.push(function.key.clone());
                }
                None => progress.note(
                    &function.key,
                    &format!("{image} is not in the registry: it will be built"),
                ),
            }
            images
                .report
                .context_bytes
                .insert(function.key.clone(), context.len() as u64);
            images.entries.push(Entry {
                key: function.key.clone(),
                repository: function.repository.name.clone(),
                architecture: function.architecture,
                context,
                digest,
            });
        }
        images.refresh_report();
        Ok(images)
    }

    /// The spec with every built image's URI filled in: pinned by digest
    /// when the image is in the registry, `repo@(built at apply)` otherwise.
    pub fn resolve(&self, spec: &Spec) -> Spec {
        let mut spec = spec.clone();
        let Some(registry) = &self.registry else {
            return spec;
        };
        for entry in &self.entries {
            if let Some(function) = spec.functions.iter_mut().find(|f| f.key == entry.key) {
                function.image_uri = match &entry.digest {
                    Some(digest) => registry.pinned(&entry.repository, digest),
                    None => format!("{}/{}@{BUILT_AT_APPLY}", registry.host(), entry.repository),
                };
            }
        }
        spec
    }

    /// Keys of the functions whose image is not in the registry yet.
    pub fn pending(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|entry| entry.digest.is_none())
            .map(|entry| entry.key.as_str())
            .collect()
    }

    /// Builds every pending image with the Docker daemon; pushes nothing.
    pub async fn build(&mut self, engine: &Engine, progress: &Progress) -> Result<(), ImageError> {
        let registry = self.registry.as_ref().ok_or_else(no_registry)?;
        for entry in self.entries.iter().filter(|entry| entry.digest.is_none()) {
            let image = registry.tagged(&entry.repository, entry.tag());
            engine
                .build(
                    &entry.key,
                    &entry.context,
                    &image,
                    entry.architecture,
                    progress,
                )
                .await?;
            self.report.built.push(entry.key.clone());
        }
        Ok(())
    }

    /// Pushes every pending image (built by [`Images::build`]) and reads its
    /// digest back from the registry: a function is pinned only to a
    /// manifest the registry has.
    pub async fn push(&mut self, engine: &Engine, progress: &Progress) -> Result<(), ImageError> {
        let registry = self.registry.as_ref().ok_or_else(no_registry)?;
        for entry in self
            .entries
            .iter_mut()
            .filter(|entry| entry.digest.is_none())
        {
            let repository = registry.repository(&entry.repository);
            engine
                .push(
                    &entry.key,
                    &repository,
                    entry.context.tag(),
                    registry.credentials(),
                    progress,
                )
                .await?;
            // Read back with single-manifest types only, and checked: the
            // digest a function is pinned to is an image Lambda can run.
            let digest = registry
                .check(&entry.repository, entry.context.tag(), entry.architecture)
                .await?
                .digest;
            progress.note(&entry.key, &format!("pushed {repository}@{digest}"));
            self.report.pushed.push(entry.key.clone());
            entry.digest = Some(digest);
        }
        self.refresh_report();
        Ok(())
    }

    /// Tags every image in the registry that a function is about to run
    /// with its protected tag (`live-<content tag>`), which the repository's
    /// lifecycle policy never expires: done before a function is pointed
    /// at the image, so that it is never unprotected while pinned.
    pub async fn protect(&self, progress: &Progress) -> Result<(), ImageError> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        for entry in &self.entries {
            let Some(digest) = &entry.digest else {
                continue;
            };
            let tag = live_tag(entry.tag());
            if registry.digest(&entry.repository, &tag).await?.as_deref() == Some(digest) {
                continue;
            }
            registry.add_tag(&entry.repository, digest, &tag).await?;
            progress.note(
                &entry.key,
                &format!(
                    "tagged {} (kept by the lifecycle policy)",
                    registry.tagged(&entry.repository, &tag)
                ),
            );
        }
        Ok(())
    }

    /// Once the functions run the images of this deployment, removes the
    /// protected tag from every other image of their ECR repositories, so
    /// that the lifecycle policy may expire them. A failure here leaves an
    /// image protected (kept), never one unprotected: it is reported, and
    /// the next apply releases it.
    ///
    /// `kept` gives, by function key, the digests the function's published
    /// versions pin (they stay protected too); `None` keeps every protected
    /// image of that function's repository.
    pub async fn release(
        &self,
        ecr: &aws_sdk_ecr::Client,
        kept: &BTreeMap<String, Option<Vec<String>>>,
        progress: &Progress,
    ) {
        // Only ECR's registry is given credentials (and has a lifecycle
        // policy); a local registry has no live tags to release.
        if self
            .registry
            .as_ref()
            .and_then(Registry::credentials)
            .is_none()
        {
            return;
        }
        // Every image of a repository that one of its functions runs stays
        // protected (two functions may share a repository).
        let mut pinned: BTreeMap<&str, (Vec<&str>, &str)> = BTreeMap::new();
        let mut keep_all: Vec<&str> = Vec::new();
        for entry in &self.entries {
            let Some(digest) = &entry.digest else {
                return;
            };
            let slot = pinned
                .entry(entry.repository.as_str())
                .or_insert_with(|| (Vec::new(), entry.key.as_str()));
            slot.0.push(digest.as_str());
            match kept.get(&entry.key) {
                Some(Some(versions)) => slot.0.extend(versions.iter().map(String::as_str)),
                Some(None) => keep_all.push(entry.repository.as_str()),
                None => {}
            }
        }
        for (repository, (digests, key)) in pinned {
            if keep_all.contains(&repository) {
                continue;
            }
            match release_live_tags(ecr, repository, &digests).await {
                Ok(released) if released.is_empty() => {}
                Ok(released) => progress.note(
                    key,
                    &format!("released {} from {repository}", released.join(", ")),
                ),
                Err(error) => {
                    tracing::warn!(%repository, %error, "cannot release the live tags of images no function runs");
                    progress.note(
                        key,
                        &format!("older images of {repository} stay protected: {error}"),
                    );
                }
            }
        }
    }

    /// What happened so far.
    pub fn report(&self) -> &ImageReport {
        &self.report
    }

    fn refresh_report(&mut self) {
        let Some(registry) = &self.registry else {
            return;
        };
        for entry in &self.entries {
            let image = match &entry.digest {
                Some(digest) => registry.pinned(&entry.repository, digest),
                None => registry.tagged(&entry.repository, entry.tag()),
            };
            self.report.images.insert(entry.key.clone(), image);
        }
    }
}

fn no_registry() -> ImageError {
    ImageError::Registry {
        registry: String::new(),
        message: "no registry: the deployment has no built image".into(),
    }
}
