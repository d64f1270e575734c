//! Counts and times every request by method, route template (the pattern that matched,
//! `unmatched` for anything else, so a scan of random paths adds no series) and status
//! class, tracks requests in flight, and counts error responses by their code.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::middleware::Next;
use actix_web::{Error, web};
use galley_metrics::status_class;

use crate::state::AppState;

/// The header an error response names its code in.
pub(crate) const ERROR_CODE: HeaderName = HeaderName::from_static("x-error-code");
/// The same on `/auth/v1`, in GoTrue's name.
pub(crate) const SB_ERROR_CODE: HeaderName = HeaderName::from_static("x-sb-error-code");

pub(crate) async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let metrics = state.metrics.clone();
    if !metrics.track_requests {
        return next.call(req).await;
    }
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    metrics.http_in_flight.inc();
    let started = Instant::now();
    let served = next.call(req).await;
    metrics.http_in_flight.dec();
    let elapsed = started.elapsed().as_secs_f64();
    match &served {
        Ok(response) => {
            let status = status_class(response.status().as_u16());
            let code = response
                .headers()
                .get(ERROR_CODE)
                .or_else(|| response.headers().get(SB_ERROR_CODE))
                .and_then(|v| v.to_str().ok());
            let route = super::request_id::route_template(response.request());
            observe(&metrics, [method, &route, status], elapsed);
            if let Some(code) = code {
                // Codes are Galley's own; the cut only bounds a label that should never grow.
                let code = code.get(..64).unwrap_or(code);
                metrics.errors.with_label_values(&[code]).inc();
            }
        }
        Err(err) => {
            let status = status_class(err.as_response_error().status_code().as_u16());
            observe(
                &metrics,
                [method, super::request_id::UNMATCHED, status],
                elapsed,
            );
        }
    }
    served
}

fn observe(metrics: &galley_metrics::Metrics, labels: [&str; 3], seconds: f64) {
    metrics.http_requests.with_label_values(&labels).inc();
    metrics
        .http_duration
        .with_label_values(&labels)
        .observe(seconds);
}
