//! What can go wrong reading or changing the schema.

use galley_db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the catalog query returned something unreadable: {0}")]
    UnreadableCatalog(String),
}

impl From<galley_db::tokio_postgres::Error> for SchemaError {
    fn from(err: galley_db::tokio_postgres::Error) -> Self {
        SchemaError::Db(err.into())
    }
}
