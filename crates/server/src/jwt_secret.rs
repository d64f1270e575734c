//! The project's JWT secret: from configuration, or generated on first start and kept in
//! `<data_dir>/jwt_secret`, readable by its owner only.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use galley_auth::JwtSecret;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::Config;

const FILE: &str = "jwt_secret";

/// The configured secret, else the one in the data directory, else a new one saved there.
pub(crate) fn load_or_create(config: &Config) -> anyhow::Result<JwtSecret> {
    if let Some(secret) = &config.auth.jwt_secret {
        return JwtSecret::parse(secret.expose_secret()).context("auth.jwt_secret");
    }
    let dir = data_dir(config)?;
    let path = dir.join(FILE);
    match read(&path)? {
        Some(secret) => Ok(secret),
        None => create(&path),
    }
}

/// The data directory, created (0700) when it does not exist.
fn data_dir(config: &Config) -> anyhow::Result<&Path> {
    let dir = config.data_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    Ok(dir)
}

/// The configured secret, else the one in the data directory; never creates one. For the
/// commands other than `serve`: run where no data directory exists, a new secret would
/// print keys that no server accepts.
pub(crate) fn load(config: &Config) -> anyhow::Result<JwtSecret> {
    if let Some(secret) = &config.auth.jwt_secret {
        return JwtSecret::parse(secret.expose_secret()).context("auth.jwt_secret");
    }
    let path = config.data_dir().join(FILE);
    match read(&path)? {
        Some(secret) => Ok(secret),
        None => {
            let shown = std::path::absolute(&path).unwrap_or(path);
            anyhow::bail!(
                "no JWT secret: auth.jwt_secret is not set and {} does not exist; \
                 pass the --data-dir that `galley serve` uses (or run it once to create one \
                 there), or set GALLEY_AUTH_JWT_SECRET or GALLEY_AUTH_JWT_SECRET_FILE",
                shown.display()
            )
        }
    }
}

/// Puts `secret` (a restored backup's) in the data directory in place of the one there.
pub(crate) fn replace(config: &Config, secret: &str) -> anyhow::Result<()> {
    JwtSecret::parse(secret).context("the backup's JWT secret")?;
    let dir = data_dir(config)?;
    let path = dir.join(FILE);
    let staged = dir.join(format!("{FILE}.restoring"));
    let _ = fs::remove_file(&staged);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .with_context(|| format!("creating {}", staged.display()))?;
    writeln!(file, "{secret}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", staged.display()))?;
    fs::rename(&staged, &path).with_context(|| format!("replacing {}", path.display()))
}

fn read(path: &Path) -> anyhow::Result<Option<JwtSecret>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let mode = fs::metadata(path)
        .with_context(|| format!("inspecting {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable by other users (mode {:o}); run `chmod 600` on it",
            path.display(),
            mode & 0o777
        );
    }
    JwtSecret::parse(text.trim())
        .with_context(|| format!("the secret in {}", path.display()))
        .map(Some)
}

fn create(path: &Path) -> anyhow::Result<JwtSecret> {
    let secret = JwtSecret::generate();
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut file) => {
            writeln!(file, "{}", secret.expose())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new JWT secret");
            Ok(secret)
        }
        // Another instance sharing the directory won the race: use its secret.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path)?.context("the JWT secret file vanished while being created")
        }
        Err(err) => Err(err).with_context(|| format!("creating {}", path.display())),
    }
}

/// The password of the `authenticator` role on an operator-owned server, derived from the
/// JWT secret so that every instance sharing the secret agrees on it without another
/// setting. Whoever holds the secret can already act as any API role.
pub(crate) fn authenticator_password(secret: &JwtSecret) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(b"galley authenticator password v1");
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        }
    }

    #[test]
    fn first_start_creates_a_private_secret_and_later_starts_reuse_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_in(dir.path());
        let first = load_or_create(&config).expect("created");
        let mode = fs::metadata(dir.path().join(FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create(&config).expect("reused");
        assert_eq!(first.expose(), second.expose());
    }

    #[test]
    fn loading_without_a_secret_creates_nothing_and_says_where_it_looked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_in(&dir.path().join("missing"));
        let err = load(&config).expect_err("no secret");
        let text = err.to_string();
        assert!(text.contains("missing/jwt_secret does not exist"), "{text}");
        assert!(text.contains("--data-dir"), "{text}");
        assert!(!dir.path().join("missing").exists());
        load_or_create(&config).expect("created");
        load(&config).expect("now found");
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_in(dir.path());
        load_or_create(&config).expect("created");
        fs::set_permissions(dir.path().join(FILE), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let err = load_or_create(&config).expect_err("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn the_authenticator_password_depends_on_the_secret() {
        let a = JwtSecret::generate();
        let b = JwtSecret::generate();
        assert_eq!(authenticator_password(&a), authenticator_password(&a));
        assert_ne!(authenticator_password(&a), authenticator_password(&b));
        assert_eq!(authenticator_password(&a).len(), 64);
    }
}
