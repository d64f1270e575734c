//! `RequestRole`: who a `/rest/v1` request runs as. The token comes from
//! `Authorization: Bearer`, else `apikey`; none means `anon`, but an `Authorization`
//! header that is not a bearer token is refused rather than served as `anon`. The role must be one of the
//! API roles: a token naming any other role (even a valid one) is refused.
//!
//! Under `/admin/v1/rest` (the same dialect, for the admin UI's data pages) the request
//! must be an admin's ([`AdminAccess`](super::AdminAccess)), and runs as the role the
//! `x-galley-view-as` header names: `service_role` (the default), `anon`, or
//! `user:<uuid>`, an app user with the claims their access token would carry, so an
//! admin sees exactly what row-level security lets each see.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::{Either, LocalBoxFuture};

use super::admin_access::{authorization_is_malformed, bearer_token};
use crate::error::ApiError;
use crate::state::AppState;

/// The roles a request may switch to, and nothing else.
pub(crate) const API_ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];

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

/// Where the admin UI reaches the dialect.
pub(crate) const ADMIN_REST: &str = "/admin/v1/rest/";

/// The header naming who an admin's data request runs as.
pub(crate) const VIEW_AS: &str = "x-galley-view-as";

impl FromRequest for RequestRole {
    type Error = ApiError;
    type Future =
        Either<Ready<Result<Self, ApiError>>, LocalBoxFuture<'static, Result<Self, ApiError>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        if req.path().starts_with(ADMIN_REST) {
            let req = req.clone();
            return Either::Right(Box::pin(async move { resolve_for_admin(&req).await }));
        }
        let resolved = resolve(req);
        if let Ok(role) = &resolved {
            super::record_identity(req, role.role, &role.claims);
        }
        Either::Left(ready(resolved))
    }
}

/// An admin's data request: admin access first (a session or the key; the audit log
/// names the admin), then the role to run as.
async fn resolve_for_admin(req: &HttpRequest) -> Result<RequestRole, ApiError> {
    super::AdminAccess::from_request(req, &mut Payload::None).await?;
    let view_as = req
        .headers()
        .get(VIEW_AS)
        .map(|value| value.to_str().unwrap_or("?").trim())
        .unwrap_or("service_role");
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    let (role, claims) = acting_as(state, view_as, "invalid_view_as", "x-galley-view-as").await?;
    Ok(RequestRole { role, claims })
}

/// The role and claims of `spec` — `service_role`, `anon` or `user:<uuid>` — as an admin
/// asks to act (the data pages' "view as", the SQL console's "run as"). An app user gets
/// what their access token would say, minus the session: enough for auth.uid(),
/// auth.jwt() and policies on claims. A bad spec is a 400 with `code`, naming `field`.
pub(crate) async fn acting_as(
    state: &AppState,
    spec: &str,
    code: &'static str,
    field: &str,
) -> Result<(&'static str, serde_json::Value), ApiError> {
    match spec {
        "service_role" => Ok((
            "service_role",
            serde_json::json!({ "role": "service_role" }),
        )),
        "anon" => Ok(("anon", serde_json::json!({ "role": "anon" }))),
        other => {
            let id = other
                .strip_prefix("user:")
                .and_then(|id| uuid::Uuid::parse_str(id.trim()).ok())
                .ok_or_else(|| {
                    ApiError::invalid(
                        code,
                        format!("{field} must be service_role, anon or user:<uuid>"),
                    )
                })?;
            let user = state.accounts.get_user(id).await.map_err(|err| {
                if err.status == 404 {
                    ApiError::invalid(code, "there is no app user with that id")
                } else {
                    tracing::error!(error = %err.message, "reading the user to act as");
                    ApiError::internal()
                }
            })?;
            Ok((
                "authenticated",
                serde_json::json!({
                    "role": "authenticated",
                    "sub": user.id.to_string(),
                    "aud": user.aud,
                    "email": user.email.unwrap_or_default(),
                    "phone": user.phone.unwrap_or_default(),
                    "app_metadata": user.app_metadata,
                    "user_metadata": user.user_metadata,
                    "is_anonymous": user.is_anonymous,
                    "aal": "aal1",
                }),
            ))
        }
    }
}

/// 401 for a token, with PostgREST's `WWW-Authenticate` naming what is wrong.
fn token_error(code: &'static str, message: &str) -> ApiError {
    ApiError::rest(StatusCode::UNAUTHORIZED, code, message, None, None).with_header(
        "www-authenticate",
        format!(
            "Bearer error=\"invalid_token\", error_description={}",
            serde_json::Value::String(message.to_owned())
        ),
    )
}

fn resolve(req: &HttpRequest) -> Result<RequestRole, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    if authorization_is_malformed(req) {
        let empty = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("bearer"));
        return Err(token_error(
            "PGRST301",
            if empty {
                "Empty JWT is sent in Authorization header"
            } else {
                "the Authorization header must be `Bearer <token>`"
            },
        ));
    }
    let Some(token) = bearer_token(req) else {
        return Ok(RequestRole {
            role: "anon",
            claims: serde_json::json!({ "role": "anon" }),
        });
    };
    use galley_auth::TokenError;
    let claims = match state.tokens.verify(token) {
        Ok(claims) => claims,
        // A signed token without a role is the anonymous role's, as in PostgREST.
        Err(TokenError::NoRole) => {
            return Ok(RequestRole {
                role: "anon",
                claims: serde_json::json!({ "role": "anon" }),
            });
        }
        // PostgREST's words: claims that do not hold are PGRST303, a token that does not
        // decode or verify PGRST301.
        Err(
            err @ (TokenError::Expired
            | TokenError::NotYetValid
            | TokenError::IssuedInFuture
            | TokenError::WrongAudience),
        ) => return Err(token_error("PGRST303", &err.to_string())),
        Err(TokenError::BadAlgorithm) => {
            return Err(token_error(
                "PGRST301",
                "Wrong or unsupported encoding algorithm",
            ));
        }
        Err(TokenError::Invalid) => {
            let parts = token.split('.').count();
            return Err(token_error(
                "PGRST301",
                &if parts == 3 {
                    "JWT cryptographic operation failed".to_owned()
                } else {
                    format!("Expected 3 parts in JWT; got {parts}")
                },
            ));
        }
    };
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
