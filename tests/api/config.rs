//! Configuration errors stop Galley with one clear line and a non-zero exit; keys come
//! from the project's secret.

use std::process::Output;

use galley_auth::{ApiRole, KeyClaims};
use galley_testkit::GalleyProcess;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::support::{data_dir, galley_bin};

use crate::support::run_galley as galley;

/// Asserts a failed run that ends with one error line (after any log lines) mentioning
/// every `needle`, and no panic.
fn assert_one_line_error(output: &Output, needles: &[&str]) {
    assert!(
        !output.status.success(),
        "expected failure, got {:?}",
        output.status
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("galley: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line, got:\n{stderr}");
    assert_eq!(
        stderr.trim_end().lines().last(),
        Some(errors[0]),
        "the error comes last:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "`{needle}` missing from: {}",
            errors[0]
        );
    }
}

#[test]
fn an_unknown_key_in_galley_toml_is_refused_by_name() {
    let dir = data_dir();
    std::fs::write(
        dir.path().join("galley.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\nlisen_port = 3\n",
    )
    .expect("write");
    let output = galley(&["serve"], &[], dir.path());
    assert_one_line_error(&output, &["unknown key", "http.lisen_port"]);
}

#[test]
fn an_unknown_galley_environment_variable_is_refused_by_name() {
    let dir = data_dir();
    let output = galley(&["serve"], &[("GALLEY_DATABASE_PASSWRD", "x")], dir.path());
    assert_one_line_error(&output, &["unknown key", "database.passwrd"]);
}

#[test]
fn a_malformed_database_url_is_refused() {
    let dir = data_dir();
    for url in [
        "not a url",
        "mysql://root@localhost/app",
        "postgres://host:port/db",
    ] {
        let output = galley(&["serve", "--database-url", url], &[], dir.path());
        assert_one_line_error(&output, &["database.url"]);
    }
}

#[test]
fn a_short_or_placeholder_jwt_secret_is_refused() {
    let dir = data_dir();
    let output = galley(
        &["serve"],
        &[("GALLEY_AUTH_JWT_SECRET", "too-short")],
        dir.path(),
    );
    assert_one_line_error(&output, &["auth.jwt_secret", "at least 32"]);
    let output = galley(
        &["keys"],
        &[(
            "GALLEY_AUTH_JWT_SECRET",
            "super-secret-jwt-token-with-at-least-32-characters-long",
        )],
        dir.path(),
    );
    assert_one_line_error(&output, &["auth.jwt_secret", "well-known"]);
}

#[test]
fn a_password_minimum_below_supabase_auths_six_is_refused() {
    let dir = data_dir();
    let output = galley(
        &["serve"],
        &[("GALLEY_AUTH_PASSWORD_MIN_LENGTH", "5")],
        dir.path(),
    );
    assert_one_line_error(&output, &["auth.password_min_length", "at least 6"]);
}

#[test]
fn a_bad_listen_address_is_refused() {
    let dir = data_dir();
    let output = galley(&["serve", "--listen", "localhost:eighty"], &[], dir.path());
    assert_one_line_error(&output, &["http.listen"]);
}

#[test]
fn a_missing_run_as_user_is_a_one_line_error() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // Only root switches users for the cluster.
    }
    let dir = data_dir();
    let output = galley(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"],
        &[("GALLEY_DATABASE_OS_USER", "no-such-galley-user")],
        dir.path(),
    );
    assert_one_line_error(&output, &["no-such-galley-user", "does not exist"]);
}

#[test]
fn missing_postgres_binaries_are_a_one_line_error() {
    let dir = data_dir();
    let output = galley(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
            "--pg-bin",
            "/nonexistent",
        ],
        &[],
        dir.path(),
    );
    assert_one_line_error(&output, &["/nonexistent", "initdb"]);
}

#[test]
fn flags_override_environment_which_overrides_the_file() {
    let dir = data_dir();
    std::fs::write(dir.path().join("galley.toml"), "data_dir = \"from-file\"\n").expect("write");
    // `db url` for an uninitialised embedded cluster names the data directory it looked in.
    let from_file = galley(&["db", "url"], &[], dir.path());
    assert!(String::from_utf8_lossy(&from_file.stderr).contains("from-file"));
    let from_env = galley(
        &["db", "url"],
        &[("GALLEY_DATA_DIR", "from-env")],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&from_env.stderr).contains("from-env"));
    let from_flag = galley(
        &["db", "url", "--data-dir", "from-flag"],
        &[("GALLEY_DATA_DIR", "from-env")],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&from_flag.stderr).contains("from-flag"));
}

#[test]
fn keys_are_jwts_for_anon_and_service_role_signed_with_the_stored_secret() {
    // The secret `galley serve` stores on its first start (crates/server/src/jwt_secret.rs
    // tests how it is made); `keys` only reads it.
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir();
    std::fs::create_dir(dir.path().join("data")).expect("data dir");
    let secret_path = dir.path().join("data/jwt_secret");
    let secret = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    std::fs::write(&secret_path, format!("{secret}\n")).expect("secret");
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let output = galley(&["keys", "--data-dir", "data"], &[], dir.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["galley"]);
    let mut roles = Vec::new();
    for line in stdout.lines() {
        let (name, key) = line.split_once(": ").expect("`role: key` lines");
        let claims = jsonwebtoken::decode::<KeyClaims>(
            key,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .expect("signed with the stored secret")
        .claims;
        assert_eq!(claims.role.as_str(), name);
        roles.push(claims.role);
    }
    assert_eq!(roles, vec![ApiRole::Anon, ApiRole::ServiceRole]);

    // A second run reuses the stored secret.
    let again = galley(&["keys", "--data-dir", "data"], &[], dir.path());
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(&secret_path)
            .expect("secret")
            .trim(),
        secret
    );
}

#[tokio::test]
async fn the_effective_configuration_is_logged_without_secrets() {
    let db = galley_testkit::TestDatabase::migrated()
        .await
        .expect("database");
    let secret = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let url = db.url();
    let galley = GalleyProcess::serve(
        galley_bin(),
        &["--database-url", &url],
        &[
            ("GALLEY_AUTH_JWT_SECRET", secret),
            ("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true"),
        ],
    )
    .expect("serves");
    let logs = galley.logs().join("\n");
    let effective = galley
        .logs()
        .into_iter()
        .find(|line| line.contains("effective configuration"))
        .expect("effective configuration logged");
    assert!(effective.contains("[redacted]"), "{effective}");
    assert!(!logs.contains(secret), "the secret leaked into the log");
}
