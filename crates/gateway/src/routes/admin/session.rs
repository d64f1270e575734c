//! Admin sign-in: `POST /admin/v1/session` (email and password), `GET` (who is signed
//! in), `DELETE` (sign out), and `POST /admin/v1/setup` (the first admin, through the
//! one-time link `galley serve` prints while there is none). The session token travels
//! only in an HttpOnly, SameSite=Strict cookie scoped to `/admin`; the browser's script
//! never sees it, nor any API key.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, web};
use galley_auth::{AdminError, NewSession};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{AdminAccess, SESSION_COOKIE, same_origin};
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/session")
            .route(web::post().to(sign_in))
            .route(web::get().to(current))
            .route(web::delete().to(sign_out))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/session/totp")
            .route(web::post().to(totp_begin))
            .route(web::delete().to(totp_disable))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/session/totp/confirm")
            .route(web::post().to(totp_confirm))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/setup")
            .route(web::post().to(set_up))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

/// An [`AdminError`] as the API answers it.
pub(crate) fn admin_error(err: AdminError) -> ApiError {
    match err {
        AdminError::InvalidCredentials => ApiError::invalid("invalid_credentials", err.to_string()),
        AdminError::WeakPassword(message) => ApiError::invalid("weak_password", message),
        AdminError::InvalidEmail(message) => ApiError::invalid("invalid_email", message),
        AdminError::Exists => ApiError::conflict("admin_exists", err.to_string()),
        AdminError::NotFound => ApiError::invalid("admin_not_found", err.to_string()),
        AdminError::SetupClosed => ApiError::forbidden(err.to_string()),
        AdminError::TotpRequired => ApiError::invalid("totp_required", err.to_string()),
        AdminError::InvalidTotp => ApiError::invalid("invalid_totp", err.to_string()),
        AdminError::NoPendingTotp => ApiError::invalid("no_pending_totp", err.to_string()),
        AdminError::Db(err) if err.is_unavailable() => {
            tracing::warn!(error = %galley_db::report(&err), "database unavailable");
            ApiError::unavailable("the database is unavailable; try again shortly")
        }
        other => {
            tracing::error!(error = %galley_db::report(&other), "admin sign-in failed");
            ApiError::internal()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
    /// The authenticator's code, for an admin with a second factor.
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    token: String,
    email: String,
    password: String,
}

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("user-agent")
        .and_then(|value| value.to_str().ok())
        .map(|ua| ua.chars().take(256).collect())
}

/// The session's cookie: HttpOnly, SameSite=Strict, `/admin` only, `Secure` when the
/// public URL is https, living as long as the session may.
fn session_cookie(state: &AppState, session: &NewSession) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, session.token.clone())
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .max_age(CookieDuration::seconds(
            i64::try_from(session.max_age_secs).unwrap_or(i64::MAX),
        ))
        .finish()
}

fn signed_in(state: &AppState, session: &NewSession) -> HttpResponse {
    HttpResponse::Ok()
        .cookie(session_cookie(state, session))
        .insert_header(("cache-control", "no-store"))
        .json(json!({ "admin": session.admin }))
}

/// Refuses more attempts than the limits allow: per client address; per account and
/// client (a guesser is stopped); and per account over every client, which slows rather
/// than refuses, so nobody can lock an admin out by guessing from elsewhere.
async fn limit(state: &AppState, req: &HttpRequest, email: &str) -> Result<(), ApiError> {
    let ip = state.limits.client_ip(req);
    let refused = |wait: std::time::Duration| {
        tracing::warn!(event = "admin.rate_limited", client_ip = %ip, "admin sign-in attempts rate limited");
        ApiError::too_many_requests(wait.as_secs().max(1))
    };
    state.limits.take(Bucket::Token, &ip).map_err(refused)?;
    let account = format!("admin\u{0}{}", email.trim().to_lowercase());
    let wait = state
        .limits
        .take_account(&state.pools.owner, &account, &ip)
        .await
        .map_err(|err| admin_error(err.into()))?
        .map_err(refused)?;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    Ok(())
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::invalid_body(format!("the body is not valid: {err}")))
}

async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // A sign-in forged by another site would sign the browser in as the attacker.
    same_origin(&req)?;
    let credentials: Credentials = parse(&body)?;
    limit(&state, &req, &credentials.email).await?;
    let ip = state.limits.client_ip(&req);
    let result = state
        .admins
        .sign_in(
            &credentials.email,
            &credentials.password,
            credentials.code.as_deref(),
            user_agent(&req).as_deref(),
            &ip,
        )
        .await;
    match &result {
        Ok(session) => {
            crate::extract::record_admin(&req, &session.admin.email);
            tracing::info!(event = "admin.signed_in", client_ip = %ip, "an admin signed in");
        }
        Err(AdminError::InvalidCredentials | AdminError::InvalidTotp) => {
            tracing::info!(event = "admin.sign_in_failed", client_ip = %ip, "an admin sign-in was refused");
        }
        Err(_) => {}
    }
    let session = result.map_err(admin_error)?;
    Ok(signed_in(&state, &session))
}

async fn current(admin: AdminAccess, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match admin {
        AdminAccess::Session(admin) => {
            let totp = state
                .admins
                .totp_enabled(&admin)
                .await
                .map_err(admin_error)?;
            Ok(HttpResponse::Ok()
                .insert_header(("cache-control", "no-store"))
                .json(json!({ "admin": admin, "totp": totp })))
        }
        AdminAccess::Key(_) => Err(ApiError::invalid(
            "no_session",
            "this request carries the service_role key, not an admin session",
        )),
    }
}

async fn sign_out(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        same_origin(&req)?;
        state
            .admins
            .sign_out(cookie.value())
            .await
            .map_err(admin_error)?;
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "")
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

async fn set_up(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    same_origin(&req)?;
    let setup: Setup = parse(&body)?;
    // Guessing setup tokens is as limited as guessing passwords.
    limit(&state, &req, "setup").await?;
    let ip = state.limits.client_ip(&req);
    let session = state
        .admins
        .set_up(
            &setup.token,
            &setup.email,
            &setup.password,
            user_agent(&req).as_deref(),
            &ip,
        )
        .await
        .map_err(admin_error)?;
    crate::extract::record_admin(&req, &session.admin.email);
    tracing::info!(event = "admin.created", client_ip = %ip, "the first admin was set up through the setup link");
    Ok(signed_in(&state, &session))
}

/// The signed-in admin, for their own account's settings (the key has no account).
fn own(admin: AdminAccess) -> Result<galley_auth::Admin, ApiError> {
    match admin {
        AdminAccess::Session(admin) => Ok(admin),
        AdminAccess::Key(_) => Err(ApiError::invalid(
            "no_session",
            "this request carries the service_role key, not an admin session",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MaybeCode {
    #[serde(default)]
    code: Option<String>,
}

/// Starts enrolling an authenticator: the secret to type in and its otpauth:// URL. An
/// admin who has one already gives a current code from it.
async fn totp_begin(
    admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let admin = own(admin)?;
    let body: MaybeCode = if body.is_empty() {
        MaybeCode::default()
    } else {
        parse(&body)?
    };
    limit(&state, &req, &admin.email).await?;
    let (secret, url) = state
        .admins
        .totp_begin(&admin, &state.operator.project, body.code.as_deref())
        .await
        .map_err(admin_error)?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({ "secret": secret, "otpauth_url": url })))
}

async fn totp_confirm(
    admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Code>,
) -> Result<HttpResponse, ApiError> {
    let admin = own(admin)?;
    // Guessing codes is as limited as guessing passwords.
    limit(&state, &req, &admin.email).await?;
    state
        .admins
        .totp_confirm(&admin, &body.code)
        .await
        .map_err(admin_error)?;
    tracing::info!(
        event = "admin.totp_enabled",
        "an admin turned on a second factor"
    );
    Ok(HttpResponse::Ok().json(json!({ "totp": true })))
}

async fn totp_disable(
    admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Code>,
) -> Result<HttpResponse, ApiError> {
    let admin = own(admin)?;
    // Guessing codes is as limited as guessing passwords.
    limit(&state, &req, &admin.email).await?;
    state
        .admins
        .totp_disable(&admin, &body.code)
        .await
        .map_err(admin_error)?;
    tracing::info!(
        event = "admin.totp_disabled",
        "an admin turned off their second factor"
    );
    Ok(HttpResponse::Ok().json(json!({ "totp": false })))
}
