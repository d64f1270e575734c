//! `/storage/v1/render/image`: an image object resized and converted on the way out
//! (`galley_storage::transform`), read as the plain download routes read it —
//! `authenticated` (the caller's rules), `public` (public buckets), `sign` (a signed
//! URL whose token carries the transformations).

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use galley_storage::transform::Transform;
use galley_storage::{Caller, ObjectRead, ReadMode, Storage, StorageError};
use sha2::Digest;

use super::objects::{disposition, download_query, reader, reading, served_headers};
use super::{header, refused, resource, storage};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        reading(
            "/render/image/authenticated/{bucket}/{key:.*}",
            ReadMode::Authenticated,
        )
        .route(web::get().to(render))
        .route(web::head().to(render)),
    )
    .service(
        reading("/render/image/public/{bucket}/{key:.*}", ReadMode::Public)
            .route(web::get().to(render))
            .route(web::head().to(render)),
    )
    .service(
        resource("/render/image/sign/{bucket}/{key:.*}")
            .route(web::get().to(render_signed))
            .route(web::head().to(render_signed)),
    );
}

/// Whether the client takes WebP (so that an image without `format` may become one).
fn accepts_webp(req: &HttpRequest) -> bool {
    header(req, "accept").is_some_and(|accept| accept.contains("image/webp"))
}

/// The validator of one rendering: the object's version, what is done to it, and
/// whether WebP was chosen for the client.
fn etag(object: &ObjectRead, transform: &Transform, webp: bool) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(object.etag().as_bytes());
    hash.update(serde_json::to_vec(transform).unwrap_or_default());
    hash.update([u8::from(webp)]);
    format!("W/\"{}\"", &hex::encode(hash.finalize())[..32])
}

async fn respond(
    req: &HttpRequest,
    storage: &Storage,
    object: ObjectRead,
    transform: &Transform,
    expires: Option<i64>,
    download: Option<&str>,
) -> Result<HttpResponse, StorageError> {
    let webp = accepts_webp(req);
    let tag = etag(&object, transform, webp);
    let mut response = HttpResponse::build(StatusCode::OK);
    response
        .insert_header((header::ETAG, tag.clone()))
        .insert_header((header::VARY, "Accept"));
    served_headers(&mut response, &object, expires);
    if let Some(value) = disposition(download, false) {
        response.insert_header((header::CONTENT_DISPOSITION, value));
    }
    let fresh = header(req, "if-none-match").is_some_and(|tags| {
        tags.split(',')
            .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == &tag[2..])
    });
    if fresh {
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }
    let rendered = storage
        .render(&object, transform, webp)
        .await?
        .ok_or_else(StorageError::no_such_key)?;
    response.insert_header((header::CONTENT_TYPE, rendered.content_type));
    if req.method() == Method::HEAD {
        response.no_chunking(rendered.bytes.len() as u64);
        return Ok(response.finish());
    }
    Ok(response.body(rendered.bytes))
}

fn answer(req: &HttpRequest, result: Result<HttpResponse, StorageError>) -> HttpResponse {
    match result {
        Ok(response) => response,
        Err(err) if req.method() == Method::HEAD => HttpResponse::build(
            StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        )
        .finish(),
        Err(err) => refused(&err),
    }
}

async fn render(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    mode: web::Data<ReadMode>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mode = **mode;
    let run = async {
        let storage = storage(&req, &state)?;
        let transform = Transform::from_query(req.query_string())?;
        let caller = reader(mode, &req, &state)?;
        let (bucket, key) = path.into_inner();
        let object = storage
            .find(
                caller.as_ref(),
                &bucket,
                &key,
                mode,
                "storage.object.render",
            )
            .await?;
        let download = download_query(&req);
        respond(&req, storage, object, &transform, None, download.as_deref()).await
    };
    let result = run.await;
    answer(&req, result)
}

async fn render_signed(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let (bucket, key) = path.into_inner();
        let (query, claims) = super::objects::signed(&req, storage, "download", &bucket, &key)?;
        // The token's transformations, never the query's: a signed URL cannot be
        // changed into another rendering.
        let transform = match &claims.transformations {
            Some(serde_json::Value::Object(fields)) => Transform::from_fields(fields)?,
            _ => Transform::default(),
        };
        let service = Caller::service();
        let object = storage
            .find(
                Some(&service),
                &bucket,
                &key,
                ReadMode::Authenticated,
                "storage.object.render_signed",
            )
            .await?;
        respond(
            &req,
            storage,
            object,
            &transform,
            Some(claims.exp),
            query.download.as_deref(),
        )
        .await
    };
    let result = run.await;
    answer(&req, result)
}
