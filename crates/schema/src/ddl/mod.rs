//! DDL planning: definitions in, SQL statements out. Pure: no IO, so every plan can be
//! read in a snapshot test, and user values reach SQL only as quoted literals and
//! identifiers only as [`crate::Ident`].

mod create_table;
mod literal;
mod rules;

pub use create_table::plan_create_table;
pub use rules::{AccessRules, Rule, plan_rules};

/// The statements of one schema change, each run separately (one statement per
/// `execute`, so nothing can smuggle a second statement in) inside one transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub statements: Vec<String>,
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
