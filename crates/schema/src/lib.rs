//! User tables as Galley sees them: the catalog (the schema cache the gateway plans
//! against), introspected from PostgreSQL into an immutable snapshot that is swapped
//! atomically and reloaded whenever the schema changes, on every instance.

mod cache;
mod catalog;
mod error;
mod introspect;

pub use cache::{CHANNEL, CatalogCache};
pub use catalog::{Catalog, Column, ForeignKey, Function, FunctionArg, Relation, RelationKind};
pub use error::SchemaError;
pub use introspect::load_catalog;
