//! `RequestRole`: who a `/rest/v1` request runs as. The token comes from
//! `Authorization: Bearer`, else `apikey`; none means `anon`, but an `Authorization`
//! header that is not a bearer token is refused rather than served as `anon`. The role must be one of the
//! API roles: a token naming any other role (even a valid one) is refused.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};

use super::admin_access::{authorization_is_malformed, bearer_token};
use crate::error::ApiError;
use crate::state::AppState;

/// The roles a request may switch to, and nothing else.
const API_ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];

#[derive(Debug)]
pub(crate) struct RequestRole {
    pub(crate) role: &'static str,
    /// The verified claims, as `request.jwt.claims` will carry them.
    pub(crate) claims: serde_json::Value,
}

impl RequestRole {
    pub(crate) fn is_anonymous(&self) -> bool {
        self.role == "anon"
    }
}

impl FromRequest for RequestRole {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let resolved = resolve(req);
        if let Ok(role) = &resolved {
            super::record_identity(req, role.role, &role.claims);
        }
        ready(resolved)
    }
}

fn resolve(req: &HttpRequest) -> Result<RequestRole, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    if authorization_is_malformed(req) {
        return Err(ApiError::rest(
            StatusCode::UNAUTHORIZED,
            "PGRST301",
            "the Authorization header must be `Bearer <token>`",
            None,
            None,
        ));
    }
    let Some(token) = bearer_token(req) else {
        return Ok(RequestRole {
            role: "anon",
            claims: serde_json::json!({ "role": "anon" }),
        });
    };
    let claims = state.tokens.verify(token).map_err(|err| {
        ApiError::rest(
            StatusCode::UNAUTHORIZED,
            "PGRST301",
            err.to_string(),
            None,
            None,
        )
    })?;
    let role = API_ROLES
        .iter()
        .find(|role| **role == claims.role)
        .ok_or_else(|| {
            ApiError::rest(
                StatusCode::UNAUTHORIZED,
                "PGRST301",
                format!(
                    "role \"{}\" is not allowed",
                    claims.role.chars().take(64).collect::<String>()
                ),
                None,
                None,
            )
        })?;
    Ok(RequestRole {
        role,
        claims: claims.raw,
    })
}
