//! `/rest/v1`: the PostgREST dialect over the tables in `public`. For now: reads of one
//! table (`GET`, `HEAD`), with select, filters, logic trees, order, limit/offset and the
//! `Range` header, `Prefer: count=exact`, and single-object responses.

mod read;

use actix_web::web;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/rest/v1").configure(read::configure));
}
