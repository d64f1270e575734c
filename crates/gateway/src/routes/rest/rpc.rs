//! `/rest/v1/rpc/{function}`: call a function of the request's schema with named arguments from a
//! JSON object (POST) or the query string (GET, HEAD), or, as PostgREST does, pass a
//! POST's whole body to a function's single unnamed parameter: `json`/`jsonb` for a JSON
//! body no named overload takes, `text` for `text/plain`, `xml` for `text/xml`, `bytea`
//! for `application/octet-stream`. PostgreSQL's EXECUTE privileges decide who may call
//! what. A function returning rows is read like a table: select, filters, order, page
//! and embeds apply to its result.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_query::{
    FunctionShape, QueryParams, ReadOptions, SchemaView, TableShape, render_call,
    render_single_call,
};
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
    let mut query = super::parse_pairs(req.query_string(), true)?;
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
        Arguments::Query(serde_json::Value::Object(object)),
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
    let query = super::parse_pairs(req.query_string(), false)?;
    // A raw body of these types goes whole to a single unnamed parameter of the type.
    let raw = match crate::content_type::not_json(&req).as_deref() {
        Some("text/plain") => Some("text"),
        Some("text/xml") => Some("xml"),
        Some("application/octet-stream") => Some("bytea"),
        _ => None,
    };
    if let Some(kind) = raw {
        let value = if kind == "bytea" {
            hex::encode(&body)
        } else {
            String::from_utf8(body.to_vec()).map_err(|_| {
                ApiError::rest(
                    StatusCode::BAD_REQUEST,
                    galley_db::CHARACTER_NOT_IN_REPERTOIRE,
                    "invalid byte sequence for encoding \"UTF8\"",
                    None,
                    None,
                )
            })?
        };
        return call(
            role,
            state,
            function,
            req,
            query,
            Arguments::Single { kind, value },
        )
        .await;
    }
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        super::parse_body(&req, &body)?
    };
    call(role, state, function, req, query, Arguments::Json(value)).await
}

/// What a call passes.
enum Arguments {
    /// From the query string (GET, HEAD): named only.
    Query(serde_json::Value),
    /// A POST's JSON body: named by an object's members, else whole to a single unnamed
    /// `json`/`jsonb` parameter.
    Json(serde_json::Value),
    /// A POST's raw body, whole, to a single unnamed parameter of type `kind`.
    Single { kind: &'static str, value: String },
}

/// A function's input parameters (what a call passes), in order.
fn inputs(f: &Function) -> Vec<&galley_schema::FunctionArg> {
    f.args
        .iter()
        .filter(|a| matches!(a.mode.as_str(), "in" | "inout" | "variadic"))
        .collect()
}

/// The overloads of `function` in the request's schema whose inputs `takes` accepts.
fn overloads<'a>(
    view: &CatalogView<'a>,
    function: &str,
    takes: impl Fn(&[&galley_schema::FunctionArg]) -> bool,
) -> Vec<&'a Function> {
    view.catalog
        .functions
        .iter()
        .filter(|f| f.schema == view.schema && f.name == function && takes(&inputs(f)))
        .collect()
}

/// The functions called `function` whose only input is one unnamed parameter of one of
/// `types`.
fn single_parameter<'a>(
    view: &CatalogView<'a>,
    function: &str,
    types: &[&str],
) -> Vec<&'a Function> {
    overloads(view, function, |inputs| {
        matches!(inputs, [only] if only.name.as_deref().unwrap_or_default().is_empty()
            && types.contains(&only.data_type.as_str()))
    })
}

/// `schema.function`, as PostgREST's messages name a function (the name cut to 63).
fn qualified(schema: &str, function: &str) -> String {
    format!("{schema}.{}", function.chars().take(63).collect::<String>())
}

/// 404 PGRST202 in PostgREST's words: the function as called (its argument names, sorted,
/// or "without parameters"), and for a POST the single-JSON-parameter form it also
/// looked for, with PostgREST's "Perhaps you meant" hint.
fn no_function(
    view: &CatalogView<'_>,
    function: &str,
    arguments: &[String],
    get: bool,
) -> ApiError {
    let schema = view.schema;
    let name = qualified(schema, function);
    let listed = arguments.join(", ").chars().take(200).collect::<String>();
    let (called, searched) = if arguments.is_empty() {
        (
            " without parameters".to_owned(),
            " without parameters".to_owned(),
        )
    } else {
        let plural = if arguments.len() > 1 { "s" } else { "" };
        (
            format!("({listed})"),
            format!(" with parameter{plural} {listed}"),
        )
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
        no_function_hint(view, function, arguments),
    )
}

/// PostgREST's hint for a call that matched nothing: with no function of that name, one
/// whose name is close; else the overload whose parameters, sorted, read closest to the
/// arguments given.
fn no_function_hint(
    view: &CatalogView<'_>,
    function: &str,
    arguments: &[String],
) -> Option<String> {
    let schema = view.schema;
    let in_schema = || view.catalog.functions.iter().filter(|f| f.schema == schema);
    let same_name: Vec<&Function> = in_schema().filter(|f| f.name == function).collect();
    if same_name.is_empty() {
        let suggestion =
            super::fuzzy::closest(in_schema().map(|f| f.name.as_str()), function, 0.75)?;
        return Some(format!(
            "Perhaps you meant to call the function {schema}.{suggestion}"
        ));
    }
    let list = |names: Vec<&str>| {
        let mut names = names;
        names.sort_unstable();
        format!("({})", names.join(", "))
    };
    let lists: Vec<String> = same_name
        .iter()
        .map(|f| {
            list(
                inputs(f)
                    .into_iter()
                    .map(|a| a.name.as_deref().unwrap_or_default())
                    .collect(),
            )
        })
        .collect();
    let asked = list(arguments.iter().map(String::as_str).collect());
    let suggestion = super::fuzzy::closest(lists.iter().map(String::as_str), &asked, 0.33)?;
    Some(format!(
        "Perhaps you meant to call the function {schema}.{function}{suggestion}"
    ))
}

/// 300 PGRST203 in PostgREST's words: every candidate with its parameters' names and
/// type names, in the catalog's order (by oid).
fn ambiguous(candidates: &[&Function]) -> ApiError {
    let listed: Vec<String> = candidates
        .iter()
        .map(|f| {
            let params: Vec<String> = inputs(f)
                .into_iter()
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
    arguments: Arguments,
) -> Result<HttpResponse, ApiError> {
    let schema = super::profile(&req, &state.rest.schemas)?;
    let get = matches!(arguments, Arguments::Query(_));
    let catalog = state.catalog.snapshot();
    let media = Media::parse(&req, catalog.postgis_schema.is_some())?;
    let prefs = Preferences::parse(&req)?;
    if get {
        super::read::apply_range_header(&req, &mut query)?;
    }
    let view = CatalogView::new(&catalog, schema);
    let options = ReadOptions {
        max_rows: state.rest.max_rows,
        count: prefs.count,
        format: media.format(&catalog),
    };
    let (found, shape, statement) = match arguments {
        Arguments::Single { kind, value } => {
            let found = only_one(single_parameter(&view, &function, &[kind]), || {
                no_single_function(schema, &function, kind)
            })?;
            let shape = function_shape(&catalog, found, &state.rest.schemas);
            let statement = render_single_call(&view, &shape, value, &query, options)
                .map_err(|err| super::render_error(err, &view))?;
            (found, shape, statement)
        }
        Arguments::Query(value) | Arguments::Json(value) => {
            let named = match &value {
                serde_json::Value::Object(object) => {
                    let mut names: Vec<String> = object.keys().cloned().collect();
                    names.sort();
                    Some(names)
                }
                _ => None,
            };
            let by_name = named
                .as_ref()
                .map(|names| named_overloads(&view, &function, names))
                .unwrap_or_default();
            if by_name.is_empty() && !get {
                // No overload takes these names: the whole body to a single unnamed
                // json/jsonb parameter, if the function has one.
                let single = single_parameter(&view, &function, &["json", "jsonb"]);
                if !single.is_empty() {
                    let found = only_one(single, ApiError::internal)?;
                    let shape = function_shape(&catalog, found, &state.rest.schemas);
                    let statement =
                        render_single_call(&view, &shape, value.to_string(), &query, options)
                            .map_err(|err| super::render_error(err, &view))?;
                    return finish(
                        &state, &role, &req, &media, &prefs, &query, found, &shape, &statement, get,
                    )
                    .await;
                }
            }
            let Some(names) = named else {
                return Err(super::invalid_json("the arguments must be one JSON object"));
            };
            let found = only_one(by_name, || no_function(&view, &function, &names, get))?;
            let shape = function_shape(&catalog, found, &state.rest.schemas);
            let statement = render_call(&view, &shape, &names, value.to_string(), &query, options)
                .map_err(|err| super::render_error(err, &view))?;
            (found, shape, statement)
        }
    };
    finish(
        &state, &role, &req, &media, &prefs, &query, found, &shape, &statement, get,
    )
    .await
}

/// The one candidate; none is `none()`, several are ambiguous (PGRST203).
fn only_one(
    candidates: Vec<&Function>,
    none: impl FnOnce() -> ApiError,
) -> Result<&Function, ApiError> {
    match candidates.as_slice() {
        [] => Err(none()),
        [one] => Ok(one),
        several => Err(ambiguous(several)),
    }
}

/// The overloads of `function` whose arguments cover `names` and need no other.
fn named_overloads<'a>(
    view: &CatalogView<'a>,
    function: &str,
    names: &[String],
) -> Vec<&'a Function> {
    overloads(view, function, |inputs| {
        names.iter().all(|name| {
            inputs
                .iter()
                .any(|a| a.name.as_deref() == Some(name.as_str()))
        }) && inputs
            .iter()
            .all(|a| a.has_default || a.name.as_ref().is_some_and(|n| names.contains(n)))
    })
}

/// 404 PGRST202 for a raw body no single unnamed parameter of its type takes.
fn no_single_function(schema: &str, function: &str, kind: &str) -> ApiError {
    let name = qualified(schema, function);
    ApiError::rest(
        StatusCode::NOT_FOUND,
        "PGRST202",
        format!("Could not find the function {name} in the schema cache"),
        Some(format!(
            "Searched for the function {name} with a single unnamed {kind} parameter, but no matches were found in the schema cache."
        )),
        None,
    )
}

/// Runs a rendered call and answers as its result type says.
#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &AppState,
    role: &RequestRole,
    req: &HttpRequest,
    media: &Media,
    prefs: &Preferences,
    query: &QueryParams,
    found: &Function,
    shape: &FunctionShape,
    statement: &galley_query::Statement,
    get: bool,
) -> Result<HttpResponse, ApiError> {
    // Reads by GET, and functions that declare they do not write, run read-only.
    let read_only = get || found.volatility != "volatile";
    if let Some(plan) = media.plan {
        return super::explain(state, role, req, statement, plan, read_only).await;
    }
    let exec = Exec {
        read_only,
        rollback: prefs.rollback,
        single: media.single(),
        max_affected: prefs.max_affected,
        planned: super::read::planned(prefs.count, statement),
        kind: "rpc",
        target: None,
    };
    let outcome = super::run(state, role, req, statement, exec).await?;
    if shape.returns_void {
        return Ok(HttpResponse::NoContent().finish());
    }
    if shape.returns.is_some() && shape.returns_set {
        let offset = super::read::root_offset(query);
        return super::read::rows_response(media, prefs, state.rest.max_rows, outcome, offset);
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(outcome.body))
}

/// A function of the catalog as rendering needs it, with the rows it returns when it
/// returns a table's or view's row type (of an exposed schema) or `TABLE(...)`.
fn function_shape(catalog: &Catalog, f: &Function, served: &[String]) -> FunctionShape {
    let table_columns: Vec<(String, String)> = f
        .args
        .iter()
        .filter(|a| a.mode == "table")
        .map(|a| (a.name.clone().unwrap_or_default(), a.data_type.clone()))
        .collect();
    let returns = if !table_columns.is_empty() {
        Some(TableShape {
            schema: f.schema.clone(),
            name: f.name.clone(),
            columns: table_columns,
            ..TableShape::default()
        })
    } else {
        f.returns_relation.as_ref().and_then(|r| {
            let table = CatalogView::new(catalog, &r.schema).table(&r.name)?;
            if served.contains(&r.schema) {
                return Some(table);
            }
            // Rows of a table whose schema is not served: its columns, and nothing that
            // would reach further into that schema (its functions, its relationships).
            Some(TableShape {
                schema: table.schema,
                name: table.name,
                columns: table.columns,
                ..TableShape::default()
            })
        })
    };
    FunctionShape {
        schema: f.schema.clone(),
        name: f.name.clone(),
        args: inputs(f)
            .into_iter()
            .map(|a| {
                (
                    a.name.clone().unwrap_or_default(),
                    a.data_type.clone(),
                    a.has_default,
                )
            })
            .collect(),
        composite_args: inputs(f)
            .into_iter()
            .filter(|a| a.relation.is_some())
            .map(|a| a.name.clone().unwrap_or_default())
            .collect(),
        returns_set: f.returns_set,
        returns,
        returns_void: f.returns == "void",
    }
}
