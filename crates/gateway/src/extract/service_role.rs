//! `ServiceRole`: the request carries a valid token whose role is `service_role`.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use galley_auth::VerifiedClaims;

use crate::error::ApiError;
use crate::state::AppState;

/// Proof that the request was made with the `service_role` key (or another token with
/// that role). Admin routes take it as an argument.
#[derive(Debug)]
pub(crate) struct ServiceRole {
    claims: VerifiedClaims,
}

impl ServiceRole {
    /// Who to record as making a change: the token's subject when it names one (an admin
    /// session, later), else the role.
    pub(crate) fn actor(&self) -> String {
        self.claims
            .raw
            .get("sub")
            .and_then(|sub| sub.as_str())
            .map_or_else(|| self.claims.role.clone(), ToOwned::to_owned)
    }
}

impl FromRequest for ServiceRole {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(authorize(req))
    }
}

fn authorize(req: &HttpRequest) -> Result<ServiceRole, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    let token = bearer_token(req)
        .ok_or_else(|| ApiError::unauthorized("this endpoint needs the service_role key"))?;
    let claims = state
        .tokens
        .verify(token)
        .map_err(|err| ApiError::unauthorized(err.to_string()))?;
    // Known from here on, refused or not: the audit trail names who tried.
    super::record_identity(req, &claims.role, &claims.raw);
    if claims.role != "service_role" {
        return Err(ApiError::forbidden(
            "this endpoint needs the service_role key",
        ));
    }
    Ok(ServiceRole { claims })
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
