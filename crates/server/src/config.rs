//! Loading configuration once: defaults, then `galley.toml`, then `GALLEY_*` environment
//! variables, then flags. Unknown keys are refused by name wherever they come from.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use galley_auth::{AuthConfig, SmtpConfig};
use galley_db::DatabaseConfig;
use galley_gateway::{HttpConfig, MetricsConfig, RateLimitConfig, RestConfig};
use galley_schema::SchemaConfig;
use serde::{Deserialize, Serialize};

use crate::cli::Flags;

/// Galley's whole configuration; each section belongs to the crate that uses it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,galley_gateway=debug`.
    pub log_level: String,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub schema: SchemaConfig,
    pub rest: RestConfig,
    /// `/realtime/v1`: channels, broadcast and presence, and their limits.
    pub realtime: galley_realtime::RealtimeConfig,
    /// `/storage/v1`: buckets and objects, and where their bytes are kept.
    pub storage: galley_storage::StorageConfig,
    /// Where auth's mail goes; without it mail stays in the outbox.
    pub smtp: Option<SmtpConfig>,
    /// Request limits of the auth endpoints.
    pub ratelimit: RateLimitConfig,
    /// Where `/metrics` is served.
    pub metrics: MetricsConfig,
    /// `galley backup`.
    pub backup: crate::backup::BackupConfig,
    /// Admin sessions and the first-admin setup link.
    pub admin: galley_auth::AdminConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("galley-data"),
            log_format: LogFormat::Text,
            log_level: "info,tokio_postgres=warn,refinery_core=warn".to_owned(),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            schema: SchemaConfig::default(),
            rest: RestConfig::default(),
            realtime: galley_realtime::RealtimeConfig::default(),
            storage: galley_storage::StorageConfig::default(),
            smtp: None,
            ratelimit: RateLimitConfig::default(),
            metrics: MetricsConfig::default(),
            backup: crate::backup::BackupConfig::default(),
            admin: galley_auth::AdminConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sections whose keys an environment variable addresses as `GALLEY_<SECTION>_<KEY>`.
const SECTIONS: [&str; 12] = [
    "admin",
    "backup",
    "metrics",
    "http",
    "database",
    "auth",
    "schema",
    "rest",
    "realtime",
    "storage",
    "smtp",
    "ratelimit",
];

/// Loads the configuration from every source, in order of precedence.
pub fn load_config(flags: &Flags) -> anyhow::Result<Config> {
    let file = flags.config.clone().or_else(|| {
        let default = PathBuf::from("galley.toml");
        default.is_file().then_some(default)
    });
    if let Some(file) = &file
        && !file.is_file()
    {
        anyhow::bail!("configuration file {} does not exist", file.display());
    }
    let environment = read_environment(std::env::vars_os())?;
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = &file {
        figment = figment.merge(Toml::file_exact(file));
    }
    for var in &environment {
        figment = figment.merge(var);
    }
    let config: Config = figment
        .merge(Serialized::globals(FlagOverrides::from(flags)))
        .extract()
        .map_err(|err| anyhow::anyhow!(describe(err, &environment)))?;
    config.validate()?;
    Ok(config)
}

/// One `GALLEY_*` environment variable: the key it sets, and its value (for
/// `GALLEY_<KEY>_FILE`, the content of the file it names).
#[derive(Debug)]
struct EnvVar {
    /// The variable as the operator wrote it: `GALLEY_DATABASE_URL`.
    name: String,
    /// The key it sets: `database.url`.
    key: String,
    value: Value,
}

/// `GALLEY_DATABASE_URL` -> `database.url`, `GALLEY_DATA_DIR` -> `data_dir`, and
/// `GALLEY_<KEY>_FILE=/path` -> `<key>` with the file's content (its final newline
/// removed), so Docker and Kubernetes secrets need never sit in the environment.
/// `GALLEY_CONFIG` names the configuration file and is not itself a key.
fn read_environment(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> anyhow::Result<Vec<EnvVar>> {
    let mut found: Vec<EnvVar> = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("GALLEY_") else {
            continue;
        };
        if rest.eq_ignore_ascii_case("config") {
            continue;
        }
        let Some(value) = value.to_str() else {
            anyhow::bail!("invalid configuration: {name} is not valid UTF-8");
        };
        let var = match rest.strip_suffix("_FILE") {
            Some(base) => {
                let content = std::fs::read_to_string(value.trim()).map_err(|err| {
                    anyhow::anyhow!("invalid configuration: {name}: reading {value}: {err}")
                })?;
                let content = content.strip_suffix('\n').unwrap_or(&content);
                let content = content.strip_suffix('\r').unwrap_or(content);
                EnvVar {
                    name: name.to_owned(),
                    key: env_key(base),
                    value: Value::from(content.to_owned()),
                }
            }
            None => EnvVar {
                name: name.to_owned(),
                key: env_key(rest),
                // Parsed as figment's own environment provider does ("8000" is a number).
                value: value.trim().parse().unwrap_or_else(|never| match never {}),
            },
        };
        if let Some(other) = found.iter().find(|other| other.key == var.key) {
            anyhow::bail!(
                "invalid configuration: {} and {} both set `{}`; keep one",
                other.name,
                var.name,
                var.key
            );
        }
        found.push(var);
    }
    Ok(found)
}

/// `DATABASE_URL` -> `database.url`: the first `_` after a section's name separates it
/// from the key.
fn env_key(name: &str) -> String {
    let key = name.to_ascii_lowercase();
    for section in SECTIONS {
        if let Some(rest) = key
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('_'))
        {
            return format!("{section}.{rest}");
        }
    }
    key
}

impl Provider for &EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = figment::util::nest(&self.key, self.value.clone())
            .into_dict()
            .ok_or_else(|| figment::Error::from(format!("{} names no key", self.name)))?;
        Ok(Profile::Default.collect(dict))
    }
}

/// One line per problem, naming the key as the operator wrote it and where it came from.
fn describe(err: figment::Error, environment: &[EnvVar]) -> String {
    err.into_iter()
        .map(|err| {
            let mut path = err.path.clone();
            if let figment::error::Kind::UnknownField(field, _) = &err.kind
                && path.last() != Some(field)
            {
                path.push(field.clone());
            }
            let key = path.join(".");
            let var = environment.iter().find(|var| var.key == key);
            let source = match (var, &err.metadata) {
                (Some(var), _) => format!(" (from {})", var.name),
                (None, Some(meta)) => match &meta.source {
                    Some(source) => format!(" (from {source})"),
                    None => format!(" (from {})", meta.name),
                },
                (None, None) => String::new(),
            };
            match &err.kind {
                figment::error::Kind::UnknownField(..) => {
                    let hint = var
                        .and_then(|var| suggest(&var.key))
                        .map(|key| format!("; did you mean GALLEY_{}?", env_name(&key)))
                        .or_else(|| suggest(&key).map(|key| format!("; did you mean `{key}`?")))
                        .unwrap_or_default();
                    format!("invalid configuration: unknown key `{key}`{source}{hint}")
                }
                kind => format!("invalid configuration: `{key}`: {kind}{source}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A key that exists with the same last segment in another section: `jwt_secret` ->
/// `auth.jwt_secret`.
fn suggest(unknown: &str) -> Option<String> {
    let last = unknown.rsplit('.').next()?;
    let defaults = serde_json::to_value(Config::default()).ok()?;
    let mut matches = Vec::new();
    for (section, value) in defaults.as_object()? {
        match value.as_object() {
            Some(keys) if keys.contains_key(last) => matches.push(format!("{section}.{last}")),
            Some(_) => {}
            None if section == last => matches.push(section.clone()),
            None => {}
        }
    }
    matches.retain(|key| key != unknown);
    (matches.len() == 1).then(|| matches.remove(0))
}

/// `auth.jwt_secret` -> `AUTH_JWT_SECRET`.
fn env_name(key: &str) -> String {
    key.replace('.', "_").to_ascii_uppercase()
}

impl Config {
    /// Checks what types alone cannot; JWT secrets are checked when loaded.
    fn validate(&self) -> anyhow::Result<()> {
        self.http
            .validate()
            .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
        self.rest
            .validate()
            .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
        self.backup.cron()?;
        self.backup.sealing()?;
        if self.database.password.is_some() && self.database.url.is_none() {
            anyhow::bail!(
                "invalid configuration: database.password is set without database.url; \
                 the embedded PostgreSQL needs no password"
            );
        }
        if self.database.pool_size == 0 {
            anyhow::bail!("invalid configuration: database.pool_size must be at least 1");
        }
        if let Some(url) = &self.database.effective_url() {
            use secrecy::ExposeSecret;
            galley_db::ConnectTargets::from_url(url.expose_secret(), "check")
                .map_err(|err| anyhow::anyhow!("invalid configuration: database.url {err}"))?;
        }
        if self.auth.password_min_length < 6 {
            anyhow::bail!(
                "invalid configuration: auth.password_min_length must be at least 6 (it is {})",
                self.auth.password_min_length
            );
        }
        if let Some(secret) = &self.auth.jwt_secret {
            use secrecy::ExposeSecret;
            galley_auth::JwtSecret::parse(secret.expose_secret())
                .map_err(|err| anyhow::anyhow!("invalid configuration: auth.jwt_secret: {err}"))?;
        }
        Ok(())
    }

    /// The configuration as JSON with every secret replaced, for the start-up log.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|err| format!("{{\"unprintable\":\"{err}\"}}"))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// The flags as a partial configuration; unset flags leave lower layers alone.
#[derive(Serialize)]
struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
    http: HttpOverrides,
    database: DatabaseOverrides,
    metrics: MetricsOverrides,
}

#[derive(Serialize)]
struct MetricsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
}

#[derive(Serialize)]
struct HttpOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
}

#[derive(Serialize)]
struct DatabaseOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pg_bin: Option<PathBuf>,
}

impl From<&Flags> for FlagOverrides {
    fn from(flags: &Flags) -> Self {
        Self {
            data_dir: flags.data_dir.clone(),
            log_format: flags.log_format,
            http: HttpOverrides {
                listen: flags.listen.clone(),
            },
            database: DatabaseOverrides {
                url: flags.database_url.clone(),
                pg_bin: flags.pg_bin.clone(),
            },
            metrics: MetricsOverrides {
                listen: flags.metrics_listen.clone(),
            },
        }
    }
}
