//! The build context, assembled in memory: a tar holding the Dockerfile and
//! the binary, with fixed owners, modes and times, so that the same inputs
//! always give the same bytes. The image tag is the SHA-256 of those bytes.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::ImageError;
use super::binary::Binary;

/// Hex digits of the content hash the tag keeps.
const TAG_LENGTH: usize = 16;

/// A build context ready to send to the Docker daemon.
#[derive(Clone, Debug)]
pub struct BuildContext {
    tar: Bytes,
    sha256: String,
}

impl BuildContext {
    /// Packs `Dockerfile` (from `dockerfile`), the binary (under its own
    /// name, executable) and the `include`d files (under their file names)
    /// into a tar.
    pub fn assemble(
        dockerfile: &Path,
        binary: &Binary,
        include: &[PathBuf],
    ) -> Result<BuildContext, ImageError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ImageError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let mut files = vec![
            ("Dockerfile".to_string(), read(dockerfile)?, 0o644),
            (binary.name.clone(), read(&binary.path)?, 0o755),
        ];
        for path in include {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, read(path)?, 0o644));
        }
        BuildContext::from_files(&files)
    }

    /// Packs the given `(name, bytes, mode)` files, in that order.
    pub fn from_files<N: AsRef<str>>(
        files: &[(N, Vec<u8>, u32)],
    ) -> Result<BuildContext, ImageError> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, name.as_ref(), data.as_slice())
                .map_err(|source| ImageError::Read {
                    path: name.as_ref().into(),
                    source,
                })?;
        }
        let tar = builder.into_inner().map_err(|source| ImageError::Read {
            path: "build context".into(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&tar));
        Ok(BuildContext {
            tar: Bytes::from(tar),
            sha256,
        })
    }

    /// The tag: the first hex digits of the context's SHA-256.
    pub fn tag(&self) -> &str {
        &self.sha256[..TAG_LENGTH]
    }

    /// The tar bytes.
    pub fn tar(&self) -> Bytes {
        self.tar.clone()
    }

    /// Size of the tar in bytes.
    pub fn len(&self) -> usize {
        self.tar.len()
    }

    /// Whether the context holds nothing (never, once assembled).
    pub fn is_empty(&self) -> bool {
        self.tar.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(binary: &[u8]) -> BuildContext {
        BuildContext::from_files(&[
            ("Dockerfile", b"FROM scratch\n".to_vec(), 0o644),
            ("detection", binary.to_vec(), 0o755),
        ])
        .unwrap()
    }

    #[test]
    fn the_same_files_give_the_same_tag_and_another_binary_another() {
        assert_eq!(context(b"one").tag(), context(b"one").tag());
        assert_ne!(context(b"one").tag(), context(b"two").tag());
        assert_eq!(context(b"one").tag().len(), TAG_LENGTH);
    }

    #[test]
    fn the_context_is_a_tar_with_both_files() {
        let tar = context(b"binary").tar();
        let mut archive = tar::Archive::new(tar.as_ref());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["Dockerfile", "detection"]);
    }
}
