//! Extractors that put a permission in a handler's signature: a handler that takes
//! [`ServiceRole`] cannot run for anyone else.

mod request_role;
mod service_role;

pub(crate) use request_role::RequestRole;
pub(crate) use service_role::ServiceRole;

/// Who a request acted as, recorded by the extractors for the request's log line.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) role: String,
    pub(crate) user_id: Option<String>,
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
    });
}
