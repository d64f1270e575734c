//! `/admin/v1/storage`: buckets for admins — list (with how many objects and bytes each
//! holds), create, update, delete (emptied first when asked), browse a bucket's objects,
//! upload, download (always as an attachment) and remove its objects, and set its
//! access rules from presets (recorded in the schema history as policies on
//! `storage.objects`). Buckets are made and changed by the same operations
//! `/storage/v1` runs, as `service_role`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_schema::{Plan, SchemaChange};
use galley_storage::buckets::BucketBody;
use galley_storage::objects::{ListBody, SortBy};
use galley_storage::presets::{self, BucketRules};
use galley_storage::{Caller, StorageError, UploadMeta, UploadTarget};
use serde::Deserialize;

use super::ChangeOptions;
use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/storage/buckets")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/storage/buckets/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/storage/buckets/{id}/objects")
            .route(web::get().to(objects))
            .route(web::delete().to(remove_objects))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/storage/buckets/{id}/objects/{key:.*}")
            .route(web::get().to(download))
            .route(web::head().to(download))
            .route(web::post().to(upload))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/storage/buckets/{id}/rules")
            .route(web::put().to(set_rules))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

/// A storage refusal in the admin API's error shape.
fn admin_error(err: StorageError) -> ApiError {
    let (status, code) = match err.status {
        404 => (StatusCode::NOT_FOUND, "not_found"),
        409 => (StatusCode::CONFLICT, "conflict"),
        403 => (StatusCode::FORBIDDEN, "forbidden"),
        413 => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        415 | 400 => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_definition"),
        500 => return ApiError::internal(),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    ApiError::with_status(status, code, err.message)
}

fn storage(state: &AppState) -> Result<&galley_storage::Storage, ApiError> {
    state.storage.as_deref().ok_or_else(|| {
        ApiError::conflict(
            "storage_disabled",
            "storage is turned off (storage.enabled)",
        )
    })
}

/// A JSON body as the route's type, or 400 saying why not.
fn body_of<T: serde::de::DeserializeOwned>(
    body: web::Json<serde_json::Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(body.into_inner())
        .map_err(|err| ApiError::invalid_body(format!("the body is not valid: {err}")))
}

/// A JSON text `galley_storage` answered, passed on.
fn json_text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

const LIST: &str = "SELECT coalesce(json_agg(json_build_object('id', b.id, 'name', b.name, \
     'public', b.public, 'file_size_limit', b.file_size_limit, \
     'allowed_mime_types', b.allowed_mime_types, 'created_at', b.created_at, \
     'objects', coalesce(s.objects, 0), 'bytes', coalesce(s.bytes, 0)) ORDER BY b.id), '[]'::json) \
     FROM storage.buckets b LEFT JOIN (SELECT bucket_id, count(*) AS objects, \
       sum((metadata ->> 'size')::bigint) AS bytes FROM storage.objects GROUP BY bucket_id) s \
     ON s.bucket_id = b.id";

async fn list(_admin: AdminAccess, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    storage(&state)?;
    Ok(HttpResponse::Ok().json(state.owner_json(LIST, &[]).await?))
}

async fn get(
    _admin: AdminAccess,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let bucket = storage
        .get_bucket(&Caller::service(), &id)
        .await
        .map_err(admin_error)?;
    let mut bucket: serde_json::Value =
        serde_json::from_str(&bucket).map_err(|_| ApiError::internal())?;
    let names = presets::policy_names(&id);
    let rows = state
        .owner()
        .await?
        .query(presets::READ_RULES, &[&names])
        .await
        .map_err(galley_db::DbError::from)?;
    let policies: Vec<(String, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    bucket["rules"] = serde_json::to_value(presets::rules_from(&id, &policies)).unwrap_or_default();
    Ok(HttpResponse::Ok().json(bucket))
}

async fn create(
    _admin: AdminAccess,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let body: BucketBody = body_of(body)?;
    let made = storage
        .create_bucket(&Caller::service(), &body)
        .await
        .map_err(admin_error)?;
    Ok(HttpResponse::Created()
        .content_type("application/json")
        .body(made))
}

async fn update(
    _admin: AdminAccess,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let body: BucketBody = body_of(body)?;
    storage
        .update_bucket(&Caller::service(), &id, &body)
        .await
        .map(json_text)
        .map_err(admin_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Remove the bucket's objects first.
    #[serde(default)]
    empty: bool,
}

async fn delete(
    _admin: AdminAccess,
    id: web::Path<String>,
    query: web::Query<DeleteQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let service = Caller::service();
    if query.empty {
        storage
            .empty_bucket(&service, &id)
            .await
            .map_err(admin_error)?;
    }
    storage
        .delete_bucket(&service, &id)
        .await
        .map(json_text)
        .map_err(admin_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectsQuery {
    #[serde(default)]
    prefix: String,
    search: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn objects(
    _admin: AdminAccess,
    id: web::Path<String>,
    query: web::Query<ObjectsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let query = query.into_inner();
    let body = ListBody {
        prefix: Some(query.prefix),
        limit: Some(query.limit.unwrap_or(100).clamp(1, 1000).into()),
        offset: Some(query.offset.unwrap_or(0).max(0).into()),
        sort_by: Some(SortBy {
            column: Some("name".to_owned()),
            order: Some("asc".to_owned()),
        }),
        search: query.search,
    };
    storage
        .list(&Caller::service(), &id, &body)
        .await
        .map(json_text)
        .map_err(admin_error)
}

async fn set_rules(
    admin: AdminAccess,
    id: web::Path<String>,
    options: web::Query<ChangeOptions>,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let rules: BucketRules = serde_json::from_value(body.into_inner()).map_err(|err| {
        ApiError::with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definition",
            format!("the rules are not valid: {err}"),
        )
    })?;
    // The bucket must exist.
    storage
        .get_bucket(&Caller::service(), &id)
        .await
        .map_err(admin_error)?;
    let statements = presets::plan(&id, &rules).map_err(|err| {
        ApiError::with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definition",
            err.0,
        )
    })?;
    let change = SchemaChange {
        operation: "set_bucket_rules",
        target: id.clone(),
        before: None,
        after: Some(serde_json::to_value(rules).unwrap_or_default()),
        plan: Plan {
            statements,
            checks: Vec::new(),
        },
        confirmed: false,
    };
    super::finish(&state, &admin, &change, options.dry_run).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// Replace an object already at the key.
    #[serde(default)]
    upsert: bool,
}

/// `POST …/objects/{key}`: the raw body becomes the object, as `service_role`, streamed
/// and judged against the bucket's limits as any upload is.
async fn upload(
    _admin: AdminAccess,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<UploadQuery>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let (bucket, key) = path.into_inner();
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let meta = UploadMeta {
        content_type: header("content-type")
            .unwrap_or("application/octet-stream")
            .to_owned(),
        cache_control: header("cache-control").unwrap_or("no-cache").to_owned(),
        user_metadata: None,
        declared_length: header("content-length").and_then(|v| v.parse().ok()),
    };
    let target = UploadTarget {
        bucket,
        key,
        upsert: query.upsert,
    };
    let service = Caller::service();
    let limit = storage
        .prepare_upload(&service, &target, &meta, "storage.object.upload_admin")
        .await
        .map_err(admin_error)?;
    let id = storage
        .finish_upload(&service, &target, &meta, limit, payload)
        .await
        .map_err(admin_error)?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": id,
        "bucket_id": target.bucket,
        "name": target.key,
    })))
}

async fn download(
    _admin: AdminAccess,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let (bucket, key) = path.into_inner();
    crate::routes::storage::objects::serve_to_admin(&req, storage, &bucket, &key)
        .await
        .map_err(admin_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    /// The keys to remove.
    paths: Vec<String>,
}

/// `DELETE …/objects` with `{"paths": [...]}`: removes those objects; answers the ones
/// removed.
async fn remove_objects(
    _admin: AdminAccess,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = storage(&state)?;
    let body: RemoveBody = body_of(body)?;
    if body.paths.is_empty() {
        return Err(ApiError::invalid_body("paths names no object"));
    }
    storage
        .remove(&Caller::service(), &id, &serde_json::json!(body.paths))
        .await
        .map(json_text)
        .map_err(admin_error)
}
