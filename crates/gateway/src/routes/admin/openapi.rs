//! `GET /admin/v1/openapi.json`: the admin API described in OpenAPI 3.1. Public: it holds
//! shapes, not data. The black-box suite checks that every admin route is in it.

use actix_web::{HttpResponse, web};

const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/openapi.json")
            .route(web::get().to(get_openapi))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(DOCUMENT)
}
