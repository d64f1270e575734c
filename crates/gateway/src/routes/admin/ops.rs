//! What the admin UI's operations pages read: the API keys (`anon` shown; `service_role`
//! only on an explicit POST, which the audit log records), the effective configuration
//! with secrets redacted, this instance's metrics (the same text `/metrics` serves), and
//! a test mail through the outbox.

use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/keys")
            .route(web::get().to(keys))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/keys/service_role")
            .route(web::post().to(reveal_service_key))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/config")
            .route(web::get().to(config))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/outbox/test")
            .route(web::post().to(test_mail))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

async fn keys(_admin: AdminAccess, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({ "anon": state.operator.anon_key }))
}

/// The `service_role` key, for an admin to copy into a server-side app. A POST, so the
/// audit trail names who revealed it; never cached.
async fn reveal_service_key(_admin: AdminAccess, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({ "service_role": state.operator.service_key.expose_secret() }))
}

async fn config(_admin: AdminAccess, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.operator.config)
}

async fn metrics(_admin: AdminAccess, state: web::Data<AppState>) -> HttpResponse {
    crate::routes::metrics::scrape(&state).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestMail {
    to: String,
}

async fn test_mail(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    body: web::Json<TestMail>,
) -> Result<HttpResponse, ApiError> {
    state
        .accounts
        .send_test_mail(&body.to, &state.operator.project)
        .await
        .map_err(|err| {
            if err.status < 500 {
                ApiError::invalid("invalid_email", err.message)
            } else {
                tracing::error!(error = %err.message, "queueing a test mail");
                ApiError::internal()
            }
        })?;
    Ok(HttpResponse::Accepted().json(json!({ "queued_for": body.to.trim().to_lowercase() })))
}
