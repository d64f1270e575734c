//! `[http]` configuration: where Galley listens and what it accepts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: std::net::SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Origins allowed to call the API from a browser. `*` allows any origin, never with
    /// credentials.
    pub cors_allowed_origins: Vec<String>,
    /// Whether browsers may send cookies and HTTP auth cross-origin; requires explicit
    /// origins.
    pub cors_allow_credentials: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Seconds Galley keeps serving after SIGTERM, with `/health/ready` answering 503,
    /// before it stops accepting: time for a load balancer's health check to take it out
    /// of rotation, so no new request reaches a closed port.
    pub drain_delay_secs: u64,
    /// HTTP worker threads; one per core when unset.
    pub workers: Option<usize>,
    /// Seconds a client gets to send a request's headers; then 408 and the connection
    /// closes.
    pub header_timeout_secs: u64,
    /// Seconds a request body may pause between two pieces; then 408 and the connection
    /// closes.
    pub body_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Connections served at once, over all workers; past it, new ones wait to be
    /// accepted. Galley also lowers it to fit under its open-file limit.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_body_bytes: 1024 * 1024,
            cors_allowed_origins: vec!["*".to_owned()],
            cors_allow_credentials: false,
            shutdown_timeout_secs: 30,
            drain_delay_secs: 0,
            workers: None,
            header_timeout_secs: 10,
            body_timeout_secs: 15,
            keep_alive_secs: 5,
            max_connections: 10_000,
        }
    }
}

/// `[rest]` configuration: the PostgREST-dialect API at `/rest/v1`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestConfig {
    /// Most rows one read returns, whatever `limit` asks (Supabase's default: 1000).
    pub max_rows: Option<u64>,
    /// How long one request's statement may run before PostgreSQL cancels it (504).
    pub statement_timeout_ms: u64,
    /// The schemas whose tables and functions `/rest/v1` serves, as PostgREST's
    /// `db-schemas`: the first unless `Accept-Profile` (reads) or `Content-Profile`
    /// (writes) names another. Galley's own schemas can never be listed.
    pub schemas: Vec<String>,
    /// Answers `Accept: application/vnd.pgrst.plan` with the statement's EXPLAIN, as
    /// PostgREST's `db-plan-enabled`. Off by default: a plan tells more than the rows.
    pub plan_enabled: bool,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            max_rows: Some(1000),
            statement_timeout_ms: 8000,
            schemas: vec!["public".to_owned()],
            plan_enabled: false,
        }
    }
}

/// Schemas that hold Galley's own state (users, sessions, objects, changes) or
/// PostgreSQL's: never served by `/rest/v1`, whatever `rest.schemas` says.
pub(crate) const PRIVATE_SCHEMAS: [&str; 6] = [
    "galley",
    "auth",
    "storage",
    "realtime",
    "pg_catalog",
    "information_schema",
];

impl RestConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.schemas.is_empty() {
            return Err(ConfigError::NoSchemas);
        }
        for (index, schema) in self.schemas.iter().enumerate() {
            let private = PRIVATE_SCHEMAS.contains(&schema.as_str()) || schema.starts_with("pg_");
            if private {
                return Err(ConfigError::PrivateSchema {
                    schema: schema.clone(),
                });
            }
            let valid = !schema.is_empty()
                && schema.len() <= 63
                && schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !schema.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ConfigError::BadSchema {
                    schema: schema.clone(),
                });
            }
            if self.schemas[..index].contains(schema) {
                return Err(ConfigError::BadSchema {
                    schema: schema.clone(),
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "http.cors_allow_credentials needs explicit origins in http.cors_allowed_origins, not `*`"
    )]
    WildcardWithCredentials,
    #[error("http.cors_allowed_origins: `{origin}` is not an origin like https://app.example.com")]
    BadOrigin { origin: String },
    #[error("http.max_body_bytes must be at least 1")]
    ZeroBodyLimit,
    #[error("http.header_timeout_secs and http.body_timeout_secs must be at least 1")]
    ZeroTimeout,
    #[error("http.max_connections must be at least 1")]
    ZeroConnections,
    #[error("rest.schemas must name at least one schema")]
    NoSchemas,
    #[error("rest.schemas: `{schema}` holds Galley's or PostgreSQL's own data and is never served")]
    PrivateSchema { schema: String },
    #[error(
        "rest.schemas: `{schema}` is not a schema name (letters, digits, `_` and `-`, at most 63, no repeats)"
    )]
    BadSchema { schema: String },
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError::ZeroBodyLimit);
        }
        if self.header_timeout_secs == 0 || self.body_timeout_secs == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroConnections);
        }
        let wildcard = self.cors_allowed_origins.iter().any(|origin| origin == "*");
        if wildcard && self.cors_allow_credentials {
            return Err(ConfigError::WildcardWithCredentials);
        }
        for origin in self
            .cors_allowed_origins
            .iter()
            .filter(|origin| *origin != "*")
        {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && origin
                    .split_once("://")
                    .is_some_and(|(_, host)| !host.is_empty() && !host.contains('/'));
            if !valid {
                return Err(ConfigError::BadOrigin {
                    origin: origin.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_schemas_never_include_galleys_own() {
        let schemas = |list: &[&str]| RestConfig {
            schemas: list.iter().map(|s| (*s).to_owned()).collect(),
            ..RestConfig::default()
        };
        assert_eq!(RestConfig::default().validate(), Ok(()));
        assert_eq!(schemas(&["public", "api", "v2-beta"]).validate(), Ok(()));
        for private in [
            "auth",
            "storage",
            "galley",
            "realtime",
            "pg_catalog",
            "pg_toast",
        ] {
            assert_eq!(
                schemas(&["public", private]).validate(),
                Err(ConfigError::PrivateSchema {
                    schema: private.to_owned()
                })
            );
        }
        assert_eq!(schemas(&[]).validate(), Err(ConfigError::NoSchemas));
        for bad in ["", "a b", "a\"b", "public"] {
            assert!(schemas(&["public", bad]).validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_with_a_wildcard_origin_are_refused() {
        let config = HttpConfig {
            cors_allow_credentials: true,
            ..HttpConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::WildcardWithCredentials));
    }

    #[test]
    fn origins_must_be_scheme_and_host() {
        for bad in [
            "null",
            "example.com",
            "https://example.com/",
            "https://example.com/path",
        ] {
            let config = HttpConfig {
                cors_allowed_origins: vec![bad.to_owned()],
                ..HttpConfig::default()
            };
            assert!(config.validate().is_err(), "{bad} accepted");
        }
        let good = HttpConfig {
            cors_allowed_origins: vec![
                "https://app.example.com".to_owned(),
                "http://localhost:3000".to_owned(),
            ],
            cors_allow_credentials: true,
            ..HttpConfig::default()
        };
        assert_eq!(good.validate(), Ok(()));
    }
}

/// `[metrics]`: where `/metrics` is served. Never public by accident: by default on a
/// listener of its own on the loopback interface; on the main address only with a token.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The metrics listener's address. Unset: `127.0.0.1:9464`, or any free loopback port
    /// when that one is taken (a second Galley on the same machine), logged at start.
    pub listen: Option<std::net::SocketAddr>,
    /// Whether the metrics listener runs.
    pub enabled: bool,
    /// Count and time every HTTP request. Off only to measure what that costs.
    pub request_metrics: bool,
    /// With a token, `/metrics` is also served on the main address to requests that carry
    /// it as `Authorization: Bearer`.
    #[serde(serialize_with = "galley_auth::redact")]
    pub bearer_token: Option<secrecy::SecretString>,
}

/// Where the metrics listener goes when `metrics.listen` is unset.
pub const DEFAULT_METRICS_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            enabled: true,
            request_metrics: true,
            bearer_token: None,
        }
    }
}
