//! `GET /rest/v1/{table}`: one statement, run as the request's role with its claims, whose
//! single row carries the total, the page size and the JSON body.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_query::{ReadOptions, render_read};

use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

pub(super) async fn get_rows(
    role: RequestRole,
    state: web::Data<AppState>,
    table: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = super::parse_pairs(req.query_string())?;
    if let Some((key, _)) = query.arguments.first() {
        return Err(ApiError::rest(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            format!("failed to parse filter ({key})"),
            Some("expected an operator such as eq., in. or is.".to_owned()),
            None,
        ));
    }
    let media = response_media(&req)?;
    let mut query = query;
    apply_range_header(&req, &mut query)?;
    let catalog = state.catalog.snapshot();
    let shape = super::table_shape(&catalog, &table)?;
    let count_exact = super::prefers(&req, "count=exact");
    let options = ReadOptions {
        max_rows: state.rest.max_rows,
        count_exact,
    };
    let statement = render_read(&shape, &query, options).map_err(super::render_error)?;
    let row = super::run(&state, &role, "GET", req.path(), &statement, true).await?;
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
    let (content_type, body) = match media {
        Media::Array => ("application/json; charset=utf-8", body),
        Media::Object => {
            if page != 1 {
                return Err(ApiError::rest(
                    StatusCode::NOT_ACCEPTABLE,
                    "PGRST116",
                    "Cannot coerce the result to a single JSON object",
                    Some(format!("The result contains {page} rows")),
                    None,
                ));
            }
            // `json_agg` of one row is `[<object>]`.
            let object = body
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_owned)
                .ok_or_else(ApiError::internal)?;
            ("application/vnd.pgrst.object+json; charset=utf-8", object)
        }
    };
    Ok(HttpResponse::build(if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    })
    .content_type(content_type)
    .insert_header(("content-range", range))
    .body(body))
}

/// The response shape the client accepts.
enum Media {
    Array,
    Object,
}

fn response_media(req: &HttpRequest) -> Result<Media, ApiError> {
    let Some(accept) = req
        .headers()
        .get("accept")
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(Media::Array);
    };
    for candidate in accept.split(',') {
        let media = candidate.split(';').next().unwrap_or_default().trim();
        match media {
            ""
            | "*/*"
            | "application/*"
            | "application/json"
            | "application/vnd.pgrst.array+json" => {
                return Ok(Media::Array);
            }
            "application/vnd.pgrst.object+json" => return Ok(Media::Object),
            _ => {}
        }
    }
    Err(ApiError::rest(
        StatusCode::NOT_ACCEPTABLE,
        "PGRST107",
        format!(
            "None of these media types are available: {}",
            accept.chars().take(200).collect::<String>()
        ),
        None,
        None,
    ))
}

/// `Range: first-[last]` narrows the page like `offset`/`limit`, intersected with them.
fn apply_range_header(
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
