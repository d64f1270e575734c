//! Counts and times every request by method, route template (the pattern that matched,
//! `unmatched` for anything else, so a scan of random paths adds no series) and status
//! class, tracks requests in flight, and counts error responses by their code.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use galley_metrics::status_class;

use crate::state::AppState;

/// The header an error response names its code in (`x-sb-error-code` on `/auth/v1`).
pub(crate) const ERROR_CODE: &str = "x-error-code";

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
    let (status, route, code) = match &served {
        Ok(response) => {
            let code = response
                .headers()
                .get(ERROR_CODE)
                .or_else(|| response.headers().get("x-sb-error-code"))
                .and_then(|v| v.to_str().ok())
                .map(|code| code.chars().take(64).collect::<String>());
            let route = {
                use actix_web::HttpMessage;
                response
                    .request()
                    .extensions()
                    .get::<super::request_id::RouteTemplate>()
                    .map(|route| route.0.clone())
            };
            (response.status().as_u16(), route, code)
        }
        Err(err) => (err.as_response_error().status_code().as_u16(), None, None),
    };
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let labels = [method, route.as_str(), status_class(status)];
    metrics.http_requests.with_label_values(&labels).inc();
    metrics
        .http_duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Some(code) = code {
        metrics.errors.with_label_values(&[code.as_str()]).inc();
    }
    served
}
