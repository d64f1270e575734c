//! `/storage/v1`: Supabase Storage's HTTP API for `supabase.storage`. This module is
//! HTTP only (who the caller is, bodies, headers, ranges); what each operation does is
//! `galley_storage`'s. Answers and refusals are Supabase Storage's, not Galley's error
//! shape: storage-js reads them (`statusCode`, `error`, `message`, `code`, mostly HTTP
//! 400 with the logical status in the body).

mod buckets;
pub(crate) mod objects;
mod render;
mod resumable;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use galley_storage::{Caller, StorageError};

use crate::state::AppState;

/// Where the routes are mounted.
pub(crate) const PREFIX: &str = "/storage/v1";
/// Largest JSON body a storage route reads.
const MAX_JSON_BYTES: usize = 1024 * 1024;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .configure(buckets::configure)
            .configure(objects::configure)
            .configure(resumable::configure)
            .configure(render::configure)
            .default_service(web::to(route_not_found)),
    );
}

/// A refusal as Supabase Storage answers it.
pub(crate) fn refused(err: &StorageError) -> HttpResponse {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status);
    response
        .content_type("application/json; charset=utf-8")
        .insert_header(("x-error-code", err.code));
    if let Some(seconds) = err.retry_after {
        response.insert_header(("retry-after", seconds.to_string()));
    }
    response.body(err.body())
}

/// A JSON answer built by `galley_storage`.
pub(crate) fn json(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body)
}

/// Either answer.
pub(crate) fn answer(result: Result<String, StorageError>) -> HttpResponse {
    match result {
        Ok(body) => json(body),
        Err(err) => refused(&err),
    }
}

/// A resource whose other methods are answered as routes Supabase does not have.
pub(crate) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(route_not_found))
}

async fn route_not_found(req: HttpRequest) -> HttpResponse {
    let path = req.path().strip_prefix(PREFIX).unwrap_or(req.path());
    refused(&StorageError::route_not_found(req.method().as_str(), path))
}

/// The storage service; with `storage.enabled` off, no route exists.
pub(crate) fn storage<'a>(
    req: &HttpRequest,
    state: &'a AppState,
) -> Result<&'a galley_storage::Storage, StorageError> {
    state.storage.as_deref().ok_or_else(|| {
        let path = req.path().strip_prefix(PREFIX).unwrap_or(req.path());
        StorageError::route_not_found(req.method().as_str(), path)
    })
}

/// A header's text, trimmed, if it has one.
pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

/// The token a request carries: `Authorization` (with or without `Bearer `), else
/// `apikey`.
fn token(req: &HttpRequest) -> Option<&str> {
    let present = |name: &str| header(req, name).filter(|value| !value.is_empty());
    present("authorization")
        .map(|value| match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => value,
        })
        .or_else(|| present("apikey"))
}

/// The caller of a route that requires a token, refused as Supabase Storage refuses.
pub(crate) fn caller(req: &HttpRequest, state: &AppState) -> Result<Caller, StorageError> {
    let Some(token) = token(req) else {
        return Err(StorageError::validation(
            "headers must have required property 'authorization'",
        ));
    };
    let claims = state.tokens.verify(token).map_err(|err| {
        StorageError::access_denied(match err {
            galley_auth::TokenError::Expired => "\"exp\" claim timestamp check failed",
            galley_auth::TokenError::NoRole => "missing role claim",
            galley_auth::TokenError::Invalid if token.split('.').count() != 3 => {
                "Invalid Compact JWS"
            }
            galley_auth::TokenError::NotYetValid => "\"nbf\" claim timestamp check failed",
            galley_auth::TokenError::IssuedInFuture => "\"iat\" claim timestamp check failed",
            galley_auth::TokenError::WrongAudience => "unexpected \"aud\" claim value",
            galley_auth::TokenError::BadAlgorithm => {
                "\"alg\" (Algorithm) Header Parameter value not allowed"
            }
            galley_auth::TokenError::Invalid => "signature verification failed",
        })
    })?;
    if !crate::extract::API_ROLES.contains(&claims.role.as_str()) {
        return Err(StorageError::access_denied(format!(
            "role \"{}\" does not exist",
            claims.role
        )));
    }
    crate::extract::record_identity(req, &claims.role, &claims.raw);
    Ok(Caller {
        role: claims.role,
        claims: claims.raw,
    })
}

/// The caller of a route that serves public buckets to anyone: an invalid or missing
/// token is no caller at all, as in Supabase.
pub(crate) fn optional_caller(req: &HttpRequest, state: &AppState) -> Option<Caller> {
    token(req)?;
    caller(req, state).ok()
}

/// An upload may start: one of the caller's (by `sub`, else by client address) and one
/// of this instance's, per minute.
pub(crate) fn upload_allowed(
    req: &HttpRequest,
    state: &AppState,
    caller: &Caller,
) -> Result<(), StorageError> {
    use crate::ratelimit::Bucket;
    let key = match caller.sub() {
        "" => state.limits.client_ip(req),
        sub => sub.to_owned(),
    };
    state
        .limits
        .take(Bucket::Upload, &key)
        .and_then(|()| state.limits.take(Bucket::UploadAll, ""))
        .map_err(|wait| StorageError::too_many_requests_for(wait.as_secs_f64().ceil() as u64))
}

/// A JSON body of at most [`MAX_JSON_BYTES`]; an empty body is `{}`.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    mut payload: web::Payload,
) -> Result<T, StorageError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| StorageError::invalid_request(err.to_string()))?;
        if body.len() + chunk.len() > MAX_JSON_BYTES {
            return Err(StorageError::entity_too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_str("{}").map_err(|err| StorageError::validation(err.to_string()));
    }
    serde_json::from_slice(&body)
        .map_err(|err| StorageError::validation(format!("Body is not valid JSON: {err}")))
}
