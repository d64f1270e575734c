//! `GET /admin/v1/outbox`: the mail auth has queued, newest first, with what was sent
//! and what failed. Without SMTP configured (the embedded default) this is where
//! confirmation and recovery mails can be read.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/outbox")
            .route(web::get().to(get_outbox))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxQuery {
    limit: Option<i64>,
}

async fn get_outbox(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    query: web::Query<OutboxQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let mails = state.accounts.outbox(limit).await.map_err(|err| {
        if err.status == 503 {
            ApiError::unavailable("the database is unavailable; retry shortly")
        } else {
            ApiError::internal()
        }
    })?;
    Ok(HttpResponse::Ok().json(mails))
}
