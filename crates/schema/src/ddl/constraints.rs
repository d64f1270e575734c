//! Constraints and indexes added to existing tables, each checked against the rows first.

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Relation};
use crate::ddl::create_table::{check_expression, foreign_key_clause};
use crate::ddl::{DataCheck, Plan};
use crate::definition::{CheckDefinition, ForeignKeyDefinition};
use crate::error::SchemaError;
use crate::ident::Ident;
use crate::types::ColumnType;

/// One constraint to add: exactly one of the fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AddConstraint {
    Unique(Vec<Ident>),
    Check(CheckDefinition),
    ForeignKey(ForeignKeyDefinition),
}

/// An index on existing columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddIndex {
    pub columns: Vec<Ident>,
}

fn column_type(
    relation: &Relation,
    column: &Ident,
    field: &str,
) -> Result<ColumnType, SchemaError> {
    let found = relation.column(column.as_str()).ok_or_else(|| {
        SchemaError::invalid(
            field,
            &format!("`{}` has no column `{}`", relation.name, column.as_str()),
        )
    })?;
    found.data_type.parse().map_err(|_| {
        SchemaError::invalid(
            field,
            &format!(
                "`{}` is {}, which Galley does not manage",
                column.as_str(),
                found.data_type
            ),
        )
    })
}

fn qualified(relation: &Relation) -> Result<String, SchemaError> {
    let table = Ident::table(&relation.name)
        .map_err(|err| SchemaError::invalid("table", &err.to_string()))?;
    Ok(format!("public.{table}"))
}

fn key_json(relation: &Relation) -> String {
    if relation.primary_key.is_empty() {
        return "ctid::text".to_owned();
    }
    let pairs: Vec<String> = relation
        .primary_key
        .iter()
        .map(|name| format!("'{}', x.\"{}\"", name, name.replace('"', "\"\"")))
        .collect();
    format!("json_build_object({})", pairs.join(", "))
}

pub fn plan_add_constraint(
    relation: &Relation,
    catalog: &Catalog,
    constraint: &AddConstraint,
) -> Result<Plan, SchemaError> {
    let table = qualified(relation)?;
    let key = key_json(relation);
    let (clause, check) = match constraint {
        AddConstraint::Unique(columns) => {
            if columns.is_empty() {
                return Err(SchemaError::invalid("unique", "name at least one column"));
            }
            for column in columns {
                column_type(relation, column, "unique")?;
            }
            let list = columns
                .iter()
                .map(|c| format!("x.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let value = format!("json_build_array({list})");
            let duplicated = format!(
                "FROM {table} x WHERE ({list}) IN (SELECT {list} FROM {table} x GROUP BY {list} HAVING count(*) > 1)"
            );
            (
                format!(
                    "UNIQUE ({})",
                    columns
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                DataCheck {
                    count_sql: format!("SELECT count(*) {duplicated}"),
                    samples_sql: Some(format!(
                        "SELECT json_build_object('key', {key}, 'value', {value}) {duplicated} ORDER BY {list} LIMIT 10"
                    )),
                    message: format!(
                        "{{rows}} rows of `{}` share their values with another row",
                        relation.name
                    ),
                    hint: "make the values distinct first".to_owned(),
                    loss: false,
                },
            )
        }
        AddConstraint::Check(check) => {
            let ty = column_type(relation, &check.column, "check")?;
            let expression = check_expression(check, &ty, "check")?;
            let column = &check.column;
            // Unqualified names in the expression resolve against the only table, `x`.
            let failing = format!("FROM {table} x WHERE NOT ({expression})");
            (
                format!("CHECK ({expression})"),
                DataCheck {
                    count_sql: format!("SELECT count(*) {failing}"),
                    samples_sql: Some(format!(
                        "SELECT json_build_object('key', {key}, 'value', x.{column}) {failing} LIMIT 10"
                    )),
                    message: format!(
                        "{{rows}} rows of `{}` break the check on `{}`",
                        relation.name,
                        column.as_str()
                    ),
                    hint: "fix those rows first, or relax the check".to_owned(),
                    loss: false,
                },
            )
        }
        AddConstraint::ForeignKey(foreign_key) => {
            let mut types = Vec::new();
            for column in &foreign_key.columns {
                types.push((
                    column.clone(),
                    column_type(relation, column, "foreign_key")?,
                ));
            }
            let (clause, target_sql, target_columns) =
                foreign_key_clause(foreign_key, catalog, "foreign_key", &|name| {
                    types
                        .iter()
                        .find(|(column, _)| column == name)
                        .map(|(_, ty)| ty.clone())
                })?;
            let present = foreign_key
                .columns
                .iter()
                .map(|c| format!("x.{c} IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let matches = foreign_key
                .columns
                .iter()
                .zip(&target_columns)
                .map(|(own, target)| format!("t.{target} = x.{own}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let value = format!(
                "json_build_array({})",
                foreign_key
                    .columns
                    .iter()
                    .map(|c| format!("x.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let orphans = format!(
                "FROM {table} x WHERE {present} AND NOT EXISTS (SELECT 1 FROM {target_sql} t WHERE {matches})"
            );
            (
                clause,
                DataCheck {
                    count_sql: format!("SELECT count(*) {orphans}"),
                    samples_sql: Some(format!(
                        "SELECT json_build_object('key', {key}, 'value', {value}) {orphans} LIMIT 10"
                    )),
                    message: format!(
                        "{{rows}} rows of `{}` point at rows that do not exist in {target_sql}",
                        relation.name
                    ),
                    hint: "delete those rows or clear their reference first".to_owned(),
                    loss: false,
                },
            )
        }
    };
    let mut statements = vec![format!("ALTER TABLE {table} ADD {clause}")];
    if let AddConstraint::ForeignKey(foreign_key) = constraint
        && foreign_key.index
    {
        statements.push(format!(
            "CREATE INDEX ON {table} ({})",
            foreign_key
                .columns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Plan {
        statements,
        checks: vec![check],
    })
}

/// Drops constraint `name` of `relation`. Unique and primary keys that foreign keys
/// elsewhere rely on take those foreign keys with them, which only a confirmed drop may
/// do: the refusal lists them.
pub fn plan_drop_constraint(
    relation: &Relation,
    catalog: &Catalog,
    name: &str,
    confirmed: bool,
) -> Result<Plan, SchemaError> {
    let table = qualified(relation)?;
    let constraint = relation
        .constraints
        .iter()
        .find(|constraint| constraint.name == name)
        .ok_or_else(|| {
            SchemaError::invalid(
                "constraint",
                &format!("`{}` has no constraint `{name}`", relation.name),
            )
        })?;
    let dependents: Vec<String> = if matches!(constraint.kind.as_str(), "unique" | "primary_key") {
        catalog
            .references_to(relation)
            .filter(|(_, fk)| fk.target_columns == constraint.columns)
            .map(|(other, fk)| format!("{}.{}", other.name, fk.name))
            .collect()
    } else {
        Vec::new()
    };
    if !dependents.is_empty() && !confirmed {
        return Err(SchemaError::ConfirmationRequired {
            message: format!(
                "foreign keys rely on `{name}` and would be dropped with it: {}; repeat with ?confirm={name} to go ahead",
                dependents.join(", ")
            ),
            details: serde_json::json!({ "dependent_foreign_keys": dependents }),
        });
    }
    // The name comes from the catalog, matched exactly; quote it whatever it holds.
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let cascade = if dependents.is_empty() {
        ""
    } else {
        " CASCADE"
    };
    Ok(Plan {
        statements: vec![format!(
            "ALTER TABLE {table} DROP CONSTRAINT {quoted}{cascade}"
        )],
        checks: Vec::new(),
    })
}

/// Drops index `name` of `relation`; indexes that back a constraint go with the
/// constraint instead.
pub fn plan_drop_index(relation: &Relation, name: &str) -> Result<Plan, SchemaError> {
    qualified(relation)?;
    if !relation.indexes.iter().any(|index| index.name == name) {
        return Err(SchemaError::invalid(
            "index",
            &format!("`{}` has no index `{name}`", relation.name),
        ));
    }
    if relation
        .constraints
        .iter()
        .any(|constraint| constraint.name == name)
    {
        return Err(SchemaError::invalid(
            "index",
            &format!("`{name}` backs the constraint of the same name; drop the constraint instead"),
        ));
    }
    // The name comes from the catalog, matched exactly; quote it whatever it holds.
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    Ok(Plan {
        statements: vec![format!("DROP INDEX public.{quoted}")],
        checks: Vec::new(),
    })
}

pub fn plan_add_index(relation: &Relation, index: &AddIndex) -> Result<Plan, SchemaError> {
    let table = qualified(relation)?;
    if index.columns.is_empty() {
        return Err(SchemaError::invalid("columns", "name at least one column"));
    }
    for column in &index.columns {
        column_type(relation, column, "columns")?;
    }
    Ok(Plan {
        statements: vec![format!(
            "CREATE INDEX ON {table} ({})",
            index
                .columns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )],
        checks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use serde_json::json;

    use super::*;

    fn orders() -> Relation {
        let column = |name: &str, ty: &str| {
            json!({"name": name, "position": 1, "data_type": ty, "nullable": true, "default": null,
                   "identity": false, "generated": false, "comment": null})
        };
        serde_json::from_value(json!({
            "schema": "public", "name": "orders", "kind": "table", "primary_key": ["id"], "unique": [],
            "foreign_keys": [], "rls_enabled": true, "rls_forced": true, "comment": null,
            "columns": [column("id", "bigint"), column("amount", "integer"), column("customer", "uuid")]
        }))
        .expect("relation")
    }

    #[test]
    fn a_check_is_planned_with_its_data_check() {
        let constraint: AddConstraint =
            serde_json::from_value(json!({"check": {"column": "amount", "min": 1}}))
                .expect("parses");
        let plan = plan_add_constraint(&orders(), &Catalog::default(), &constraint).expect("plans");
        expect![[r#"
            ALTER TABLE public."orders" ADD CHECK ("amount" >= '1'::integer);
        "#]]
        .assert_eq(&plan.script());
        assert_eq!(
            plan.checks[0].count_sql,
            "SELECT count(*) FROM public.\"orders\" x WHERE NOT (\"amount\" >= '1'::integer)"
        );
    }

    #[test]
    fn a_foreign_key_to_auth_users_checks_for_orphans_and_adds_an_index() {
        let constraint: AddConstraint = serde_json::from_value(json!({
            "foreign_key": {"columns": ["customer"], "references": {"table": "auth.users"}}
        }))
        .expect("parses");
        let plan = plan_add_constraint(&orders(), &Catalog::default(), &constraint).expect("plans");
        expect![[r#"
            ALTER TABLE public."orders" ADD FOREIGN KEY ("customer") REFERENCES auth.users ("id") ON DELETE NO ACTION ON UPDATE NO ACTION;
            CREATE INDEX ON public."orders" ("customer");
        "#]]
        .assert_eq(&plan.script());
        assert!(
            plan.checks[0].count_sql.contains(
                "NOT EXISTS (SELECT 1 FROM auth.users t WHERE t.\"id\" = x.\"customer\")"
            )
        );
    }

    #[test]
    fn unknown_columns_are_refused() {
        let constraint: AddConstraint =
            serde_json::from_value(json!({"unique": ["nope"]})).expect("parses");
        assert!(plan_add_constraint(&orders(), &Catalog::default(), &constraint).is_err());
        let index = AddIndex { columns: vec![] };
        assert!(plan_add_index(&orders(), &index).is_err());
    }
}
