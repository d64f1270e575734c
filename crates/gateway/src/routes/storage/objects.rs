//! `/storage/v1/object`: uploads (raw body or multipart form), downloads (with ranges,
//! validators, and as attachments where the content could run as this origin), info,
//! listing, move, copy, remove, and signed URLs.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use futures_util::StreamExt;
use galley_storage::objects::{ListBody, MoveBody};
use galley_storage::{
    Caller, ObjectInfo, ObjectRead, ReadMode, Storage, StorageError, UploadMeta, UploadTarget,
};
use serde::Deserialize;

use super::resource;
use super::{answer, caller, header, optional_caller, read_json, refused, storage};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/object/list/{bucket}").route(web::post().to(list)))
        .service(resource("/object/move").route(web::post().to(move_object)))
        .service(resource("/object/copy").route(web::post().to(copy_object)))
        .service(resource("/object/sign/{bucket}").route(web::post().to(sign_many)))
        .service(
            resource("/object/sign/{bucket}/{key:.*}")
                .route(web::post().to(sign))
                .route(web::get().to(signed_download)),
        )
        .service(
            resource("/object/upload/sign/{bucket}/{key:.*}")
                .route(web::post().to(sign_upload))
                .route(web::put().to(signed_upload)),
        )
        .service(
            reading("/object/info/public/{bucket}/{key:.*}", ReadMode::Public)
                .route(web::get().to(info)),
        )
        .service(
            reading(
                "/object/info/authenticated/{bucket}/{key:.*}",
                ReadMode::Authenticated,
            )
            .route(web::get().to(info)),
        )
        .service(
            reading("/object/info/{bucket}/{key:.*}", ReadMode::Any).route(web::get().to(info)),
        )
        .service(
            reading("/object/public/{bucket}/{key:.*}", ReadMode::Public)
                .route(web::get().to(download))
                .route(web::head().to(download)),
        )
        .service(
            reading(
                "/object/authenticated/{bucket}/{key:.*}",
                ReadMode::Authenticated,
            )
            .route(web::get().to(download))
            .route(web::head().to(download)),
        )
        .service(resource("/object/{bucket}").route(web::delete().to(remove)))
        .service(
            reading("/object/{bucket}/{key:.*}", ReadMode::Any)
                .route(web::get().to(download))
                .route(web::head().to(download))
                .route(web::post().to(upload))
                .route(web::put().to(upload))
                .route(web::delete().to(delete_one)),
        );
}

/// A resource whose reads follow `mode` (which route reads: public, authenticated, any).
pub(super) fn reading(path: &str, mode: ReadMode) -> actix_web::Resource {
    resource(path).app_data(web::Data::new(mode))
}

/// Who reads by `mode`: nobody in particular (public), a verified token's holder
/// (authenticated), or either (any: an invalid token reads as nobody, as in Supabase).
pub(super) fn reader(
    mode: ReadMode,
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Caller>, StorageError> {
    match mode {
        ReadMode::Public => Ok(None),
        ReadMode::Authenticated => caller(req, state).map(Some),
        ReadMode::Any => Ok(optional_caller(req, state)),
    }
}

type Target = web::Path<(String, String)>;

// Uploads.

/// The user metadata of a raw upload: `x-metadata`, base64 of a JSON object (anything
/// else is ignored, as Supabase ignores it).
fn header_metadata(req: &HttpRequest) -> Option<serde_json::Value> {
    let encoded = header(req, "x-metadata")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&decoded)
        .ok()
        .filter(serde_json::Value::is_object)
}

fn is_multipart(req: &HttpRequest) -> bool {
    header(req, "content-type").is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    })
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    header(req, "content-length").and_then(|v| v.trim().parse().ok())
}

/// Receives an upload's body, raw or as a form, judges it and stores it as `caller`.
pub(crate) async fn receive(
    req: &HttpRequest,
    payload: web::Payload,
    storage: &Storage,
    caller: &Caller,
    target: &UploadTarget,
    operation: &str,
) -> Result<String, StorageError> {
    if !is_multipart(req) {
        let meta = UploadMeta {
            content_type: header(req, "content-type")
                .filter(|ct| !ct.trim().is_empty())
                .unwrap_or("application/octet-stream")
                .to_owned(),
            cache_control: header(req, "cache-control")
                .unwrap_or("no-cache")
                .to_owned(),
            user_metadata: header_metadata(req),
            declared_length: declared_length(req),
        };
        let limit = storage
            .prepare_upload(caller, target, &meta, operation)
            .await?;
        return storage
            .finish_upload(caller, target, &meta, limit, payload)
            .await;
    }
    let mut form = actix_multipart::Multipart::new(req.headers(), payload);
    let mut cache_control = None;
    let mut content_type = None;
    let mut user_metadata = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|err| StorageError::invalid_request(err.to_string()))?;
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = field
            .content_disposition()
            .is_some_and(|cd| cd.get_filename().is_some())
            || name.is_empty();
        if is_file {
            let meta = UploadMeta {
                content_type: content_type
                    .clone()
                    .or_else(|| field.content_type().map(|m| m.to_string()))
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                cache_control: cache_control.unwrap_or_else(|| "no-cache".to_owned()),
                user_metadata,
                declared_length: None,
            };
            let limit = storage
                .prepare_upload(caller, target, &meta, operation)
                .await?;
            return storage
                .finish_upload(caller, target, &meta, limit, Box::pin(field))
                .await;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|err| StorageError::invalid_request(err.to_string()))?;
            if value.len() + chunk.len() > 1024 * 1024 + 1 {
                return Err(if name == "metadata" || name == "userMetadata" {
                    StorageError::user_metadata_too_large()
                } else {
                    StorageError::entity_too_large()
                });
            }
            value.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&value).into_owned();
        match name.as_str() {
            "cacheControl" => cache_control = Some(format!("max-age={text}")),
            "contentType" => content_type = Some(text),
            "metadata" | "userMetadata" if user_metadata.is_none() => {
                if text.len() > 1024 * 1024 {
                    return Err(StorageError::user_metadata_too_large());
                }
                user_metadata = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .filter(serde_json::Value::is_object);
            }
            _ => {}
        }
    }
    Err(StorageError::invalid_request("No content provided"))
}

fn uploaded(id: String, target: &UploadTarget) -> String {
    // `Id` then `Key`, Supabase's order (serde_json's sorted keys agree).
    serde_json::json!({ "Id": id, "Key": format!("{}/{}", target.bucket, target.key) }).to_string()
}

/// `POST` uploads (`x-upsert` to overwrite), `PUT` updates (always overwrites).
async fn upload(
    req: HttpRequest,
    path: Target,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let update = req.method() == Method::PUT;
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        super::upload_allowed(&req, &state, &caller)?;
        let (bucket, key) = path.into_inner();
        let target = UploadTarget {
            bucket,
            key,
            upsert: update || header(&req, "x-upsert") == Some("true"),
        };
        let operation = if update {
            "storage.object.upload_update"
        } else {
            "storage.object.upload"
        };
        let id = receive(&req, payload, storage, &caller, &target, operation).await?;
        Ok(uploaded(id, &target))
    };
    answer(run.await)
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    pub(super) token: Option<String>,
    pub(super) download: Option<String>,
}

/// A signed URL's query and its token's claims, verified for `scope` on `bucket/key`.
pub(super) fn signed(
    req: &HttpRequest,
    storage: &Storage,
    scope: &str,
    bucket: &str,
    key: &str,
) -> Result<(TokenQuery, galley_storage::SignedClaims), StorageError> {
    let query = token_query(req)?;
    let claims = storage.signer().verify(
        query.token.as_deref().unwrap_or_default(),
        scope,
        &format!("{bucket}/{key}"),
    )?;
    Ok((query, claims))
}

fn token_query(req: &HttpRequest) -> Result<TokenQuery, StorageError> {
    let query: TokenQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|err| StorageError::validation(err.to_string()))?;
    if query.token.is_none() {
        return Err(StorageError::validation(
            "querystring must have required property 'token'",
        ));
    }
    Ok(query)
}

async fn sign_upload(req: HttpRequest, path: Target, state: web::Data<AppState>) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let (bucket, key) = path.into_inner();
        let target = UploadTarget {
            bucket,
            key,
            upsert: header(&req, "x-upsert") == Some("true"),
        };
        let meta = UploadMeta {
            content_type: header(&req, "content-type")
                .filter(|ct| !ct.starts_with("application/json"))
                .unwrap_or("application/octet-stream")
                .to_owned(),
            cache_control: "no-cache".to_owned(),
            user_metadata: header_metadata(&req),
            declared_length: None,
        };
        storage.sign_upload(&caller, &target, &meta).await
    };
    answer(run.await)
}

async fn signed_upload(
    req: HttpRequest,
    path: Target,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let (bucket, key) = path.into_inner();
        let (_, claims) = signed(&req, storage, "upload", &bucket, &key)?;
        let caller = Storage::signed_uploader(&claims);
        super::upload_allowed(&req, &state, &caller)?;
        let target = UploadTarget {
            bucket,
            key,
            upsert: claims.upsert.unwrap_or(false),
        };
        receive(
            &req,
            payload,
            storage,
            &caller,
            &target,
            "storage.object.upload_signed",
        )
        .await?;
        Ok(serde_json::json!({ "Key": format!("{}/{}", target.bucket, target.key) }).to_string())
    };
    answer(run.await)
}

// Downloads.

/// A `Range: bytes=…` header against an object of `size` bytes: `None` for the whole
/// object (no header, or several ranges, which are served whole), an error when it cannot
/// be satisfied.
fn range(req: &HttpRequest, size: u64) -> Result<Option<std::ops::Range<u64>>, StorageError> {
    let Some(value) = header(req, "range") else {
        return Ok(None);
    };
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(StorageError::invalid_range)?;
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec
        .split_once('-')
        .ok_or_else(StorageError::invalid_range)?;
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| StorageError::invalid_range())
    };
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        (true, true) => return Err(StorageError::invalid_range()),
        (true, false) => {
            let suffix = number(end)?;
            if suffix == 0 {
                return Err(StorageError::invalid_range());
            }
            size.saturating_sub(suffix)..size
        }
        (false, true) => number(start)?..size,
        (false, false) => {
            let (start, end) = (number(start)?, number(end)?);
            if end < start {
                return Err(StorageError::invalid_range());
            }
            start..(end + 1).min(size)
        }
    };
    if range.start >= size {
        return Err(StorageError::invalid_range());
    }
    Ok(Some(range))
}

/// Whether the client's copy is current (`If-None-Match`, else `If-Modified-Since`).
fn not_modified(object: &ObjectRead, req: &HttpRequest) -> bool {
    if let Some(tags) = header(req, "if-none-match") {
        let etag = object.etag();
        return tags.split(',').any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    }
    let since =
        header(req, "if-modified-since").and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok());
    match (since, object.last_modified()) {
        (Some(since), Some(modified)) => modified.timestamp() <= since.timestamp(),
        _ => false,
    }
}

/// `download=` (an attachment) or `download=<name>` (one with that name).
pub(super) fn disposition(download: Option<&str>, active: bool) -> Option<String> {
    // What JavaScript's encodeURIComponent leaves as it is.
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    let encode = |name: &str| percent_encoding::utf8_percent_encode(name, COMPONENT).to_string();
    match download {
        Some("") => Some("attachment;".to_owned()),
        Some(name) => {
            let name = encode(name);
            Some(format!(
                "attachment; filename={name}; filename*=UTF-8''{name}"
            ))
        }
        None if active => Some("attachment;".to_owned()),
        None => None,
    }
}

/// How a download is served: how its bytes' headers are set.
struct Serve<'a> {
    /// A signed URL's expiry, sent as `Expires` instead of `Cache-Control`.
    expires: Option<i64>,
    download: Option<&'a str>,
}

/// What every answer carrying an object's bytes says: never run as this origin's page,
/// never indexed, when it last changed, and how long it may be kept (a signed URL's
/// expiry, else the object's own `Cache-Control`).
pub(super) fn served_headers(
    response: &mut actix_web::HttpResponseBuilder,
    object: &ObjectRead,
    expires: Option<i64>,
) {
    const HTTP_DATE: &str = "%a, %d %b %Y %H:%M:%S GMT";
    response
        .insert_header(("x-robots-tag", "none"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ));
    if let Some(modified) = object.last_modified() {
        response.insert_header((
            header::LAST_MODIFIED,
            modified.format(HTTP_DATE).to_string(),
        ));
    }
    match expires {
        Some(exp) => {
            let when = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
            response.insert_header((header::EXPIRES, when.format(HTTP_DATE).to_string()));
        }
        None => {
            response.insert_header((header::CACHE_CONTROL, object.cache_control().to_owned()));
        }
    }
}

async fn serve(
    req: &HttpRequest,
    storage: &Storage,
    find: impl AsyncFn() -> Result<ObjectRead, StorageError>,
    how: Serve<'_>,
) -> Result<HttpResponse, StorageError> {
    let mut object = find().await?;
    for attempt in 0..2 {
        let mut response = HttpResponse::build(StatusCode::OK);
        let mimetype = object.mimetype().to_owned();
        let active = galley_storage::rules::is_active_content(&mimetype)
            && !storage.config().serve_active_content_inline;
        let content_type = if mimetype.to_ascii_lowercase().contains("text/html") && active {
            "text/plain".to_owned()
        } else {
            mimetype
        };
        response.insert_header((header::ACCEPT_RANGES, "bytes"));
        if !object.etag().is_empty() {
            response.insert_header((header::ETAG, object.etag().to_owned()));
        }
        served_headers(&mut response, &object, how.expires);
        if let Some(value) = disposition(how.download, active) {
            response.insert_header((header::CONTENT_DISPOSITION, value));
        }
        if not_modified(&object, req) {
            return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
        }
        let size = object.size();
        let wanted = range(req, size)?;
        response.insert_header((header::CONTENT_TYPE, content_type));
        if req.method() == Method::HEAD {
            response.no_chunking(size);
            return Ok(response.finish());
        }
        match storage.bytes(&object, wanted.clone()).await? {
            Some(download) => {
                if let Some(range) = &wanted {
                    response.status(StatusCode::PARTIAL_CONTENT).insert_header((
                        header::CONTENT_RANGE,
                        format!("bytes {}-{}/{}", range.start, range.end - 1, download.size),
                    ));
                }
                let length = download.range.end - download.range.start;
                response.no_chunking(length);
                return Ok(response.streaming(download.body));
            }
            // Overwritten since the row was read: read it again, once.
            None if attempt == 0 => object = find().await?,
            None => break,
        }
    }
    tracing::error!("an object's row names bytes the store does not hold");
    Err(StorageError::no_such_key())
}

/// An object served to an admin: always as an attachment named after the object, so
/// nothing stored ever renders on the admin UI's origin.
pub(crate) async fn serve_to_admin(
    req: &HttpRequest,
    storage: &Storage,
    bucket: &str,
    key: &str,
) -> Result<HttpResponse, StorageError> {
    let service = Caller::service();
    let name = key.rsplit('/').next().unwrap_or(key);
    serve(
        req,
        storage,
        async || {
            storage
                .find(
                    Some(&service),
                    bucket,
                    key,
                    ReadMode::Authenticated,
                    "storage.object.get_admin",
                )
                .await
        },
        Serve {
            expires: None,
            download: Some(name),
        },
    )
    .await
}

pub(super) fn download_query(req: &HttpRequest) -> Option<String> {
    #[derive(Deserialize)]
    struct Query {
        download: Option<String>,
    }
    serde_urlencoded::from_str::<Query>(req.query_string())
        .ok()
        .and_then(|q| q.download)
}

async fn download(
    req: HttpRequest,
    path: Target,
    mode: web::Data<ReadMode>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mode = **mode;
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = reader(mode, &req, &state)?;
        let (bucket, key) = path.into_inner();
        let download = download_query(&req);
        serve(
            &req,
            storage,
            async || {
                storage
                    .find(caller.as_ref(), &bucket, &key, mode, "storage.object.get")
                    .await
            },
            Serve {
                expires: None,
                download: download.as_deref(),
            },
        )
        .await
    };
    match run.await {
        Ok(response) => response,
        Err(err) if req.method() == Method::HEAD => {
            let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            HttpResponse::build(status).finish()
        }
        Err(err) => refused(&err),
    }
}

async fn signed_download(
    req: HttpRequest,
    path: Target,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let (bucket, key) = path.into_inner();
        let (query, claims) = signed(&req, storage, "download", &bucket, &key)?;
        let service = Caller::service();
        serve(
            &req,
            storage,
            async || {
                storage
                    .find(
                        Some(&service),
                        &bucket,
                        &key,
                        ReadMode::Authenticated,
                        "storage.object.get_signed",
                    )
                    .await
            },
            Serve {
                expires: Some(claims.exp),
                download: query.download.as_deref(),
            },
        )
        .await
    };
    match run.await {
        Ok(response) => response,
        Err(err) => refused(&err),
    }
}

async fn info(
    req: HttpRequest,
    path: Target,
    mode: web::Data<ReadMode>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mode = **mode;
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = reader(mode, &req, &state)?;
        let (bucket, key) = path.into_inner();
        let object = storage
            .find(caller.as_ref(), &bucket, &key, mode, "storage.object.info")
            .await?;
        let body = serde_json::to_string(&ObjectInfo::of(&object))
            .map_err(|_| StorageError::internal())?;
        let mut response = HttpResponse::Ok();
        response
            .content_type("application/json; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, object.cache_control().to_owned()));
        if !object.etag().is_empty() {
            response.insert_header((header::ETAG, object.etag().to_owned()));
        }
        Ok(response.body(body))
    };
    match run.await {
        Ok(response) => response,
        Err(err) => refused(&err),
    }
}

// Listing, moving, copying, removing, signing.

async fn list(
    req: HttpRequest,
    bucket: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body: ListBody = read_json(payload).await?;
        storage.list(&caller, &bucket, &body).await
    };
    answer(run.await)
}

async fn move_object(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body: MoveBody = read_json(payload).await?;
        storage.move_object(&caller, &body).await
    };
    answer(run.await)
}

async fn copy_object(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body: MoveBody = read_json(payload).await?;
        let upsert = header(&req, "x-upsert") == Some("true");
        storage.copy_object(&caller, &body, upsert).await
    };
    answer(run.await)
}

#[derive(Deserialize)]
struct RemoveBody {
    #[serde(default)]
    prefixes: serde_json::Value,
}

async fn remove(
    req: HttpRequest,
    bucket: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body: RemoveBody = read_json(payload).await?;
        storage.remove(&caller, &bucket, &body.prefixes).await
    };
    answer(run.await)
}

/// `DELETE /object/{bucket}/{key}`: one object; refused when the caller may not delete it.
async fn delete_one(req: HttpRequest, path: Target, state: web::Data<AppState>) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let (bucket, key) = path.into_inner();
        galley_storage::rules::check_key(&key)?;
        let removed = storage
            .remove(&caller, &bucket, &serde_json::json!([key]))
            .await?;
        if removed == "[]" {
            storage
                .find(
                    Some(&caller),
                    &bucket,
                    &key,
                    ReadMode::Authenticated,
                    "storage.object.delete",
                )
                .await?;
            return Err(StorageError::access_denied("Access denied"));
        }
        Ok(r#"{"message":"Successfully deleted"}"#.to_owned())
    };
    answer(run.await)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignBody {
    expires_in: Option<serde_json::Value>,
    transform: Option<serde_json::Value>,
    #[serde(default)]
    paths: serde_json::Value,
}

async fn sign(
    req: HttpRequest,
    path: Target,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body: SignBody = read_json(payload).await?;
        let (bucket, key) = path.into_inner();
        storage
            .sign(&caller, &bucket, &key, &body.expires_in, body.transform)
            .await
    };
    answer(run.await)
}

async fn sign_many(
    req: HttpRequest,
    bucket: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let run = async {
        let storage = storage(&req, &state)?;
        let caller = caller(&req, &state)?;
        let body: SignBody = read_json(payload).await?;
        storage
            .sign_many(&caller, &bucket, &body.expires_in, &body.paths)
            .await
    };
    answer(run.await)
}
