//! Route table. Each folder or file mirrors a URL prefix and has a `configure`.

pub(crate) mod admin;
mod auth;
pub(crate) mod health;
pub(crate) mod metrics;
mod realtime;
pub(crate) mod rest;
mod storage;
mod ui;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;

pub(crate) use storage::PREFIX as STORAGE_PREFIX;

/// Whether a route reads and limits its request body itself: storage's (uploads to the
/// bucket's object size limit) and the admin API's object uploads.
pub(crate) fn reads_own_body(method: &actix_web::http::Method, path: &str) -> bool {
    path.starts_with(STORAGE_PREFIX)
        || (method == actix_web::http::Method::POST
            && path
                .strip_prefix("/admin/v1/storage/buckets/")
                .is_some_and(|rest| rest.contains("/objects/")))
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    metrics::configure(cfg);
    admin::configure(cfg);
    ui::configure(cfg);
    auth::configure(cfg);
    rest::configure(cfg);
    realtime::configure(cfg);
    storage::configure(cfg);
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found())
}

pub(crate) async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed())
}
