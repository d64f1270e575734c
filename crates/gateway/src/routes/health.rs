//! `/health/live` (the process answers, and nothing it depends on is beyond repair) and
//! `/health/ready` (the database is reachable,
//! migrated, and this instance is not shutting down).

use actix_web::{HttpResponse, web};
use galley_db::{DbError, MigrationStatus};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health/live")
            .route(web::get().to(get_live))
            .route(web::head().to(get_live))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/health/ready")
            .route(web::get().to(get_ready))
            .route(web::head().to(get_ready))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn get_live(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_unrecoverable() {
        return Err(ApiError::unavailable(
            "the embedded PostgreSQL could not be brought back; restart Galley",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "live" })))
}

async fn get_ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    readiness(&state).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

/// Whether this instance can serve: not shutting down, the database reachable through
/// both pools and migrated to what this build expects.
pub(crate) async fn readiness(state: &AppState) -> Result<(), ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::unavailable("this instance is shutting down"));
    }
    let owner = state.pools.owner.get().await.map_err(DbError::from)?;
    match galley_db::migration_status(&owner).await? {
        MigrationStatus::Current => {}
        MigrationStatus::Behind { applied, expected } => {
            return Err(ApiError::unavailable(format!(
                "the database is at migration {applied}; this build needs {expected}"
            )));
        }
    }
    // A round trip as `authenticator`: the request pool reaches the database too.
    let mut api = state.pools.api.get().await.map_err(DbError::from)?;
    api.push("SELECT 1", &[]).map_err(DbError::from)?;
    api.sync().await.map_err(DbError::from)?;
    Ok(())
}
