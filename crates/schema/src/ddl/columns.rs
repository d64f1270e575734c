//! Column changes — add, alter, drop — and dropping tables. Each plan carries the data
//! checks that must find no offending row before its DDL may run.

use serde::{Deserialize, Serialize};

use crate::catalog::Relation;
use crate::ddl::literal::typed_literal;
use crate::ddl::{DataCheck, Plan};
use crate::definition::{ColumnDefinition, DefaultValue};
use crate::error::SchemaError;
use crate::ident::Ident;
use crate::types::ColumnType;

/// A new column, and optionally a value for the rows that already exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    #[serde(flatten)]
    pub column: ColumnDefinition,
    /// Fills existing rows without becoming the column's default.
    #[serde(default)]
    pub backfill: Option<serde_json::Value>,
}

/// Changes to one column; what is left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterColumn {
    /// A new name, applied after the other changes.
    #[serde(default)]
    pub name: Option<Ident>,
    #[serde(default, rename = "type")]
    pub data_type: Option<ColumnType>,
    #[serde(default)]
    pub nullable: Option<bool>,
    /// `{"value": ..}` or `{"expression": ..}` sets it; `null` drops it.
    #[serde(default, with = "double_option")]
    pub default: Option<Option<DefaultValue>>,
    #[serde(default)]
    pub unique: Option<bool>,
    /// With `nullable: false`: the value for rows that are null now.
    #[serde(default)]
    pub backfill: Option<serde_json::Value>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn table_ident(relation: &Relation) -> Result<(Ident, String), SchemaError> {
    let table = Ident::table(&relation.name)
        .map_err(|err| SchemaError::invalid("table", &err.to_string()))?;
    let qualified = format!("public.{table}");
    Ok((table, qualified))
}

/// Rows identified by primary key (or physical position for tables without one) in
/// samples, with the offending value.
fn sample_select(relation: &Relation, column: &Ident) -> String {
    let key = if relation.primary_key.is_empty() {
        "ctid::text".to_owned()
    } else {
        let pairs: Vec<String> = relation
            .primary_key
            .iter()
            .map(|name| format!("'{}', \"{}\"", name, name.replace('"', "\"\"")))
            .collect();
        format!("json_build_object({})", pairs.join(", "))
    };
    format!("json_build_object('key', {key}, 'value', {column})")
}

pub fn plan_add_column(relation: &Relation, change: &AddColumn) -> Result<Plan, SchemaError> {
    let (_, qualified) = table_ident(relation)?;
    let column = &change.column;
    if relation.column(column.name.as_str()).is_some() {
        return Err(SchemaError::invalid(
            "name",
            &format!(
                "`{}` already has a column `{}`",
                relation.name,
                column.name.as_str()
            ),
        ));
    }
    let mut definition = format!("{} {}", column.name, column.data_type);
    let default_sql = match &column.default {
        None => None,
        Some(DefaultValue::Expression(expression)) => Some(expression.sql().to_owned()),
        Some(DefaultValue::Value(value)) => {
            Some(typed_literal(value, &column.data_type, "default")?)
        }
    };
    let backfill = match &change.backfill {
        Some(value) => Some(typed_literal(value, &column.data_type, "backfill")?),
        None => None,
    };
    let mut checks = Vec::new();
    let mut statements = Vec::new();
    // PostgreSQL adds a column with a constant default without rewriting the table; the
    // backfill rides on that and is dropped (or replaced by the real default) right after.
    let initial = backfill.clone().or_else(|| default_sql.clone());
    if let Some(initial) = &initial {
        definition.push_str(&format!(" DEFAULT {initial}"));
    }
    if !column.nullable {
        definition.push_str(" NOT NULL");
        if initial.is_none() {
            checks.push(DataCheck {
                count_sql: format!("SELECT count(*) FROM {qualified}"),
                samples_sql: None,
                message: format!(
                    "`{}` has {{rows}} rows and the new column `{}` would have no value in them",
                    relation.name,
                    column.name.as_str()
                ),
                hint: "provide a default, or a backfill value for the existing rows".to_owned(),
                loss: false,
            });
        }
    }
    if column.unique {
        definition.push_str(" UNIQUE");
        if initial.is_some() {
            checks.push(DataCheck {
                count_sql: format!("SELECT CASE WHEN count(*) > 1 THEN count(*) ELSE 0 END FROM {qualified}"),
                samples_sql: None,
                message: format!("`{}` has {{rows}} rows that would all get the same value in the unique column `{}`", relation.name, column.name.as_str()),
                hint: "add the column without a default, then fill distinct values".to_owned(),
                loss: false,
            });
        }
    }
    statements.push(format!("ALTER TABLE {qualified} ADD COLUMN {definition}"));
    if backfill.is_some() {
        statements.push(match &default_sql {
            Some(default_sql) => format!(
                "ALTER TABLE {qualified} ALTER COLUMN {} SET DEFAULT {default_sql}",
                column.name
            ),
            None => format!(
                "ALTER TABLE {qualified} ALTER COLUMN {} DROP DEFAULT",
                column.name
            ),
        });
    }
    Ok(Plan { statements, checks })
}

pub fn plan_alter_column(
    relation: &Relation,
    name: &str,
    change: &AlterColumn,
) -> Result<Plan, SchemaError> {
    let (_, qualified) = table_ident(relation)?;
    let column =
        Ident::column(name).map_err(|err| SchemaError::invalid("column", &err.to_string()))?;
    let current = relation.column(column.as_str()).ok_or_else(|| {
        SchemaError::invalid(
            "column",
            &format!("`{}` has no column `{name}`", relation.name),
        )
    })?;
    let target_type = match &change.data_type {
        Some(ty) => ty.clone(),
        None => current.data_type.parse::<ColumnType>().map_err(|_| {
            SchemaError::invalid(
                "type",
                &format!(
                    "`{name}` is {}, which Galley does not manage; give its new type",
                    current.data_type
                ),
            )
        })?,
    };
    let mut statements = Vec::new();
    let mut checks = Vec::new();
    let samples = sample_select(relation, &column);

    if let Some(ty) = &change.data_type
        && ty.catalog_spelling() != current.data_type
    {
        let castable = match ty {
            ColumnType::Varchar(n) => format!("char_length({column}::text) <= {n}"),
            _ => format!("pg_temp.galley_castable({column}::text, '{ty}')"),
        };
        checks.push(DataCheck {
            count_sql: format!("SELECT count(*) FROM {qualified} WHERE {column} IS NOT NULL AND NOT ({castable})"),
            samples_sql: Some(format!(
                "SELECT {samples} FROM {qualified} WHERE {column} IS NOT NULL AND NOT ({castable}) LIMIT 10"
            )),
            message: format!("{{rows}} rows of `{}` hold values of `{name}` that are not valid {ty}", relation.name),
            hint: "fix or clear those values first, or choose a type that holds them".to_owned(),
            loss: false,
        });
        // Values that convert but come back different (rounded numbers, dates cut from
        // timestamps, narrower integers) are lost data: that needs a confirmation.
        if let Ok(source) = current.data_type.parse::<ColumnType>()
            && !matches!(ty, ColumnType::Varchar(_))
        {
            let changes = format!("pg_temp.galley_changes({column}::text, '{source}', '{ty}')");
            checks.push(DataCheck {
                count_sql: format!("SELECT count(*) FROM {qualified} WHERE {column} IS NOT NULL AND {changes}"),
                samples_sql: Some(format!(
                    "SELECT {samples} FROM {qualified} WHERE {column} IS NOT NULL AND {changes} LIMIT 10"
                )),
                message: format!(
                    "{{rows}} rows of `{}` would hold a different value of `{name}` once converted to {ty}; repeat with ?confirm={name} to go ahead",
                    relation.name
                ),
                hint: "narrowing a type loses data; confirm by naming the column".to_owned(),
                loss: true,
            });
        }
        statements.push(format!(
            "ALTER TABLE {qualified} ALTER COLUMN {column} TYPE {ty} USING {column}::text::{ty}"
        ));
    }
    match &change.default {
        None => {}
        Some(None) => statements.push(format!(
            "ALTER TABLE {qualified} ALTER COLUMN {column} DROP DEFAULT"
        )),
        Some(Some(DefaultValue::Expression(expression))) => statements.push(format!(
            "ALTER TABLE {qualified} ALTER COLUMN {column} SET DEFAULT {}",
            expression.sql()
        )),
        Some(Some(DefaultValue::Value(value))) => statements.push(format!(
            "ALTER TABLE {qualified} ALTER COLUMN {column} SET DEFAULT {}",
            typed_literal(value, &target_type, "default")?
        )),
    }
    match change.nullable {
        Some(false) if current.nullable => {
            match &change.backfill {
                Some(value) => statements.push(format!(
                    "UPDATE {qualified} SET {column} = {} WHERE {column} IS NULL",
                    typed_literal(value, &target_type, "backfill")?
                )),
                None => checks.push(DataCheck {
                    count_sql: format!("SELECT count(*) FROM {qualified} WHERE {column} IS NULL"),
                    samples_sql: Some(format!(
                        "SELECT {samples} FROM {qualified} WHERE {column} IS NULL LIMIT 10"
                    )),
                    message: format!(
                        "{{rows}} rows of `{}` have no value for `{name}`",
                        relation.name
                    ),
                    hint: "provide a backfill value to fill {rows} rows".to_owned(),
                    loss: false,
                }),
            }
            statements.push(format!(
                "ALTER TABLE {qualified} ALTER COLUMN {column} SET NOT NULL"
            ));
        }
        Some(true) if !current.nullable => {
            statements.push(format!(
                "ALTER TABLE {qualified} ALTER COLUMN {column} DROP NOT NULL"
            ));
        }
        _ => {}
    }
    if change.backfill.is_some() && change.nullable != Some(false) {
        return Err(SchemaError::invalid(
            "backfill",
            "a backfill goes with `nullable: false`",
        ));
    }
    match change.unique {
        Some(true)
            if !relation
                .unique
                .iter()
                .any(|set| set.len() == 1 && set[0] == name) =>
        {
            checks.push(DataCheck {
                count_sql: format!(
                    "SELECT count(*) FROM {qualified} WHERE {column} IN (SELECT {column} FROM {qualified} GROUP BY {column} HAVING count(*) > 1)"
                ),
                samples_sql: Some(format!(
                    "SELECT {samples} FROM {qualified} WHERE {column} IN (SELECT {column} FROM {qualified} GROUP BY {column} HAVING count(*) > 1) ORDER BY {column} LIMIT 10"
                )),
                message: format!("{{rows}} rows of `{}` share a value of `{name}` with another row", relation.name),
                hint: "make the values distinct first".to_owned(),
                loss: false,
            });
            statements.push(format!("ALTER TABLE {qualified} ADD UNIQUE ({column})"));
        }
        Some(false) => {
            return Err(SchemaError::invalid(
                "unique",
                "dropping a unique constraint is done through its constraint, not the column",
            ));
        }
        _ => {}
    }
    if let Some(new_name) = &change.name
        && new_name.as_str() != name
    {
        if relation.column(new_name.as_str()).is_some() {
            return Err(SchemaError::invalid(
                "name",
                &format!(
                    "`{}` already has a column `{}`",
                    relation.name,
                    new_name.as_str()
                ),
            ));
        }
        statements.push(format!(
            "ALTER TABLE {qualified} RENAME COLUMN {column} TO {new_name}"
        ));
    }
    if statements.is_empty() {
        return Err(SchemaError::invalid("column", "nothing to change"));
    }
    Ok(Plan { statements, checks })
}

/// Table changes that are not about one column: for now, its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterTable {
    pub name: String,
}

pub fn plan_alter_table(
    relation: &Relation,
    catalog: &crate::catalog::Catalog,
    change: &AlterTable,
) -> Result<Plan, SchemaError> {
    let (_, qualified) = table_ident(relation)?;
    let new_name =
        Ident::table(&change.name).map_err(|err| SchemaError::invalid("name", &err.to_string()))?;
    if new_name.as_str() == relation.name {
        return Err(SchemaError::invalid("name", "nothing to change"));
    }
    if catalog.relation("public", new_name.as_str()).is_some() {
        return Err(SchemaError::TableExists {
            table: new_name.as_str().to_owned(),
        });
    }
    Ok(Plan {
        statements: vec![format!("ALTER TABLE {qualified} RENAME TO {new_name}")],
        checks: Vec::new(),
    })
}

pub fn plan_drop_column(relation: &Relation, name: &str) -> Result<Plan, SchemaError> {
    let (_, qualified) = table_ident(relation)?;
    let column =
        Ident::column(name).map_err(|err| SchemaError::invalid("column", &err.to_string()))?;
    if relation.column(column.as_str()).is_none() {
        return Err(SchemaError::invalid(
            "column",
            &format!("`{}` has no column `{name}`", relation.name),
        ));
    }
    Ok(Plan {
        statements: vec![format!(
            "ALTER TABLE {qualified} DROP COLUMN {column} CASCADE"
        )],
        checks: Vec::new(),
    })
}

pub fn plan_drop_table(relation: &Relation) -> Result<Plan, SchemaError> {
    let (_, qualified) = table_ident(relation)?;
    Ok(Plan {
        statements: vec![format!("DROP TABLE {qualified} CASCADE")],
        checks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use serde_json::json;

    use super::*;

    fn people() -> Relation {
        let column = |name: &str, ty: &str, nullable: bool| {
            json!({"name": name, "position": 1, "data_type": ty, "nullable": nullable, "default": null,
                   "identity": false, "generated": false, "comment": null})
        };
        serde_json::from_value(json!({
            "schema": "public", "name": "people", "kind": "table", "primary_key": ["id"], "unique": [],
            "foreign_keys": [], "rls_enabled": true, "rls_forced": true, "comment": null,
            "columns": [column("id", "uuid", false), column("email", "text", true), column("age", "text", true)]
        }))
        .expect("relation")
    }

    #[test]
    fn a_required_column_with_a_backfill_is_added_in_one_pass() {
        let change: AddColumn = serde_json::from_value(json!({
            "name": "country", "type": "text", "nullable": false, "backfill": "unknown"
        }))
        .expect("change");
        expect![[r#"
            ALTER TABLE public."people" ADD COLUMN "country" text DEFAULT 'unknown'::text NOT NULL;
            ALTER TABLE public."people" ALTER COLUMN "country" DROP DEFAULT;
        "#]]
        .assert_eq(&plan_add_column(&people(), &change).expect("plans").script());
    }

    #[test]
    fn a_required_column_without_a_value_checks_for_rows() {
        let change: AddColumn =
            serde_json::from_value(json!({"name": "country", "type": "text", "nullable": false}))
                .expect("change");
        let plan = plan_add_column(&people(), &change).expect("plans");
        assert_eq!(plan.checks.len(), 1);
        assert_eq!(
            plan.checks[0].count_sql,
            "SELECT count(*) FROM public.\"people\""
        );
    }

    #[test]
    fn alterations_plan_checks_before_ddl() {
        let change: AlterColumn =
            serde_json::from_value(json!({"type": "integer", "nullable": false, "unique": true}))
                .expect("change");
        let plan = plan_alter_column(&people(), "age", &change).expect("plans");
        expect![[r#"
            ALTER TABLE public."people" ALTER COLUMN "age" TYPE integer USING "age"::text::integer;
            ALTER TABLE public."people" ALTER COLUMN "age" SET NOT NULL;
            ALTER TABLE public."people" ADD UNIQUE ("age");
        "#]]
        .assert_eq(&plan.script());
        assert_eq!(plan.checks.len(), 4);
        assert!(
            !plan.checks[0].loss && plan.checks[1].loss,
            "cast failures refuse; changed values need a confirmation"
        );
        assert!(
            plan.checks[0]
                .count_sql
                .contains("pg_temp.galley_castable(\"age\"::text, 'integer')")
        );
    }

    #[test]
    fn unknown_columns_and_empty_changes_are_refused() {
        assert!(plan_alter_column(&people(), "nope", &AlterColumn::default()).is_err());
        assert!(plan_alter_column(&people(), "email", &AlterColumn::default()).is_err());
        assert!(plan_drop_column(&people(), "nope").is_err());
    }
}
