//! Writes: `POST` inserts one object or an array of objects, `PATCH` updates and
//! `DELETE` deletes the rows the filters match; each one statement.

use actix_web::{HttpRequest, HttpResponse, web};
use galley_query::{Mutation, OnConflict, render_insert, render_mutation};

use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

pub(super) async fn post_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let query = super::parse_pairs(req.query_string())?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|err| super::invalid_json(err.to_string()))?;
    let rows = match value {
        serde_json::Value::Object(_) => vec![value],
        serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_object) => items,
        _ => {
            return Err(super::invalid_json(
                "the body must be an object or an array of objects",
            ));
        }
    };
    // The columns: `columns=`, else the first object's keys, which every object must share.
    let columns: Vec<String> = match &query.columns {
        Some(columns) => columns.clone(),
        None => {
            let keys = |row: &serde_json::Value| -> Vec<String> {
                let mut keys: Vec<String> = row
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                keys.sort();
                keys
            };
            let first = rows.first().map(keys).unwrap_or_default();
            if rows.iter().any(|row| keys(row) != first) {
                return Err(super::invalid_json("All object keys must match"));
            }
            first
        }
    };
    let catalog = state.catalog.snapshot();
    let shape = super::table_shape(&catalog, &table)?;
    let representation = super::prefers(&req, "return=representation");
    let on_conflict = if super::prefers(&req, "resolution=merge-duplicates") {
        OnConflict::Merge(query.on_conflict.clone())
    } else if super::prefers(&req, "resolution=ignore-duplicates") {
        OnConflict::Ignore(query.on_conflict.clone())
    } else {
        OnConflict::Error
    };
    let created = rows.len();
    let statement = render_insert(
        &shape,
        &columns,
        serde_json::Value::Array(rows).to_string(),
        query.select.as_deref(),
        representation,
        &on_conflict,
    )
    .map_err(super::render_error)?;
    if columns.is_empty() && created > 0 {
        return Err(super::invalid_json(
            "an object to insert needs at least one key",
        ));
    }
    let row = super::run(&state, &role, "POST", req.path(), &statement, false).await?;
    let inserted: i64 = row.get(1);
    let mut response = HttpResponse::Created();
    response.insert_header(("content-range", format!("*/{inserted}")));
    if representation {
        let body: String = row.get(2);
        Ok(response
            .content_type("application/json; charset=utf-8")
            .body(body))
    } else {
        Ok(response.finish())
    }
}

/// `PATCH /rest/v1/{table}?<filters>`: set the body's columns on the matching rows.
pub(super) async fn patch_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|err| super::invalid_json(err.to_string()))?;
    let serde_json::Value::Object(object) = &value else {
        return Err(super::invalid_json("the body must be an object"));
    };
    let columns: Vec<String> = object.keys().cloned().collect();
    let mutation = Mutation::Update {
        columns,
        body: value.to_string(),
    };
    mutate(role, state, table, req, mutation, "PATCH").await
}

/// `DELETE /rest/v1/{table}?<filters>`: delete the matching rows.
pub(super) async fn delete_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    mutate(role, state, table, req, Mutation::Delete, "DELETE").await
}

async fn mutate(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
    mutation: Mutation,
    method: &str,
) -> Result<HttpResponse, ApiError> {
    let query = super::parse_pairs(req.query_string())?;
    let catalog = state.catalog.snapshot();
    let shape = super::table_shape(&catalog, &table)?;
    let representation = super::prefers(&req, "return=representation");
    let statement =
        render_mutation(&shape, &query, &mutation, representation).map_err(super::render_error)?;
    let row = super::run(&state, &role, method, req.path(), &statement, false).await?;
    let affected: i64 = row.get(1);
    let range = format!("*/{affected}");
    if representation {
        let body: String = row.get(2);
        Ok(HttpResponse::Ok()
            .insert_header(("content-range", range))
            .content_type("application/json; charset=utf-8")
            .body(body))
    } else {
        Ok(HttpResponse::NoContent()
            .insert_header(("content-range", range))
            .finish())
    }
}
