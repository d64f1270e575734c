//! Storage's refusals, in Supabase Storage's words: a body of four members
//! (`statusCode` as a string, `error`, `message`, `code`, in that order) and, on the wire,
//! HTTP 400 for almost every refusal whatever its logical status (storage-js reads the
//! logical one from the body), 500 for failures, and the few exceptions Supabase makes
//! (416 for a bad range, 403 for a route only `service_role` may use, 544 for a timeout).

use galley_db::SqlState;
use galley_db::wire::WireError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// The logical status, the body's `statusCode`.
    pub status: u16,
    pub error: String,
    pub message: String,
    pub code: &'static str,
    /// The HTTP status, when it is not the one Supabase's rule gives.
    http: Option<u16>,
    /// Seconds until a refused rate allows the request (`Retry-After`).
    pub retry_after: Option<u64>,
}

fn refusal(
    status: u16,
    error: &str,
    message: impl Into<String>,
    code: &'static str,
) -> StorageError {
    StorageError {
        status,
        error: error.to_owned(),
        message: message.into(),
        code,
        http: None,
        retry_after: None,
    }
}

impl StorageError {
    /// The status the response carries.
    pub fn http_status(&self) -> u16 {
        match (self.http, self.status) {
            (Some(http), _) => http,
            (None, 500) => 500,
            (None, _) => 400,
        }
    }

    /// The body, members in Supabase's order.
    pub fn body(&self) -> String {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            status_code: String,
            error: &'a str,
            message: &'a str,
            code: &'a str,
        }
        serde_json::to_string(&Body {
            status_code: self.status.to_string(),
            error: &self.error,
            message: &self.message,
            code: self.code,
        })
        .unwrap_or_default()
    }

    fn with_http(mut self, http: u16) -> Self {
        self.http = Some(http);
        self
    }

    pub fn no_such_bucket() -> Self {
        refusal(404, "Bucket not found", "Bucket not found", "NoSuchBucket")
    }

    pub fn no_such_key() -> Self {
        refusal(404, "not_found", "Object not found", "NoSuchKey")
    }

    pub fn key_exists() -> Self {
        refusal(
            409,
            "Duplicate",
            "The resource already exists",
            "KeyAlreadyExists",
        )
    }

    pub fn bucket_exists() -> Self {
        refusal(
            409,
            "Duplicate",
            "The resource already exists",
            "BucketAlreadyExists",
        )
    }

    pub fn resource_exists() -> Self {
        refusal(
            409,
            "Duplicate",
            "The resource already exists",
            "ResourceAlreadyExists",
        )
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        refusal(403, "Unauthorized", message, "AccessDenied")
    }

    /// A route only `service_role` may use: HTTP 403 as well.
    pub fn invalid_role() -> Self {
        Self::access_denied("Access denied: Invalid role").with_http(403)
    }

    pub fn entity_too_large() -> Self {
        refusal(
            413,
            "Payload too large",
            "The object exceeded the maximum allowed size",
            "EntityTooLarge",
        )
    }

    pub fn user_metadata_too_large() -> Self {
        refusal(
            413,
            "Payload too large",
            "The user_metadata exceeded the maximum allowed size",
            "EntityTooLarge",
        )
    }

    pub fn invalid_mime_type(mime: &str) -> Self {
        refusal(
            415,
            "invalid_mime_type",
            format!("mime type {mime} is not supported"),
            "InvalidMimeType",
        )
    }

    pub fn invalid_key(key: &str) -> Self {
        refusal(
            400,
            "InvalidKey",
            format!("Invalid key: {key}"),
            "InvalidKey",
        )
    }

    pub fn invalid_bucket_name() -> Self {
        refusal(
            400,
            "Invalid Input",
            "Bucket name invalid",
            "InvalidBucketName",
        )
    }

    pub fn bucket_not_empty() -> Self {
        refusal(
            409,
            "ResourceNotEmpty",
            "The bucket you tried to delete is not empty",
            "ResourceNotEmpty",
        )
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        refusal(400, "InvalidRequest", message, "InvalidRequest")
    }

    /// A request that does not match the route's schema (Fastify's validation error).
    pub fn validation(message: impl Into<String>) -> Self {
        refusal(400, "Error", message, "InvalidRequest")
    }

    pub fn invalid_jwt(message: impl Into<String>) -> Self {
        refusal(400, "InvalidJWT", message, "InvalidJWT")
    }

    pub fn invalid_signature(message: impl Into<String>) -> Self {
        refusal(400, "InvalidSignature", message, "InvalidSignature")
    }

    pub fn invalid_parameter(name: &str) -> Self {
        refusal(
            400,
            "InvalidParameter",
            format!("Invalid Parameter {name}"),
            "InvalidParameter",
        )
    }

    pub fn invalid_range() -> Self {
        refusal(
            416,
            "invalid_range",
            "invalid range provided",
            "InvalidRange",
        )
        .with_http(416)
    }

    /// A rate refused for `seconds` more.
    pub fn too_many_requests_for(seconds: u64) -> Self {
        let mut err = Self::too_many_requests();
        err.retry_after = Some(seconds.max(1));
        err
    }

    pub fn too_many_requests() -> Self {
        refusal(
            429,
            "too_many_requests",
            "Too many uploads, slow down",
            "SlowDown",
        )
        .with_http(429)
    }

    pub fn database_timeout() -> Self {
        refusal(
            544,
            "DatabaseTimeout",
            "The connection to the database timed out",
            "DatabaseTimeout",
        )
        .with_http(544)
    }

    /// An image transformation that ran past its time limit.
    pub fn transformation_timeout() -> Self {
        refusal(
            504,
            "TransformationTimeout",
            "The image transformation took too long",
            "TransformationTimeout",
        )
        .with_http(504)
    }

    /// Something failed on Galley's side; the details go to the log, not the client.
    pub fn internal() -> Self {
        refusal(500, "Internal", "Internal Server Error", "InternalError")
    }

    /// A route that does not exist (Fastify's not-found answer): a real 404.
    pub fn route_not_found(method: &str, path: &str) -> Self {
        refusal(
            404,
            "Not Found",
            format!("Route {method}:{path} not found"),
            "InvalidRequest",
        )
        .with_http(404)
    }

    /// A database error met while doing `what`: refusals PostgreSQL decides (row-level
    /// security, a duplicate, a missing bucket, a timeout) in Supabase's words; anything
    /// else is logged and internal.
    pub fn from_database(err: &WireError, duplicate: fn() -> Self, what: &str) -> Self {
        match err.sql_state() {
            SqlState::InsufficientPrivilege => {
                let message = err.server().map(|e| e.message.as_str()).unwrap_or_default();
                if message.contains("row-level security") {
                    Self::access_denied("new row violates row-level security policy")
                } else {
                    Self::access_denied(message)
                }
            }
            SqlState::UniqueViolation => duplicate(),
            SqlState::QueryCanceled => Self::database_timeout(),
            // The one foreign key is an object's bucket: a write naming a bucket that
            // is not there (deleting a bucket its objects name is the caller's to tell).
            SqlState::ForeignKeyViolation => Self::no_such_bucket(),
            _ => {
                tracing::error!(error = %galley_db::report(err), what, "a storage statement failed");
                Self::internal()
            }
        }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for StorageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_supabases_with_members_in_order() {
        assert_eq!(
            StorageError::no_such_key().body(),
            r#"{"statusCode":"404","error":"not_found","message":"Object not found","code":"NoSuchKey"}"#
        );
        assert_eq!(StorageError::no_such_key().http_status(), 400);
        assert_eq!(StorageError::internal().http_status(), 500);
        assert_eq!(StorageError::invalid_range().http_status(), 416);
        assert_eq!(StorageError::invalid_role().http_status(), 403);
    }
}
