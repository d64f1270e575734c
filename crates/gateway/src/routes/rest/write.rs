//! Writes: `POST` inserts (or upserts) one object or an array of objects, `PUT` upserts
//! the one row its primary-key filters name, `PATCH` updates and `DELETE` deletes the
//! rows the filters match; each one statement.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_query::{
    Count, Field, InsertGroup, Mutation, OnConflict, Operation, QueryParams, Representation,
    SelectItem, TableShape, render_insert, render_mutation,
};

use super::prefer::{Resolution, Return};
use super::{CatalogView, Exec, Media, Outcome, Preferences};
use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

/// What a write request asked for besides its rows.
struct Ask {
    /// The schema written to (`Content-Profile`).
    schema: String,
    query: QueryParams,
    prefs: Preferences,
    media: Media,
}

fn ask(req: &HttpRequest, state: &AppState) -> Result<Ask, ApiError> {
    let schema = super::profile(req, &state.rest.schemas)?.to_owned();
    let query = super::parse_pairs(req.query_string(), false)?;
    Ok(Ask {
        schema,
        query,
        prefs: Preferences::parse(req)?,
        media: Media::parse(req, state.catalog.snapshot().postgis_schema.is_some())?,
    })
}

/// The primary key as select items: what `return=headers-only` needs for `Location`.
fn key_items(table: &TableShape) -> Vec<SelectItem> {
    table
        .primary_key
        .iter()
        .map(|column| SelectItem::Field {
            alias: None,
            field: Field {
                name: column.clone(),
                json_path: Vec::new(),
            },
            cast: None,
            aggregate: None,
        })
        .collect()
}

fn representation<'a>(
    ask: &'a Ask,
    keys: &'a [SelectItem],
    catalog: &galley_schema::Catalog,
) -> Option<Representation<'a>> {
    match ask.prefs.return_ {
        Return::Minimal => None,
        Return::Representation => Some(Representation {
            select: ask.query.select.as_deref(),
            format: ask.media.format(catalog),
            query: Some(&ask.query),
        }),
        Return::HeadersOnly if keys.is_empty() => None,
        Return::HeadersOnly => Some(Representation {
            select: Some(keys),
            format: galley_query::BodyFormat::Json,
            query: None,
        }),
    }
}

/// The rows of an insert body: one object or an array of objects.
fn body_rows(req: &HttpRequest, body: &[u8]) -> Result<Vec<serde_json::Value>, ApiError> {
    match super::parse_body(req, body)? {
        value @ serde_json::Value::Object(_) => Ok(vec![value]),
        serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_object) => {
            Ok(items)
        }
        _ => Err(super::invalid_body("All object keys must match")),
    }
}

fn keys(row: &serde_json::Value) -> Vec<String> {
    row.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The rows as one insert of the columns they give (`columns=`, or every key any row
/// has). A key a row leaves out is NULL, or, with `missing=default`, the column's default
/// (also on a merging upsert's conflict, as PostgREST evaluates it). Without `columns=`
/// and `missing=default`, every row must give the same keys, as PostgREST requires.
fn insert_groups(
    rows: Vec<serde_json::Value>,
    columns: Option<&[String]>,
    missing_default: bool,
    identity: &[String],
) -> Result<Vec<InsertGroup>, ApiError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<String> = match columns {
        Some(columns) => columns.to_vec(),
        None => {
            let first: std::collections::HashSet<String> = rows
                .first()
                .map(keys)
                .unwrap_or_default()
                .into_iter()
                .collect();
            let mut all: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for row in &rows {
                let own = keys(row);
                if !missing_default
                    && (own.len() != first.len() || own.iter().any(|k| !first.contains(k)))
                {
                    return Err(super::invalid_body("All object keys must match"));
                }
                for key in own {
                    if seen.insert(key.clone()) {
                        all.push(key);
                    }
                }
            }
            all
        }
    };
    if !missing_default {
        return Ok(vec![InsertGroup {
            columns: all,
            body: serde_json::Value::Array(rows).to_string(),
            defaults: false,
        }]);
    }
    // An identity column has no default expression to write into a row, so rows that
    // leave one out insert without it, in a group of their own (a few at most: one per
    // combination of the identity columns given).
    let identity: Vec<&String> = all.iter().filter(|c| identity.contains(c)).collect();
    let mut groups: Vec<(Vec<bool>, Vec<serde_json::Value>)> = Vec::new();
    for row in rows {
        let gives: Vec<bool> = identity
            .iter()
            .map(|c| row.as_object().is_some_and(|o| o.contains_key(c.as_str())))
            .collect();
        match groups.iter_mut().find(|(g, _)| *g == gives) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((gives, vec![row])),
        }
    }
    Ok(groups
        .into_iter()
        .map(|(gives, rows)| {
            let lacks: Vec<&String> = identity
                .iter()
                .zip(&gives)
                .filter(|(_, given)| !**given)
                .map(|(c, _)| *c)
                .collect();
            InsertGroup {
                columns: all.iter().filter(|c| !lacks.contains(c)).cloned().collect(),
                body: serde_json::Value::Array(rows).to_string(),
                defaults: true,
            }
        })
        .collect())
}

/// The identity columns of `table` (they have no default expression).
fn identity_columns(view: &CatalogView<'_>, table: &str) -> Vec<String> {
    view.catalog
        .relation(view.schema, table)
        .map(|relation| {
            relation
                .columns
                .iter()
                .filter(|c| c.identity && c.default.is_none())
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) async fn post_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ask = ask(&req, &state)?;
    let rows = body_rows(&req, &body)?;
    let catalog = state.catalog.snapshot();
    let view = CatalogView::new(&catalog, &ask.schema);
    let shape = super::table_shape(&view, &table)?;
    let count = rows.len();
    let groups = insert_groups(
        rows,
        ask.query.columns.as_deref(),
        ask.prefs.missing_default,
        &identity_columns(&view, &table),
    )?;
    if groups.iter().any(|g| g.columns.is_empty()) {
        return Err(super::invalid_json(
            "an object to insert needs at least one key",
        ));
    }
    let on_conflict = match ask.prefs.resolution {
        Some(Resolution::MergeDuplicates) => OnConflict::Merge(ask.query.on_conflict.clone()),
        Some(Resolution::IgnoreDuplicates) => OnConflict::Ignore(ask.query.on_conflict.clone()),
        None => OnConflict::Error,
    };
    if count == 0 {
        // Nothing to insert: PostgREST answers 201 with no rows.
        let mut response = HttpResponse::Created();
        response.insert_header(("content-range", "*/0"));
        return Ok(match ask.prefs.return_ {
            Return::Representation => response.content_type(ask.media.content_type()).body(
                if ask.media.shape == super::media::Shape::Csv {
                    "\n"
                } else {
                    "[]"
                },
            ),
            _ => response.finish(),
        });
    }
    let keys = key_items(&shape);
    let statement = render_insert(
        &view,
        &shape,
        &groups,
        &on_conflict,
        representation(&ask, &keys, &catalog),
    )
    .map_err(|err| super::render_error(err, &view))?;
    if let Some(plan) = ask.media.plan {
        return super::explain(&state, &role, &req, &statement, plan, false).await;
    }
    let exec = Exec {
        rollback: ask.prefs.rollback,
        single: ask.media.single() && ask.prefs.return_ == Return::Representation,
        target: Some((&ask.schema, &table)),
        ..Exec::default()
    };
    let outcome = super::run(&state, &role, &req, &statement, exec).await?;
    // An upsert that only updated existing rows answers 200.
    let status = match outcome.inserted {
        Some(0) => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    Ok(written(&ask, status, &shape, &table, outcome, true))
}

/// `PUT /rest/v1/{table}?<pk>=eq.<v>`: insert or replace the one row the primary key
/// names; the body's key columns must agree with the filters.
pub(super) async fn put_row(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ask = ask(&req, &state)?;
    let catalog = state.catalog.snapshot();
    let view = CatalogView::new(&catalog, &ask.schema);
    let shape = super::table_shape(&view, &table)?;
    if !ask.query.limit.is_empty() || !ask.query.offset.is_empty() {
        return Err(ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST114",
            "limit/offset querystring parameters are not allowed for PUT",
            None,
            None,
        ));
    }
    let filter_error = || {
        ApiError::rest(
            StatusCode::METHOD_NOT_ALLOWED,
            "PGRST105",
            "Filters must include all and only primary key columns with 'eq' operators",
            None,
            None,
        )
    };
    let mut key_values = Vec::new();
    for (path, filter) in &ask.query.filters {
        match &filter.operation {
            Operation::Compare {
                op: galley_query::Compare::Eq,
                quantifier: None,
                value,
            } if path.is_empty()
                && !filter.negated
                && filter.field.json_path.is_empty()
                && shape.primary_key.contains(&filter.field.name) =>
            {
                key_values.push((filter.field.name.clone(), value.clone()));
            }
            _ => return Err(filter_error()),
        }
    }
    let mut named: Vec<&String> = key_values.iter().map(|(c, _)| c).collect();
    named.sort();
    named.dedup();
    if shape.primary_key.is_empty()
        || named.len() != key_values.len()
        || named.len() != shape.primary_key.len()
        || !ask.query.logic.is_empty()
    {
        return Err(filter_error());
    }
    let value = match super::parse_body(&req, &body)? {
        serde_json::Value::Array(mut items) if items.len() == 1 => items.remove(0),
        value => value,
    };
    let serde_json::Value::Object(object) = &value else {
        return Err(super::invalid_json("the body must be one object"));
    };
    for (column, expected) in &key_values {
        let matches = match object.get(column) {
            Some(serde_json::Value::String(s)) => s == expected,
            Some(serde_json::Value::Number(n)) => n.to_string() == *expected,
            _ => false,
        };
        if !matches {
            return Err(ApiError::rest(
                StatusCode::BAD_REQUEST,
                "PGRST115",
                "Payload values do not match URL in primary key column(s)",
                None,
                None,
            ));
        }
    }
    let groups = insert_groups(vec![value.clone()], None, false, &[])?;
    let keys = key_items(&shape);
    let statement = render_insert(
        &view,
        &shape,
        &groups,
        &OnConflict::Merge(None),
        representation(&ask, &keys, &catalog),
    )
    .map_err(|err| super::render_error(err, &view))?;
    if let Some(plan) = ask.media.plan {
        return super::explain(&state, &role, &req, &statement, plan, false).await;
    }
    let exec = Exec {
        rollback: ask.prefs.rollback,
        single: ask.media.single() && ask.prefs.return_ == Return::Representation,
        target: Some((&ask.schema, &table)),
        ..Exec::default()
    };
    let outcome = super::run(&state, &role, &req, &statement, exec).await?;
    let status = match (outcome.inserted, ask.prefs.return_) {
        (_, Return::Minimal) => StatusCode::NO_CONTENT,
        (Some(0), _) => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    Ok(written(&ask, status, &shape, &table, outcome, false))
}

/// `PATCH /rest/v1/{table}?<filters>`: set the body's columns on the matching rows.
pub(super) async fn patch_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let value = super::parse_body(&req, &body)?;
    let serde_json::Value::Object(object) = &value else {
        return Err(super::invalid_json("the body must be an object"));
    };
    let ask = ask(&req, &state)?;
    let columns: Vec<String> = match &ask.query.columns {
        Some(columns) => columns.clone(),
        None => object.keys().cloned().collect(),
    };
    let mutation = Mutation::Update {
        columns,
        body: value.to_string(),
    };
    mutate(role, state, table, req, ask, mutation).await
}

/// `DELETE /rest/v1/{table}?<filters>`: delete the matching rows.
pub(super) async fn delete_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ask = ask(&req, &state)?;
    mutate(role, state, table, req, ask, Mutation::Delete).await
}

async fn mutate(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
    ask: Ask,
    mutation: Mutation,
) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.snapshot();
    let view = CatalogView::new(&catalog, &ask.schema);
    let shape = super::table_shape(&view, &table)?;
    let keys = key_items(&shape);
    let statement = render_mutation(
        &view,
        &shape,
        &ask.query,
        &mutation,
        representation(&ask, &keys, &catalog),
    )
    .map_err(|err| super::render_error(err, &view))?;
    if let Some(plan) = ask.media.plan {
        return super::explain(&state, &role, &req, &statement, plan, false).await;
    }
    let exec = Exec {
        rollback: ask.prefs.rollback,
        single: ask.media.single() && ask.prefs.return_ == Return::Representation,
        target: Some((&ask.schema, &table)),
        max_affected: ask.prefs.max_affected,
        ..Exec::default()
    };
    let outcome = super::run(&state, &role, &req, &statement, exec).await?;
    let status = if ask.prefs.return_ == Return::Representation {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    Ok(written(&ask, status, &shape, &table, outcome, false))
}

/// The response to a write: `Content-Range` with the count when one was asked for, the
/// rows with `return=representation`, `Location` with `return=headers-only`.
fn written(
    ask: &Ask,
    status: StatusCode,
    shape: &TableShape,
    table: &str,
    outcome: Outcome,
    insert: bool,
) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    let range = match (ask.prefs.count, insert) {
        (Count::None, _) => "*/*".to_owned(),
        (_, true) => format!("*/{}", outcome.page),
        (_, false) => super::content_range(0, outcome.page, Some(outcome.page)),
    };
    response.insert_header(("content-range", range));
    if let Some(header) = ask.prefs.applied_header() {
        response.insert_header(header);
    }
    match ask.prefs.return_ {
        Return::Representation => response
            .content_type(ask.media.content_type())
            .body(ask.media.body(outcome.body)),
        Return::HeadersOnly => {
            if let Some(location) = location(shape, table, &outcome.body) {
                response.insert_header(("location", location));
            }
            response.finish()
        }
        Return::Minimal => response.finish(),
    }
}

/// `/{table}?pk=eq.value` for the first row written, from its key columns.
fn location(shape: &TableShape, table: &str, body: &str) -> Option<String> {
    let rows: serde_json::Value = serde_json::from_str(body).ok()?;
    let row = rows.get(0)?.as_object()?;
    let mut query = Vec::new();
    for column in &shape.primary_key {
        let value = match row.get(column)? {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        query.push((column.clone(), format!("eq.{value}")));
    }
    let query = serde_urlencoded::to_string(&query).ok()?;
    Some(format!("/{table}?{query}"))
}
