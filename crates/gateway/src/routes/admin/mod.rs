//! `/admin/v1`: Galley's own admin API, for signed-in admins (a session cookie) and the
//! `service_role` key.

mod audit;
mod backups;
mod catalog;
mod enums;
mod history;
mod openapi;
mod ops;
mod outbox;
pub(crate) mod session;
mod sql;
mod storage;
mod tables;
mod users;

use std::time::Duration;

use actix_web::{HttpResponse, web};
use galley_schema::{SchemaChange, apply_change};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    // The REST dialect for the admin UI's data pages, as the role the admin picks
    // (`RequestRole`); before the scope below, which would otherwise take its prefix.
    // Its bodies are the dialect's (JSON or CSV), and its changes are audited.
    cfg.service(
        crate::routes::rest::routes(web::scope("/admin/v1/rest"))
            .wrap(actix_web::middleware::from_fn(crate::audit::track)),
    );
    cfg.service(
        web::scope("/admin/v1")
            .wrap(actix_web::middleware::from_fn(
                crate::content_type::require_json,
            ))
            // Outermost: a refused request is audited too.
            .wrap(actix_web::middleware::from_fn(crate::audit::track))
            .configure(session::configure)
            .configure(audit::configure)
            .configure(catalog::configure)
            .configure(tables::configure)
            .configure(enums::configure)
            .configure(history::configure)
            .configure(outbox::configure)
            .configure(users::configure)
            .configure(sql::configure)
            .configure(ops::configure)
            .configure(backups::configure)
            .configure(storage::configure)
            .configure(openapi::configure),
    );
}

/// Query options every schema change takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeOptions {
    #[serde(default)]
    pub(crate) dry_run: bool,
    /// For destructive changes: the name of what is dropped.
    #[serde(default)]
    pub(crate) confirm: Option<String>,
}

pub(crate) async fn finish(
    state: &AppState,
    admin: &AdminAccess,
    change: &SchemaChange,
    dry_run: bool,
) -> Result<HttpResponse, ApiError> {
    let history_id = apply(state, admin, change, dry_run).await?;
    Ok(HttpResponse::Ok().json(json!({
        "dry_run": history_id.is_none(),
        "history_id": history_id,
        "sql": change.plan.script(),
    })))
}

/// Applies (or dry-runs) a change and refreshes this instance's catalog.
pub(crate) async fn apply(
    state: &AppState,
    admin: &AdminAccess,
    change: &SchemaChange,
    dry_run: bool,
) -> Result<Option<i64>, ApiError> {
    let lock_timeout = Duration::from_millis(state.schema.lock_timeout_ms);
    let started = std::time::Instant::now();
    let applied = apply_change(
        &state.pools.owner,
        change,
        &admin.actor(),
        lock_timeout,
        dry_run,
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let outcome = match &applied {
        Ok(_) if dry_run => "dry_run",
        Ok(_) => "applied",
        Err(
            galley_schema::SchemaError::Refused { .. }
            | galley_schema::SchemaError::InvalidDefinition { .. },
        ) => "refused",
        Err(_) => "failed",
    };
    state
        .metrics
        .schema_changes
        .with_label_values(&[outcome])
        .inc();
    state.metrics.schema_change_duration.observe(elapsed);
    tracing::info!(
        event = "schema.change",
        actor = %admin.actor(),
        operation = change.operation,
        object = %change.target,
        outcome,
        elapsed_ms = elapsed * 1000.0,
        "schema change"
    );
    state
        .metrics
        .query_duration
        .with_label_values(&["ddl"])
        .observe(elapsed);
    let history_id = applied?;
    if history_id.is_some() {
        // This instance answers with the new state right away; others follow on NOTIFY.
        state.catalog.reload().await?;
    }
    Ok(history_id)
}
