//! `POST /rest/v1/rpc/{function}`: call a function of `public` with named arguments from
//! a JSON object. PostgreSQL's EXECUTE privileges decide who may call what.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_query::{FunctionShape, render_call};

use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

/// `GET /rest/v1/rpc/{function}?arg=value`: arguments from the query string, run in a
/// read-only transaction, so only functions that do not write can be called this way.
pub(super) async fn get_rpc(
    role: RequestRole,
    state: web::Data<AppState>,
    function: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = super::parse_pairs(req.query_string())?;
    if !query.filters.is_empty() || !query.logic.is_empty() || query.select.is_some() {
        return Err(ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST127",
            "filtering or shaping the results of a function call is not supported yet",
            None,
            None,
        ));
    }
    let object: serde_json::Map<String, serde_json::Value> = query
        .arguments
        .into_iter()
        .map(|(name, value)| (name, serde_json::Value::String(value)))
        .collect();
    call(
        role,
        state,
        function,
        req,
        serde_json::Value::Object(object),
        true,
    )
    .await
}

pub(super) async fn post_rpc(
    role: RequestRole,
    state: web::Data<AppState>,
    function: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body).map_err(|err| super::invalid_json(err.to_string()))?
    };
    call(role, state, function, req, value, false).await
}

async fn call(
    role: RequestRole,
    state: web::Data<AppState>,
    function: web::Path<String>,
    req: HttpRequest,
    value: serde_json::Value,
    read_only: bool,
) -> Result<HttpResponse, ApiError> {
    let serde_json::Value::Object(object) = &value else {
        return Err(super::invalid_json("the arguments must be one JSON object"));
    };
    let mut arguments: Vec<String> = object.keys().cloned().collect();
    arguments.sort();
    let catalog = state.catalog.snapshot();
    // The overload whose arguments cover the given names and need no other.
    let shape = catalog
        .functions
        .iter()
        .filter(|f| f.schema == "public" && f.name == *function)
        .map(|f| FunctionShape {
            schema: f.schema.clone(),
            name: f.name.clone(),
            args: f
                .args
                .iter()
                .filter(|a| matches!(a.mode.as_str(), "in" | "inout" | "variadic"))
                .map(|a| {
                    (
                        a.name.clone().unwrap_or_default(),
                        a.data_type.clone(),
                        a.has_default,
                    )
                })
                .collect(),
            returns_set: f.returns_set,
            returns_rows: f.returns.starts_with("TABLE("),
        })
        .find(|f| {
            arguments
                .iter()
                .all(|name| f.args.iter().any(|(arg, _, _)| arg == name))
                && f.args
                    .iter()
                    .all(|(arg, _, has_default)| *has_default || arguments.contains(arg))
        })
        .ok_or_else(|| {
            ApiError::rest(
                StatusCode::NOT_FOUND,
                "PGRST202",
                format!(
                    "Could not find the function public.{}({}) in the schema cache",
                    function.chars().take(63).collect::<String>(),
                    arguments.join(", ").chars().take(200).collect::<String>()
                ),
                None,
                None,
            )
        })?;
    let statement =
        render_call(&shape, &arguments, value.to_string()).map_err(super::render_error)?;
    let method = if read_only { "GET" } else { "POST" };
    let row = super::run(&state, &role, method, req.path(), &statement, read_only).await?;
    let body: String = row.get(2);
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body))
}
