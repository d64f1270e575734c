//! Running a planned change: one transaction, serialised with every other schema change,
//! bounded by `lock_timeout`, recorded in `galley.schema_history`, announced on
//! `galley_schema`. A dry run does all of it and rolls back.

use std::time::Duration;

use galley_db::{DbError, Pool, SqlState, classify};

use crate::cache::CHANNEL;
use crate::ddl::Plan;
use crate::error::SchemaError;

/// Advisory lock taken by every schema change: changes apply one at a time, across
/// instances, so history order is apply order.
pub(crate) const SCHEMA_LOCK: i64 = 0x67616c6c65797363; // "galleysc"

/// Whether a value's text converts to a type, and whether converting it changes it: cast
/// checks that report instead of failing. Temporary, so they live and die with the session.
const CASTABLE: &str =
    "CREATE OR REPLACE FUNCTION pg_temp.galley_castable(value text, target text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SELECT %L::%s', value, target);
  RETURN true;
EXCEPTION WHEN others THEN
  RETURN false;
END
$$;
CREATE OR REPLACE FUNCTION pg_temp.galley_changes(value text, source text, target text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  changed boolean;
BEGIN
  EXECUTE format('SELECT %L::%s::%s::%s IS DISTINCT FROM %L::%s', value, source, target, source, value, source)
    INTO changed;
  RETURN changed;
EXCEPTION WHEN others THEN
  RETURN false;
END
$$";

/// A planned change and what to record about it.
#[derive(Debug, Clone)]
pub struct SchemaChange {
    pub operation: &'static str,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub plan: Plan,
    /// The admin named what the change destroys: checks for lost data let it through.
    pub confirmed: bool,
}

/// Applies `change` (or, with `dry_run`, tries it and rolls back). Returns the history id
/// of an applied change.
pub async fn apply_change(
    pool: &Pool,
    change: &SchemaChange,
    actor: &str,
    lock_timeout: Duration,
    dry_run: bool,
) -> Result<Option<i64>, SchemaError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    // Integer milliseconds: nothing from the request reaches this statement.
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{}ms'; SET LOCAL standard_conforming_strings = on",
        lock_timeout.as_millis().max(1)
    ))
    .await?;
    if !change.plan.checks.is_empty() {
        tx.batch_execute(CASTABLE).await?;
    }
    for check in &change.plan.checks {
        if check.loss && change.confirmed {
            continue;
        }
        let rows: i64 = tx.query_one(check.count_sql.as_str(), &[]).await?.get(0);
        if rows == 0 {
            continue;
        }
        let samples = match &check.samples_sql {
            Some(sql) => tx
                .query(sql.as_str(), &[])
                .await?
                .iter()
                .map(|row| row.get::<_, serde_json::Value>(0))
                .collect(),
            None => Vec::new(),
        };
        tx.rollback().await?;
        if check.loss {
            return Err(SchemaError::ConfirmationRequired {
                message: check.message.replace("{rows}", &rows.to_string()),
                details: serde_json::json!({ "rows": rows, "samples": samples }),
            });
        }
        return Err(SchemaError::WouldViolate {
            message: check.message.replace("{rows}", &rows.to_string()),
            rows,
            samples,
            hint: check.hint.replace("{rows}", &rows.to_string()),
        });
    }
    for statement in &change.plan.statements {
        // One statement per call: the extended protocol refuses a second one.
        tx.execute(statement.as_str(), &[])
            .await
            .map_err(|err| refusal(err, change))?;
    }
    if dry_run {
        tx.rollback().await?;
        return Ok(None);
    }
    let row = tx
        .query_one(
            "INSERT INTO galley.schema_history (actor, operation, target, definition_before, definition_after, sql) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &actor,
                &change.operation,
                &change.target,
                &change.before,
                &change.after,
                &change.plan.script(),
            ],
        )
        .await?;
    tx.execute("SELECT pg_notify($1, 'galley')", &[&CHANNEL])
        .await?;
    tx.commit().await?;
    Ok(Some(row.get(0)))
}

/// What PostgreSQL's refusal of a planned statement means to the admin.
fn refusal(err: galley_db::tokio_postgres::Error, change: &SchemaChange) -> SchemaError {
    let message = err.as_db_error().map(|db| db.message().to_owned());
    match (classify(&err), message) {
        (SqlState::LockNotAvailable, _) => SchemaError::LockTimeout,
        // Created by someone else between planning and applying.
        (SqlState::DuplicateTable, _) => SchemaError::TableExists {
            table: change.target.clone(),
        },
        (
            SqlState::DataException
            | SqlState::UniqueViolation
            | SqlState::ForeignKeyViolation
            | SqlState::NotNullViolation
            | SqlState::CheckViolation
            | SqlState::IntegrityViolation
            | SqlState::UndefinedObject
            | SqlState::InsufficientPrivilege
            | SqlState::InvalidStatement
            | SqlState::RaisedException,
            Some(message),
        ) => SchemaError::Refused { message },
        _ => SchemaError::Db(err.into()),
    }
}
