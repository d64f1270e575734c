//! Request ids: an incoming `x-request-id` is kept when it is a plausible id, otherwise a
//! new one is made. The id is echoed in the response, put in every error body, and
//! carried by the `request` span so it is on every log line of the request.

use std::rc::Rc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use tracing::Instrument;

/// The route template that served the request, kept in its extensions once found.
#[derive(Debug, Clone)]
struct RouteTemplate(Rc<str>);

/// The route label of a request no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

/// The route template that served the request (`unmatched` when none did): the router's
/// pattern match run again, so it is found once per request, by whichever of the request
/// log and the request metrics asks first, and only when one of them is on.
pub(crate) fn route_template(request: &HttpRequest) -> Rc<str> {
    if let Some(RouteTemplate(route)) = request.extensions().get::<RouteTemplate>() {
        return route.clone();
    }
    let route: Rc<str> = request
        .match_pattern()
        .map_or_else(|| Rc::from(UNMATCHED), Rc::from);
    request
        .extensions_mut()
        .insert(RouteTemplate(route.clone()));
    route
}

pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, if any.
pub(crate) fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

pub(crate) async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = incoming(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Strings, not `%` (Display) values: they are recorded without the formatting machinery.
    let span = tracing::info_span!(
        "request",
        request_id = id.as_str(),
        method = req.method().as_str(),
        path = req.path()
    );
    let started = Instant::now();
    let served = REQUEST_ID
        .scope(id.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let status = match &served {
        Ok(response) => response.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The access line is the only use of the route and the identity here; when its level is
    // off (the span is, too: same level and target) and the request did not fail, neither
    // is looked up.
    let wanted = !span.is_disabled() || status.is_server_error();
    let request = match &served {
        Ok(response) if wanted => Some(response.request()),
        _ => None,
    };
    let route = request.map(route_template);
    let route = route.as_deref().unwrap_or(UNMATCHED);
    // Borrowed for the line below, after `route_template` has stored the route.
    let extensions = request.map(HttpRequest::extensions);
    let identity = extensions
        .as_ref()
        .and_then(|extensions| extensions.get::<crate::extract::Identity>());
    let role = identity.map_or("none", |i| i.role.as_str());
    let user_id = identity.and_then(|i| i.user_id.as_deref()).unwrap_or("");
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            elapsed_ms,
            route,
            role,
            user_id,
            "request failed"
        );
    } else {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms,
            route,
            role,
            user_id,
            "request served"
        );
    }
    drop(extensions);
    match served {
        Ok(response) => {
            let mut response = in_error_shape(response.map_into_boxed_body(), &id);
            insert_id(response.headers_mut(), &id);
            Ok(response)
        }
        // The error becomes a response later, outside this middleware; tag it so its body
        // and headers still carry the id.
        Err(inner) => Err(Tagged { inner, id }.into()),
    }
}

/// Error responses that did not come from `ApiError` (actix's own extractor errors, such
/// as a streamed body over the limit) are rewritten into the one error shape, so clients
/// never see a plain-text error.
fn in_error_shape(response: ServiceResponse<BoxBody>, id: &str) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.starts_with("application/json") || value.starts_with("application/vnd.pgrst")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
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
    let body = crate::error::ErrorBody {
        code: code.to_owned(),
        message: status.canonical_reason().unwrap_or("error").to_lowercase(),
        details: None,
        hint: None,
        request_id: Some(id.to_owned()),
    };
    let (request, _) = response.into_parts();
    let rewritten = HttpResponse::build(status)
        .insert_header((super::metrics::ERROR_CODE, code))
        .content_type("application/json; charset=utf-8")
        .body(serde_json::to_string(&body).unwrap_or_default());
    ServiceResponse::new(request, rewritten)
}

fn insert_id(headers: &mut HeaderMap, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(HEADER, value);
    }
}

/// An error that remembers the id of the request it failed.
#[derive(Debug)]
struct Tagged {
    inner: Error,
    id: String,
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
        let mut response = REQUEST_ID.sync_scope(self.id.clone(), || self.inner.error_response());
        insert_id(response.headers_mut(), &self.id);
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
