//! Enum types in `public`, for columns typed `enum:<name>`.

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::ddl::Plan;
use crate::error::SchemaError;
use crate::ident::{Ident, quote_literal};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumDefinition {
    pub name: String,
    pub values: Vec<String>,
}

pub fn plan_create_enum(
    definition: &EnumDefinition,
    catalog: &Catalog,
) -> Result<Plan, SchemaError> {
    let name = Ident::table(&definition.name)
        .map_err(|err| SchemaError::invalid("name", &err.to_string()))?;
    if catalog
        .enums
        .iter()
        .any(|e| e.schema == "public" && e.name == name.as_str())
        || catalog.relation("public", name.as_str()).is_some()
    {
        return Err(SchemaError::invalid(
            "name",
            &format!("`{}` already exists", name.as_str()),
        ));
    }
    if definition.values.is_empty() {
        return Err(SchemaError::invalid(
            "values",
            "an enum needs at least one value",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for value in &definition.values {
        if value.is_empty() || value.len() > 63 || value.contains('\0') {
            return Err(SchemaError::invalid(
                "values",
                "each value is 1 to 63 bytes, without NUL",
            ));
        }
        if !seen.insert(value) {
            return Err(SchemaError::invalid(
                "values",
                &format!("`{value}` is listed twice"),
            ));
        }
    }
    let values: Vec<String> = definition
        .values
        .iter()
        .map(|value| quote_literal(value))
        .collect();
    Ok(Plan {
        statements: vec![format!(
            "CREATE TYPE public.{name} AS ENUM ({})",
            values.join(", ")
        )],
        checks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_literals() {
        let definition = EnumDefinition {
            name: "mood".to_owned(),
            values: vec!["happy".to_owned(), "it's complicated".to_owned()],
        };
        let plan = plan_create_enum(&definition, &Catalog::default()).expect("plans");
        assert_eq!(
            plan.statements,
            ["CREATE TYPE public.\"mood\" AS ENUM ('happy', 'it''s complicated')"]
        );
        let duplicate = EnumDefinition {
            name: "mood".to_owned(),
            values: vec!["a".to_owned(), "a".to_owned()],
        };
        assert!(plan_create_enum(&duplicate, &Catalog::default()).is_err());
    }
}
