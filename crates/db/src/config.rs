//! `[database]` configuration: an operator-owned server, or the embedded cluster.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

/// How Galley reaches PostgreSQL.
///
/// With `url` unset, Galley runs a private cluster in its data directory (see [`crate::Cluster`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://` URL of an operator-owned server. Its role runs migrations and DDL;
    /// requests use the `authenticator` role on the same server.
    #[serde(serialize_with = "redact_url")]
    pub url: Option<SecretString>,
    /// Directory holding `initdb` and `pg_ctl`; searched for when unset.
    pub pg_bin: Option<PathBuf>,
    /// Unprivileged system user the embedded cluster runs as when Galley is started as root.
    pub os_user: String,
    /// Connections in the request pool.
    pub pool_size: usize,
    /// Seconds to wait for a connection (to open one, or for one to free up) before
    /// answering 503.
    pub connect_timeout_secs: u64,
    /// Start even if the server runs with fsync, synchronous_commit or full_page_writes
    /// off. Only for throwaway servers (tests, demos).
    pub allow_unsafe_durability: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            pg_bin: None,
            os_user: "postgres".to_owned(),
            pool_size: 16,
            connect_timeout_secs: 5,
            allow_unsafe_durability: false,
        }
    }
}

/// Shows which server a URL names without its password.
fn redact_url<S: Serializer>(url: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    match url {
        None => ser.serialize_none(),
        Some(url) => ser.serialize_str(&redacted_url(url.expose_secret())),
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:[redacted]@host/db`.
pub(crate) fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redacted_url("postgres://galley:hunter2@db.internal:5432/app"),
            "postgres://galley:[redacted]@db.internal:5432/app"
        );
        assert_eq!(
            redacted_url("postgres://galley@db/app"),
            "postgres://galley@db/app"
        );
        assert_eq!(redacted_url("host=db password=x"), "[redacted]");
    }
}
