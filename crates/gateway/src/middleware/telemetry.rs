//! The outermost middleware. It gives each request its id and context (`request_id`), and
//! once the request is served it puts any error response in the error shape, records the
//! request metrics (`metrics`), writes the access line (one line per request: route
//! template, status, duration, role and user id) and puts the id on the response. One
//! middleware rather than one for each, so the route template is looked up once per
//! request, and not at all when neither the metrics nor the access line want it.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use tracing::Level;

use super::metrics::{self, InFlight};
use super::request_id::{self, RequestContext, Tagged};
use crate::extract::Identity;
use crate::state::AppState;

/// The route label of a request no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

pub(crate) async fn telemetry(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let context = Rc::new(RequestContext::of(&req));
    let method = metrics::method_label(req.method());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone())
        .filter(|metrics| metrics.track_requests);
    let in_flight = metrics.as_deref().map(InFlight::start);
    let started = Instant::now();
    let served = request_id::serve(context.clone(), next.call(req)).await;
    let elapsed = started.elapsed();
    drop(in_flight);
    let mut response = match served {
        Ok(response) => request_id::in_error_shape(response.map_into_boxed_body(), context.id()),
        // The error becomes a response later, outside this middleware; tagged, its body and
        // headers still carry the id.
        Err(inner) => {
            let status = inner.as_response_error().status_code();
            if let Some(metrics) = &metrics {
                metrics::record_failed(metrics, method, status.as_u16(), elapsed.as_secs_f64());
            }
            request_id::in_request(context.clone(), || {
                access_line(status, elapsed, UNMATCHED, None);
            });
            return Err(Tagged { inner, context }.into());
        }
    };
    let status = response.status();
    // A failed request is logged at `error`, whatever the level of the others.
    let logged = tracing::enabled!(Level::INFO) || status.is_server_error();
    let route = if logged || metrics.is_some() {
        response.request().match_pattern()
    } else {
        None
    };
    let route = route.as_deref().unwrap_or(UNMATCHED);
    if let Some(metrics) = &metrics {
        metrics::record(metrics, method, route, &response, elapsed.as_secs_f64());
    }
    if logged {
        let extensions = response.request().extensions();
        let identity = extensions.get::<Identity>();
        request_id::in_request(context.clone(), || {
            access_line(status, elapsed, route, identity);
        });
    }
    request_id::insert_id(response.headers_mut(), context.id());
    Ok(response)
}

/// The request's line in the log.
fn access_line(status: StatusCode, elapsed: Duration, route: &str, identity: Option<&Identity>) {
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    let role = identity.map_or("none", |i| i.role.as_str());
    let user_id = identity.and_then(|i| i.user_id.as_deref()).unwrap_or("");
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            elapsed_ms,
            route,
            role,
            user_id,
            "request failed"
        );
    } else {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms,
            route,
            role,
            user_id,
            "request served"
        );
    }
}
