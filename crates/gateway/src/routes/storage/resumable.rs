//! `/storage/v1/upload/resumable`: TUS 1.0.0, as tus-js-client and Uppy speak it to
//! Supabase Storage. Refusals in the protocol are plain text with their status; a token
//! that does not verify is refused in Supabase's JSON, as before any TUS handling.
//! `/upload/resumable/sign` is the same protocol authorised by a signed upload URL's
//! token in `x-signature` instead of a caller's token: the upload runs as the token's
//! signer, only for the object the token names.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use galley_storage::resumable::{Patched, TusRefusal, Upload};
use galley_storage::{Caller, Storage, StorageError};

use super::{caller, header, refused, resource, storage};
use crate::state::AppState;

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
const OFFSET_STREAM: &str = "application/offset+octet-stream";

/// Whether a route is the signed one (`x-signature`) or the caller's.
#[derive(Clone, Copy)]
struct Signed(bool);

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    // The signed routes first: `/upload/resumable/{id}` would take `sign` for an id.
    for (base, signed) in [
        ("/upload/resumable/sign", true),
        ("/upload/resumable", false),
    ] {
        cfg.service(
            resource(base)
                .app_data(web::Data::new(Signed(signed)))
                .route(web::post().to(create))
                .route(web::method(actix_web::http::Method::OPTIONS).to(options)),
        )
        .service(
            resource(&format!("{base}/{{id}}"))
                .app_data(web::Data::new(Signed(signed)))
                .route(web::head().to(head))
                .route(web::patch().to(patch))
                .route(web::delete().to(terminate))
                .route(web::method(actix_web::http::Method::OPTIONS).to(options)),
        );
    }
}

/// The signer of the upload token in `x-signature`, when it is for `bucket/key`.
fn signed_caller(
    req: &HttpRequest,
    storage: &Storage,
    bucket: &str,
    key: &str,
) -> Result<(Caller, Option<bool>), StorageError> {
    let Some(token) = header(req, "x-signature") else {
        return Err(StorageError::validation(
            "headers must have required property 'x-signature'",
        ));
    };
    let claims = storage
        .signer()
        .verify(token, "upload", &format!("{bucket}/{key}"))?;
    Ok((Storage::signed_uploader(&claims), claims.upsert))
}

fn builder(status: StatusCode) -> HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response.insert_header(("tus-resumable", TUS_VERSION));
    response
}

fn tus_refused(refusal: TusRefusal) -> HttpResponse {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    builder(status)
        .content_type("text/plain; charset=utf-8")
        .insert_header(("x-error-code", "tus"))
        .body(format!("{}\n", refusal.message))
}

fn refusal(status: u16, message: &str) -> HttpResponse {
    tus_refused(TusRefusal {
        status,
        message: message.to_owned(),
    })
}

/// Requests must speak TUS 1.0.0.
fn version_refused(req: &HttpRequest) -> Option<HttpResponse> {
    (header(req, "tus-resumable") != Some(TUS_VERSION)).then(|| {
        let mut response = refusal(412, "Tus-Resumable Required");
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("tus-version"),
            actix_web::http::header::HeaderValue::from_static(TUS_VERSION),
        );
        response
    })
}

fn expires(upload: &Upload) -> String {
    upload
        .expires_at
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

async fn options(state: web::Data<AppState>) -> HttpResponse {
    let max = state
        .storage
        .as_ref()
        .map_or(0, |storage| storage.max_upload());
    builder(StatusCode::NO_CONTENT)
        .insert_header(("tus-version", TUS_VERSION))
        .insert_header(("tus-extension", EXTENSIONS))
        .insert_header(("tus-max-size", max.to_string()))
        .finish()
}

async fn create(
    req: HttpRequest,
    payload: web::Payload,
    signed: web::Data<Signed>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = version_refused(&req) {
        return refused;
    }
    let storage = match storage(&req, &state) {
        Ok(storage) => storage,
        Err(err) => return refused(&err),
    };
    let (caller, signed_upsert) = if signed.0 {
        // The token names the object: the metadata must name the same one.
        let pairs = match galley_storage::resumable::parse_metadata(
            header(&req, "upload-metadata").unwrap_or_default(),
        ) {
            Ok(pairs) => pairs,
            Err(refusal) => return tus_refused(refusal),
        };
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        match signed_caller(&req, storage, get("bucketName"), get("objectName")) {
            Ok((caller, upsert)) => (caller, upsert),
            Err(err) => return refused(&err),
        }
    } else {
        match caller(&req, &state) {
            Ok(caller) => (caller, None),
            Err(err) => return refused(&err),
        }
    };
    if let Err(err) = super::upload_allowed(&req, &state, &caller) {
        return refused(&err);
    }
    let Some(length) = header(&req, "upload-length") else {
        return refusal(400, "Upload-Length or Upload-Defer-Length header required");
    };
    let Ok(length) = length.parse::<u64>() else {
        return refusal(400, "Invalid Upload-Length header");
    };
    if length > storage.max_upload() {
        return refusal(413, "Maximum size exceeded");
    }
    let Some(metadata) = header(&req, "upload-metadata") else {
        return refusal(400, "Metadata header is required");
    };
    // A signed upload replaces only when its token says so, whatever the client asks.
    let upsert = if signed.0 {
        signed_upsert.unwrap_or(false)
    } else {
        header(&req, "x-upsert") == Some("true")
    };
    let upload = match storage
        .create_upload(&caller, length, metadata, upsert)
        .await
    {
        Ok(upload) => upload,
        Err(refusal) => return tus_refused(refusal),
    };
    let mut response = builder(StatusCode::CREATED);
    response
        .insert_header((
            "location",
            format!(
                "{}/upload/resumable/{}{}",
                super::PREFIX,
                if signed.0 { "sign/" } else { "" },
                upload.id
            ),
        ))
        .insert_header(("upload-expires", expires(&upload)));
    // creation-with-upload: the first bytes may come with the creation.
    if header(&req, "content-type") == Some(OFFSET_STREAM) {
        match storage.patch_upload(&upload, 0, payload).await {
            Ok(Patched::Partial(offset) | Patched::Complete(offset)) => {
                response.insert_header(("upload-offset", offset.to_string()));
            }
            Err(refusal) => return tus_refused(refusal),
        }
    }
    response.finish()
}

/// The upload a request names, for its caller (or for the holder of a token signed for
/// its object).
async fn found(
    req: &HttpRequest,
    state: &AppState,
    signed: Signed,
    id: &str,
) -> Result<Upload, HttpResponse> {
    if let Some(refused) = version_refused(req) {
        return Err(refused);
    }
    let storage = storage(req, state).map_err(|err| refused(&err))?;
    if signed.0 {
        let upload = storage
            .find_upload(&Caller::service(), id)
            .await
            .map_err(tus_refused)?;
        let (caller, _) = signed_caller(req, storage, &upload.target.bucket, &upload.target.key)
            .map_err(|err| refused(&err))?;
        // The upload must have been made with such a token, by the same signer (not,
        // say, with the service key for the same object).
        if caller.role != upload.caller.role || caller.claims != upload.caller.claims {
            return Err(tus_refused(TusRefusal {
                status: 404,
                message: "The file for this url was not found".to_owned(),
            }));
        }
        return Ok(upload);
    }
    let caller = caller(req, state).map_err(|err| refused(&err))?;
    storage.find_upload(&caller, id).await.map_err(tus_refused)
}

async fn head(
    req: HttpRequest,
    id: web::Path<String>,
    signed: web::Data<Signed>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match found(&req, &state, **signed, &id).await {
        Ok(upload) => builder(StatusCode::OK)
            .insert_header(("cache-control", "no-store"))
            .insert_header(("upload-offset", upload.received.to_string()))
            .insert_header(("upload-length", upload.length.to_string()))
            .insert_header(("upload-metadata", upload.raw_metadata.clone()))
            .insert_header(("upload-expires", expires(&upload)))
            .finish(),
        Err(response) => {
            // A HEAD answer has no body.
            let (head, _) = response.into_parts();
            head.set_body(actix_web::body::BoxBody::new(()))
        }
    }
}

async fn patch(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    signed: web::Data<Signed>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let upload = match found(&req, &state, **signed, &id).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    if header(&req, "content-type") != Some(OFFSET_STREAM) {
        return refusal(403, "Content-Type header required");
    }
    let Some(offset) = header(&req, "upload-offset").and_then(|o| o.parse::<u64>().ok()) else {
        return refusal(403, "Upload-Offset header required");
    };
    let Ok(storage) = storage(&req, &state) else {
        return refusal(404, "Not Found");
    };
    match storage.patch_upload(&upload, offset, payload).await {
        Ok(Patched::Partial(offset)) => builder(StatusCode::NO_CONTENT)
            .insert_header(("upload-offset", offset.to_string()))
            .insert_header(("upload-expires", expires(&upload)))
            .finish(),
        Ok(Patched::Complete(offset)) => builder(StatusCode::NO_CONTENT)
            .insert_header(("upload-offset", offset.to_string()))
            .insert_header(("tus-complete", "1"))
            .finish(),
        Err(refusal) => tus_refused(refusal),
    }
}

async fn terminate(
    req: HttpRequest,
    id: web::Path<String>,
    signed: web::Data<Signed>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let upload = match found(&req, &state, **signed, &id).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    if let Ok(storage) = storage(&req, &state) {
        storage.terminate_upload(&upload).await;
    }
    builder(StatusCode::NO_CONTENT).finish()
}
