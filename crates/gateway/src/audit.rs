//! The audit trail: every admin request that changes something (POST, PUT, PATCH, DELETE
//! under `/admin/v1` and `/auth/v1/admin`), applied or refused, authorised or not, is
//! written to `galley.audit_log` with who, what, when, from where and the outcome, and
//! logged as a security event (`admin.action`). A failure to write the row is logged,
//! never turned into a failed request.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};

use crate::extract::Identity;
use crate::state::AppState;

pub(crate) async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mutating = matches!(req.method().as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    if !mutating {
        return next.call(req).await;
    }
    let method = req.method().as_str().to_owned();
    let target = req.path().chars().take(512).collect::<String>();
    let dry_run = req
        .query_string()
        .split('&')
        .any(|pair| pair == "dry_run=true");
    let source_ip = state.limits.client_ip(req.request());
    let served = next.call(req).await;
    let (status, route, actor) = match &served {
        Ok(response) => (
            response.status().as_u16(),
            response.request().match_pattern(),
            response
                .request()
                .extensions()
                .get::<Identity>()
                .map(|identity| {
                    identity
                        .admin
                        .clone()
                        .or_else(|| identity.user_id.clone())
                        .unwrap_or_else(|| identity.role.clone())
                }),
        ),
        Err(err) => (err.as_response_error().status_code().as_u16(), None, None),
    };
    let outcome = match status {
        200..=299 if dry_run => "dry_run",
        200..=299 => "applied",
        400..=499 => "refused",
        _ => "failed",
    };
    let actor = actor.unwrap_or_else(|| "anonymous".to_owned());
    let action = format!(
        "{method} {}",
        route.unwrap_or_else(|| "unmatched".to_owned())
    );
    tracing::info!(
        event = "admin.action",
        actor = %actor,
        action = %action,
        path = %target,
        source_ip = %source_ip,
        outcome,
        status,
        "admin action"
    );
    let details = serde_json::json!({"status": status});
    let written = async {
        let client = state.pools.owner.get().await.ok()?;
        client
            .execute(
                "INSERT INTO galley.audit_log (actor, action, target, source_ip, outcome, details) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&actor, &action, &target, &source_ip, &outcome, &details],
            )
            .await
            .ok()
    }
    .await;
    if written.is_none() {
        tracing::error!(action = %action, "the audit log entry could not be written");
    }
    served
}
