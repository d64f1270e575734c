//! `GET /rest/v1/{table}`: one statement, run as the request's role with its claims, whose
//! single row carries the total, the page size and the JSON body.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_db::DbError;
use galley_db::tokio_postgres::types::{ToSql, Type};
use galley_query::{ReadOptions, RenderError, TableShape, parse_query, render_read};

use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{table}")
            .route(web::get().to(get_rows))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

async fn get_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).map_err(|err| {
            ApiError::rest(
                StatusCode::BAD_REQUEST,
                "PGRST100",
                format!("failed to parse the query string: {err}"),
                None,
                None,
            )
        })?;
    let query = parse_query(&pairs).map_err(|err| {
        ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            err.to_string(),
            Some(err.details.clone()),
            None,
        )
    })?;
    if let Some((key, _)) = query.arguments.first() {
        return Err(ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            format!("failed to parse filter ({key})"),
            Some("expected an operator such as eq., in. or is.".to_owned()),
            None,
        ));
    }
    let catalog = state.catalog.snapshot();
    let relation = catalog.relation("public", &table).ok_or_else(|| {
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
    let shape = TableShape {
        schema: relation.schema.clone(),
        name: relation.name.clone(),
        columns: relation
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect(),
    };
    let count_exact = req
        .headers()
        .get_all("prefer")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| preference.trim() == "count=exact");
    let options = ReadOptions {
        max_rows: state.rest.max_rows,
        count_exact,
    };
    let statement = render_read(&shape, &query, options).map_err(|err| match err {
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
    })?;

    let mut client = state.pools.api.get().await.map_err(DbError::from)?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|err| ApiError::from_statement(&err, role.is_anonymous()))?;
    let claims = role.claims.to_string();
    let path = req.path().to_owned();
    tx.execute(
        "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
         set_config('request.method', 'GET', true), set_config('request.path', $3, true)",
        &[&role.role, &claims, &path],
    )
    .await
    .map_err(|err| ApiError::from_statement(&err, role.is_anonymous()))?;
    let types = vec![Type::TEXT; statement.params.len()];
    let prepared = tx
        .prepare_typed_cached(&statement.sql, &types)
        .await
        .map_err(|err| ApiError::from_statement(&err, role.is_anonymous()))?;
    let params: Vec<&(dyn ToSql + Sync)> = statement
        .params
        .iter()
        .map(|p| p as &(dyn ToSql + Sync))
        .collect();
    let row = tx
        .query_one(&prepared, &params)
        .await
        .map_err(|err| ApiError::from_statement(&err, role.is_anonymous()))?;
    tx.commit()
        .await
        .map_err(|err| ApiError::from_statement(&err, role.is_anonymous()))?;

    let total: Option<i64> = row.get(0);
    let page: i64 = row.get(1);
    let body: String = row.get(2);
    let offset = query
        .offset
        .iter()
        .find(|(path, _)| path.is_empty())
        .map_or(0, |(_, offset)| *offset as i64);
    let total_text = total.map_or_else(|| "*".to_owned(), |total| total.to_string());
    let range = if page == 0 {
        format!("*/{total_text}")
    } else {
        format!("{offset}-{}/{total_text}", offset + page - 1)
    };
    let partial = total.is_some_and(|total| page < total);
    Ok(HttpResponse::build(if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    })
    .content_type("application/json; charset=utf-8")
    .insert_header(("content-range", range))
    .body(body))
}
