//! `/rest/v1`: the PostgREST dialect over the tables in `public`. For now: reads of one
//! table (`GET`, `HEAD`), with select, filters, logic trees, order, limit/offset and the
//! `Range` header, `Prefer: count=exact`, and single-object responses.

mod read;
mod rpc;
mod write;

use actix_web::http::StatusCode;
use actix_web::web;
use galley_db::DbError;
use galley_db::tokio_postgres::Row;
use galley_db::tokio_postgres::types::{ToSql, Type};
use galley_query::{RenderError, Statement, TableShape};
use galley_schema::Catalog;

use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/rest/v1")
            .service(
                web::resource("/rpc/{function}")
                    .route(web::get().to(rpc::get_rpc))
                    .route(web::head().to(rpc::get_rpc))
                    .route(web::post().to(rpc::post_rpc))
                    .default_service(web::to(crate::routes::method_not_allowed)),
            )
            .service(
                web::resource("/{table}")
                    .route(web::get().to(read::get_rows))
                    .route(web::head().to(read::get_rows))
                    .route(web::post().to(write::post_rows))
                    .route(web::patch().to(write::patch_rows))
                    .route(web::delete().to(write::delete_rows))
                    .default_service(web::to(crate::routes::method_not_allowed)),
            ),
    );
}

/// Runs one rendered statement in its own transaction, as the request's role with its
/// claims, method and path set for the transaction only.
async fn run(
    state: &AppState,
    role: &RequestRole,
    method: &str,
    path: &str,
    statement: &Statement,
    read_only: bool,
) -> Result<Row, ApiError> {
    let failed =
        |err: galley_db::tokio_postgres::Error| ApiError::from_statement(&err, role.is_anonymous());
    let mut client = state.pools.api.get().await.map_err(DbError::from)?;
    let tx = client
        .build_transaction()
        .read_only(read_only)
        .start()
        .await
        .map_err(failed)?;
    let claims = role.claims.to_string();
    tx.execute(
        "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
         set_config('request.method', $3, true), set_config('request.path', $4, true)",
        &[&role.role, &claims, &method, &path],
    )
    .await
    .map_err(failed)?;
    let types = vec![Type::TEXT; statement.params.len()];
    let prepared = tx
        .prepare_typed_cached(&statement.sql, &types)
        .await
        .map_err(failed)?;
    let params: Vec<&(dyn ToSql + Sync)> = statement
        .params
        .iter()
        .map(|p| p as &(dyn ToSql + Sync))
        .collect();
    let row = tx.query_one(&prepared, &params).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(row)
}

/// The table a request names, as rendering needs it; 404 PGRST205 when the catalog has
/// no such table in `public`.
fn table_shape(catalog: &Catalog, table: &str) -> Result<TableShape, ApiError> {
    let relation = catalog.relation("public", table).ok_or_else(|| {
        ApiError::rest(
            StatusCode::NOT_FOUND,
            "PGRST205",
            format!(
                "Could not find the table 'public.{}' in the schema cache",
                table.chars().take(63).collect::<String>()
            ),
            None,
            None,
        )
    })?;
    Ok(TableShape {
        schema: relation.schema.clone(),
        name: relation.name.clone(),
        primary_key: relation.primary_key.clone(),
        columns: relation
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect(),
    })
}

fn render_error(err: RenderError) -> ApiError {
    match err {
        RenderError::UnknownColumn { .. } => ApiError::rest(
            StatusCode::BAD_REQUEST,
            galley_db::UNDEFINED_COLUMN,
            err.to_string(),
            None,
            None,
        ),
        RenderError::Unsupported(_) => ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST127",
            err.to_string(),
            None,
            None,
        ),
        RenderError::CastNotAllowed(_) => ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            err.to_string(),
            None,
            None,
        ),
        // What Supabase's safeupdate extension answers with.
        RenderError::UnknownArgument { .. } | RenderError::MissingArgument { .. } => {
            ApiError::rest(
                StatusCode::NOT_FOUND,
                "PGRST202",
                err.to_string(),
                None,
                None,
            )
        }
        RenderError::MissingFilter => ApiError::rest(
            StatusCode::BAD_REQUEST,
            galley_db::CARDINALITY_VIOLATION,
            err.to_string(),
            None,
            None,
        ),
    }
}

/// The query string as ordered pairs, parsed; 400 PGRST100 otherwise.
fn parse_pairs(query_string: &str) -> Result<galley_query::QueryParams, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query_string).map_err(|err| {
        ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            format!("failed to parse the query string: {err}"),
            None,
            None,
        )
    })?;
    galley_query::parse_query(&pairs).map_err(|err| {
        ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            err.to_string(),
            Some(err.details.clone()),
            None,
        )
    })
}

/// 400 PGRST102, PostgREST's answer to a body it cannot use.
fn invalid_json(details: impl Into<String>) -> ApiError {
    ApiError::rest(
        StatusCode::BAD_REQUEST,
        "PGRST102",
        "Empty or invalid json",
        Some(details.into()),
        None,
    )
}

/// Whether a `Prefer` header lists `preference`.
fn prefers(req: &actix_web::HttpRequest, preference: &str) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim() == preference)
}
