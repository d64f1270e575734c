//! `GET /admin/v1/audit`: the audit trail, newest first, filtered by actor, action,
//! outcome and time, a page at a time (`before` is the last id of the previous page).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use galley_db::DbError;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/audit")
            .route(web::get().to(get_audit))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<i64>,
    before: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<DateTime<Utc>>,
}

async fn get_audit(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let client = state.pools.owner.get().await.map_err(DbError::from)?;
    let rows = client
        .query(
            "SELECT id, at, actor, action, target, source_ip, outcome, details FROM galley.audit_log \
             WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR actor = $2) \
               AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR outcome = $4) \
               AND ($5::timestamptz IS NULL OR at >= $5) \
             ORDER BY id DESC LIMIT $6",
            &[
                &query.before,
                &query.actor,
                &query.action,
                &query.outcome,
                &query.since,
                &limit,
            ],
        )
        .await
        .map_err(DbError::from)?;
    let entries: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.get::<_, i64>(0),
                "at": galley_auth::timestamp(row.get(1)),
                "actor": row.get::<_, String>(2),
                "action": row.get::<_, String>(3),
                "target": row.get::<_, String>(4),
                "source_ip": row.get::<_, Option<String>>(5),
                "outcome": row.get::<_, String>(6),
                "details": row.get::<_, serde_json::Value>(7),
            })
        })
        .collect();
    let next_before = if entries.len() as i64 == limit {
        entries.last().and_then(|e| e["id"].as_i64())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({"entries": entries, "next_before": next_before})))
}
