//! What a request body declares itself to be: JSON endpoints take `application/json`
//! (or a `+json` type), or no `Content-Type` at all, which means JSON as in PostgREST.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest};

use crate::error::ApiError;

/// Middleware for a scope whose bodies are all JSON: a request with a body declared as
/// anything else is refused with 415 before a handler reads it. Object uploads (which
/// read their own bodies, of any type) are the exception.
pub(crate) async fn require_json(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if has_body(req.headers())
        && !crate::routes::reads_own_body(req.method(), req.path())
        && not_json(req.request()).is_some()
    {
        return Err(ApiError::unsupported_media_type().into());
    }
    next.call(req).await
}

/// Whether a request carries a body: a non-zero `Content-Length`, or a chunked one.
pub(crate) fn has_body(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .is_some_and(|length| length > 0)
}

/// The declared media type when it is not JSON (lower-cased, without parameters), for
/// a 415 that names it; `None` when the body may be read as JSON.
pub(crate) fn not_json(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(CONTENT_TYPE)?;
    let Ok(value) = value.to_str() else {
        return Some("(not ASCII)".to_owned());
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = media == "application/json"
        || media
            .rsplit_once('+')
            .is_some_and(|(kind, suffix)| suffix == "json" && kind.contains('/'));
    (!json).then_some(media)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::not_json;

    #[test]
    fn json_and_its_suffix_types_pass_and_others_are_named() {
        for passes in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "application/vnd.pgrst.object+json",
        ] {
            let req = TestRequest::default()
                .insert_header(("content-type", passes))
                .to_http_request();
            assert_eq!(not_json(&req), None, "{passes}");
        }
        assert_eq!(not_json(&TestRequest::default().to_http_request()), None);
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "text/csv",
            "+json",
        ] {
            let req = TestRequest::default()
                .insert_header(("content-type", refused))
                .to_http_request();
            assert_eq!(not_json(&req).as_deref(), Some(refused), "{refused}");
        }
    }
}
