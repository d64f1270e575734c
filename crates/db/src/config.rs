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
    /// The password of `url`'s role, replacing any the URL carries: lets the URL sit in
    /// plain configuration while the password comes from a secret file
    /// (`GALLEY_DATABASE_PASSWORD_FILE`).
    #[serde(serialize_with = "redact")]
    pub password: Option<SecretString>,
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
    /// How long the embedded PostgreSQL may stay down (Galley restarting it with backoff
    /// meanwhile) before `/health/live` fails too, so a supervisor restarts Galley.
    pub restart_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            password: None,
            pg_bin: None,
            os_user: "postgres".to_owned(),
            pool_size: 16,
            connect_timeout_secs: 5,
            allow_unsafe_durability: false,
            restart_timeout_secs: 120,
        }
    }
}

impl DatabaseConfig {
    /// `url` with `password` put in place of the URL's own, when both are set.
    pub fn effective_url(&self) -> Option<SecretString> {
        use secrecy::ExposeSecret;
        let url = self.url.as_ref()?;
        let Some(password) = &self.password else {
            return Some(url.clone());
        };
        Some(with_password(url.expose_secret(), password.expose_secret()).into())
    }
}

/// `postgres://user[:old]@host/db` -> `postgres://user:<password, percent-encoded>@host/db`.
/// A URL without a user is returned as it is: the URL check names that problem.
fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    let encoded =
        percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC);
    format!("{scheme}://{user}:{encoded}@{host}")
}

fn redact<S: Serializer>(secret: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match secret {
        None => ser.serialize_none(),
        Some(_) => ser.serialize_str("[redacted]"),
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
    use super::{redacted_url, with_password};

    #[test]
    fn a_separate_password_replaces_the_urls_own_and_is_encoded() {
        assert_eq!(
            with_password("postgres://galley@db:5432/app", "p@ss:w/rd"),
            "postgres://galley:p%40ss%3Aw%2Frd@db:5432/app"
        );
        assert_eq!(
            with_password("postgres://galley:old@db/app", "new"),
            "postgres://galley:new@db/app"
        );
        assert_eq!(with_password("postgres://db/app", "x"), "postgres://db/app");
    }

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
