//! DDL planning: definitions in, SQL statements out. Pure: no IO, so every plan can be
//! read in a snapshot test, and user values reach SQL only as quoted literals and
//! identifiers only as [`crate::Ident`].

mod columns;
mod constraints;
mod create_table;
mod enums;
mod literal;
mod realtime;
mod rules;

pub use columns::{
    AddColumn, AlterColumn, AlterTable, plan_add_column, plan_alter_column, plan_alter_table,
    plan_drop_column, plan_drop_table,
};
pub use constraints::{
    AddConstraint, AddIndex, plan_add_constraint, plan_add_index, plan_drop_constraint,
    plan_drop_index,
};
pub use create_table::plan_create_table;
pub use enums::{EnumDefinition, plan_create_enum};
pub use realtime::{RealtimeSetting, plan_realtime};
pub use rules::{AccessRules, Rule, plan_rules};

/// The statements of one schema change, each run separately (one statement per
/// `execute`, so nothing can smuggle a second statement in) inside one transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub statements: Vec<String>,
    /// Run first, in the same transaction: any offending row refuses the change.
    #[serde(skip)]
    pub checks: Vec<DataCheck>,
}

/// A question to the existing data: how many rows would this change break?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCheck {
    /// `SELECT count(*) ...` of the offending rows.
    pub count_sql: String,
    /// Up to 10 offending rows as JSON `{"key": .., "value": ..}`.
    pub samples_sql: Option<String>,
    /// What is wrong; `{rows}` becomes the count.
    pub message: String,
    /// The obvious fix; `{rows}` becomes the count.
    pub hint: String,
    /// The rows would not break the change but lose data to it: a confirmation lets it
    /// through, instead of refusing it outright.
    pub loss: bool,
}

impl Plan {
    /// The whole change as one script, as history and dry runs show it.
    pub fn script(&self) -> String {
        self.statements
            .iter()
            .map(|statement| format!("{statement};\n"))
            .collect()
    }
}
