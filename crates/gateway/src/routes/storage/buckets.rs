//! `/storage/v1/bucket`.

use actix_web::{HttpRequest, HttpResponse, web};
use galley_storage::StorageError;

use super::resource;
use super::{answer, caller, read_json, storage};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/bucket")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(resource("/bucket/{id}/empty").route(web::post().to(empty)))
    .service(
        resource("/bucket/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
}

async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let query: galley_storage::buckets::ListBuckets =
            serde_urlencoded::from_str(req.query_string())
                .map_err(|err| StorageError::validation(err.to_string()))?;
        storage.list_buckets(&caller, &query).await
    };
    answer(run.await)
}

async fn get(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        storage.get_bucket(&caller, &id).await
    };
    answer(run.await)
}

async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body = read_json(payload).await?;
        storage.create_bucket(&caller, &body).await
    };
    answer(run.await)
}

async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body = read_json(payload).await?;
        storage.update_bucket(&caller, &id, &body).await
    };
    answer(run.await)
}

async fn delete(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        storage.delete_bucket(&caller, &id).await
    };
    answer(run.await)
}

async fn empty(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        storage.empty_bucket(&caller, &id).await
    };
    answer(run.await)
}
