//! Request size and time limits, applied before routing: the request target (8 KiB, 200
//! query parameters: 414), each header (8 KiB: 431), and the body: a declared
//! `Content-Length` over the limit is refused at once, a chunked body is cut off once it
//! passes the limit, and a body that stops arriving for `http.body_timeout_secs` is cut
//! off with 408 and the connection closed, so stalled uploads cannot pile up.

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

/// The body limits, stored as app data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit {
    /// Largest body, in bytes.
    pub(crate) bytes: usize,
    /// Longest wait for the next piece of a body.
    pub(crate) idle: std::time::Duration,
}

/// A boxed body stream, as actix keeps them.
type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// `payload`, ending in an error (and raising `stalled`) when no piece arrives for `idle`.
fn with_idle_timeout(
    payload: Payload,
    idle: std::time::Duration,
    stalled: std::rc::Rc<std::cell::Cell<bool>>,
) -> BodyStream {
    // Fused: a reader may poll again after the end (actix-multipart does).
    Box::pin(
        futures_util::stream::unfold((payload, false), move |(mut payload, ended)| {
            let stalled = stalled.clone();
            async move {
                if ended {
                    return None;
                }
                match tokio::time::timeout(idle, payload.next()).await {
                    Ok(Some(chunk)) => Some((chunk, (payload, false))),
                    Ok(None) => None,
                    Err(_) => {
                        stalled.set(true);
                        let err = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the request body stopped arriving",
                        );
                        Some((Err(PayloadError::Io(err)), (payload, true)))
                    }
                }
            }
        })
        .fuse(),
    )
}

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
    // A WebSocket's frames arrive as its request's payload for as long as it is open;
    // the realtime socket limits each message itself.
    if req.head().upgrade() {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let limits: Option<BodyLimit> = req
        .app_data::<web::Data<BodyLimit>>()
        .map(|limits| *limits.get_ref());
    // Storage reads its bodies itself: uploads to the object size limit, JSON to 1 MiB.
    let limit = limits
        .map(|limits| limits.bytes)
        .filter(|_| !crate::routes::reads_own_body(req.method(), req.path()));
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match (limit, declared) {
        (None, _) => {}
        (Some(limit), Some(length)) if length > limit as u64 => {
            return Err(ApiError::payload_too_large(limit).into());
        }
        (Some(_), Some(_)) => {}
        (Some(limit), None) => {
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
            let boxed: BodyStream = Box::pin(limited);
            req.set_payload(Payload::from(boxed));
        }
    }
    let has_body = crate::content_type::has_body(req.headers());
    let Some(limits) = limits.filter(|_| has_body) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let stalled = std::rc::Rc::new(std::cell::Cell::new(false));
    let timed = with_idle_timeout(req.take_payload(), limits.idle, stalled.clone());
    req.set_payload(Payload::from(timed));
    let response = next.call(req).await?;
    if !stalled.get() {
        return Ok(response.map_into_left_body());
    }
    // Whatever the handler made of the broken body, the client hears 408, and the
    // connection (with the rest of the body still owed on it) is closed.
    tracing::info!(
        seconds = limits.idle.as_secs(),
        "a request body stopped arriving; answering 408 and closing the connection"
    );
    let (request, _) = response.into_parts();
    let mut response = actix_web::ResponseError::error_response(&ApiError::request_timeout());
    response
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    Ok(ServiceResponse::new(request, response).map_into_right_body())
}
