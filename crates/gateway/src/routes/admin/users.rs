//! `GET /admin/v1/users`: app users for the admin UI (search by email or id), in the
//! shape Supabase Auth's admin API gives a user. Managing them goes through
//! `/auth/v1/admin/users` for the key; the admin UI's own user pages build on this.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users")
            .route(web::get().to(search))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    #[serde(default)]
    q: String,
    limit: Option<i64>,
}

async fn search(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    query: web::Query<Search>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let users = state
        .accounts
        .search_users(&query.q, limit)
        .await
        .map_err(|err| {
            if err.status == 503 {
                ApiError::unavailable("the database is unavailable; retry shortly")
            } else {
                tracing::error!(error = %err.message, "searching users");
                ApiError::internal()
            }
        })?;
    let users: Vec<_> = users.iter().map(galley_auth::UserRecord::to_json).collect();
    Ok(HttpResponse::Ok().json(users))
}
