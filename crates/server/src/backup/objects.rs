//! Stored objects in a backup, for the local storage backend: `objects.tar` holds the
//! bytes of every version `storage.objects` names in the backup's snapshot, as
//! `objects/<fan>/<version>` (the store's own layout), so a restore puts them back where
//! the restored rows look for them. Stored bytes are never changed in place (a new
//! upload is a new version), so a version copied once is the version the row names.
//!
//! A version removed between the snapshot and its copy (its object deleted or replaced
//! while the backup ran) cannot be copied; the manifest lists it under `missing`, and a
//! restore removes the rows naming it, so no restored row points at missing bytes.
//! With the S3 backend the objects stay in the bucket (its versioning keeps their
//! history; deploy/README.md), and the manifest says where they are.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The part's name (before any encryption suffix).
pub(super) const OBJECTS: &str = "objects.tar";

/// What a backup says about stored objects.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectsSummary {
    /// `local`: the bytes are in `objects.tar`; `s3`: they stay in `location`.
    pub(crate) backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) location: Option<String>,
    /// Versions in the part, and their bytes.
    #[serde(default)]
    pub(crate) count: u64,
    #[serde(default)]
    pub(crate) bytes: u64,
    /// Versions the snapshot named whose bytes were gone before they could be copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) missing: Vec<String>,
}

/// The versions the snapshot's rows name.
pub(super) const VERSIONS: &str =
    "SELECT version FROM storage.objects WHERE version IS NOT NULL ORDER BY version";

/// Where objects are, by the configuration: the local root, or `None` for S3 (with its
/// URL) or when storage is off.
pub(super) fn local_root(config: &Config) -> Result<PathBuf, Option<String>> {
    if !config.storage.enabled {
        return Err(None);
    }
    match &config.storage.s3_url {
        Some(url) => Err(Some(url.clone())),
        None => Ok(config
            .storage
            .root
            .clone()
            .unwrap_or_else(|| config.data_dir().join("storage"))),
    }
}

/// A version as the store names it (a UUID): anything else is never made into a path.
fn valid_version(version: &str) -> bool {
    version.len() >= 2
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The path of `version` inside the part and under the store's root.
fn relative(version: &str) -> String {
    format!("objects/{}/{version}", &version[..2])
}

/// Writes the bytes of `versions` under `root` into `out` as a tar archive; versions
/// whose bytes are gone are listed as missing.
pub(super) fn write<W: Write>(
    root: &Path,
    versions: &[String],
    out: W,
) -> anyhow::Result<(W, ObjectsSummary)> {
    let mut archive = tar::Builder::new(out);
    archive.mode(tar::HeaderMode::Deterministic);
    let mut summary = ObjectsSummary {
        backend: "local".to_owned(),
        ..ObjectsSummary::default()
    };
    for version in versions {
        if !valid_version(version) {
            anyhow::bail!(
                "storage.objects names a version that is not one Galley writes: {version:?}"
            );
        }
        let name = relative(version);
        let path = root.join(&name);
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    version,
                    "an object was removed while the backup ran; the backup leaves it out"
                );
                summary.missing.push(version.clone());
                continue;
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let size = file.metadata()?.len();
        archive
            .append_file(&name, &mut file)
            .with_context(|| format!("copying {}", path.display()))?;
        summary.count += 1;
        summary.bytes += size;
    }
    let out = archive
        .into_inner()
        .context("finishing the objects archive")?;
    Ok((out, summary))
}

/// Each version in an archive, and its size; every entry's bytes are read, so a damaged
/// archive fails here.
pub(super) fn read_all(input: impl Read) -> anyhow::Result<Vec<(String, u64)>> {
    let mut archive = tar::Archive::new(input);
    let mut found = Vec::new();
    for entry in archive.entries().context("reading the objects archive")? {
        let mut entry = entry.context("reading the objects archive")?;
        let version = version_of(&entry)?;
        let size = std::io::copy(&mut entry, &mut std::io::sink())
            .context("reading the objects archive")?;
        found.push((version, size));
    }
    Ok(found)
}

/// The version an entry holds, refusing any name that is not `objects/<fan>/<version>`.
fn version_of<R: Read>(entry: &tar::Entry<'_, R>) -> anyhow::Result<String> {
    let path = entry.path().context("reading the objects archive")?;
    let text = path.to_str().unwrap_or_default();
    let version = text
        .strip_prefix("objects/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(fan, version)| valid_version(version) && version.get(..2) == Some(*fan))
        .map(|(_, version)| version.to_owned());
    match version {
        Some(version) if entry.header().entry_type().is_file() => Ok(version),
        _ => anyhow::bail!("the objects archive holds an entry Galley did not write: {text:?}"),
    }
}

/// Puts an archive's objects under `root`; a version already there is left as it is
/// (a version's bytes never change). Each file is written beside its place, flushed,
/// and renamed into it. Answers how many were written.
pub(super) fn restore(input: impl Read, root: &Path) -> anyhow::Result<u64> {
    let mut archive = tar::Archive::new(input);
    let mut written = 0;
    for entry in archive.entries().context("reading the objects archive")? {
        let mut entry = entry.context("reading the objects archive")?;
        let version = version_of(&entry)?;
        let path = root.join(relative(&version));
        if path.exists() {
            continue;
        }
        let dir = path.parent().context("an object's directory")?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let partial = dir.join(format!(".restore-{version}"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        std::io::copy(&mut entry, &mut file)
            .and_then(|_| file.sync_all())
            .with_context(|| format!("writing {}", partial.display()))?;
        fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    Ok(written)
}

/// Objects a restore has staged under the store's root, outside `objects/` (so the
/// orphan sweep, which removes bytes no row names, cannot take them before their rows
/// exist); removed on drop unless promoted.
pub(super) struct Staged {
    dir: PathBuf,
    root: PathBuf,
}

impl Staged {
    pub(super) fn new(root: &Path) -> Self {
        Self {
            dir: root.join(format!(
                ".restore-{}",
                hex::encode(rand::random::<[u8; 6]>())
            )),
            root: root.to_owned(),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the staged objects into place.
    pub(super) fn promote(self) -> anyhow::Result<u64> {
        promote(&self.dir, &self.root)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Moves the objects staged under `staging` into `root` (a rename each: the same file
/// system), keeping a version already there, then removes `staging`.
fn promote(staging: &Path, root: &Path) -> anyhow::Result<u64> {
    let mut moved = 0;
    let objects = staging.join("objects");
    let fans = match fs::read_dir(&objects) {
        Ok(fans) => fans,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            fs::remove_dir_all(staging).ok();
            return Ok(0);
        }
        Err(err) => return Err(err).with_context(|| format!("reading {}", objects.display())),
    };
    for fan in fans {
        let fan = fan?;
        let into = root.join("objects").join(fan.file_name());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&into)
            .with_context(|| format!("creating {}", into.display()))?;
        for file in fs::read_dir(fan.path())? {
            let file = file?;
            let to = into.join(file.file_name());
            if !to.exists() {
                fs::rename(file.path(), &to)
                    .with_context(|| format!("moving {} into place", to.display()))?;
                moved += 1;
            }
        }
        // The directory entries, durable with the files' own flushes.
        fs::File::open(&into).and_then(|dir| dir.sync_all()).ok();
    }
    fs::remove_dir_all(staging).with_context(|| format!("removing {}", staging.display()))?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, version: &str, bytes: &[u8]) {
        let path = root.join(relative(version));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn objects_go_into_the_archive_and_back_and_gone_ones_are_named() {
        let from = tempfile::tempdir().unwrap();
        let a = "0a1b2c3d-0000-4000-8000-000000000001".to_owned();
        let b = "ff1b2c3d-0000-4000-8000-000000000002".to_owned();
        let gone = "12345678-0000-4000-8000-000000000003".to_owned();
        put(from.path(), &a, b"first object");
        put(from.path(), &b, &[7u8; 70_000]);
        let (archive, summary) = write(
            from.path(),
            &[a.clone(), b.clone(), gone.clone()],
            Vec::new(),
        )
        .unwrap();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.bytes, 12 + 70_000);
        assert_eq!(summary.missing, vec![gone]);
        assert_eq!(
            read_all(archive.as_slice()).unwrap(),
            vec![(a.clone(), 12), (b.clone(), 70_000)]
        );

        let to = tempfile::tempdir().unwrap();
        let staged = Staged::new(to.path());
        let staging = staged.dir().to_owned();
        assert_eq!(restore(archive.as_slice(), &staging).unwrap(), 2);
        assert!(
            !to.path().join(relative(&a)).exists(),
            "staged, not yet in place"
        );
        // One of them is already in place: it is kept, the other moves in.
        put(to.path(), &a, b"first object");
        assert_eq!(staged.promote().unwrap(), 1);
        // A restore that fails before the promotion leaves nothing staged behind.
        let abandoned = Staged::new(to.path());
        restore(archive.as_slice(), abandoned.dir()).unwrap();
        let dir = abandoned.dir().to_owned();
        drop(abandoned);
        assert!(!dir.exists());
        assert!(!staging.exists());
        assert_eq!(
            fs::read(to.path().join(relative(&a))).unwrap(),
            b"first object"
        );
        assert_eq!(
            fs::read(to.path().join(relative(&b))).unwrap(),
            vec![7u8; 70_000]
        );
    }

    #[test]
    fn an_archive_naming_anything_else_is_refused_and_nothing_escapes() {
        // Written raw: the tar crate refuses `..` in the names it writes itself.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..20].copy_from_slice(b"objects/../../escape");
        header.set_size(4);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, &b"evil"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        let to = tempfile::tempdir().unwrap();
        let root = to.path().join("root");
        let err = restore(archive.as_slice(), &root).unwrap_err();
        assert!(err.to_string().contains("did not write"), "{err}");
        assert!(!to.path().join("escape").exists());
        assert!(read_all(archive.as_slice()).is_err());
    }
}
