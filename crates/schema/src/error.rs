//! What can go wrong reading or changing the schema.

use galley_db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The definition is wrong in itself; `field` points at the offending part.
    #[error("{field}: {message}")]
    InvalidDefinition { field: String, message: String },
    #[error("a table named `{table}` already exists")]
    TableExists { table: String },
    #[error("there is no table `{table}`")]
    TableNotFound { table: String },
    /// PostgreSQL refused the change (bad default for the type, unknown enum...); the
    /// message is PostgreSQL's own, without SQL.
    #[error("PostgreSQL refused the change: {message}")]
    Refused { message: String },
    /// Existing rows would break the change; nothing was changed.
    #[error("{message}")]
    WouldViolate {
        message: String,
        rows: i64,
        samples: Vec<serde_json::Value>,
        hint: String,
    },
    /// A destructive change was asked for without naming what it destroys.
    #[error("{message}")]
    ConfirmationRequired {
        message: String,
        details: serde_json::Value,
    },
    /// Another transaction held a lock longer than `lock_timeout`; nothing was applied.
    #[error(
        "the table is busy (a lock was not granted within the lock timeout); nothing was changed, retry later"
    )]
    LockTimeout,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the catalog query returned something unreadable: {0}")]
    UnreadableCatalog(String),
}

impl SchemaError {
    pub(crate) fn invalid(field: &str, message: &str) -> Self {
        SchemaError::InvalidDefinition {
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl From<galley_db::tokio_postgres::Error> for SchemaError {
    fn from(err: galley_db::tokio_postgres::Error) -> Self {
        SchemaError::Db(err.into())
    }
}
