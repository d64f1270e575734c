//! Galley's PostgreSQL layer: the embedded cluster, connection pools, migrations and the
//! one classification of SQLSTATE codes.
//!
//! Every other crate reaches PostgreSQL through the types exported here; none of them
//! spawns `initdb`, builds a pool or interprets an error code on its own.

mod api_pool;
mod config;
mod dump;
mod embedded;
mod error;
mod listen;
mod migrate;
mod pgbin;
mod pool;
mod preflight;
pub mod wire;

pub use api_pool::{Answer, ApiPool, Sent};
pub use config::DatabaseConfig;
pub use dump::{DumpError, PgTools};
pub use embedded::{Cluster, ClusterLock, ClusterOptions, EmbeddedError, SUPERUSER};
pub use error::{
    CARDINALITY_VIOLATION, CHARACTER_NOT_IN_REPERTOIRE, DbError, ErrorReport, RAISE_RESPONSE,
    SqlState, UNDEFINED_COLUMN, classify, condition_name, postgrest_status, report,
    statement_status,
};
pub use listen::{Listening, listen};
pub use migrate::{
    MigrationStatus, expected_version, migrate, migration_status, migrations_fingerprint,
};
pub use pgbin::PgBinaries;
pub use pool::{ConnectTargets, Pools};
pub use preflight::preflight;

/// Re-exported so dependants name the same client types as this crate.
pub use deadpool_postgres::{GenericClient, Object as PooledClient, Pool, PoolError};
pub use tokio_postgres;

/// The database Galley creates and uses inside an embedded cluster.
pub const EMBEDDED_DATABASE: &str = "galley";

/// The login role that the request pool uses; it may switch to the API roles below.
pub const AUTHENTICATOR_ROLE: &str = "authenticator";
