//! Galley's HTTP edge. The only crate that knows HTTP: it owns the routes, the middleware
//! every request passes (request id, body limit, CORS, security headers), and the single
//! mapping from errors to statuses (`error.rs`).

mod audit;
mod config;
mod content_type;
mod cors;
mod error;
mod extract;
mod middleware;
mod ratelimit;
mod routes;
mod state;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

pub use config::{ConfigError, DEFAULT_METRICS_LISTEN, HttpConfig, MetricsConfig, RestConfig};
pub use error::{ApiError, ErrorBody};
pub use middleware::request_id::{RequestContext, current_request, in_request};
pub use ratelimit::RateLimitConfig;
pub use state::{AppState, BackupFailure, Backups, OperatorView};

/// JSON bodies: limited, and every refusal in the error shape.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(move |err, _req| {
            use actix_web::error::JsonPayloadError;
            let api = match &err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::payload_too_large(limit)
                }
                JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
                    ApiError::payload_too_large(limit)
                }
                JsonPayloadError::ContentType => ApiError::unsupported_media_type(),
                JsonPayloadError::Deserialize(err) => {
                    ApiError::invalid_body(format!("the body is not valid: {err}"))
                }
                _ => ApiError::invalid_body("the body must be JSON"),
            };
            api.into()
        })
}

/// The metrics listener: `/metrics` and nothing else, on one worker.
pub fn metrics_server(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(routes::metrics::open))
            .default_service(web::to(routes::not_found))
    })
    .disable_signals()
    .workers(1)
    .listen(listener)?
    .run())
}

/// The number of HTTP workers: `http.workers`, or one per core.
pub fn worker_count(config: &HttpConfig) -> usize {
    config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1)
}

/// Builds the HTTP server on an already bound listener. The caller runs the returned
/// future and stops it through its handle; signals are left to the caller so that
/// readiness can drop before the listener closes.
pub fn server(
    listener: TcpListener,
    state: AppState,
    config: &HttpConfig,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let config = config.clone();
    let shutdown = config.shutdown_timeout_secs;
    let workers = worker_count(&config);
    let header_timeout = Duration::from_secs(config.header_timeout_secs);
    let keep_alive = Duration::from_secs(config.keep_alive_secs);
    // actix counts connections per worker.
    let per_worker = config.max_connections.div_ceil(workers);
    let server = HttpServer::new(move || {
        // Runs once on each worker's thread as it starts: its requests use its own shard
        // of the request pool.
        state.pools.api.bind_worker();
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(config.max_body_bytes))
            .app_data(json_config(config.max_body_bytes))
            .app_data(web::QueryConfig::default().error_handler(|err, _req| {
                ApiError::invalid_query(format!("the query string is not valid: {err}")).into()
            }))
            .app_data(web::Data::new(middleware::body_limit::BodyLimit {
                bytes: config.max_body_bytes,
                idle: Duration::from_secs(config.body_timeout_secs),
            }))
            .wrap(actix_web::middleware::from_fn(
                middleware::body_limit::body_limit,
            ))
            .wrap(cors::cors(&config))
            .wrap(middleware::security_headers())
            .wrap(actix_web::middleware::from_fn(
                middleware::telemetry::telemetry,
            ))
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .disable_signals()
    .shutdown_timeout(shutdown)
    // Sent as soon as written: a response going out in more than one segment would
    // otherwise have its last one held by Nagle's algorithm until the client's delayed
    // ACK of the first (actix leaves the OS default, which is Nagle on).
    .tcp_nodelay(true)
    .workers(workers)
    .client_request_timeout(header_timeout)
    .keep_alive(keep_alive)
    .max_connections(per_worker);
    Ok(server.listen(listener)?.run())
}
