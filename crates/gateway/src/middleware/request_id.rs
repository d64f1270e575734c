//! Request ids and the request context: an incoming `x-request-id` is kept when it is a
//! plausible id, otherwise a new one is made. The id is echoed in the response and put in
//! every error body; with the method and path it makes the request's context, which every
//! log line written while the request is served carries (`current_request`).

use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpResponse, ResponseError};

pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request being served: what every log line written while serving it carries.
///
/// It lives in a task-local for the duration of the request rather than in a `tracing`
/// span: a span costs the subscriber's registry an entry, a lookup on every poll and a
/// removal, on every request, to carry three strings the request already has.
#[derive(Debug)]
pub struct RequestContext {
    id: String,
    method: Method,
    path: String,
}

impl RequestContext {
    pub fn new(id: String, method: Method, path: String) -> Self {
        Self { id, method, path }
    }

    /// The context of an incoming request, with its id (a plausible incoming one, or new).
    pub(crate) fn of(req: &ServiceRequest) -> Self {
        Self::new(
            incoming(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            req.method().clone(),
            req.path().to_owned(),
        )
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The path as the client sent it, still percent-encoded: it may hold anything, so a
    /// log format escapes it.
    pub fn path(&self) -> &str {
        &self.path
    }
}

tokio::task_local! {
    static REQUEST: Rc<RequestContext>;
}

/// Runs `served` with `context` as the request being served.
pub(crate) async fn serve<F: std::future::Future>(
    context: Rc<RequestContext>,
    served: F,
) -> F::Output {
    REQUEST.scope(context, served).await
}

/// Runs `f` as part of serving the request `context`: what it logs carries the context.
pub fn in_request<R>(context: Rc<RequestContext>, f: impl FnOnce() -> R) -> R {
    REQUEST.sync_scope(context, f)
}

/// Calls `f` with the request being served on this thread, if any: for log formats, which
/// add it to every line.
pub fn current_request<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    REQUEST.try_with(|context| f(context)).ok()
}

/// The id of the request being served on this task, if any.
pub(crate) fn current() -> Option<String> {
    current_request(|context| context.id.clone())
}

/// Error responses that did not come from `ApiError` (actix's own extractor errors, such
/// as a streamed body over the limit) are rewritten into the one error shape, so clients
/// never see a plain-text error. Storage answers in Supabase Storage's shapes (JSON, or
/// TUS's plain text), which its clients read: they pass as they are.
pub(crate) fn in_error_shape(
    response: ServiceResponse<BoxBody>,
    id: &str,
) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.starts_with("application/json") || value.starts_with("application/vnd.pgrst")
        });
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || response
            .request()
            .path()
            .starts_with(crate::routes::STORAGE_PREFIX)
    {
        return response;
    }
    let code = match status.as_u16() {
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        404 => "not_found",
        405 => "method_not_allowed",
        code if code >= 500 => "internal_error",
        _ => "bad_request",
    };
    let message = response
        .response()
        .error()
        .filter(|_| status.is_client_error())
        .and_then(body_fault)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase());
    let body = crate::error::ErrorBody {
        code: code.to_owned(),
        message,
        details: None,
        hint: None,
        request_id: Some(id.to_owned()),
    };
    let (request, _) = response.into_parts();
    let json = body.to_json(request.path());
    let rewritten = HttpResponse::build(status)
        .insert_header((super::metrics::ERROR_CODE, code))
        .content_type("application/json; charset=utf-8")
        .body(json);
    ServiceResponse::new(request, rewritten)
}

/// What was wrong with a request body actix could not read, in words a client can act
/// on (its own messages are Rust debug output).
fn body_fault(error: &actix_web::Error) -> Option<String> {
    use actix_web::error::{JsonPayloadError, PayloadError};
    let payload = error.as_error::<PayloadError>().or_else(|| {
        match error.as_error::<JsonPayloadError>()? {
            JsonPayloadError::Payload(payload) => Some(payload),
            _ => None,
        }
    })?;
    Some(match payload {
        PayloadError::Incomplete(None) => "the request body ended before it was complete (a malformed chunk, or fewer bytes than its Content-Length)".to_owned(),
        PayloadError::Incomplete(Some(err)) => {
            format!("the request body could not be read as its Content-Encoding says: {err}")
        }
        PayloadError::Io(err) => format!("the request body could not be read: {err}"),
        PayloadError::EncodingCorrupted => {
            "the request body does not decode as its Content-Encoding says".to_owned()
        }
        PayloadError::UnknownLength => "the request body's length is unknown".to_owned(),
        _ => "the request body could not be read".to_owned(),
    })
}

pub(crate) fn insert_id(headers: &mut HeaderMap, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(HEADER, value);
    }
}

/// An error that remembers the request it failed: it becomes a response later, outside the
/// middleware, and its body and headers still carry the id.
#[derive(Debug)]
pub(crate) struct Tagged {
    pub(crate) inner: Error,
    pub(crate) context: Rc<RequestContext>,
}

impl std::fmt::Display for Tagged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl ResponseError for Tagged {
    fn status_code(&self) -> StatusCode {
        self.inner.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response = in_request(self.context.clone(), || self.inner.error_response());
        insert_id(response.headers_mut(), &self.context.id);
        response
    }
}

/// Accepts 1–128 characters of `[A-Za-z0-9._:-]`: enough for UUIDs and tracing ids, and
/// nothing that could forge a log line.
fn incoming(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let plausible = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    plausible.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_str(value).expect("header value"));
        headers
    }

    #[test]
    fn plausible_ids_are_kept_and_others_replaced() {
        assert_eq!(
            incoming(&with("abc-123_x.y:z")).as_deref(),
            Some("abc-123_x.y:z")
        );
        assert_eq!(incoming(&with("has space")), None);
        assert_eq!(incoming(&with(&"a".repeat(129))), None);
        assert_eq!(incoming(&HeaderMap::new()), None);
    }
}
