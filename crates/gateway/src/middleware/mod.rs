//! Middleware every request passes, outermost first: telemetry (request id and context,
//! metrics, access log), security headers, CORS, body limit.

pub(crate) mod body_limit;
pub(crate) mod metrics;
pub(crate) mod request_id;
pub(crate) mod telemetry;

use actix_web::middleware::DefaultHeaders;

/// Headers that cost nothing and close whole classes of browser attacks (ASVS V14.4).
pub(crate) fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("x-content-type-options", "nosniff"))
        .add(("referrer-policy", "no-referrer"))
        .add(("x-frame-options", "DENY"))
}
