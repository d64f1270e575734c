//! Loading configuration once: defaults, then `galley.toml`, then `GALLEY_*` environment
//! variables, then flags. Unknown keys are refused by name wherever they come from.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
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
    /// Where auth's mail goes; without it mail stays in the outbox.
    pub smtp: Option<SmtpConfig>,
    /// Request limits of the auth endpoints.
    pub ratelimit: RateLimitConfig,
    /// Where `/metrics` is served.
    pub metrics: MetricsConfig,
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
            smtp: None,
            ratelimit: RateLimitConfig::default(),
            metrics: MetricsConfig::default(),
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
const SECTIONS: [&str; 8] = [
    "metrics",
    "http",
    "database",
    "auth",
    "schema",
    "rest",
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
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = &file {
        figment = figment.merge(Toml::file_exact(file));
    }
    let config: Config = figment
        .merge(env_provider())
        .merge(Serialized::globals(FlagOverrides::from(flags)))
        .extract()
        .map_err(|err| anyhow::anyhow!(describe(err)))?;
    config.validate()?;
    Ok(config)
}

/// `GALLEY_DATABASE_URL` -> `database.url`, `GALLEY_DATA_DIR` -> `data_dir`.
/// `GALLEY_CONFIG` names the file and is not itself a key.
fn env_provider() -> Env {
    Env::prefixed("GALLEY_").ignore(&["config"]).map(|key| {
        let key = key.as_str().to_ascii_lowercase();
        for section in SECTIONS {
            if let Some(rest) = key
                .strip_prefix(section)
                .and_then(|rest| rest.strip_prefix('_'))
            {
                return format!("{section}.{rest}").into();
            }
        }
        key.into()
    })
}

/// One line per problem, naming the key and where it came from.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|err| {
            let key = err.path.join(".");
            let source = err
                .metadata
                .as_ref()
                .map(|meta| match &meta.source {
                    Some(source) => format!(" (from {})", source),
                    None => format!(" (from {})", meta.name),
                })
                .unwrap_or_default();
            match &err.kind {
                figment::error::Kind::UnknownField(field, _) => {
                    let full = if key.is_empty() {
                        field.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    format!("invalid configuration: unknown key `{full}`{source}")
                }
                kind => format!("invalid configuration: `{key}`: {kind}{source}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// Checks what types alone cannot; JWT secrets are checked when loaded.
    fn validate(&self) -> anyhow::Result<()> {
        self.http
            .validate()
            .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
        if self.database.pool_size == 0 {
            anyhow::bail!("invalid configuration: database.pool_size must be at least 1");
        }
        if let Some(url) = &self.database.url {
            use secrecy::ExposeSecret;
            galley_db::ConnectTargets::from_url(url.expose_secret(), "check")
                .map_err(|err| anyhow::anyhow!("invalid configuration: database.url {err}"))?;
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
        }
    }
}
