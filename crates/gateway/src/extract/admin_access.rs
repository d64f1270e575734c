//! `AdminAccess`: the request is an admin's, signed in to `/admin` (a session cookie), or
//! carries a valid token whose role is `service_role` (the key, for automation).

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::{AUTHORIZATION, HOST, ORIGIN};
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use galley_auth::{Admin, VerifiedClaims};

use crate::error::ApiError;
use crate::state::AppState;

/// The cookie an admin session travels in (HttpOnly, SameSite=Strict, Path=/admin).
pub(crate) const SESSION_COOKIE: &str = "galley_admin";

/// Proof that the request was made by a signed-in admin or with the `service_role` key
/// (or another token with that role). Admin routes take it as an argument.
#[derive(Debug)]
pub(crate) enum AdminAccess {
    Key(VerifiedClaims),
    Session(Admin),
}

impl AdminAccess {
    /// Who to record as making a change: `admin:<email>` for a signed-in admin; for a
    /// key, the token's subject when it names one, else its role.
    pub(crate) fn actor(&self) -> String {
        match self {
            Self::Session(admin) => format!("admin:{}", admin.email),
            Self::Key(claims) => claims
                .raw
                .get("sub")
                .and_then(|sub| sub.as_str())
                .map_or_else(|| claims.role.clone(), ToOwned::to_owned),
        }
    }
}

impl FromRequest for AdminAccess {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authorize(&req).await })
    }
}

const NEEDS: &str = "this endpoint needs an admin session or the service_role key";

async fn authorize(req: &HttpRequest) -> Result<AdminAccess, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    if let Some(token) = bearer_token(req) {
        let claims = state
            .tokens
            .verify(token)
            .map_err(|err| ApiError::unauthorized(err.to_string()))?;
        // Known from here on, refused or not: the audit trail names who tried.
        super::record_identity(req, &claims.role, &claims.raw);
        if claims.role != "service_role" {
            return Err(ApiError::forbidden(NEEDS));
        }
        // Galley's own admin API (the SQL console among it) takes the key, not an app
        // user's session token that happens to carry the role: that would skip the admin's
        // own sign-in, second factor and session limits.
        if req.path().starts_with("/admin/") && claims.raw.get("session_id").is_some() {
            return Err(ApiError::forbidden(
                "this endpoint needs an admin session or the service_role key, not an app user's token",
            ));
        }
        return Ok(AdminAccess::Key(claims));
    }
    // The session is for Galley's own admin API only, never for the app-facing ones
    // (GoTrue's `/auth/v1/admin` takes the key alone), whatever a client sends.
    let cookie = req
        .path()
        .starts_with("/admin/")
        .then(|| req.cookie(SESSION_COOKIE))
        .flatten();
    let Some(cookie) = cookie else {
        return Err(ApiError::unauthorized(NEEDS));
    };
    let admin = state
        .admins
        .session(cookie.value())
        .await
        .map_err(crate::routes::admin::session::admin_error)?
        .ok_or_else(|| ApiError::unauthorized("the admin session has ended; sign in again"))?;
    // Recorded first: a forged request the origin check refuses is audited under the
    // admin whose browser was made to send it.
    super::record_admin(req, &admin.email);
    same_origin(req)?;
    Ok(AdminAccess::Session(admin))
}

/// Refuses a cookie-carrying request from another origin, and one that changes something
/// unless the browser says it comes from this origin. Browsers send `Origin` with every such request and a page
/// cannot forge it; with the cookie's SameSite=Strict and `/admin/v1` taking only JSON
/// bodies, no other site can make an admin's browser act.
pub(crate) fn same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|value: &actix_web::http::header::HeaderValue| value.to_str().ok())
    };
    let origin = header(ORIGIN);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // A read without `Origin` is a navigation or a same-origin fetch: fine. With one, it
    // must be this origin, whatever the method, so no other site can read an admin's data
    // even where CORS would let it.
    if safe && origin.is_none() {
        return Ok(());
    }
    let authority = origin.and_then(|origin| origin.split_once("://").map(|(_, rest)| rest));
    // This origin: the request's own Host, or the public URL's (behind a proxy that does
    // not pass Host on).
    let public = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.operator.public_authority.clone())
        .unwrap_or_default();
    match (authority, header(HOST)) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
        (Some(authority), _) if !public.is_empty() && authority.eq_ignore_ascii_case(&public) => {
            Ok(())
        }
        _ => Err(ApiError::forbidden(
            "a signed-in admin's requests must come from the admin UI's own origin",
        )),
    }
}
/// `Authorization: Bearer <token>`, else the `apikey` header that Supabase clients send.
/// A present `Authorization` that is not a bearer token counts as no token here; callers
/// that would fall back to `anon` ask [`authorization_is_malformed`] first.
pub(super) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let headers = req.headers();
    if let Some(value) = headers.get(AUTHORIZATION) {
        let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
        return (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
            .then_some(token.trim());
    }
    headers.get("apikey").and_then(|value| value.to_str().ok())
}

/// Whether the request carries an `Authorization` header that is not `Bearer <token>`:
/// a client that meant to authenticate and would otherwise be served as `anon`.
pub(super) fn authorization_is_malformed(req: &HttpRequest) -> bool {
    req.headers().contains_key(AUTHORIZATION) && bearer_token(req).is_none()
}
