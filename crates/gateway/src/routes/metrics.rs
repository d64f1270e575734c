//! `/metrics`: the Prometheus text format. Gauges that describe the present (pool
//! connections, the outbox) are read at scrape time. On the main address it is served
//! only when a token is configured, and only to requests that carry it.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;

use crate::error::ApiError;
use crate::state::AppState;

/// On the main address: the token, or 401 (404 when no token is configured).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(guarded));
}

async fn guarded(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(expected) = &state.metrics_token else {
        return Err(ApiError::not_found());
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(ApiError::unauthorized("/metrics needs the metrics token"));
    }
    Ok(scrape(&state).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The exposition, with the scrape-time gauges refreshed first.
pub(crate) async fn scrape(state: &AppState) -> HttpResponse {
    let metrics = &state.metrics;
    let ready = tokio::time::timeout(
        Duration::from_secs(2),
        crate::routes::health::readiness(state),
    )
    .await;
    metrics.ready.set(i64::from(matches!(ready, Ok(Ok(())))));
    for (name, status) in [
        ("api", state.pools.api.status()),
        ("owner", state.pools.owner.status()),
    ] {
        let set = |label: &str, value: usize| {
            metrics
                .pool_connections
                .with_label_values(&[name, label])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set("size", status.size);
        set("idle", status.available);
        set("waiting", status.waiting);
    }
    {
        // Counted by the pool; the counters catch up to it, one scrape at a time (two at
        // once would both add the same difference).
        static CATCHING_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = CATCHING_UP
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sent = state.pools.api.sent();
        for (count, total) in [("batches", &sent.batches), ("requests", &sent.groups)] {
            let counter = metrics.db_batches.with_label_values(&[count]);
            let total = total.load(std::sync::atomic::Ordering::Relaxed);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
    let outbox = async {
        let client = state.pools.owner.get().await.ok()?;
        let row = client
            .query_one(
                "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 \
                 FROM galley.outbox WHERE sent_at IS NULL",
                &[],
            )
            .await
            .ok()?;
        Some((row.get::<_, i64>(0), row.get::<_, f64>(1)))
    };
    // A slow or unreachable database does not stall the scrape: the outbox gauges keep
    // their last values.
    if let Ok(Some((pending, oldest))) = tokio::time::timeout(Duration::from_secs(2), outbox).await
    {
        metrics.outbox_pending.set(pending);
        metrics.outbox_oldest_seconds.set(oldest);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}

/// The metrics listener's only route.
pub(crate) async fn open(state: web::Data<AppState>) -> HttpResponse {
    scrape(&state).await
}
