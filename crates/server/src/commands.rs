//! What each subcommand does.

use std::io::Write;

use anyhow::Context;
use galley_auth::{ApiRole, mint_api_key};
use galley_db::EMBEDDED_DATABASE;
use secrecy::ExposeSecret;

use crate::cli::{AdminCommand, BackupCommand, Cli, Command, DbCommand, SchemaCommand};
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
        Command::Health { url } => health(&config, url.as_deref()),
        Command::Db {
            command: DbCommand::Url,
        } => db_url(&config),
        Command::Schema { command } => schema(&config, command),
        Command::Backup { command } => backup(&config, command),
        Command::Admin { command } => admin(&config, command),
    }
}

fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Asked before connecting: a prompt is no place to wait for a database error.
    let password = match &command {
        AdminCommand::Create { password_stdin, .. }
        | AdminCommand::ResetPassword { password_stdin, .. } => {
            let policy = galley_auth::PasswordPolicy {
                min_chars: config.auth.password_min_length,
                max_bytes: config.auth.password_max_bytes,
                blocklist: config.auth.password_blocklist,
            };
            let password = read_password(*password_stdin)?;
            galley_auth::check_admin_password(&policy, &password)?;
            Some(password)
        }
        AdminCommand::List | AdminCommand::Delete { .. } | AdminCommand::DisableTotp { .. } => None,
    };
    runtime.block_on(async {
        let (mut client, connection) = owner_config(config)?
            .connect(tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        let connection = tokio::spawn(connection);
        let hash = match &password {
            Some(password) => Some(
                galley_auth::PasswordHasherPool::new(galley_auth::HashCost::default(), 1)?
                    .hash(password)
                    .await?,
            ),
            None => None,
        };
        let hash = hash.unwrap_or_default();
        let mut out = std::io::stdout().lock();
        match command {
            AdminCommand::Create { email, .. } => {
                galley_auth::create_admin(&client, &email, &hash).await?;
                writeln!(out, "created admin {}", galley_auth::admin_email(&email)?)?;
            }
            AdminCommand::List => {
                for admin in galley_auth::list_admins(&client).await? {
                    writeln!(
                        out,
                        "{}\t{}\tcreated {}\tlast sign-in {}",
                        admin.email,
                        admin.id,
                        admin.created_at.to_rfc3339(),
                        admin
                            .last_sign_in_at
                            .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339())
                    )?;
                }
            }
            AdminCommand::ResetPassword { email, .. } => {
                galley_auth::set_admin_password(&mut client, &email, &hash).await?;
                writeln!(out, "new password set; every session of {email} has ended")?;
            }
            AdminCommand::Delete { email } => {
                galley_auth::delete_admin(&client, &email).await?;
                writeln!(out, "deleted admin {email}")?;
            }
            AdminCommand::DisableTotp { email } => {
                galley_auth::disable_admin_totp(&client, &email).await?;
                writeln!(
                    out,
                    "{email} signs in with a password alone until they enrol again"
                )?;
            }
        }
        drop(client);
        let _ = connection.await;
        Ok(())
    })
}

/// The new password: the first line of standard input, or typed twice at a prompt that
/// does not echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(!password.is_empty(), "no password on standard input");
        return Ok(password);
    }
    let password = rpassword::prompt_password("Password: ")
        .context("reading the password (no terminal? pipe it in with --password-stdin)")?;
    let again = rpassword::prompt_password("Password again: ").context("reading the password")?;
    anyhow::ensure!(password == again, "the passwords differ");
    Ok(password)
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

fn backup(config: &Config, command: BackupCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut out = std::io::stdout().lock();
    match command {
        BackupCommand::List => {
            for manifest in runtime.block_on(crate::backup::list(config))? {
                let bytes: u64 = manifest.parts.values().map(|part| part.bytes).sum();
                let rows: i64 = manifest.row_counts.values().sum();
                writeln!(
                    out,
                    "{}\t{}\t{} bytes\t{} tables\t{} rows",
                    manifest.name,
                    manifest.created_at.to_rfc3339(),
                    bytes,
                    manifest.row_counts.len(),
                    rows
                )?;
            }
        }
        BackupCommand::Prune => {
            for name in runtime.block_on(crate::backup::prune(config))? {
                writeln!(out, "removed {name}")?;
            }
        }
        BackupCommand::Create => {
            let target = owner_config(config)?;
            let created = runtime.block_on(crate::backup::create(config, target))?;
            writeln!(out, "{}", created.location)?;
        }
        BackupCommand::Verify { name } => {
            let target = owner_config(config)?;
            let manifest =
                runtime.block_on(crate::backup::verify(config, target, name.as_deref()))?;
            writeln!(
                out,
                "{} verified: checksums match; {} tables, {} policies and {} grants restore as recorded",
                manifest.name,
                manifest.row_counts.len(),
                manifest.policies.len(),
                manifest.grants.len()
            )?;
        }
        BackupCommand::Restore { name, yes } => {
            if !yes {
                confirm_restore(config, &name)?;
            }
            let target = owner_config(config)?;
            let manifest = runtime.block_on(crate::backup::restore(config, target, &name))?;
            writeln!(
                out,
                "restored {} (taken {}); restart Galley so every instance reads the restored secret",
                manifest.name,
                manifest.created_at.to_rfc3339()
            )?;
        }
    }
    Ok(())
}

/// Asks on the terminal for the backup's name before its data replaces this instance's.
fn confirm_restore(config: &Config, name: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "restoring replaces every row of this instance's database; pass --yes to confirm"
        );
    }
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "Restoring {name} replaces every row of the database of {} with the backup's.\nType the backup's name to go on: ",
        config.data_dir().display()
    )?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != name {
        anyhow::bail!("not confirmed; nothing was restored");
    }
    Ok(())
}

/// How the CLI reaches the database as its owner: the URL, or the running embedded
/// cluster's socket.
fn owner_config(config: &Config) -> anyhow::Result<tokio_postgres::Config> {
    if let Some(url) = &config.database.effective_url() {
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
    let secret = jwt_secret::load(config)?;
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
    let url = match &config.database.effective_url() {
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

/// `galley health`: asks `/health/ready` and exits 0 only on a 200. Plain HTTP/1.0 over
/// a socket, so the container image needs no curl.
fn health(config: &Config, url: Option<&str>) -> anyhow::Result<()> {
    use std::io::Read;
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::Duration;

    let (address, path) = match url {
        Some(url) => {
            let rest = url
                .strip_prefix("http://")
                .context("--url must start with http://")?;
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let address = host
                .to_socket_addrs()
                .with_context(|| format!("resolving {host}"))?
                .next()
                .with_context(|| format!("{host} resolves to no address"))?;
            let path = if path.is_empty() { "/" } else { path };
            (address, path.to_owned())
        }
        None => {
            // A wildcard listen address is reached through loopback.
            let listen = config.http.listen;
            let ip = match listen.ip() {
                ip if !ip.is_unspecified() => ip,
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            (
                SocketAddr::new(ip, listen.port()),
                "/health/ready".to_owned(),
            )
        }
    };
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: galley-health\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .with_context(|| format!("reading the answer of {address}"))?;
    let response = String::from_utf8_lossy(&response);
    let status = response.lines().next().unwrap_or_default();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        writeln!(std::io::stdout().lock(), "{body}")?;
        Ok(())
    } else {
        anyhow::bail!("http://{address}{path} answered {status:?}: {body}")
    }
}
