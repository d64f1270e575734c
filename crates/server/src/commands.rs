//! What each subcommand does.

use std::io::Write;

use anyhow::Context;
use galley_auth::{ApiRole, mint_api_key};
use galley_db::{Cluster, ClusterOptions, EMBEDDED_DATABASE, PgBinaries};
use secrecy::ExposeSecret;

use crate::cli::{Cli, Command, DbCommand};
use crate::config::{Config, load_config};
use crate::startup::Application;
use crate::{jwt_secret, telemetry};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli.flags)?;
    telemetry::init_telemetry(config.log_format, &config.log_level)?;
    match cli.command {
        Command::Serve => serve(config),
        Command::Keys => keys(&config),
        Command::Db {
            command: DbCommand::Url,
        } => db_url(&config),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Registered before start-up, so a signal during start-up stops Galley cleanly
        // right after it.
        let shutdown = shutdown_signal()?;
        tracing::info!(config = %config.redacted_json(), "effective configuration");
        let app = Application::build(config).await?;
        app.run_until(shutdown).await
    })
}

/// Completes on the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
        }
    })
}

fn keys(config: &Config) -> anyhow::Result<()> {
    let secret = jwt_secret::load_or_create(config)?;
    let now = chrono::Utc::now();
    let mut out = std::io::stdout().lock();
    for role in [ApiRole::Anon, ApiRole::ServiceRole] {
        writeln!(
            out,
            "{}: {}",
            role.as_str(),
            mint_api_key(&secret, role, now)
        )?;
    }
    Ok(())
}

fn db_url(config: &Config) -> anyhow::Result<()> {
    let url = match &config.database.url {
        Some(url) => url.expose_secret().to_owned(),
        None => {
            let bins = PgBinaries::locate(config.database.pg_bin.as_deref())?;
            let options = ClusterOptions {
                os_user: config.database.os_user.clone(),
                ..ClusterOptions::default()
            };
            let cluster = Cluster::new(config.data_dir(), bins, options)?;
            if !cluster.pgdata().join("PG_VERSION").is_file() {
                anyhow::bail!(
                    "no embedded cluster in {} yet; `galley serve` creates it",
                    config.data_dir().display()
                );
            }
            cluster.url(EMBEDDED_DATABASE)
        }
    };
    writeln!(std::io::stdout().lock(), "{url}")?;
    Ok(())
}
