//! The one place where errors become HTTP statuses, and the JSON shape every error body
//! has: `{code, message, details, hint}` plus the request id. On `/rest/v1` the body is
//! PostgREST's exactly (`code`, `details`, `hint`, `message`, in that order, nothing
//! else: clients compare whole bodies); the request id stays in `x-request-id`.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

/// An error on its way to the client: a status, a stable machine-readable code, and a
/// message that says what went wrong without anything internal (no SQL, no paths).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    details: Option<serde_json::Value>,
    hint: Option<String>,
    /// Headers a function chose for its error (`RAISE SQLSTATE 'PGRST'`), boxed: rare,
    /// and errors travel by value.
    headers: Option<Box<ChosenHeaders>>,
}

/// Headers an error carries beyond its defaults, by name: chosen by a function
/// (`RAISE SQLSTATE 'PGRST'`), or Galley's own (a token's `WWW-Authenticate`); and the
/// reason phrase a function chose for its status (`status_text`, or a `PTnnn` code's
/// message).
#[derive(Debug, Clone)]
struct ChosenHeaders {
    headers: std::collections::BTreeMap<String, String>,
    by_function: bool,
    reason: Option<String>,
}

/// A reason phrase a function chose, as the `&'static str` HTTP responses carry: only
/// visible ASCII and spaces, at most 128 bytes, and at most 256 distinct phrases kept for
/// the life of the process (each is leaked once); past that the status's own phrase is
/// used.
fn reason_phrase(phrase: &str) -> Option<&'static str> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static PHRASES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    if phrase.is_empty()
        || phrase.len() > 128
        || !phrase.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return None;
    }
    let mut phrases = PHRASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = phrases.get(phrase) {
        return Some(known);
    }
    if phrases.len() >= 256 {
        return None;
    }
    let leaked: &'static str = Box::leak(phrase.to_owned().into_boxed_str());
    phrases.insert(leaked);
    Some(leaked)
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// Structured facts about the failure, e.g. offending rows and samples.
    pub details: Option<serde_json::Value>,
    /// What to do about it, when there is an obvious fix.
    pub hint: Option<String>,
    /// Quote it when reporting a problem: it finds the request's log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// PostgREST's error body: its four members, in its order.
#[derive(Serialize)]
struct PostgrestBody<'a> {
    code: &'a str,
    details: &'a Option<serde_json::Value>,
    hint: &'a Option<String>,
    message: &'a str,
}

/// Whether `path` is the REST dialect's, whose errors are PostgREST's bodies.
pub(crate) fn is_postgrest_path(path: &str) -> bool {
    path == "/rest/v1" || path.starts_with("/rest/v1/")
}

impl ErrorBody {
    /// The body as JSON: PostgREST's shape for a request to `/rest/v1`, else Galley's.
    pub(crate) fn to_json(&self, path: &str) -> String {
        let json = if is_postgrest_path(path) {
            serde_json::to_string(&PostgrestBody {
                code: &self.code,
                details: &self.details,
                hint: &self.hint,
                message: &self.message,
            })
        } else {
            serde_json::to_string(self)
        };
        // Serialising strings and JSON values cannot fail.
        json.unwrap_or_default()
    }
}

impl ApiError {
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route matches this path",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept that method",
        )
    }

    /// A request body that stopped arriving.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body stopped arriving",
        )
    }

    /// A body declared as something other than JSON on a JSON endpoint.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    /// A request target (path and query) over the limit, or with too many parameters.
    pub fn uri_too_long(message: impl Into<String>) -> Self {
        Self::new(StatusCode::URI_TOO_LONG, "uri_too_long", message)
    }

    /// A request header over the limit.
    pub fn headers_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header_too_large",
            format!("a request header exceeds the limit of {limit} bytes"),
        )
    }

    /// A body that is not the JSON the endpoint takes.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    /// No credentials, or credentials that do not verify.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Valid credentials that do not grant this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// Too many attempts: try again in `wait_secs`.
    pub fn too_many_requests(wait_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many attempts; try again in {wait_secs} s"),
        )
    }

    /// A request that is well-formed but names something that cannot be done.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// An error whose code is only known at run time (a SQLSTATE), with its facts.
    pub fn with_code(
        status: StatusCode,
        code: String,
        message: String,
        details: Option<serde_json::Value>,
        hint: Option<String>,
    ) -> Self {
        Self {
            details,
            hint,
            ..Self::new(status, code, message)
        }
    }

    /// A status and code decided elsewhere (an account operation's).
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message)
    }

    /// A destructive change asked for without naming what it destroys: `details` says
    /// what would go.
    pub fn confirmation_required(message: impl Into<String>, details: serde_json::Value) -> Self {
        Self {
            details: Some(details),
            hint: Some("destructive changes must be confirmed by naming what they drop".to_owned()),
            ..Self::new(StatusCode::CONFLICT, "confirmation_required", message)
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A failure Galley did not expect. The cause goes to the log, never to the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; quote the request id when reporting it",
        )
    }

    fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
            hint: None,
            headers: None,
        }
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// An error in PostgREST's terms for `/rest/v1`: a `PGRSTnnn` or SQLSTATE code.
    pub(crate) fn rest(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        details: Option<String>,
        hint: Option<String>,
    ) -> Self {
        Self {
            details: details.map(serde_json::Value::String),
            hint,
            ..Self::new(status, code, message)
        }
    }

    /// The same error with structured `details`.
    pub(crate) fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// A PostgreSQL error from running a request's statement, mapped as PostgREST maps
    /// it: the SQLSTATE as `code`, the server's message, detail and hint, and PostgREST's
    /// status for the code, with Galley's departures (`galley_db::statement_status`:
    /// `PT402` is 402, a code of the application's own 400, a timeout 504, the server's own
    /// faults a plain 500 whose message stays in the log). Permission errors are 401 for
    /// anonymous requests (signing in may help) and 403 otherwise. `RAISE SQLSTATE
    /// 'PGRST'` answers as the function says.
    pub(crate) fn from_statement(err: &galley_db::wire::WireError, anonymous: bool) -> Self {
        use galley_db::SqlState;
        let Some(db) = err.server() else {
            tracing::warn!(error = %err, "database unavailable");
            return ApiError::unavailable("the database is unavailable; retry shortly");
        };
        if db.code == galley_db::RAISE_RESPONSE {
            return Self::raised(&db.message, db.detail.as_deref());
        }
        let (status, fault) = galley_db::statement_status(&db.code, &db.message);
        let status = match err.sql_state() {
            SqlState::InsufficientPrivilege if anonymous => StatusCode::UNAUTHORIZED,
            SqlState::InsufficientPrivilege => StatusCode::FORBIDDEN,
            SqlState::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            SqlState::AuthenticationFailed => {
                tracing::error!(error = %err, "statement failed");
                return ApiError::internal();
            }
            _ if fault => {
                tracing::error!(error = %err, "statement failed");
                return ApiError::internal();
            }
            _ => StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let error = Self::rest(
            status,
            db.code.clone(),
            db.message.clone(),
            db.detail.clone(),
            db.hint.clone(),
        );
        // A status chosen by a `PTnnn` code is answered with the message as its reason
        // phrase, as PostgREST answers it.
        if db.code.get(2..) == Some(status.as_str()) && db.code.starts_with("PT") {
            error.with_reason(db.message.clone())
        } else {
            error
        }
    }

    /// The answer a function chose with `RAISE SQLSTATE 'PGRST' USING message = '{"code":
    /// …, "message": …, "details": …, "hint": …}', detail = '{"status": …, "headers": {…}}'`,
    /// as PostgREST gives it, with `status_text` as the reason phrase when the detail names
    /// one; 500 PGRST121 when either is not such JSON.
    fn raised(message: &str, detail: Option<&str>) -> Self {
        #[derive(Deserialize)]
        struct Message {
            code: String,
            message: String,
            details: Option<String>,
            hint: Option<String>,
        }
        #[derive(Deserialize)]
        struct Detail {
            status: u16,
            headers: std::collections::BTreeMap<String, String>,
            status_text: Option<String>,
        }
        let unparsable = |details: String, hint: &str| {
            Self::rest(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PGRST121",
                "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
                Some(details),
                Some(hint.to_owned()),
            )
        };
        let message_hint = "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.";
        let detail_hint = "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.";
        let Ok(parsed) = serde_json::from_str::<Message>(message) else {
            return unparsable(
                format!("Invalid JSON value for MESSAGE: '{message}'"),
                message_hint,
            );
        };
        let Some(detail) = detail else {
            return unparsable(
                "DETAIL is missing in the RAISE statement".to_owned(),
                detail_hint,
            );
        };
        let Ok(chosen) = serde_json::from_str::<Detail>(detail) else {
            return unparsable(
                format!("Invalid JSON value for DETAIL: '{detail}'"),
                detail_hint,
            );
        };
        let mut error = Self::rest(
            StatusCode::from_u16(chosen.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            parsed.code,
            parsed.message,
            parsed.details,
            parsed.hint,
        );
        error.headers = Some(Box::new(ChosenHeaders {
            headers: chosen.headers,
            by_function: true,
            reason: chosen.status_text,
        }));
        error
    }

    /// What this error carries beyond its defaults, made empty (and Galley's) if nothing
    /// yet.
    fn extras(&mut self) -> &mut ChosenHeaders {
        self.headers.get_or_insert_with(|| {
            Box::new(ChosenHeaders {
                headers: std::collections::BTreeMap::new(),
                by_function: false,
                reason: None,
            })
        })
    }

    /// The same error answered with `phrase` as its status line's reason phrase.
    fn with_reason(mut self, phrase: String) -> Self {
        self.extras().reason = Some(phrase);
        self
    }

    /// The same error with a header of Galley's, in place of any default of that name.
    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.extras().headers.insert(name.to_owned(), value.into());
        self
    }
}

impl From<galley_db::DbError> for ApiError {
    fn from(err: galley_db::DbError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %galley_db::report(&err), "database unavailable");
            return ApiError::unavailable("the database is unavailable; retry shortly");
        }
        match err {
            galley_db::DbError::Unavailable(_)
            | galley_db::DbError::Migration(_)
            | galley_db::DbError::AuthenticatorLogin(_)
            | galley_db::DbError::Query(_)
            | galley_db::DbError::Wire(_) => {
                tracing::error!(error = %galley_db::report(&err), "database error");
                ApiError::internal()
            }
        }
    }
}

impl From<galley_schema::SchemaError> for ApiError {
    fn from(err: galley_schema::SchemaError) -> Self {
        use galley_schema::SchemaError;
        match err {
            // `details.field` names the part of the definition at fault (`columns[2].type`),
            // so a form can show the message beside it.
            SchemaError::InvalidDefinition { ref field, .. } => Self {
                details: Some(serde_json::json!({ "field": field })),
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_definition",
                    err.to_string(),
                )
            },
            SchemaError::Refused { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_definition",
                err.to_string(),
            ),
            SchemaError::TableExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already_exists", err.to_string())
            }
            SchemaError::TableNotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "table_not_found", err.to_string())
            }
            SchemaError::WouldViolate {
                ref message,
                rows,
                ref samples,
                ref hint,
            } => Self {
                details: Some(serde_json::json!({ "rows": rows, "samples": samples })),
                hint: Some(hint.clone()),
                ..Self::new(StatusCode::CONFLICT, "would_violate", message.clone())
            },
            SchemaError::ConfirmationRequired {
                ref message,
                ref details,
            } => Self {
                details: Some(details.clone()),
                hint: Some(
                    "destructive changes must be confirmed by naming what they drop".to_owned(),
                ),
                ..Self::new(
                    StatusCode::CONFLICT,
                    "confirmation_required",
                    message.clone(),
                )
            },
            SchemaError::LockTimeout => {
                Self::new(StatusCode::CONFLICT, "lock_timeout", err.to_string())
            }
            SchemaError::Db(err) => err.into(),
            SchemaError::UnreadableCatalog(_) => {
                tracing::error!(error = %galley_db::report(&err), "schema error");
                ApiError::internal()
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message.clone(),
            details: self.details.clone(),
            hint: self.hint.clone(),
            request_id: crate::middleware::request_id::current(),
        };
        let mut response = HttpResponse::build(self.status);
        if let Some(phrase) = self
            .headers
            .as_ref()
            .and_then(|h| h.reason.as_deref())
            .and_then(reason_phrase)
        {
            response.reason(phrase);
        }
        // A code a function chose (`RAISE SQLSTATE 'PGRST'`) is any text: it is counted
        // and logged under `PGRST`, so it can neither break the header nor grow the
        // metric's labels.
        let counted = if self.headers.as_ref().is_some_and(|h| h.by_function) {
            galley_db::RAISE_RESPONSE
        } else {
            self.code.as_ref()
        };
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(counted) {
            response.insert_header((crate::middleware::metrics::ERROR_CODE, value));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("retry-after", "1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("www-authenticate", "Bearer"));
        }
        for (name, value) in self.headers.iter().flat_map(|h| h.headers.iter()) {
            // Kept only when it is a header HTTP can carry; replaces a default.
            if let (Ok(name), Ok(value)) = (
                actix_web::http::header::HeaderName::try_from(name.as_str()),
                actix_web::http::header::HeaderValue::from_str(value),
            ) {
                response.insert_header((name, value));
            }
        }
        let path = crate::middleware::request_id::current_request(|c| c.path().to_owned())
            .unwrap_or_default();
        let json = body.to_json(&path);
        response
            .content_type("application/json; charset=utf-8")
            .body(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_reason_phrase_is_kept_only_when_a_status_line_can_carry_it() {
        assert_eq!(reason_phrase("Short and Stout"), Some("Short and Stout"));
        // The same phrase is kept once.
        let first = reason_phrase("Pay first").expect("kept");
        let again = reason_phrase("Pay first").expect("kept");
        assert!(std::ptr::eq(first, again));
        for refused in [
            "",
            "split\r\nX-Injected: 1",
            "tab\there",
            "café",
            &"x".repeat(129),
        ] {
            assert_eq!(reason_phrase(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn errors_stay_small_enough_to_travel_by_value() {
        assert!(std::mem::size_of::<ApiError>() < 128);
    }
}
