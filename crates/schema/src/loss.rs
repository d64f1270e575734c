//! What a destructive change would destroy, told before it is confirmed.

use galley_db::{DbError, Pool};
use serde_json::json;

use crate::catalog::{Catalog, Relation};
use crate::error::SchemaError;
use crate::ident::Ident;

/// Describes dropping `relation` (or one of its columns) as a `ConfirmationRequired`
/// refusal: rows or values lost, foreign keys and access rules that go with it.
pub async fn describe_loss(
    pool: &Pool,
    catalog: &Catalog,
    relation: &Relation,
    column: Option<&str>,
) -> Result<SchemaError, SchemaError> {
    let table = Ident::table(&relation.name)
        .map_err(|err| SchemaError::invalid("table", &err.to_string()))?;
    let client = pool.get().await.map_err(DbError::from)?;
    let (count_sql, what) = match column {
        Some(name) => {
            let column = Ident::column(name)
                .map_err(|err| SchemaError::invalid("column", &err.to_string()))?;
            (
                format!("SELECT count(*) FROM public.{table} WHERE {column} IS NOT NULL"),
                format!("column `{name}` of `{}`", relation.name),
            )
        }
        None => (
            format!("SELECT count(*) FROM public.{table}"),
            format!("table `{}`", relation.name),
        ),
    };
    let rows: i64 = client.query_one(count_sql.as_str(), &[]).await?.get(0);
    let dependents: Vec<String> = catalog
        .references_to(relation)
        .filter(|(_, fk)| column.is_none_or(|name| fk.target_columns.iter().any(|c| c == name)))
        .map(|(other, fk)| format!("{}.{} ({})", other.name, fk.name, fk.columns.join(", ")))
        .collect();
    let policies: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_policies WHERE schemaname = 'public' AND tablename = $1",
            &[&relation.name],
        )
        .await?
        .get(0);
    let confirm = column.unwrap_or(&relation.name);
    Ok(SchemaError::ConfirmationRequired {
        message: format!(
            "dropping {what} deletes {rows} {}; repeat with ?confirm={confirm} to go ahead",
            if column.is_some() { "values" } else { "rows" }
        ),
        details: json!({
            "rows": rows,
            "dependent_foreign_keys": dependents,
            "access_rules": if column.is_none() { policies } else { 0 },
        }),
    })
}
