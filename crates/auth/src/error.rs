//! Errors of the auth API, with GoTrue's codes and messages so `@supabase/auth-js` maps
//! them to the same errors it knows from Supabase.

use crate::password::WeakPassword;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    pub status: u16,
    /// GoTrue's `error_code`, e.g. `invalid_credentials`.
    pub code: &'static str,
    pub message: String,
    /// For `weak_password`: why.
    pub weak: Option<WeakPassword>,
    /// An OAuth-style error (`{"error": code, "error_description": message}`), as GoTrue
    /// answers some token grants.
    pub oauth: bool,
}

impl AuthError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            weak: None,
            oauth: false,
        }
    }

    /// GoTrue's OAuth-shaped refusal: 400 `{"error", "error_description"}`.
    pub fn oauth(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            oauth: true,
            ..Self::new(400, error, description)
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "validation_failed", message)
    }

    pub fn invalid_credentials() -> Self {
        Self::new(400, "invalid_credentials", "Invalid login credentials")
    }

    pub fn weak_password(weak: WeakPassword) -> Self {
        Self {
            status: 422,
            code: "weak_password",
            message: weak.message.clone(),
            weak: Some(weak),
            oauth: false,
        }
    }

    pub fn bad_jwt(message: impl Into<String>) -> Self {
        Self::new(403, "bad_jwt", message)
    }

    pub fn user_not_found() -> Self {
        Self::new(404, "user_not_found", "User not found")
    }

    pub fn unexpected() -> Self {
        Self::new(
            500,
            "unexpected_failure",
            "Unexpected failure, please check server logs for more information",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            503,
            "unexpected_failure",
            "The database is unavailable; retry shortly",
        )
    }
}

impl From<galley_db::tokio_postgres::Error> for AuthError {
    fn from(err: galley_db::tokio_postgres::Error) -> Self {
        if galley_db::classify(&err) == galley_db::SqlState::Unavailable {
            tracing::warn!(error = %galley_db::report(&err), "auth: database unavailable");
            return Self::unavailable();
        }
        if galley_db::classify(&err) == galley_db::SqlState::DataException {
            // Every statement here is Galley's own, so a value PostgreSQL cannot take (a
            // NUL character in text or JSON, an address longer than its column) came from
            // the request: the client's mistake, said in PostgreSQL's words, which name
            // the value's kind and never the statement.
            let message = err
                .as_db_error()
                .map(|db| db.message().to_owned())
                .unwrap_or_default();
            tracing::warn!(error = %galley_db::report(&err), "auth: a value in the request was refused by the database");
            return Self::validation(format!(
                "A value in the request cannot be stored: {message}"
            ));
        }
        tracing::error!(error = %galley_db::report(&err), "auth: statement failed");
        Self::unexpected()
    }
}

impl From<galley_db::DbError> for AuthError {
    fn from(err: galley_db::DbError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %galley_db::report(&err), "auth: database unavailable");
            return Self::unavailable();
        }
        tracing::error!(error = %galley_db::report(&err), "auth: database error");
        Self::unexpected()
    }
}

impl From<galley_db::PoolError> for AuthError {
    fn from(err: galley_db::PoolError) -> Self {
        galley_db::DbError::from(err).into()
    }
}

impl From<crate::password::HashError> for AuthError {
    fn from(err: crate::password::HashError) -> Self {
        tracing::error!(error = %galley_db::report(&err), "auth: password hashing failed");
        Self::unexpected()
    }
}
