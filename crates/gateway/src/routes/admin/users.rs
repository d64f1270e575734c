//! `/admin/v1/users`: app users for the admin UI. Search by email or id (filtered to
//! confirmed, unconfirmed or banned), create, read with their sessions, ban and unban,
//! sign out everywhere, send a recovery link, and delete, which first says what the
//! deletion takes with it (rows of tables whose foreign keys point at the user) and waits
//! for the user's email typed back. Users come in Supabase Auth's user shape; the
//! operations are `Accounts`', as `/auth/v1/admin` runs them for the key.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use galley_auth::{AdminUser, AuthError};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users")
            .route(web::get().to(search))
            .route(web::post().to(create))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/users/{id}")
            .route(web::get().to(read))
            .route(web::patch().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/users/{id}/logout")
            .route(web::post().to(logout_everywhere))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/users/{id}/recover")
            .route(web::post().to(send_recovery))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

/// An account operation's failure in the admin API's shape, keeping its code.
fn auth_error(err: AuthError) -> ApiError {
    match err.status {
        503 => ApiError::unavailable("the database is unavailable; retry shortly"),
        status if status >= 500 => {
            tracing::error!(error = %err.message, "an account operation failed");
            ApiError::internal()
        }
        status => ApiError::with_status(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            err.code,
            err.message,
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    #[serde(default)]
    q: String,
    /// `confirmed`, `unconfirmed` or `banned`.
    filter: Option<String>,
    limit: Option<i64>,
}

async fn search(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    query: web::Query<Search>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let keep: fn(&galley_auth::UserRecord) -> bool = match query.filter.as_deref() {
        None | Some("") => |_| true,
        Some("confirmed") => |user| user.email_confirmed_at.is_some(),
        Some("unconfirmed") => |user| user.email_confirmed_at.is_none(),
        Some("banned") => |user| {
            user.banned_until
                .is_some_and(|until| until > chrono::Utc::now())
        },
        Some(_) => {
            return Err(ApiError::invalid_query(
                "filter must be confirmed, unconfirmed or banned",
            ));
        }
    };
    // The filter is applied to a search that is wide enough for it: filtered views
    // are for the admin UI's lists, not for bulk export.
    let users = state
        .accounts
        .search_users(&query.q, if query.filter.is_some() { 1000 } else { limit })
        .await
        .map_err(auth_error)?;
    let users: Vec<_> = users
        .iter()
        .filter(|user| keep(user))
        .take(usize::try_from(limit).unwrap_or(50))
        .map(galley_auth::UserRecord::to_json)
        .collect();
    Ok(HttpResponse::Ok().json(users))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    /// Without one, the user sets theirs through a recovery link.
    password: Option<String>,
    #[serde(default)]
    email_confirm: bool,
}

async fn create(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user = state
        .accounts
        .create_user(AdminUser {
            email: Some(body.email),
            password: body.password,
            email_confirm: Some(body.email_confirm),
            ..AdminUser::default()
        })
        .await
        .map_err(auth_error)?;
    Ok(HttpResponse::Created().json(user.to_json()))
}

fn user_id(path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path).map_err(|_| ApiError::invalid("invalid_user_id", "a user id is a uuid"))
}

async fn read(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    let user = state.accounts.get_user(id).await.map_err(auth_error)?;
    let sessions: serde_json::Value = state
        .owner_json(
            "SELECT coalesce(json_agg(json_build_object('id', id, 'created_at', created_at, \
                 'refreshed_at', refreshed_at, 'user_agent', user_agent, 'ip', ip, 'aal', aal) \
                 ORDER BY coalesce(refreshed_at, created_at) DESC), '[]') \
             FROM auth.sessions WHERE user_id = $1",
            &[&id],
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "user": user.to_json(), "sessions": sessions })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    /// `none` lifts a ban; otherwise how long: `24h`, `30m`, `876000h` (for good).
    ban_duration: Option<String>,
    email_confirm: Option<bool>,
}

async fn update(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Change>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    let body = body.into_inner();
    let user = state
        .accounts
        .admin_update_user(
            id,
            AdminUser {
                ban_duration: body.ban_duration,
                email_confirm: body.email_confirm,
                ..AdminUser::default()
            },
        )
        .await
        .map_err(auth_error)?;
    Ok(HttpResponse::Ok().json(user.to_json()))
}

async fn logout_everywhere(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    state.accounts.get_user(id).await.map_err(auth_error)?;
    let ended = state
        .owner()
        .await?
        .execute("DELETE FROM auth.sessions WHERE user_id = $1", &[&id])
        .await
        .map_err(galley_db::DbError::from)?;
    // Access tokens already handed out live until they expire; their refresh tokens
    // die with the sessions, and `/auth/v1/user` refuses them now.
    Ok(HttpResponse::Ok().json(json!({ "sessions_ended": ended })))
}

async fn send_recovery(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    let user = state.accounts.get_user(id).await.map_err(auth_error)?;
    let email = user
        .email
        .ok_or_else(|| ApiError::invalid("no_email", "this user has no email address"))?;
    state
        .accounts
        .recover(&email, None, None)
        .await
        .map_err(auth_error)?;
    Ok(HttpResponse::Accepted().json(json!({ "queued_for": email })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirm {
    confirm: Option<String>,
}

async fn delete(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<Confirm>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    let user = state.accounts.get_user(id).await.map_err(auth_error)?;
    let name = user.email.clone().unwrap_or_else(|| id.to_string());
    if query.confirm.as_deref() != Some(name.as_str()) {
        let references = references_to(&state, id).await?;
        return Err(ApiError::confirmation_required(
            format!(
                "deleting {name} also takes what points at them; repeat with ?confirm={name} to go ahead"
            ),
            json!({ "references": references }),
        ));
    }
    state
        .accounts
        .delete_user(id, false)
        .await
        .map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// For every foreign key from a `public` table to `auth.users`: how many rows point at
/// the user, and what deleting them does to those rows.
async fn references_to(state: &AppState, id: Uuid) -> Result<serde_json::Value, ApiError> {
    let client = state.owner().await?;
    let keys = client
        .query(
            "SELECT c.conrelid::regclass::text, a.attname::text, \
                    CASE c.confdeltype WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' \
                         WHEN 'd' THEN 'set default' WHEN 'r' THEN 'restrict' ELSE 'no action' END \
             FROM pg_constraint c \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             WHERE c.contype = 'f' AND c.confrelid = 'auth.users'::regclass \
               AND array_length(c.conkey, 1) = 1 \
               AND c.connamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .map_err(galley_db::DbError::from)?;
    let mut references = Vec::new();
    for key in keys {
        let (table, column, action): (String, String, String) =
            (key.get(0), key.get(1), key.get(2));
        // Both names come from the catalog, quoted by PostgreSQL (regclass) and here.
        let rows: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {table} WHERE \"{}\" = $1",
                    column.replace('"', "\"\"")
                ),
                &[&id],
            )
            .await
            .map_err(galley_db::DbError::from)?
            .get(0);
        if rows > 0 {
            references.push(
                json!({ "table": table, "column": column, "rows": rows, "on_delete": action }),
            );
        }
    }
    Ok(serde_json::Value::Array(references))
}
