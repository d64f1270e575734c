//! `/admin/v1`: Galley's own admin API, for the `service_role` key only.

mod catalog;
mod history;
mod openapi;
mod tables;

use actix_web::web;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/v1")
            .configure(catalog::configure)
            .configure(tables::configure)
            .configure(history::configure)
            .configure(openapi::configure),
    );
}
