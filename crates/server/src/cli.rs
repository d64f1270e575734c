//! Command-line interface. Flags override `GALLEY_*` environment variables, which
//! override `galley.toml`, which overrides the defaults.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "galley",
    version,
    about = "A self-hosted backend: REST over your tables, auth, admin UI"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub flags: Flags,
}

/// Flags that override configuration; accepted before or after the subcommand.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// Configuration file [default: ./galley.toml when present]
    #[arg(long, global = true, env = "GALLEY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where Galley keeps its data: the embedded cluster and the generated JWT secret
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Use this PostgreSQL server instead of the embedded cluster
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Directory holding initdb and pg_ctl for the embedded cluster
    #[arg(long, global = true, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// Address to serve HTTP on
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address to serve /metrics on [default: 127.0.0.1:9464, or a free loopback port
    /// when that is taken]
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (and the embedded PostgreSQL unless --database-url is given)
    Serve,
    /// Print the anon and service_role API keys
    Keys,
    /// Exit 0 when this instance answers `/health/ready` with 200 (for container health
    /// checks)
    Health {
        /// The URL to ask [default: /health/ready on http.listen, via loopback]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Database tools
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The schema history as migration files
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Backups of the database and the signing secret
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Admin accounts: the people who sign in to the admin UI at /admin/
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add an admin; the password is asked for (or read from standard input)
    Create {
        email: String,
        /// Read the password from standard input (its first line) instead of a prompt
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the admins
    List,
    /// Give an admin a new password, ending every session they have
    ResetPassword {
        email: String,
        /// Read the password from standard input (its first line) instead of a prompt
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove an admin, and their sessions
    Delete { email: String },
    /// Turn off an admin's second factor (when they lost their authenticator)
    DisableTotp { email: String },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write a new backup (database, secrets, manifest) to backup.dir
    Create,
    /// List the backups in backup.dir, newest first
    List,
    /// Restore a backup (the newest when no NAME) into a scratch database and compare it
    /// with its manifest
    Verify { name: Option<String> },
    /// Replace this instance's data with a backup's
    Restore {
        name: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Delete the backups that backup.keep_daily and backup.keep_weekly do not keep
    Prune,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write every applied schema change to DIR as ordered SQL files
    Export { dir: PathBuf },
    /// Apply the files in DIR, skipping changes this database already has
    Apply { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Print a connection string for psql, pg_dump and other tools
    Url,
}
