//! Galley's own schema migrations (`migrations/` at the repository root), applied by
//! refinery under a PostgreSQL advisory lock so that instances starting together apply
//! each migration exactly once.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::error::{DbError, SqlState, classify};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Where refinery records applied migrations; `galley` is never exposed by the gateway.
const HISTORY_TABLE: &str = "galley.schema_migrations";

/// Advisory lock key held while migrating: the ASCII bytes of "galleymg".
const MIGRATION_LOCK: i64 = 0x67616c6c65796d67;

/// Applies pending migrations, then makes sure the request pool's role can log in.
///
/// `authenticator` is how the request pool will connect. If it cannot log in (a fresh
/// operator-owned server, or a rotated secret) and it carries a password, the role's
/// password is set to it, as a SCRAM verifier computed here, so the plaintext never
/// reaches the server or its logs. Both steps run under one advisory lock.
pub async fn migrate(
    owner: &mut Client,
    authenticator: &tokio_postgres::Config,
) -> Result<(), DbError> {
    owner
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(owner, authenticator).await;
    let unlocked = owner
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn migrate_locked(
    owner: &mut Client,
    authenticator: &tokio_postgres::Config,
) -> Result<(), DbError> {
    owner
        .batch_execute("CREATE SCHEMA IF NOT EXISTS galley")
        .await?;
    let report = embedded::migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(owner)
        .await
        .map_err(|err| DbError::Migration(err.to_string()))?;
    for applied in report.applied_migrations() {
        tracing::info!(
            version = applied.version(),
            name = applied.name(),
            "applied migration"
        );
    }
    ensure_authenticator_login(owner, authenticator).await
}

async fn ensure_authenticator_login(
    owner: &Client,
    authenticator: &tokio_postgres::Config,
) -> Result<(), DbError> {
    let err = match try_login(authenticator).await {
        Ok(()) => return Ok(()),
        Err(err) => err,
    };
    let Some(password) = authenticator.get_password() else {
        return Err(DbError::AuthenticatorLogin(err.to_string()));
    };
    if classify(&err) != SqlState::AuthenticationFailed {
        return Err(DbError::AuthenticatorLogin(err.to_string()));
    }
    let verifier = postgres_protocol::password::scram_sha_256(password);
    // The verifier is `SCRAM-SHA-256$<iterations>:<base64>$<base64>:<base64>`: no quote can
    // appear in it, so embedding it as a literal is safe (utility statements take no binds).
    debug_assert!(!verifier.contains('\''));
    owner
        .batch_execute(&format!(
            "ALTER ROLE authenticator WITH LOGIN PASSWORD '{verifier}'"
        ))
        .await
        .map_err(|err| DbError::AuthenticatorLogin(err.to_string()))?;
    tracing::info!("set the password of the `authenticator` role");
    try_login(authenticator)
        .await
        .map_err(|err| DbError::AuthenticatorLogin(err.to_string()))
}

async fn try_login(config: &tokio_postgres::Config) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    drop(client);
    let _ = task.await;
    Ok(())
}

/// The newest migration version this build knows.
pub fn expected_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|migration| migration.version())
        .max()
        .unwrap_or(0)
}

/// A digest of every embedded migration's version, name and SQL: the test harness
/// rebuilds its template database whenever this changes.
pub fn migrations_fingerprint() -> String {
    let mut hasher = Sha256::new();
    for migration in embedded::migrations::runner().get_migrations() {
        hasher.update(migration.version().to_string());
        hasher.update(migration.name());
        hasher.update(migration.sql().unwrap_or_default());
    }
    hex::encode(&hasher.finalize()[..8])
}

/// How far a database is migrated, for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationStatus {
    Current,
    Behind { applied: i32, expected: i32 },
}

pub async fn migration_status(client: &Client) -> Result<MigrationStatus, DbError> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM galley.schema_migrations",
            &[],
        )
        .await;
    let applied: i32 = match row {
        Ok(row) => row.get(0),
        Err(err) if classify(&err) == SqlState::UndefinedObject => 0,
        Err(err) => return Err(err.into()),
    };
    let expected = expected_version();
    Ok(if applied >= expected {
        MigrationStatus::Current
    } else {
        MigrationStatus::Behind { applied, expected }
    })
}
