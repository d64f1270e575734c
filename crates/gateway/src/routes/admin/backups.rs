//! `/admin/v1/backups`: `galley backup` for the admin UI — list, take one now, verify one
//! (restored into a scratch database and compared with its manifest), and download its
//! files. Taking and verifying run in the request: they take seconds for most databases
//! (`scripts/bench-backup`), and the CLI and the schedule remain for the rest.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::{AppState, Backups};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/backups")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/backups/{name}/verify")
            .route(web::post().to(verify))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/backups/{name}/files/{file}")
            .route(web::get().to(download))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

fn service(state: &AppState) -> Result<std::sync::Arc<dyn Backups>, ApiError> {
    state
        .backups
        .clone()
        .ok_or_else(|| ApiError::unavailable("backups are not available on this instance"))
}

fn failed(what: &str, reason: String) -> ApiError {
    tracing::warn!(event = "backup.admin_failed", what, %reason, "a backup operation from the admin UI failed");
    ApiError::invalid("backup_failed", format!("{what} failed: {reason}"))
}

async fn list(_admin: AdminAccess, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let backups = service(&state)?
        .list()
        .await
        .map_err(|e| failed("listing backups", e))?;
    Ok(HttpResponse::Ok().json(backups))
}

async fn create(_admin: AdminAccess, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let created = service(&state)?
        .create()
        .await
        .map_err(|e| failed("the backup", e))?;
    Ok(HttpResponse::Created().json(created))
}

async fn verify(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let verified = service(&state)?
        .verify(name.into_inner())
        .await
        .map_err(|e| failed("verifying", e))?;
    Ok(HttpResponse::Ok().json(json!({ "verified": verified })))
}

async fn download(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, file) = path.into_inner();
    let path = service(&state)?
        .file(name.clone(), file.clone())
        .await
        .map_err(|e| failed("reading the backup", e))?
        .ok_or_else(ApiError::not_found)?;
    let opened = tokio::fs::File::open(&path)
        .await
        .map_err(|err| failed("reading the backup", format!("{}: {err}", path.display())))?;
    let length = opened
        .metadata()
        .await
        .map_err(|err| failed("reading the backup", err.to_string()))?
        .len();
    // Streamed in 64 KiB chunks: a dump of any size, in bounded memory.
    let chunks = futures_util::stream::unfold(opened, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0_u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok::<_, std::io::Error>(web::Bytes::from(buffer)), file))
            }
            Err(err) => Some((Err(err), file)),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("cache-control", "no-store"))
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{name}-{file}\""),
        ))
        .body(actix_web::body::SizedStream::new(length, chunks)))
}
