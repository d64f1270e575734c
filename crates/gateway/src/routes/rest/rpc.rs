//! `/rest/v1/rpc/{function}`: call a function of `public` with named arguments from a
//! JSON object (POST) or the query string (GET, HEAD). PostgreSQL's EXECUTE privileges
//! decide who may call what. A function returning rows is read like a table: select,
//! filters, order, page and embeds apply to its result.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_query::{FunctionShape, QueryParams, ReadOptions, SchemaView, TableShape, render_call};
use galley_schema::{Catalog, Function};

use super::{CatalogView, Exec, Media, Preferences};
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
    let mut query = super::parse_pairs(req.query_string())?;
    let object: serde_json::Map<String, serde_json::Value> = std::mem::take(&mut query.arguments)
        .into_iter()
        .map(|(name, value)| (name, serde_json::Value::String(value)))
        .collect();
    call(
        role,
        state,
        function,
        req,
        query,
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
    let query = super::parse_pairs(req.query_string())?;
    super::operatorless(&query, "arguments of a POST call go in the body")?;
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        super::parse_body(&req, &body)?
    };
    call(role, state, function, req, query, value, false).await
}

/// 404 PGRST202 in PostgREST's words: the function as called (its argument names, sorted,
/// or "without parameters"), and for a POST the single-JSON-parameter form it also
/// looked for. (PostgREST's fuzzy "Perhaps you meant" hint is not given.)
fn no_function(function: &str, arguments: &[String], get: bool) -> ApiError {
    let name = format!(
        "{}.{}",
        super::SCHEMA,
        function.chars().take(63).collect::<String>()
    );
    let listed = arguments.join(", ").chars().take(200).collect::<String>();
    let (called, searched) = if arguments.is_empty() {
        (
            " without parameters".to_owned(),
            " without parameters".to_owned(),
        )
    } else {
        (format!("({listed})"), format!(" with parameters {listed}"))
    };
    let single = if get {
        ""
    } else {
        " or with a single unnamed json/jsonb parameter"
    };
    ApiError::rest(
        StatusCode::NOT_FOUND,
        "PGRST202",
        format!("Could not find the function {name}{called} in the schema cache"),
        Some(format!(
            "Searched for the function {name}{searched}{single}, but no matches were found in the schema cache."
        )),
        None,
    )
}

/// 300 PGRST203 in PostgREST's words: every candidate with its parameters' names and
/// type names, in the catalog's order (by oid).
fn ambiguous(candidates: &[&Function]) -> ApiError {
    let listed: Vec<String> = candidates
        .iter()
        .map(|f| {
            let params: Vec<String> = f
                .args
                .iter()
                .filter(|a| matches!(a.mode.as_str(), "in" | "inout" | "variadic"))
                .map(|a| {
                    format!(
                        "{} => {}",
                        a.name.as_deref().unwrap_or_default(),
                        a.type_name
                    )
                })
                .collect();
            format!("{}.{}({})", f.schema, f.name, params.join(", "))
        })
        .collect();
    ApiError::rest(
        StatusCode::MULTIPLE_CHOICES,
        "PGRST203",
        format!(
            "Could not choose the best candidate function between: {}",
            listed.join(", ")
        ),
        None,
        Some(
            "Try renaming the parameters or the function itself in the database so function overloading can be resolved"
                .to_owned(),
        ),
    )
}

async fn call(
    role: RequestRole,
    state: web::Data<AppState>,
    function: web::Path<String>,
    req: HttpRequest,
    mut query: QueryParams,
    value: serde_json::Value,
    get: bool,
) -> Result<HttpResponse, ApiError> {
    super::check_profile(&req)?;
    let serde_json::Value::Object(object) = &value else {
        return Err(super::invalid_json("the arguments must be one JSON object"));
    };
    let media = Media::parse(&req)?;
    let prefs = Preferences::parse(&req)?;
    if get {
        super::read::apply_range_header(&req, &mut query)?;
    }
    let mut arguments: Vec<String> = object.keys().cloned().collect();
    arguments.sort();
    let catalog = state.catalog.snapshot();
    // The overload whose arguments cover the given names and need no other; more than
    // one is ambiguous, as in PostgREST.
    let mut matching = catalog
        .functions
        .iter()
        .filter(|f| f.schema == super::SCHEMA && f.name == *function)
        .map(|f| (f, function_shape(&catalog, f)))
        .filter(|(_, f)| {
            arguments
                .iter()
                .all(|name| f.args.iter().any(|(arg, _, _)| arg == name))
                && f.args
                    .iter()
                    .all(|(arg, _, has_default)| *has_default || arguments.contains(arg))
        });
    let (found, shape) = matching
        .next()
        .ok_or_else(|| no_function(&function, &arguments, get))?;
    if let Some((second, _)) = matching.next() {
        let rest: Vec<_> = matching.map(|(f, _)| f).collect();
        return Err(ambiguous(
            &[found, second].into_iter().chain(rest).collect::<Vec<_>>(),
        ));
    }
    let options = ReadOptions {
        max_rows: state.rest.max_rows,
        count: prefs.count,
        format: media.format(),
    };
    let statement = render_call(
        &CatalogView(&catalog),
        &shape,
        &arguments,
        value.to_string(),
        &query,
        options,
    )
    .map_err(super::render_error)?;
    // Reads by GET, and functions that declare they do not write, run read-only.
    let read_only = get || found.volatility != "volatile";
    let exec = Exec {
        read_only,
        rollback: prefs.rollback,
        single: media.single(),
        max_affected: prefs.max_affected,
        planned: super::read::planned(prefs.count, &statement),
        kind: "rpc",
        target: None,
    };
    let outcome = super::run(&state, &role, &req, &statement, exec).await?;
    if shape.returns_void {
        return Ok(HttpResponse::NoContent().finish());
    }
    if shape.returns.is_some() && shape.returns_set {
        let offset = super::read::root_offset(&query);
        return super::read::rows_response(&media, &prefs, state.rest.max_rows, outcome, offset);
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(outcome.body))
}

/// A function of the catalog as rendering needs it, with the rows it returns when it
/// returns a table type of `public` or `TABLE(...)`.
fn function_shape(catalog: &Catalog, f: &Function) -> FunctionShape {
    let returned = f.returns.strip_prefix("SETOF ").unwrap_or(&f.returns);
    let returned = returned
        .strip_prefix("public.")
        .unwrap_or(returned)
        .trim_matches('"');
    let table_columns: Vec<(String, String)> = f
        .args
        .iter()
        .filter(|a| a.mode == "table")
        .map(|a| (a.name.clone().unwrap_or_default(), a.data_type.clone()))
        .collect();
    let returns = if !table_columns.is_empty() {
        Some(TableShape {
            schema: super::SCHEMA.to_owned(),
            name: f.name.clone(),
            columns: table_columns,
            ..TableShape::default()
        })
    } else {
        CatalogView(catalog).table(returned)
    };
    FunctionShape {
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
        returns,
        returns_void: f.returns == "void",
    }
}
