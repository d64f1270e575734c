//! The request body limit, applied before routing: a declared `Content-Length` over the
//! limit is refused at once, and a chunked body is cut off once it passes the limit.

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

/// The limit in bytes, stored as app data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

pub(crate) async fn body_limit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
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
