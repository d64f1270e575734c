//! What each subcommand does.

use std::io::Write;

use anyhow::Context;
use galley_auth::{ApiRole, mint_api_key};
use galley_db::EMBEDDED_DATABASE;
use secrecy::ExposeSecret;

use crate::cli::{Cli, Command, DbCommand, SchemaCommand};
use crate::config::{Config, load_config};
use crate::startup::{Application, embedded_cluster};
use crate::{jwt_secret, telemetry};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli.flags)?;
    // Held until the command returns, so every queued log line is written.
    let _logs = telemetry::init_telemetry(config.log_format, &config.log_level)?;
    match cli.command {
        Command::Serve => serve(config),
        Command::Keys => keys(&config),
        Command::Db {
            command: DbCommand::Url,
        } => db_url(&config),
        Command::Schema { command } => schema(&config, command),
    }
}

fn schema(config: &Config, command: SchemaCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let (mut client, connection) = owner_config(config)?
            .connect(tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        let connection = tokio::spawn(connection);
        let mut out = std::io::stdout().lock();
        match command {
            SchemaCommand::Export { dir } => {
                let files = galley_schema::export_history(&client).await?;
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for file in &files {
                    let path = dir.join(&file.name);
                    std::fs::write(&path, &file.content)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                writeln!(out, "exported {} changes to {}", files.len(), dir.display())?;
            }
            SchemaCommand::Apply { dir } => {
                let mut names: Vec<_> = std::fs::read_dir(&dir)
                    .with_context(|| format!("reading {}", dir.display()))?
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
                    .collect();
                names.sort();
                let mut files = Vec::new();
                for path in names {
                    let content = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    files.push(galley_schema::MigrationFile { name, content });
                }
                let report = galley_schema::apply_files(&mut client, &files).await?;
                writeln!(
                    out,
                    "applied {}, skipped {} already present",
                    report.applied.len(),
                    report.skipped.len()
                )?;
            }
        }
        drop(client);
        let _ = connection.await;
        Ok(())
    })
}

/// How the CLI reaches the database as its owner: the URL, or the running embedded
/// cluster's socket.
fn owner_config(config: &Config) -> anyhow::Result<tokio_postgres::Config> {
    if let Some(url) = &config.database.url {
        let targets = galley_db::ConnectTargets::from_url(url.expose_secret(), "unused")
            .map_err(|err| anyhow::anyhow!("invalid configuration: database.url {err}"))?;
        return Ok(targets.owner);
    }
    let cluster = embedded_cluster(config)?;
    if !cluster.is_running() {
        anyhow::bail!(
            "the embedded PostgreSQL in {} is not running; start `galley serve` first",
            config.data_dir().display()
        );
    }
    Ok(cluster.connect_config(EMBEDDED_DATABASE, galley_db::SUPERUSER))
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
            let cluster = embedded_cluster(config)?;
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
