//! Extractors that put a permission in a handler's signature: a handler that takes
//! [`AdminAccess`] cannot run for anyone but an admin.

mod admin_access;
mod request_role;

pub(crate) use admin_access::{AdminAccess, SESSION_COOKIE, same_origin};
pub(crate) use request_role::{API_ROLES, RequestRole, acting_as};

/// Who a request acted as, recorded by the extractors for the request's log line.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) role: String,
    pub(crate) user_id: Option<String>,
    /// For an admin signed in to `/admin`: `admin:<email>`, what the audit log records.
    pub(crate) admin: Option<String>,
}

/// Records the request's identity for its log line.
pub(crate) fn record_identity(
    req: &actix_web::HttpRequest,
    role: &str,
    claims: &serde_json::Value,
) {
    use actix_web::HttpMessage;
    let user_id = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .filter(|sub| uuid::Uuid::parse_str(sub).is_ok())
        .map(str::to_owned);
    req.extensions_mut().insert(Identity {
        role: role.to_owned(),
        user_id,
        admin: None,
    });
}

/// Records an admin signed in with a session as the request's identity.
pub(crate) fn record_admin(req: &actix_web::HttpRequest, email: &str) {
    use actix_web::HttpMessage;
    req.extensions_mut().insert(Identity {
        role: "admin".to_owned(),
        user_id: None,
        admin: Some(format!("admin:{email}")),
    });
}
