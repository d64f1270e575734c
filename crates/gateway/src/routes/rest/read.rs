//! `GET /rest/v1/{table}`: one statement, run as the request's role with its claims, whose
//! single row carries the total, the page size and the body.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_query::{Count, ReadOptions, render_read};

use super::{CatalogView, Exec, Media, Outcome, Preferences};
use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

pub(super) async fn get_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let schema = super::profile(&req, &state.rest.schemas)?;
    let mut query = super::parse_pairs(req.query_string(), false)?;
    let catalog = state.catalog.snapshot();
    let media = Media::parse(&req, catalog.postgis_schema.is_some())?;
    let prefs = Preferences::parse(&req)?;
    apply_range_header(&req, &mut query)?;
    let view = CatalogView::new(&catalog, schema);
    let shape = super::table_shape(&view, &table)?;
    let options = ReadOptions {
        max_rows: state.rest.max_rows,
        count: prefs.count,
        format: media.format(&catalog),
    };
    let statement = render_read(&view, &shape, &query, options)
        .map_err(|err| super::render_error(err, &view))?;
    if let Some(plan) = media.plan {
        return super::explain(&state, &role, &req, &statement, plan, true).await;
    }
    let exec = Exec {
        read_only: true,
        single: media.single(),
        planned: planned(prefs.count, &statement),
        kind: "read",
        ..Exec::default()
    };
    let outcome = super::run(&state, &role, &req, &statement, exec).await?;
    let offset = root_offset(&query);
    rows_response(&media, &prefs, state.rest.max_rows, outcome, offset)
}

/// The query to EXPLAIN when the total may come from the planner.
pub(super) fn planned(count: Count, statement: &galley_query::Statement) -> Option<&str> {
    match count {
        Count::Planned | Count::Estimated => statement.count_source.as_deref(),
        Count::None | Count::Exact => None,
    }
}

pub(super) fn root_offset(query: &galley_query::QueryParams) -> i64 {
    query
        .offset
        .iter()
        .rev()
        .find(|(path, _)| path.is_empty())
        .map_or(0, |(_, offset)| i64::try_from(*offset).unwrap_or(i64::MAX))
}

/// A page of rows: 200, or 206 when the total is known and larger, with
/// `Content-Range`; 416 when the offset lies past the total.
pub(super) fn rows_response(
    media: &Media,
    prefs: &Preferences,
    max_rows: Option<u64>,
    outcome: Outcome,
    offset: i64,
) -> Result<HttpResponse, ApiError> {
    let total = match prefs.count {
        Count::None => None,
        Count::Exact => outcome.total,
        Count::Planned => outcome.planned,
        // Exact up to max_rows; beyond, the planner's figure.
        Count::Estimated => match (outcome.total, max_rows) {
            (Some(total), Some(max)) if total > i64::try_from(max).unwrap_or(i64::MAX) => {
                Some(outcome.planned.map_or(total, |planned| planned.max(total)))
            }
            (total, _) => total,
        },
    };
    if let Some(total) = total
        && outcome.page == 0
        && offset > 0
        && offset > total
    {
        return Err(ApiError::rest(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "PGRST103",
            "Requested range not satisfiable",
            Some(format!(
                "An offset of {offset} was requested, but there are only {total} rows."
            )),
            None,
        ));
    }
    let partial = total.is_some_and(|total| outcome.page < total);
    let mut response = HttpResponse::build(if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    });
    response.insert_header((
        "content-range",
        super::content_range(offset, outcome.page, total),
    ));
    if let Some(header) = prefs.applied_header() {
        response.insert_header(header);
    }
    Ok(response
        .content_type(media.content_type())
        .body(media.body(outcome.body)))
}

/// `Range: first-[last]` narrows the page like `offset`/`limit`, intersected with them.
pub(super) fn apply_range_header(
    req: &HttpRequest,
    query: &mut galley_query::QueryParams,
) -> Result<(), ApiError> {
    let Some(range) = req
        .headers()
        .get("range")
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(());
    };
    let unsatisfiable = |details: &str| {
        ApiError::rest(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "PGRST103",
            "Requested range not satisfiable",
            Some(details.to_owned()),
            None,
        )
    };
    let malformed = "The Range header must be first-last.";
    let range = range.trim();
    let range = range.strip_prefix("items=").unwrap_or(range);
    let (first, last) = range
        .split_once('-')
        .ok_or_else(|| unsatisfiable(malformed))?;
    let first: u64 = first.trim().parse().map_err(|_| unsatisfiable(malformed))?;
    let last: Option<u64> = match last.trim() {
        "" => None,
        text => Some(text.parse().map_err(|_| unsatisfiable(malformed))?),
    };
    if let Some(last) = last
        && last < first
    {
        return Err(unsatisfiable(
            "The lower boundary must be lower than or equal to the upper boundary in the Range header.",
        ));
    }
    let root_offset = query
        .offset
        .iter()
        .find(|(path, _)| path.is_empty())
        .map_or(0, |(_, o)| *o);
    let root_limit = query
        .limit
        .iter()
        .find(|(path, _)| path.is_empty())
        .map(|(_, l)| *l);
    let mut limit = last.map(|last| last - first + 1);
    if let Some(root_limit) = root_limit {
        let remaining = root_limit.saturating_sub(first);
        limit = Some(limit.map_or(remaining, |l| l.min(remaining)));
    }
    query.offset.retain(|(path, _)| !path.is_empty());
    query.limit.retain(|(path, _)| !path.is_empty());
    query
        .offset
        .push((Vec::new(), root_offset.saturating_add(first)));
    if let Some(limit) = limit {
        query.limit.push((Vec::new(), limit));
    }
    Ok(())
}
