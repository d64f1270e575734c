//! The one place SQLSTATE codes are interpreted: every crate asks [`classify`] what a
//! PostgreSQL error means instead of matching codes itself.

/// SQLSTATE `undefined_column`: what PostgREST answers for an unknown column, which the
/// gateway finds before PostgreSQL would.
pub const UNDEFINED_COLUMN: &str = "42703";

/// SQLSTATE `cardinality_violation`: what Supabase's `safeupdate` answers for an UPDATE or
/// DELETE without a WHERE clause, which the gateway refuses before PostgreSQL sees it.
pub const CARDINALITY_VIOLATION: &str = "21000";

/// SQLSTATE `character_not_in_repertoire`: what PostgreSQL answers for text that is not
/// valid UTF-8, which the gateway finds in a raw body before PostgreSQL would.
pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";

/// The SQLSTATE a function raises to answer with a status, headers and body of its
/// choosing (PostgREST's `RAISE SQLSTATE 'PGRST'`): the message and detail are JSON.
pub const RAISE_RESPONSE: &str = "PGRST";

/// What a database error means to Galley.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    UniqueViolation,
    ForeignKeyViolation,
    NotNullViolation,
    CheckViolation,
    /// A table, column, function or other object named in the statement does not exist.
    UndefinedObject,
    InsufficientPrivilege,
    /// Retrying the transaction may succeed (serialization failure, deadlock).
    SerializationFailure,
    /// The server cannot be reached or is going away: answer 503 and let clients retry.
    Unavailable,
    /// Login failed: wrong password or role not permitted to log in.
    AuthenticationFailed,
    /// `lock_timeout` ran out waiting for a lock.
    LockNotAvailable,
    /// A write was attempted in a read-only transaction (a GET that calls a volatile
    /// function).
    ReadOnlyTransaction,
    /// A table of that name already exists.
    DuplicateTable,
    /// A value does not fit its type (bad input syntax, out of range, too long).
    DataException,
    /// Another integrity rule (exclusion, restrict) than the ones named above.
    IntegrityViolation,
    /// The statement is wrong: syntax, unknown type, a column that already exists...
    InvalidStatement,
    /// `statement_timeout` (or a cancel request) stopped the statement.
    QueryCanceled,
    /// A function or trigger raised an exception with the default SQLSTATE (`RAISE`).
    RaisedException,
    /// The server is short of a resource (memory, disk) for this statement.
    ResourceLimit,
    Other,
}

/// The HTTP status PostgREST answers a statement's error with, by its SQLSTATE (and, for
/// two codes, its message): PostgREST's own table, so `/rest/v1` answers as it does.
/// `RAISE … USING ERRCODE = 'PT402'` chooses the status itself; the `PGRST` code (a JSON
/// message and detail) is read by the gateway, not here.
pub fn postgrest_status(code: &str, message: &str) -> u16 {
    let class = code.get(..2).unwrap_or_default();
    match code {
        "23503" | "23505" => 409,
        "25006" => 405,
        // Supabase's safeupdate; any other cardinality violation is the function's fault.
        "21000" if message.ends_with("requires a WHERE clause") => 400,
        "21000" => 500,
        // A role named in a token that does not exist.
        "22023" if message.starts_with("role") && message.ends_with("does not exist") => 401,
        "53400" => 500,
        "57P01" => 503,
        "P0001" => 400,
        "42883" if message.starts_with("function xmlagg(") => 406,
        "42883" | "42P01" => 404,
        "42P17" => 500,
        _ if class == "PT" => code
            .get(2..)
            .and_then(|status| status.parse::<u16>().ok())
            .filter(|status| (100..=599).contains(status))
            .unwrap_or(500),
        _ => match class {
            "08" | "53" => 503,
            "0L" | "0P" | "28" => 403,
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0"
            | "HV" | "P0" | "XX" => 500,
            _ => 400,
        },
    }
}

/// How `/rest/v1` answers a statement's error: PostgREST's status ([`postgrest_status`])
/// with Galley's departures, and whether the message is the server's own fault (internal,
/// system, configuration, foreign data), kept in the log rather than shown. A statement
/// the timeout stopped is 504, the gateway's limit rather than a failure; one too complex
/// for PostgreSQL (class 54) is 400, and one past a resource limit (class 53, as
/// `temp_file_limit`) 503, since hostile input is never a 500.
pub fn statement_status(code: &str, message: &str) -> (u16, bool) {
    let status = match code {
        "57014" => 504,
        _ if code.starts_with("54") => 400,
        _ if code.starts_with("53") => 503,
        _ => postgrest_status(code, message),
    };
    let fault = ["XX", "58", "F0", "HV"]
        .iter()
        .any(|class| code.starts_with(class));
    (status, fault)
}

/// Classifies a driver error. Errors without a SQLSTATE are connection failures.
pub fn classify(err: &tokio_postgres::Error) -> SqlState {
    match err.code() {
        None => SqlState::Unavailable,
        Some(code) => classify_code(code.code()),
    }
}

pub(crate) fn classify_code(code: &str) -> SqlState {
    match code {
        "23505" => SqlState::UniqueViolation,
        "23503" => SqlState::ForeignKeyViolation,
        "23502" => SqlState::NotNullViolation,
        "23514" => SqlState::CheckViolation,
        "42P01" | "42883" | "3F000" => SqlState::UndefinedObject,
        "57014" => SqlState::QueryCanceled,
        "P0001" => SqlState::RaisedException,
        "42501" => SqlState::InsufficientPrivilege,
        "40001" | "40P01" => SqlState::SerializationFailure,
        "28P01" | "28000" => SqlState::AuthenticationFailed,
        "55P03" => SqlState::LockNotAvailable,
        "25006" => SqlState::ReadOnlyTransaction,
        "42P07" => SqlState::DuplicateTable,
        // connection exceptions, admin shutdown, crash shutdown, cannot connect now,
        // too many connections
        code if code.starts_with("08") => SqlState::Unavailable,
        "57P01" | "57P02" | "57P03" | "53300" => SqlState::Unavailable,
        // feature_not_supported: a subquery in a CHECK, say. PostgREST answers 400 too.
        code if code.starts_with("0A") => SqlState::InvalidStatement,
        code if code.starts_with("22") => SqlState::DataException,
        code if code.starts_with("23") => SqlState::IntegrityViolation,
        code if code.starts_with("42") => SqlState::InvalidStatement,
        code if code.starts_with("53") => SqlState::ResourceLimit,
        // Program limits: a statement too complex or nested too deep for PostgreSQL.
        code if code.starts_with("54") => SqlState::InvalidStatement,
        _ => SqlState::Other,
    }
}

/// A failure talking to the database, already classified.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("the `authenticator` role cannot log in and Galley may not set its password: {0}")]
    AuthenticatorLogin(String),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("database error: {0}")]
    Wire(#[from] crate::wire::WireError),
}

impl From<crate::wire::PoolError> for DbError {
    fn from(err: crate::wire::PoolError) -> Self {
        match err {
            deadpool::managed::PoolError::Backend(err)
                if err.sql_state() != SqlState::Unavailable =>
            {
                DbError::Wire(err)
            }
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(err)
                if classify(&err) != SqlState::Unavailable =>
            {
                DbError::Query(err)
            }
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

impl DbError {
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(err) => classify(err) == SqlState::Unavailable,
            DbError::Wire(err) => err.sql_state() == SqlState::Unavailable,
            DbError::Migration(_) | DbError::AuthenticatorLogin(_) => false,
        }
    }
}

/// An error and every cause under it, for logs: each level's text joined by `: `, and a
/// PostgreSQL error as its SQLSTATE, message, detail and hint, since the driver's own
/// text for one is only "db error".
/// PostgreSQL's name for a condition Galley reports by name (realtime repeats
/// Supabase's messages, which carry it), for the few it meets.
pub fn condition_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "22P02" => "invalid_text_representation",
        "22007" => "invalid_datetime_format",
        "22008" => "datetime_field_overflow",
        "22003" => "numeric_value_out_of_range",
        "22001" => "string_data_right_truncation",
        "42501" => "insufficient_privilege",
        _ => return None,
    })
}

pub fn report<'a>(err: &'a (dyn std::error::Error + 'static)) -> ErrorReport<'a> {
    ErrorReport(err)
}

/// What [`report`] returns: `Display` walks the cause chain.
pub struct ErrorReport<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorReport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut next = Some(self.0);
        let mut first = true;
        let mut previous = String::new();
        while let Some(err) = next {
            let text = match err.downcast_ref::<tokio_postgres::error::DbError>() {
                Some(db) => describe_db_error(db),
                None => err.to_string(),
            };
            // thiserror's `{0}` repeats the cause in the outer text: skip what is already said.
            if !previous.ends_with(&text) && text != "db error" {
                if !first {
                    f.write_str(": ")?;
                }
                f.write_str(&text)?;
                first = false;
            }
            previous = text;
            next = err.source();
        }
        Ok(())
    }
}

fn describe_db_error(db: &tokio_postgres::error::DbError) -> String {
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(" (detail: ");
        text.push_str(detail);
        text.push(')');
    }
    if let Some(hint) = db.hint() {
        text.push_str(" (hint: ");
        text.push_str(hint);
        text.push(')');
    }
    if let (Some(schema), Some(table)) = (db.schema(), db.table()) {
        text.push_str(&format!(" (relation: {schema}.{table})"));
    }
    if let Some(constraint) = db.constraint() {
        text.push_str(&format!(" (constraint: {constraint})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_their_meaning() {
        assert_eq!(classify_code("23505"), SqlState::UniqueViolation);
        assert_eq!(classify_code("23503"), SqlState::ForeignKeyViolation);
        assert_eq!(classify_code("08006"), SqlState::Unavailable);
        assert_eq!(classify_code("57P01"), SqlState::Unavailable);
        assert_eq!(classify_code("40001"), SqlState::SerializationFailure);
        assert_eq!(classify_code("42P01"), SqlState::UndefinedObject);
        assert_eq!(classify_code("22P02"), SqlState::DataException);
        assert_eq!(classify_code("55P03"), SqlState::LockNotAvailable);
        assert_eq!(classify_code("25006"), SqlState::ReadOnlyTransaction);
        assert_eq!(classify_code("42P07"), SqlState::DuplicateTable);
        assert_eq!(classify_code("42601"), SqlState::InvalidStatement);
        assert_eq!(classify_code("0A000"), SqlState::InvalidStatement);
        assert_eq!(classify_code("XX000"), SqlState::Other);
    }

    #[test]
    fn statuses_are_postgrests() {
        for (code, message, status) in [
            ("23505", "duplicate key", 409),
            ("23503", "violates foreign key", 409),
            ("23502", "null value", 400),
            ("22P02", "invalid input syntax", 400),
            ("25006", "read-only transaction", 405),
            ("21000", "DELETE requires a WHERE clause", 400),
            ("21000", "more than one row returned by a subquery", 500),
            ("22023", "role \"ghost\" does not exist", 401),
            ("22023", "invalid value", 400),
            ("42501", "permission denied", 400),
            ("42883", "function nope() does not exist", 404),
            ("42883", "function xmlagg(record) does not exist", 406),
            ("42P01", "relation does not exist", 404),
            ("P0001", "raised", 400),
            ("P0002", "no data found", 500),
            ("PT402", "pay first", 402),
            ("PT999", "out of range", 500),
            ("PTabc", "not a number", 500),
            ("08006", "connection failure", 503),
            ("53300", "too many connections", 503),
            ("53400", "configuration limit", 500),
            ("57P01", "admin shutdown", 503),
            ("57014", "canceled", 500),
            ("28P01", "password", 403),
            ("XX000", "internal", 500),
            ("U0001", "a code of the app's own", 400),
        ] {
            assert_eq!(postgrest_status(code, message), status, "{code} {message}");
        }
        assert_eq!(statement_status("57014", "canceled"), (504, false));
        assert_eq!(statement_status("54001", "stack depth"), (400, false));
        assert_eq!(statement_status("53400", "temp_file_limit"), (503, false));
        assert_eq!(statement_status("XX000", "internal"), (500, true));
        assert_eq!(statement_status("P0002", "no data"), (500, false));
    }
}
