//! `/admin/v1/tables`: list, read and create user tables. Every change is planned by the
//! `schema` crate, applied in one transaction (or only tried, with `?dry_run=true`), and
//! answered with the SQL that ran.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use galley_schema::{
    AccessRules, AddColumn, AddConstraint, AddIndex, AlterColumn, AlterTable, Catalog,
    RealtimeSetting, Relation, SchemaChange, SchemaError, TableDefinition, describe_loss,
    plan_add_column, plan_add_constraint, plan_add_index, plan_alter_column, plan_alter_table,
    plan_create_table, plan_drop_column, plan_drop_constraint, plan_drop_index, plan_drop_table,
    plan_realtime, plan_rules,
};
use serde_json::json;

use super::{ChangeOptions, apply, finish};
use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tables")
            .route(web::get().to(list_tables))
            .route(web::post().to(create_table))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}")
            .route(web::get().to(get_table))
            .route(web::patch().to(alter_table))
            .route(web::delete().to(delete_table))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/columns")
            .route(web::post().to(add_column))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/columns/{column}")
            .route(web::patch().to(alter_column))
            .route(web::delete().to(drop_column))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/constraints")
            .route(web::post().to(add_constraint))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/constraints/{constraint}")
            .route(web::delete().to(drop_constraint))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/indexes")
            .route(web::post().to(add_index))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/indexes/{index}")
            .route(web::delete().to(drop_index))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/rules")
            .route(web::put().to(put_rules))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/tables/{name}/realtime")
            .route(web::put().to(put_realtime))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

/// The public schema's tables and views, each with `row_estimate`.
async fn list_tables(
    _admin: AdminAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.snapshot();
    let estimates = row_estimates(&state.owner().await?, None).await?;
    let tables: Vec<serde_json::Value> = catalog
        .relations
        .values()
        .filter(|relation| relation.schema == "public")
        .map(|relation| with_estimate(relation, &estimates))
        .collect();
    Ok(HttpResponse::Ok().json(tables))
}

/// One table, with its row estimate, its policies and its rules as last set.
async fn get_table(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let catalog = catalog_with(&state, &name).await?;
    let client = state.owner().await?;
    let estimates = row_estimates(&client, Some(&name)).await?;
    let mut table = with_estimate(find(&catalog, &name)?, &estimates);
    if let Some(object) = table.as_object_mut() {
        object.insert("policies".to_owned(), policies(&client, &name).await?);
        object.insert("rules".to_owned(), last_rules(&client, &name).await?);
    }
    Ok(HttpResponse::Ok().json(table))
}

/// The access rules as last set through Galley since the table was created (from the
/// schema history), for a form to start from; `null` when none were set. The policies
/// themselves are the truth, hand-written ones included.
async fn last_rules(
    client: &galley_db::PooledClient,
    table: &str,
) -> Result<serde_json::Value, ApiError> {
    let row = client
        .query_opt(
            "SELECT definition_after FROM galley.schema_history \
             WHERE target = $1 AND operation = 'set_rules' AND id > coalesce( \
                 (SELECT max(id) FROM galley.schema_history \
                  WHERE target = $1 AND operation IN ('create_table', 'drop_table')), 0) \
             ORDER BY id DESC LIMIT 1",
            &[&table],
        )
        .await
        .map_err(galley_db::DbError::from)?;
    Ok(row
        .and_then(|row| row.get::<_, Option<serde_json::Value>>(0))
        .unwrap_or(serde_json::Value::Null))
}

/// The table's row-level security policies as PostgreSQL holds them: what the access
/// rules became, and any written by hand.
async fn policies(
    client: &galley_db::PooledClient,
    table: &str,
) -> Result<serde_json::Value, ApiError> {
    let row = client
        .query_one(
            "SELECT coalesce(json_agg(json_build_object('name', policyname, 'command', cmd, \
                 'roles', roles, 'permissive', permissive = 'PERMISSIVE', 'using', qual, \
                 'check', with_check) ORDER BY policyname), '[]') \
             FROM pg_policies WHERE schemaname = 'public' AND tablename = $1",
            &[&table],
        )
        .await
        .map_err(galley_db::DbError::from)?;
    Ok(row.get(0))
}

/// How many rows the public schema's tables (or just `table`) hold, as PostgreSQL
/// estimates it: the statistics' live-row count, else the planner's figure; never a
/// `count(*)`. `None` where PostgreSQL has no figure yet.
async fn row_estimates(
    client: &galley_db::PooledClient,
    table: Option<&str>,
) -> Result<std::collections::HashMap<String, Option<i64>>, ApiError> {
    Ok(client
        .query(
            "SELECT c.relname::text, \
                    COALESCE(s.n_live_tup, NULLIF(c.reltuples, -1)::int8) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm') \
               AND ($1::text IS NULL OR c.relname = $1)",
            &[&table],
        )
        .await
        .map_err(galley_db::DbError::from)?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// A relation as the admin API answers it: the catalog's entry plus `row_estimate`.
fn with_estimate(
    relation: &Relation,
    estimates: &std::collections::HashMap<String, Option<i64>>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(relation).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        let estimate = estimates.get(&relation.name).copied().flatten();
        object.insert("row_estimate".to_owned(), estimate.into());
    }
    value
}

async fn put_rules(
    admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
    options: web::Query<ChangeOptions>,
    rules: web::Json<AccessRules>,
) -> Result<HttpResponse, ApiError> {
    let rules = rules.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let plan = plan_rules(find(&catalog, &name)?, &rules)?;
    let change = SchemaChange {
        operation: "set_rules",
        target: name.into_inner(),
        before: None,
        after: Some(serde_json::to_value(&rules).map_err(|_| ApiError::internal())?),
        plan,
        confirmed: false,
    };
    let history_id = apply(&state, &admin, &change, options.dry_run).await?;
    Ok(HttpResponse::Ok().json(json!({
        "dry_run": history_id.is_none(),
        "history_id": history_id,
        "sql": change.plan.script(),
    })))
}

/// Publishes the table's changes to Realtime subscribers, or stops.
async fn put_realtime(
    admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
    options: web::Query<ChangeOptions>,
    setting: web::Json<RealtimeSetting>,
) -> Result<HttpResponse, ApiError> {
    let setting = setting.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let plan = plan_realtime(relation, &setting)?;
    if plan.statements.is_empty() {
        // Already publishing: nothing to change or record.
        return Ok(HttpResponse::Ok().json(json!({
            "dry_run": options.dry_run,
            "history_id": null,
            "sql": "",
        })));
    }
    let change = SchemaChange {
        operation: "set_realtime",
        target: name.into_inner(),
        before: Some(json!({ "enabled": relation.realtime })),
        after: Some(json!({ "enabled": setting.enabled })),
        plan,
        confirmed: false,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn add_column(
    admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
    options: web::Query<ChangeOptions>,
    change: web::Json<AddColumn>,
) -> Result<HttpResponse, ApiError> {
    let change = change.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let change = SchemaChange {
        operation: "add_column",
        target: name.into_inner(),
        before: None,
        after: Some(serde_json::to_value(&change).map_err(|_| ApiError::internal())?),
        plan: plan_add_column(relation, &change)?,
        confirmed: false,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn add_constraint(
    admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
    options: web::Query<ChangeOptions>,
    constraint: web::Json<AddConstraint>,
) -> Result<HttpResponse, ApiError> {
    let constraint = constraint.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let change = SchemaChange {
        operation: "add_constraint",
        target: name.into_inner(),
        before: None,
        after: Some(serde_json::to_value(&constraint).map_err(|_| ApiError::internal())?),
        plan: plan_add_constraint(relation, &catalog, &constraint)?,
        confirmed: false,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn drop_constraint(
    admin: AdminAccess,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    options: web::Query<ChangeOptions>,
) -> Result<HttpResponse, ApiError> {
    let (name, constraint) = path.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let confirmed = options.confirm.as_deref() == Some(constraint.as_str());
    let change = SchemaChange {
        operation: "drop_constraint",
        target: format!("{name}.{constraint}"),
        before: serde_json::to_value(relation.constraints.iter().find(|c| c.name == constraint))
            .ok(),
        after: None,
        plan: plan_drop_constraint(relation, &catalog, &constraint, confirmed)?,
        confirmed,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn drop_index(
    admin: AdminAccess,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    options: web::Query<ChangeOptions>,
) -> Result<HttpResponse, ApiError> {
    let (name, index) = path.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let change = SchemaChange {
        operation: "drop_index",
        target: format!("{name}.{index}"),
        before: serde_json::to_value(relation.indexes.iter().find(|i| i.name == index)).ok(),
        after: None,
        plan: plan_drop_index(relation, &index)?,
        confirmed: false,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn add_index(
    admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
    options: web::Query<ChangeOptions>,
    index: web::Json<AddIndex>,
) -> Result<HttpResponse, ApiError> {
    let index = index.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let change = SchemaChange {
        operation: "add_index",
        target: name.into_inner(),
        before: None,
        after: Some(serde_json::to_value(&index).map_err(|_| ApiError::internal())?),
        plan: plan_add_index(relation, &index)?,
        confirmed: false,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn alter_column(
    admin: AdminAccess,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    options: web::Query<ChangeOptions>,
    change: web::Json<AlterColumn>,
) -> Result<HttpResponse, ApiError> {
    let (name, column) = path.into_inner();
    let change = change.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let change = SchemaChange {
        operation: "alter_column",
        target: format!("{name}.{column}"),
        before: serde_json::to_value(relation.column(&column)).ok(),
        after: Some(json!({ "column": column, "change": change })),
        plan: plan_alter_column(relation, &column, &change)?,
        confirmed: options.confirm.as_deref() == Some(column.as_str()),
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn drop_column(
    admin: AdminAccess,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    options: web::Query<ChangeOptions>,
) -> Result<HttpResponse, ApiError> {
    let (name, column) = path.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let plan = plan_drop_column(relation, &column)?;
    if options.confirm.as_deref() != Some(column.as_str()) {
        return Err(
            describe_loss(&state.pools.owner, &catalog, relation, Some(&column))
                .await?
                .into(),
        );
    }
    let change = SchemaChange {
        operation: "drop_column",
        target: format!("{name}.{column}"),
        before: serde_json::to_value(relation.column(&column)).ok(),
        after: None,
        plan,
        confirmed: true,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn alter_table(
    admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
    options: web::Query<ChangeOptions>,
    change: web::Json<AlterTable>,
) -> Result<HttpResponse, ApiError> {
    let change = change.into_inner();
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let change = SchemaChange {
        operation: "alter_table",
        target: name.into_inner(),
        before: None,
        after: Some(serde_json::to_value(&change).map_err(|_| ApiError::internal())?),
        plan: plan_alter_table(relation, &catalog, &change)?,
        confirmed: false,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

async fn delete_table(
    admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
    options: web::Query<ChangeOptions>,
) -> Result<HttpResponse, ApiError> {
    let catalog = catalog_with(&state, &name).await?;
    let relation = find(&catalog, &name)?;
    let plan = plan_drop_table(relation)?;
    if options.confirm.as_deref() != Some(name.as_str()) {
        return Err(describe_loss(&state.pools.owner, &catalog, relation, None)
            .await?
            .into());
    }
    let change = SchemaChange {
        operation: "drop_table",
        target: name.into_inner(),
        before: serde_json::to_value(relation).ok(),
        after: None,
        plan,
        confirmed: true,
    };
    finish(&state, &admin, &change, options.dry_run).await
}

/// A catalog snapshot that has table `name` if the database has it: a table another
/// instance created a moment ago may not have reached this instance's cache yet, so a miss
/// reloads once before answering 404.
async fn catalog_with(state: &AppState, name: &str) -> Result<Arc<Catalog>, ApiError> {
    let catalog = state.catalog.snapshot();
    if catalog.relation("public", name).is_some() {
        return Ok(catalog);
    }
    state.catalog.reload().await?;
    Ok(state.catalog.snapshot())
}

fn find<'a>(catalog: &'a Catalog, name: &str) -> Result<&'a Relation, ApiError> {
    Ok(catalog
        .relation("public", name)
        .ok_or_else(|| SchemaError::TableNotFound {
            table: name.to_owned(),
        })?)
}

async fn create_table(
    admin: AdminAccess,
    state: web::Data<AppState>,
    options: web::Query<ChangeOptions>,
    definition: web::Json<TableDefinition>,
) -> Result<HttpResponse, ApiError> {
    let definition = definition.into_inner();
    let catalog = state.catalog.snapshot();
    let (table, plan) = plan_create_table(&definition, &catalog)?;
    let change = SchemaChange {
        operation: "create_table",
        target: table.as_str().to_owned(),
        before: None,
        after: Some(serde_json::to_value(&definition).map_err(|_| ApiError::internal())?),
        plan,
        confirmed: false,
    };
    let history_id = apply(&state, &admin, &change, options.dry_run).await?;
    let sql = change.plan.script();
    let Some(history_id) = history_id else {
        return Ok(HttpResponse::Ok().json(json!({ "dry_run": true, "sql": sql })));
    };
    let catalog = state.catalog.snapshot();
    Ok(HttpResponse::Created().json(json!({
        "history_id": history_id,
        "sql": sql,
        "table": catalog.relation("public", table.as_str()),
    })))
}
