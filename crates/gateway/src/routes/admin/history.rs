//! `GET /admin/v1/schema/history`: every applied schema change, oldest first.

use actix_web::{HttpResponse, web};
use galley_db::DbError;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/schema/history")
            .route(web::get().to(get_history))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

async fn get_history(
    _admin: AdminAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pools.owner.get().await.map_err(DbError::from)?;
    let row = client
        .query_one(
            "SELECT coalesce(json_agg(json_build_object(
                 'id', id, 'applied_at', applied_at, 'actor', actor, 'operation', operation,
                 'target', target, 'definition_before', definition_before,
                 'definition_after', definition_after, 'sql', sql) ORDER BY id), '[]')
             FROM galley.schema_history",
            &[],
        )
        .await
        .map_err(DbError::from)?;
    let history: serde_json::Value = row.get(0);
    Ok(HttpResponse::Ok().json(history))
}
