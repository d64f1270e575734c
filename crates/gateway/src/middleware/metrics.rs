//! The request metrics `telemetry` records: every request counted and timed by method,
//! route template (the pattern that matched, `unmatched` for anything else, so a scan of
//! random paths adds no series) and status class, requests in flight, and error responses
//! by their code.

use actix_web::dev::ServiceResponse;
use actix_web::http::Method;
use actix_web::http::header::HeaderName;
use galley_metrics::{Metrics, status_class};

/// The header an error response names its code in.
pub(crate) const ERROR_CODE: HeaderName = HeaderName::from_static("x-error-code");
/// The same on `/auth/v1`, in GoTrue's name.
pub(crate) const SB_ERROR_CODE: HeaderName = HeaderName::from_static("x-sb-error-code");

/// The method label: the standard methods by name, anything else as `OTHER`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// Counts a request in flight for as long as it lives, including when its future is dropped
/// unfinished (as when a graceful shutdown's timeout runs out).
pub(crate) struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    pub(crate) fn start(metrics: &'a Metrics) -> Self {
        metrics.http_in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.http_in_flight.dec();
    }
}

/// Counts and times a served request, and counts the error code its response names.
pub(crate) fn record<B>(
    metrics: &Metrics,
    method: &str,
    route: &str,
    response: &ServiceResponse<B>,
    seconds: f64,
) {
    let status = status_class(response.status().as_u16());
    observe(metrics, [method, route, status], seconds);
    let headers = response.headers();
    let code = headers
        .get(ERROR_CODE)
        .or_else(|| headers.get(SB_ERROR_CODE))
        .and_then(|v| v.to_str().ok());
    if let Some(code) = code {
        // Codes are Galley's own; the cut only bounds a label that should never grow.
        let code = code.get(..64).unwrap_or(code);
        metrics.errors.with_label_values(&[code]).inc();
    }
}

/// Counts and times a request that failed before it had a response.
pub(crate) fn record_failed(metrics: &Metrics, method: &str, status: u16, seconds: f64) {
    observe(
        metrics,
        [method, super::telemetry::UNMATCHED, status_class(status)],
        seconds,
    );
}

fn observe(metrics: &Metrics, labels: [&str; 3], seconds: f64) {
    metrics.http_requests.with_label_values(&labels).inc();
    metrics
        .http_duration
        .with_label_values(&labels)
        .observe(seconds);
}
