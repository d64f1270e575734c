//! `/rest/v1`: the PostgREST dialect over the tables and functions of `public`. Every
//! request is one statement, run in its own transaction as the request's role with its
//! claims, method, path and headers set for that transaction only.

mod fuzzy;
mod media;
mod openapi;
mod prefer;
mod read;
mod rpc;
mod write;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_db::DbError;
use galley_db::wire::{Row, WireError};
use galley_query::{
    ComputedField, ComputedRelationship, ForeignKeyShape, FunctionName, RenderError, SchemaView,
    Statement, TableShape,
};
use galley_schema::{Catalog, Relation};
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

pub(crate) use media::Media;
pub(crate) use prefer::Preferences;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(routes(web::scope("/rest/v1")));
}

/// The dialect's routes on `scope`: `/rest/v1` for apps, and `/admin/v1/rest` where an
/// admin browses and edits data as a role of their choosing (`RequestRole` knows which).
pub(crate) fn routes(
    scope: actix_web::Scope,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    scope
        // The schema every answer comes from, as PostgREST names it.
        .wrap_fn(|req, service| {
            let schema = req
                .app_data::<web::Data<AppState>>()
                .and_then(|state| profile(req.request(), &state.rest.schemas).ok())
                .and_then(|schema| actix_web::http::header::HeaderValue::from_str(schema).ok());
            let answer = actix_web::dev::Service::call(service, req);
            async move {
                let mut res = answer.await?;
                if let Some(schema) = schema {
                    res.headers_mut().insert(
                        actix_web::http::header::HeaderName::from_static("content-profile"),
                        schema,
                    );
                }
                Ok(res)
            }
        })
        .service(
            web::resource(["", "/"])
                .route(web::get().to(openapi::document))
                .route(web::head().to(openapi::document))
                .route(web::method(actix_web::http::Method::OPTIONS).to(options_root))
                .default_service(web::to(unsupported_method)),
        )
        .service(
            web::resource("/rpc/{function}")
                .route(web::get().to(rpc::get_rpc))
                .route(web::head().to(rpc::get_rpc))
                .route(web::post().to(rpc::post_rpc))
                .route(web::method(actix_web::http::Method::OPTIONS).to(options_rpc))
                .default_service(web::to(rpc_method_not_allowed)),
        )
        .service(
            web::resource("/{table}")
                .route(web::get().to(read::get_rows))
                .route(web::head().to(read::get_rows))
                .route(web::post().to(write::post_rows))
                .route(web::put().to(write::put_row))
                .route(web::patch().to(write::patch_rows))
                .route(web::delete().to(write::delete_rows))
                .route(web::method(actix_web::http::Method::OPTIONS).to(options_table))
                .default_service(web::to(unsupported_method)),
        )
        .default_service(web::to(invalid_path))
}

async fn options_root() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("allow", "OPTIONS,GET,HEAD"))
        .finish()
}

async fn options_rpc() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("allow", "OPTIONS,GET,HEAD,POST"))
        .finish()
}

async fn options_table() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("allow", "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"))
        .finish()
}

async fn unsupported_method(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::rest(
        StatusCode::METHOD_NOT_ALLOWED,
        "PGRST117",
        format!("Unsupported HTTP method: {}", req.method()),
        None,
        None,
    ))
}

async fn rpc_method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::rest(
        StatusCode::METHOD_NOT_ALLOWED,
        "PGRST101",
        format!("Cannot use the {} method on RPC", req.method()),
        None,
        None,
    ))
}

async fn invalid_path() -> Result<HttpResponse, ApiError> {
    Err(ApiError::rest(
        StatusCode::NOT_FOUND,
        "PGRST125",
        "Invalid path specified in request URL",
        None,
        None,
    ))
}

/// The catalog as rendering sees it: the tables of the request's schema and nothing else.
pub(crate) struct CatalogView<'a> {
    pub(crate) catalog: &'a Catalog,
    pub(crate) schema: &'a str,
}

impl<'a> CatalogView<'a> {
    pub(crate) fn new(catalog: &'a Catalog, schema: &'a str) -> Self {
        Self { catalog, schema }
    }
}

impl SchemaView for CatalogView<'_> {
    fn table(&self, name: &str) -> Option<TableShape> {
        self.catalog
            .relation(self.schema, name)
            .map(|relation| shape_of(self.catalog, relation))
    }

    fn referencing(&self, schema: &str, name: &str) -> Vec<TableShape> {
        self.catalog
            .relations
            .values()
            .filter(|r| r.schema == self.schema)
            .filter(|r| {
                r.embed_keys()
                    .any(|fk| fk.target_schema == schema && fk.target_table == name)
            })
            .map(|relation| shape_of(self.catalog, relation))
            .collect()
    }
}

fn shape_of(catalog: &Catalog, relation: &Relation) -> TableShape {
    let mut computed_fields = Vec::new();
    let mut computed_relationships = Vec::new();
    let over_this_row = catalog
        .functions_over(relation)
        .filter(|f| f.schema == relation.schema);
    for function in over_this_row {
        let name = FunctionName {
            schema: function.schema.clone(),
            name: function.name.clone(),
        };
        match &function.returns_relation {
            Some(target) => computed_relationships.push(ComputedRelationship {
                function: name,
                target_schema: target.schema.clone(),
                target_table: target.name.clone(),
                to_one: !function.returns_set || function.rows == 1.0,
            }),
            None if !function.returns_set => computed_fields.push(ComputedField {
                function: name,
                data_type: function.returns.clone(),
            }),
            None => {}
        }
    }
    TableShape {
        computed_fields,
        computed_relationships,
        view: matches!(
            relation.kind,
            galley_schema::RelationKind::View | galley_schema::RelationKind::MaterializedView
        ),
        defaults: relation
            .columns
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.default.clone()?)))
            .collect(),
        schema: relation.schema.clone(),
        name: relation.name.clone(),
        primary_key: relation.primary_key.clone(),
        unique: relation.unique.clone(),
        columns: relation
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect(),
        foreign_keys: relation
            .embed_keys()
            .map(|fk| ForeignKeyShape {
                name: fk.name.clone(),
                columns: fk.columns.clone(),
                target_schema: fk.target_schema.clone(),
                target_table: fk.target_table.clone(),
                target_columns: fk.target_columns.clone(),
            })
            .collect(),
    }
}

/// How one statement runs and what is checked before its transaction commits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exec<'a> {
    pub(crate) read_only: bool,
    /// `Prefer: tx=rollback`: answer as usual, keep nothing.
    pub(crate) rollback: bool,
    /// A single object was asked for: any other number of rows rolls back with 406.
    pub(crate) single: bool,
    /// `Prefer: max-affected=N` with `handling=strict`: more rows roll back with 400.
    pub(crate) max_affected: Option<i64>,
    /// Estimate the total from the planner: EXPLAIN this query of the matching rows.
    pub(crate) planned: Option<&'a str>,
    /// `read`, `write` or `rpc`: the label the statement's duration is counted under.
    pub(crate) kind: &'static str,
    /// The table a write changes, by schema and name (`None`: a function, which may
    /// change any).
    pub(crate) target: Option<(&'a str, &'a str)>,
}

impl Default for Exec<'_> {
    fn default() -> Self {
        Self {
            read_only: false,
            rollback: false,
            single: false,
            max_affected: None,
            planned: None,
            kind: "write",
            target: None,
        }
    }
}

/// What the statement's single row says.
pub(crate) struct Outcome {
    pub(crate) total: Option<i64>,
    pub(crate) page: i64,
    pub(crate) body: String,
    pub(crate) inserted: Option<i64>,
    pub(crate) planned: Option<i64>,
}

/// The settings every request's transaction begins with: who it runs as and what it is.
macro_rules! settings {
    () => {
        "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
         set_config('request.method', $3, true), set_config('request.path', $4, true), \
         set_config('request.headers', $5, true), set_config('statement_timeout', $6, true)"
    };
}

/// The first statement of every request's transaction.
const SETUP: &str = settings!();

/// [`SETUP`] for a read in a transaction of its own making (no `BEGIN`): the transaction
/// is made read only, as `BEGIN READ ONLY` would.
const SETUP_READ_ONLY: &str = concat!(
    settings!(),
    ", set_config('transaction_read_only', 'on', true)"
);

/// Runs one rendered statement in its own transaction, as the request's role with its
/// claims, method, path and headers set for the transaction only.
///
/// When nothing has to be checked before the transaction ends (reads without a planned
/// count, writes without a single object, `max-affected` or `tx=rollback`), the settings
/// and the statement are sent as one group, an implicit transaction that ends at its
/// `Sync`, in one round trip: a read in the worker's next batch (`ApiPool::run_group`),
/// sharing the round trip with the other reads of the batch, a write on a connection of
/// its own (`ApiPool::run_alone`). Otherwise the request takes a connection of its own:
/// `BEGIN`, the settings and the statement are flushed, the row is checked, and the
/// transaction ends in a second round trip.
pub(crate) async fn run(
    state: &AppState,
    role: &RequestRole,
    req: &HttpRequest,
    statement: &Statement,
    exec: Exec<'_>,
) -> Result<Outcome, ApiError> {
    let outcome = run_statement(state, role, req, statement, exec).await;
    if outcome.is_ok() && !exec.read_only && !exec.rollback {
        // Committed: realtime delivers what it changed now, not at its next look.
        state.wrote(exec.target);
    }
    outcome
}

async fn run_statement(
    state: &AppState,
    role: &RequestRole,
    req: &HttpRequest,
    statement: &Statement,
    exec: Exec<'_>,
) -> Result<Outcome, ApiError> {
    let failed = |err: WireError| ApiError::from_statement(&err, role.is_anonymous());
    let claims = role.claims.to_string();
    let headers = request_headers(req);
    let timeout = state.rest.statement_timeout_ms.to_string();
    // A read-only transaction changes nothing however it ends, so only a write whose row
    // must be checked first, a planned count or `tx=rollback` keeps it open. (Other writes
    // have their row read after COMMIT: every rendered statement answers one aggregate
    // row, so there is nothing in it to refuse.)
    let end_at_once = exec.planned.is_none()
        && !exec.rollback
        && (exec.read_only || (!exec.single && exec.max_affected.is_none()));
    let started = Instant::now();
    if end_at_once {
        let setup = if exec.read_only {
            SETUP_READ_ONLY
        } else {
            SETUP
        };
        let statements = vec![
            (
                setup.into(),
                vec![
                    role.role.to_owned(),
                    claims,
                    req.method().as_str().to_owned(),
                    req.path().to_owned(),
                    headers,
                    timeout,
                ],
            ),
            (statement.sql.clone().into(), statement.params.clone()),
        ];
        let (results, waited) = if exec.read_only {
            state.pools.api.run_group(statements).await
        } else {
            state.pools.api.run_alone(statements).await
        };
        observe(
            state,
            exec,
            waited,
            started.elapsed().saturating_sub(waited),
        );
        return statement_row(&results.map_err(failed)?, 1).and_then(|row| check(row, exec));
    }
    let mut conn = state.pools.api.get().await.map_err(DbError::from)?;
    let waited = started.elapsed();
    let params: Vec<&str> = statement.params.iter().map(String::as_str).collect();
    begin(
        &mut conn,
        role,
        req,
        &claims,
        &headers,
        &timeout,
        exec.read_only,
    )
    .map_err(failed)?;
    // Prepared (once per connection) after the role is set: the statement names the
    // caller's tables, not the authenticator's.
    conn.push(&statement.sql, &params).map_err(failed)?;
    let results = conn.flush().await.map_err(failed)?;
    observe(
        state,
        exec,
        waited,
        started.elapsed().saturating_sub(waited),
    );
    let mut outcome = match statement_row(&results, 2).and_then(|row| check(row, exec)) {
        Ok(outcome) => outcome,
        Err(err) => {
            conn.push("ROLLBACK", &[]).map_err(failed)?;
            conn.sync().await.map_err(failed)?;
            return Err(err);
        }
    };
    let explain = prepared_explain(exec.planned);
    if let Some(explain) = &explain {
        conn.push(explain, &params).map_err(failed)?;
    }
    conn.push(if exec.rollback { "ROLLBACK" } else { "COMMIT" }, &[])
        .map_err(failed)?;
    let ended = conn.sync().await.map_err(failed)?;
    if explain.is_some() {
        outcome.planned = ended
            .first()
            .and_then(|rows| rows.first())
            .and_then(|row| row.text(0))
            .and_then(|plan| serde_json::from_str::<serde_json::Value>(plan).ok())
            .and_then(|plan| {
                plan.pointer("/0/Plan/Plan Rows")
                    .and_then(serde_json::Value::as_f64)
            })
            .map(|rows| rows as i64);
    }
    Ok(outcome)
}

/// Answers with the plan of `statement` (`Accept: application/vnd.pgrst.plan…`): its
/// EXPLAIN with the options asked for, as the request's role with its settings, in a
/// transaction that always rolls back, so an `analyze` of a write runs it and keeps
/// nothing. Only when `rest.plan_enabled` (a plan shows what the rows are not meant to:
/// indexes, estimates, other tables' names); 406 PGRST107 otherwise, as PostgREST.
pub(crate) async fn explain(
    state: &AppState,
    role: &RequestRole,
    req: &HttpRequest,
    statement: &Statement,
    plan: media::Plan,
    read_only: bool,
) -> Result<HttpResponse, ApiError> {
    if !state.rest.plan_enabled {
        return Err(media::not_available(&plan.media_type()));
    }
    let failed = |err: WireError| ApiError::from_statement(&err, role.is_anonymous());
    let claims = role.claims.to_string();
    let headers = request_headers(req);
    let timeout = state.rest.statement_timeout_ms.to_string();
    let mut conn = state.pools.api.get().await.map_err(DbError::from)?;
    begin(&mut conn, role, req, &claims, &headers, &timeout, read_only).map_err(failed)?;
    let params: Vec<&str> = statement.params.iter().map(String::as_str).collect();
    conn.push(&format!("{} {}", plan.explain(), statement.sql), &params)
        .map_err(failed)?;
    conn.push("ROLLBACK", &[]).map_err(failed)?;
    let results = conn.sync().await.map_err(failed)?;
    let lines: Vec<&str> = results
        .get(2)
        .map(|rows| rows.iter().filter_map(|row| row.text(0)).collect())
        .unwrap_or_default();
    Ok(HttpResponse::Ok()
        .content_type(plan.content_type())
        .body(lines.join("\n")))
}

/// Queues `BEGIN` and the request's settings on a connection of its own.
fn begin(
    conn: &mut galley_db::wire::Connection,
    role: &RequestRole,
    req: &HttpRequest,
    claims: &str,
    headers: &str,
    timeout: &str,
    read_only: bool,
) -> Result<(), WireError> {
    conn.push(
        if read_only {
            "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"
        } else {
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        },
        &[],
    )?;
    conn.push(
        SETUP,
        &[
            role.role,
            claims,
            req.method().as_str(),
            req.path(),
            headers,
            timeout,
        ],
    )
}

/// `EXPLAIN` of the query the planner estimates the total from.
fn prepared_explain(planned: Option<&str>) -> Option<String> {
    planned.map(|source| format!("EXPLAIN (FORMAT JSON) {source}"))
}

/// Reads the statement's row and checks what must hold before the transaction ends: a
/// single object has exactly one row, `max-affected` is not exceeded.
fn check(row: &galley_db::wire::Row, exec: Exec<'_>) -> Result<Outcome, ApiError> {
    let number = |index: usize| -> Result<Option<i64>, ApiError> {
        row.text(index)
            .map(|text| {
                text.parse::<i64>().map_err(|_| {
                    tracing::error!(column = index, value = text, "unexpected result row");
                    ApiError::internal()
                })
            })
            .transpose()
    };
    let outcome = Outcome {
        total: number(0)?,
        page: number(1)?.unwrap_or(0),
        // A function returning NULL (or void) yields no body.
        body: row.text(2).unwrap_or_default().to_owned(),
        inserted: number(3)?,
        planned: None,
    };
    if exec.single && outcome.page != 1 {
        return Err(ApiError::rest(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
            Some(format!("The result contains {} rows", outcome.page)),
            None,
        ));
    }
    if let Some(max) = exec.max_affected
        && outcome.page > max
    {
        return Err(ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST124",
            "Query result exceeds max-affected preference constraint",
            Some(format!("The query affects {} rows", outcome.page)),
            None,
        ));
    }
    Ok(outcome)
}

/// Counts how long a request waited for the database and how long its statements took.
fn observe(state: &AppState, exec: Exec<'_>, waited: Duration, took: Duration) {
    state
        .metrics
        .pool_acquire
        .with_label_values(&["api"])
        .observe(waited.as_secs_f64());
    state
        .metrics
        .query_duration
        .with_label_values(&[exec.kind])
        .observe(took.as_secs_f64());
}

/// The one row the rendered statement (at `index` among the transaction's) answered.
fn statement_row(results: &[Vec<Row>], index: usize) -> Result<&Row, ApiError> {
    match results.get(index).map(Vec::as_slice) {
        Some([row]) => Ok(row),
        _ => {
            tracing::error!("the statement did not answer with one row");
            Err(ApiError::internal())
        }
    }
}

/// The request's headers as one JSON object, names lower-cased, for `request.headers`.
fn request_headers(req: &HttpRequest) -> String {
    // As a JSON object with sorted keys and, for a repeated header, its last value,
    // written directly rather than through a map of owned strings.
    let mut headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    headers.sort_by_key(|(name, _)| *name);
    let mut out = Vec::with_capacity(64 * headers.len() + 2);
    out.push(b'{');
    for (index, (name, value)) in headers.iter().enumerate() {
        if headers.get(index + 1).is_some_and(|(next, _)| next == name) {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, name);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// The table a request names, as rendering needs it; 404 PGRST205 when its schema has no
/// such table, with PostgREST's hint of a close name.
fn table_shape(view: &CatalogView<'_>, table: &str) -> Result<TableShape, ApiError> {
    view.table(table).ok_or_else(|| {
        let names = view
            .catalog
            .relations
            .values()
            .filter(|r| r.schema == view.schema)
            .map(|r| r.name.as_str());
        let hint = fuzzy::closest(names, table, 0.75)
            .map(|name| format!("Perhaps you meant the table '{}.{name}'", view.schema));
        ApiError::rest(
            StatusCode::NOT_FOUND,
            "PGRST205",
            format!(
                "Could not find the table '{}.{}' in the schema cache",
                view.schema,
                table.chars().take(63).collect::<String>()
            ),
            None,
            hint,
        )
    })
}

/// The schema a request is served from: the one `Accept-Profile` (GET, HEAD) or
/// `Content-Profile` (other methods) names among `rest.schemas`, else the first of
/// them; 406 PGRST106 for any other.
pub(crate) fn profile<'s>(req: &HttpRequest, schemas: &'s [String]) -> Result<&'s str, ApiError> {
    let header = match *req.method() {
        actix_web::http::Method::GET | actix_web::http::Method::HEAD => "accept-profile",
        _ => "content-profile",
    };
    let Some(value) = req.headers().get(header) else {
        return Ok(schemas.first().map_or("public", String::as_str));
    };
    schemas
        .iter()
        .find(|schema| schema.as_bytes() == value.as_bytes())
        .map(String::as_str)
        .ok_or_else(|| {
            ApiError::rest(
                StatusCode::NOT_ACCEPTABLE,
                "PGRST106",
                format!(
                    "Invalid schema: {}",
                    String::from_utf8_lossy(value.as_bytes())
                        .chars()
                        .take(63)
                        .collect::<String>()
                ),
                None,
                Some(format!(
                    "Only the following schemas are exposed: {}",
                    schemas.join(", ")
                )),
            )
        })
}

/// PostgREST's hint when an embed names no relationship: a table the parent relates to
/// close to the name asked for, or, when the parent relates to none, a table that does,
/// close to the parent's name.
fn no_relationship_hint(view: &CatalogView<'_>, parent: &str, relation: &str) -> Option<String> {
    let shape = view.table(parent)?;
    let related = galley_query::related_tables(view, &shape);
    if related.is_empty() {
        // The tables of the schema that take part in any relationship: one pass over the
        // keys, not a relationship search per table.
        let in_schema = || {
            view.catalog
                .relations
                .values()
                .filter(|r| r.schema == view.schema)
        };
        let mut parents: Vec<&str> = Vec::new();
        for relation in in_schema() {
            for key in relation
                .embed_keys()
                .filter(|key| key.target_schema == view.schema)
            {
                parents.push(&relation.name);
                parents.push(&key.target_table);
            }
        }
        parents.extend(
            view.catalog
                .functions
                .iter()
                .filter(|f| f.schema == view.schema && f.returns_relation.is_some())
                .filter_map(|f| f.over_row())
                .filter(|row| row.schema == view.schema)
                .map(|row| row.name.as_str()),
        );
        let suggestion = fuzzy::closest(parents, parent, 0.33)?;
        return Some(format!(
            "Perhaps you meant '{suggestion}' instead of '{parent}'."
        ));
    }
    let suggestion = fuzzy::matches(related.iter().map(String::as_str), relation, 0.33)
        .into_iter()
        .find(|(score, _)| *score < 1.0)?
        .1;
    Some(format!(
        "Perhaps you meant '{suggestion}' instead of '{relation}'."
    ))
}

fn render_error(err: RenderError, view: &CatalogView<'_>) -> ApiError {
    let message = err.to_string();
    let plain =
        |status, code: &'static str| ApiError::rest(status, code, message.clone(), None, None);
    match err {
        RenderError::UnknownColumn { .. } => {
            plain(StatusCode::BAD_REQUEST, galley_db::UNDEFINED_COLUMN)
        }
        RenderError::UnknownBodyColumn { .. } => plain(StatusCode::BAD_REQUEST, "PGRST204"),
        RenderError::Unsupported(what) => ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST127",
            "Feature not implemented",
            Some(format!("{} is not supported", what)),
            None,
        ),
        RenderError::CastNotAllowed(_) => plain(StatusCode::BAD_REQUEST, "PGRST100"),
        RenderError::UnknownArgument { .. } | RenderError::MissingArgument { .. } => {
            plain(StatusCode::NOT_FOUND, "PGRST202")
        }
        // What Supabase's safeupdate extension answers with.
        RenderError::MissingFilter(_) => {
            plain(StatusCode::BAD_REQUEST, galley_db::CARDINALITY_VIOLATION)
        }
        RenderError::NoRelationship {
            schema,
            parent,
            relation,
            hint,
        } => ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST200",
            message.clone(),
            Some(format!(
                "Searched for a foreign key relationship between '{parent}' and '{relation}'{} in the schema '{schema}', but no matches were found.",
                hint.map(|hint| format!(" using the hint '{hint}'"))
                    .unwrap_or_default()
            )),
            no_relationship_hint(view, &parent, &relation),
        ),
        RenderError::AmbiguousRelationship {
            candidates, hint, ..
        } => ApiError::rest(
            StatusCode::MULTIPLE_CHOICES,
            "PGRST201",
            message.clone(),
            None,
            Some(hint),
        )
        .with_details(serde_json::Value::Array(
            candidates
                .into_iter()
                .map(|(cardinality, embedding, relationship)| {
                    serde_json::json!({
                        "cardinality": cardinality,
                        "embedding": embedding,
                        "relationship": relationship,
                    })
                })
                .collect(),
        )),
        RenderError::NotEmbedded(resource) => ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST108",
            message.clone(),
            None,
            Some(format!(
                "Verify that '{resource}' is included in the 'select' query parameter."
            )),
        ),
        RenderError::RelatedOrder(origin, target) => ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST118",
            message.clone(),
            Some(format!(
                "'{origin}' and '{target}' do not form a many-to-one or one-to-one relationship"
            )),
            None,
        ),
        RenderError::EmbedOperator(_) => ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST120",
            message.clone(),
            Some(
                "Only is null or not is null filters are allowed on embedded resources".to_owned(),
            ),
            None,
        ),
    }
}

/// The query string as ordered pairs, parsed; 400 PGRST100 otherwise. A key without `=`
/// is left out, as PostgREST leaves it out. `rpc_read` (a function called by GET or
/// HEAD) takes parameters without an operator as the function's arguments.
fn parse_pairs(query_string: &str, rpc_read: bool) -> Result<galley_query::QueryParams, ApiError> {
    // Decoding replaces invalid UTF-8 with U+FFFD; refuse it instead, so what the
    // client sent and what is matched never differ (the CVE-2025-1094 class).
    if percent_encoding::percent_decode_str(query_string)
        .decode_utf8()
        .is_err()
    {
        return Err(ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            "failed to parse the query string: it is not valid UTF-8 once decoded",
            None,
            None,
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query_string).map_err(|err| {
        ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            format!("failed to parse the query string: {err}"),
            None,
            None,
        )
    })?;
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            "failed to parse the query string: it contains a NUL byte",
            None,
            None,
        ));
    }
    // The decoder skips empty pieces, so its pairs line up with the non-empty pieces.
    let valued = query_string
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.contains('='));
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .zip(valued)
        .filter_map(|(pair, valued)| valued.then_some(pair))
        .collect();
    galley_query::parse_query(&pairs, rpc_read).map_err(|err| {
        ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            err.to_string(),
            Some(err.details.clone()),
            None,
        )
    })
}

/// 400 PGRST102 with PostgREST's message for it (`Empty or invalid json`, `All object
/// keys must match`, `Content-Type not acceptable: …`), and no details.
fn invalid_body(message: impl Into<String>) -> ApiError {
    ApiError::rest(
        StatusCode::BAD_REQUEST,
        "PGRST102",
        message.into(),
        None,
        None,
    )
}

/// 400 PGRST102 for a body PostgREST would pass on but Galley refuses first, saying why.
fn invalid_json(details: impl Into<String>) -> ApiError {
    ApiError::rest(
        StatusCode::BAD_REQUEST,
        "PGRST102",
        "Empty or invalid json",
        Some(details.into()),
        None,
    )
}

/// A request body as JSON: JSON itself, or, as PostgREST reads them, CSV (`text/csv`: a
/// header line of column names, then rows whose values are strings and `NULL` null) and a
/// form (`application/x-www-form-urlencoded`: one object of strings). Any other type is
/// 400 PGRST102. Strings may not hold NUL (PostgreSQL text cannot); lone surrogates and
/// numbers out of range are refused by the parser. Of duplicate keys the last wins, and
/// the value re-serialised from the parsed body is what PostgreSQL sees, so the two agree.
fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value = match crate::content_type::not_json(req).as_deref() {
        None => serde_json::from_slice(body).map_err(|_| invalid_body("Empty or invalid json"))?,
        Some("text/csv") => csv_rows(body)?,
        Some("application/x-www-form-urlencoded") => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|_| invalid_body("Empty or invalid form"))?;
            serde_json::Value::Object(
                pairs
                    .into_iter()
                    .map(|(key, value)| (key, serde_json::Value::String(value)))
                    .collect(),
            )
        }
        Some(media) => {
            return Err(invalid_body(format!(
                "Content-Type not acceptable: {}",
                media.chars().take(100).collect::<String>()
            )));
        }
    };
    if contains_nul(&value) {
        return Err(invalid_json("a string contains a NUL character"));
    }
    Ok(value)
}

/// A CSV body as a JSON array of objects keyed by its header line, as PostgREST reads it:
/// every value a string, `NULL` null; every line as long as the header.
fn csv_rows(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|err| invalid_body(csv_error(&err)))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| invalid_body(csv_error(&err)))?;
        let row: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(key, value)| {
                let value = if value == "NULL" {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(value.to_owned())
                };
                (key.to_owned(), value)
            })
            .collect();
        rows.push(serde_json::Value::Object(row));
    }
    Ok(serde_json::Value::Array(rows))
}

/// What is wrong with a CSV body, in PostgREST's words where it has them.
fn csv_error(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths { .. } => {
            "All lines must have same number of fields".to_owned()
        }
        csv::ErrorKind::Utf8 { .. } => "CSV is not valid UTF-8".to_owned(),
        _ => "Empty or invalid CSV".to_owned(),
    }
}

fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v))
        }
        _ => false,
    }
}

/// `Content-Range` for a page starting at `offset` of `page` rows out of `total`.
fn content_range(offset: i64, page: i64, total: Option<i64>) -> String {
    let total = total.map_or_else(|| "*".to_owned(), |total| total.to_string());
    if page == 0 {
        format!("*/{total}")
    } else {
        format!("{offset}-{}/{total}", offset + page - 1)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    #[test]
    fn request_headers_are_one_json_object_sorted_with_the_last_of_repeated_headers() {
        let req = TestRequest::default()
            .insert_header(("x-b", "quote \" backslash \\ tab \t"))
            .insert_header(("accept", "*/*"))
            .append_header(("x-repeated", "first"))
            .append_header(("x-repeated", "last"))
            .insert_header(("x-a", "é"))
            .to_http_request();
        let written = super::request_headers(&req);
        let parsed: serde_json::Value = serde_json::from_str(&written).expect("JSON");
        // A value that is not visible ASCII (`x-a`) is left out.
        assert_eq!(
            parsed,
            serde_json::json!({
                "accept": "*/*",
                "x-b": "quote \" backslash \\ tab \t",
                "x-repeated": "last",
            })
        );
        // Keys in order, as a map of them would print.
        assert_eq!(written, parsed.to_string());
        assert_eq!(
            super::request_headers(&TestRequest::default().to_http_request()),
            "{}"
        );
    }
}
