//! User tables as Galley sees them: the catalog (the schema cache the gateway plans
//! against), introspected from PostgreSQL into an immutable snapshot that is swapped
//! atomically and reloaded whenever the schema changes, on every instance.

mod adopt;
mod apply;
mod cache;
mod catalog;
mod config;
mod ddl;
mod definition;
mod error;
mod history;
mod ident;
mod introspect;
mod loss;
mod types;
mod views;

pub use adopt::{SCHEMA_FINGERPRINT, adopt_new_tables, adoption};
pub use apply::{SchemaChange, apply_change};
pub use cache::{CHANNEL, CatalogCache};
pub use catalog::{
    Catalog, Column, Constraint, EnumType, ForeignKey, Function, FunctionArg, Index, Relation,
    RelationKind, RelationName,
};
pub use config::SchemaConfig;
pub use ddl::{
    AccessRules, AddColumn, AddConstraint, AddIndex, AlterColumn, AlterTable, DataCheck,
    EnumDefinition, Plan, RealtimeSetting, Rule, plan_add_column, plan_add_constraint,
    plan_add_index, plan_alter_column, plan_alter_table, plan_create_enum, plan_create_table,
    plan_drop_column, plan_drop_constraint, plan_drop_index, plan_drop_table, plan_realtime,
    plan_rules,
};
pub use definition::{
    CheckDefinition, CheckRule, ColumnDefinition, DefaultExpression, DefaultValue,
    ForeignKeyDefinition, PrimaryKey, Reference, ReferentialAction, TableDefinition,
};
pub use error::SchemaError;
pub use history::{ApplyReport, MigrationFile, apply_files, export_history};
pub use ident::{Ident, IdentError};
pub use introspect::load_catalog;
pub use loss::describe_loss;
pub use types::ColumnType;
