//! Request size limits, applied before routing: the request target (8 KiB, 200 query
//! parameters: 414), each header (8 KiB: 431), and the body: a declared
//! `Content-Length` over the limit is refused at once, and a chunked body is cut off
//! once it passes the limit.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, web};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;

use crate::error::ApiError;

/// Longest request target (path and query string) accepted.
const MAX_TARGET_BYTES: usize = 8 * 1024;
/// Most `&`-separated query parameters accepted.
const MAX_QUERY_PARAMS: usize = 200;
/// Longest single header value accepted.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The limit in bytes, stored as app data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

pub(crate) async fn body_limit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Err(ApiError::uri_too_long(format!(
            "the request target exceeds the limit of {MAX_TARGET_BYTES} bytes"
        ))
        .into());
    }
    if req.query_string().split('&').count() > MAX_QUERY_PARAMS {
        return Err(ApiError::uri_too_long(format!(
            "the query string has more than {MAX_QUERY_PARAMS} parameters"
        ))
        .into());
    }
    if req
        .headers()
        .iter()
        .any(|(name, value)| name.as_str().len() + value.len() > MAX_HEADER_BYTES)
    {
        return Err(ApiError::headers_too_large(MAX_HEADER_BYTES).into());
    }
    let limit = req
        .app_data::<web::Data<BodyLimit>>()
        .map_or(usize::MAX, |limit| limit.0);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            return Err(ApiError::payload_too_large(limit).into());
        }
        Some(_) => {}
        None => {
            let mut seen = 0usize;
            let limited = req.take_payload().map(move |chunk| {
                let chunk = chunk?;
                seen = seen.saturating_add(chunk.len());
                if seen > limit {
                    Err(PayloadError::Overflow)
                } else {
                    Ok(chunk)
                }
            });
            let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(limited);
            req.set_payload(Payload::from(boxed));
        }
    }
    next.call(req).await
}
