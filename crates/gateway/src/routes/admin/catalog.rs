//! `GET /admin/v1/catalog`: the schema cache as this instance currently sees it.

use actix_web::{HttpResponse, web};

use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/catalog")
            .route(web::get().to(get_catalog))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

async fn get_catalog(_admin: AdminAccess, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&*state.catalog.snapshot())
}
