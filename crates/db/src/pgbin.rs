//! Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`) on this machine.

use std::path::{Path, PathBuf};

use crate::embedded::EmbeddedError;

/// The directory holding the PostgreSQL server programs Galley drives.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
}

const REQUIRED: [&str; 2] = ["initdb", "pg_ctl"];

impl PgBinaries {
    /// Uses `dir` when given; otherwise searches `PATH`, then `/usr/lib/postgresql/*/bin`
    /// (newest major version first), which is where Debian and Ubuntu install them.
    pub fn locate(dir: Option<&Path>) -> Result<Self, EmbeddedError> {
        if let Some(dir) = dir {
            return if has_all(dir) {
                Ok(Self {
                    dir: dir.to_owned(),
                })
            } else {
                Err(EmbeddedError::BinariesNotInDir {
                    dir: dir.to_owned(),
                })
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let on_path = std::env::split_paths(&path);
        Self::search(on_path.chain(distribution_dirs(Path::new("/usr/lib/postgresql"))))
    }

    fn search(candidates: impl IntoIterator<Item = PathBuf>) -> Result<Self, EmbeddedError> {
        candidates
            .into_iter()
            .find(|dir| has_all(dir))
            .map(|dir| Self { dir })
            .ok_or(EmbeddedError::NoBinaries)
    }

    /// Path of one program, e.g. `bin("pg_ctl")`.
    pub fn bin(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn has_all(dir: &Path) -> bool {
    REQUIRED.iter().all(|program| dir.join(program).is_file())
}

/// `<root>/<major>/bin`, highest major version first.
pub(crate) fn distribution_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_install(root: &Path, major: &str) -> PathBuf {
        let bin = root.join(major).join("bin");
        std::fs::create_dir_all(&bin).expect("create fake bin dir");
        for program in REQUIRED {
            std::fs::write(bin.join(program), "").expect("write fake program");
        }
        bin
    }

    #[test]
    fn newest_distribution_version_wins() {
        let root = tempfile::tempdir().expect("tempdir");
        fake_install(root.path(), "13");
        let newest = fake_install(root.path(), "16");
        std::fs::create_dir_all(root.path().join("not-a-version/bin")).expect("mkdir");
        let found = PgBinaries::search(distribution_dirs(root.path())).expect("found");
        assert_eq!(found.dir(), newest);
    }

    #[test]
    fn nothing_found_names_the_package_and_the_alternative() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = PgBinaries::search(distribution_dirs(root.path())).expect_err("none");
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("--database-url"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn an_explicit_directory_without_the_programs_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = PgBinaries::locate(Some(root.path())).expect_err("empty dir");
        assert!(err.to_string().contains("initdb"), "{err}");
    }
}
