//! Start-up and shutdown: secret, database (embedded or operator-owned), migrations,
//! pools, HTTP server; then, on a shutdown signal, the same in reverse.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use galley_auth::{
    AccessSigner, Accounts, ApiRole, AuthSettings, HashCost, JwtSecret, KeySet, OutboxWorker,
    PasswordHasherPool, PasswordPolicy, Templates, TokenVerifier, mint_api_key,
};
use galley_db::{
    Cluster, ClusterLock, ClusterOptions, ConnectTargets, EMBEDDED_DATABASE, PgBinaries, Pools,
    SUPERUSER,
};
use galley_gateway::AppState;
use galley_schema::CatalogCache;
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;

use crate::config::Config;
use crate::jwt_secret;

/// A started Galley: migrated, listening, not yet serving until [`Application::run_until`].
pub struct Application {
    serving: Serving,
    embedded: Option<Embedded>,
    banner: Banner,
    drain_delay: Duration,
    /// How long the embedded cluster may stay down before liveness fails.
    restart_timeout: Duration,
}

/// The addresses Galley serves on, bound before anything else starts.
struct Listeners {
    http: TcpListener,
    metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the main and the metrics address, so a port in use stops Galley before it
    /// runs initdb or migrations, with one line naming the address and the setting that
    /// moves it.
    fn bind(config: &Config) -> anyhow::Result<Self> {
        let listen = config.http.listen;
        let http = TcpListener::bind(listen).map_err(|err| {
            anyhow::anyhow!(
                "cannot listen on {listen}: {err}; choose another address with --listen \
                 (http.listen, GALLEY_HTTP_LISTEN)"
            )
        })?;
        if !config.metrics.enabled {
            return Ok(Self {
                http,
                metrics: None,
            });
        }
        let metrics = match config.metrics.listen {
            Some(address) => TcpListener::bind(address).map_err(|err| {
                anyhow::anyhow!(
                    "cannot serve /metrics on {address}: {err}; choose another address with \
                     --metrics-listen (metrics.listen, GALLEY_METRICS_LISTEN), or set \
                     metrics.enabled = false"
                )
            })?,
            None => match TcpListener::bind(galley_gateway::DEFAULT_METRICS_LISTEN) {
                Ok(listener) => listener,
                // A second Galley on this machine: the metrics listener follows it onto a
                // free port rather than stopping it.
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                        .context("binding the metrics listener to a free loopback port")?;
                    tracing::warn!(
                        taken = %galley_gateway::DEFAULT_METRICS_LISTEN,
                        address = %listener.local_addr().context("reading the metrics address")?,
                        "the default metrics address is taken (another Galley?): /metrics is \
                         served on a free loopback port instead; set --metrics-listen \
                         (metrics.listen) to choose one"
                    );
                    listener
                }
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!(
                            "cannot serve /metrics on {}; choose another address with \
                             --metrics-listen (metrics.listen, GALLEY_METRICS_LISTEN)",
                            galley_gateway::DEFAULT_METRICS_LISTEN
                        )
                    });
                }
            },
        };
        Ok(Self {
            http,
            metrics: Some(metrics),
        })
    }
}

/// What `galley serve` prints on standard output once it serves, as `supabase start`
/// does: where everything is, and the API keys.
struct Banner {
    keys: [(&'static str, String); 2],
    /// How to reach the database with psql, for the embedded cluster.
    database: String,
    /// The command that prints the keys where they are not shown.
    keys_command: String,
}

/// What serves requests once the database is ready.
struct Serving {
    address: SocketAddr,
    server: actix_web::dev::Server,
    state: AppState,
    pools: Pools,
    catalog_listener: tokio::task::JoinHandle<()>,
    /// Follows the realtime change log (when realtime is on).
    change_feed: Option<tokio::task::JoinHandle<()>>,
    /// Delivers the mail outbox, when SMTP is configured.
    mail_worker: Option<tokio::task::JoinHandle<()>>,
    /// Removes stored bytes no object names (when storage is on).
    storage_sweep: Option<tokio::task::JoinHandle<()>>,
    /// `/metrics` on its own listener, unless disabled.
    metrics: Option<(SocketAddr, actix_web::dev::Server)>,
    /// The registry, for gauges kept up to date from outside a request.
    registry: Arc<galley_metrics::Metrics>,
    /// Where `galley backup` writes, watched for the age of the newest backup.
    backup_destination: crate::backup::Destination,
    /// Scheduled backups, when `backup.schedule` is set.
    backup_schedule: Option<BackupSchedule>,
    /// The URL clients reach Galley at, for the admin setup link.
    public_url: String,
}

/// What the backup scheduler needs: when, how to reach the database, and the settings
/// `galley backup create` would use.
struct BackupSchedule {
    cron: croner::Cron,
    owner: tokio_postgres::Config,
    pool: galley_db::Pool,
    config: Config,
}

/// The schemas the catalog reads: `public`, where the admin API defines tables, and those
/// `/rest/v1` serves.
fn catalog_schemas(config: &Config) -> Vec<String> {
    let mut schemas = vec!["public".to_owned()];
    for schema in &config.rest.schemas {
        if !schemas.contains(schema) {
            schemas.push(schema.clone());
        }
    }
    schemas
}

/// Where the database comes from.
enum Database {
    Url(String),
    Embedded(Cluster),
}

/// The embedded cluster and the lock that makes this process its only user.
struct Embedded {
    cluster: Cluster,
    _lock: ClusterLock,
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        fit_open_files(&mut config);
        // Settle everything that can be wrong with this machine before writing anything.
        let listeners = Listeners::bind(&config)?;
        let database = match &config.database.effective_url() {
            Some(url) => Database::Url(url.expose_secret().to_owned()),
            None => Database::Embedded(embedded_cluster(&config)?),
        };
        let secret = jwt_secret::load_or_create(&config)?;
        let (targets, embedded) = match database {
            Database::Url(url) => {
                let password = jwt_secret::authenticator_password(&secret);
                let targets = ConnectTargets::from_url(&url, &password)
                    .map_err(|err| anyhow::anyhow!("invalid configuration: database.url {err}"))?;
                (targets, None)
            }
            Database::Embedded(cluster) => {
                let embedded = start_embedded(&config, cluster).await?;
                (ConnectTargets::embedded(&embedded.cluster), Some(embedded))
            }
        };
        let banner = Banner {
            keys: [ApiRole::Anon, ApiRole::ServiceRole].map(|role| {
                (
                    role.as_str(),
                    mint_api_key(&secret, role, chrono::Utc::now()),
                )
            }),
            database: if embedded.is_some() {
                format!(
                    "`galley db url --data-dir {}` prints it (embedded PostgreSQL)",
                    config.data_dir().display()
                )
            } else {
                "database.url (operator-owned PostgreSQL)".to_owned()
            },
            keys_command: match config.auth.jwt_secret {
                Some(_) => "galley keys".to_owned(),
                None => format!("galley keys --data-dir {}", config.data_dir().display()),
            },
        };
        let drain_delay = Duration::from_secs(config.http.drain_delay_secs);
        let restart_timeout = Duration::from_secs(config.database.restart_timeout_secs);
        match Self::build_on(&config, targets, &secret, listeners).await {
            Ok(serving) => Ok(Self {
                serving,
                embedded,
                banner,
                drain_delay,
                restart_timeout,
            }),
            Err(err) => {
                // Leave no cluster running behind a failed start.
                if let Some(embedded) = embedded {
                    let cluster = embedded.cluster;
                    let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
                }
                Err(err)
            }
        }
    }

    /// Migrates, builds the pools and the catalog, and binds the listener.
    async fn build_on(
        config: &Config,
        targets: ConnectTargets,
        secret: &JwtSecret,
        listeners: Listeners,
    ) -> anyhow::Result<Serving> {
        let timeout = Duration::from_secs(config.database.connect_timeout_secs);
        let targets = targets.with_timeouts(timeout);
        let (mut owner, connection) = targets
            .owner
            .connect(NoTls)
            .await
            .context("connecting to PostgreSQL")?;
        let connection = tokio::spawn(connection);
        galley_db::migrate(&mut owner, &targets.authenticator)
            .await
            .context("preparing the database")?;
        let problems = galley_db::preflight(&owner, config.database.allow_unsafe_durability)
            .await
            .context("checking the database server")?;
        if !problems.is_empty() {
            anyhow::bail!("refusing to start: {}", problems.join("; "));
        }
        drop(owner);
        let _ = connection.await;

        let pools = Pools::build(
            &targets,
            config.database.pool_size,
            galley_gateway::worker_count(&config.http),
            timeout,
        );
        let catalog = CatalogCache::new(pools.owner.clone(), catalog_schemas(config));
        catalog
            .reload()
            .await
            .context("reading the schema catalog")?;
        let catalog_listener = catalog.spawn_listener(targets.owner.clone());
        let backup_destination = crate::backup::Destination::of(config)?;
        let backup_schedule = config.backup.cron()?.map(|cron| BackupSchedule {
            cron,
            owner: targets.owner.clone(),
            pool: pools.owner.clone(),
            config: config.clone(),
        });
        let listener = listeners.http;
        let address = listener.local_addr().context("reading the bound address")?;
        let keys = KeySet::load(&config.auth.signing_keys).map_err(|err| anyhow::anyhow!(err))?;
        let public_url = public_url(config, address);
        let (accounts, admins) = accounts(config, secret, &keys, &pools, &public_url)?;
        let mut metrics = galley_metrics::Metrics::new(env!("CARGO_PKG_VERSION"));
        metrics.track_requests = config.metrics.request_metrics;
        let metrics = Arc::new(metrics);
        let registry = metrics.clone();
        let mail_worker = match &config.smtp {
            Some(smtp) => {
                let worker = OutboxWorker::new(
                    pools.owner.clone(),
                    smtp,
                    accounts.mail_queued(),
                    metrics.clone(),
                )
                .map_err(|err| anyhow::anyhow!("smtp: {err}"))?;
                Some(tokio::spawn(worker.run()))
            }
            None => None,
        };
        let tokens = TokenVerifier::with_keys(secret, keys);
        let realtime = config.realtime.enabled.then(|| {
            galley_realtime::Realtime::new(config.realtime.clone(), tokens.clone(), metrics.clone())
        });
        let change_feed = realtime.as_ref().map(|realtime| {
            realtime.start_changes(galley_realtime::changes::ChangeSources {
                owner: pools.owner.clone(),
                api: pools.api.clone(),
                catalog: catalog.clone(),
                listen: targets.owner.clone(),
            })
        });
        let storage = match config.storage.enabled {
            true => {
                let store = galley_storage::Store::from_config(&config.storage, config.data_dir())
                    .map_err(|err| anyhow::anyhow!("storage: {err}"))?;
                tracing::info!(
                    backend = store.kind(),
                    location = store.description(),
                    "storage keeps objects here"
                );
                Some(Arc::new(galley_storage::Storage::new(
                    config.storage.clone(),
                    store,
                    pools.api.clone(),
                    pools.owner.clone(),
                    galley_storage::UrlSigner::new(secret),
                    metrics.clone(),
                )))
            }
            false => None,
        };
        let storage_sweep = storage.as_ref().map(|storage| {
            tokio::spawn(galley_storage::sweep::run(
                storage.store().clone(),
                pools.owner.clone(),
            ))
        });
        let state = AppState::new(
            pools.clone(),
            catalog,
            tokens,
            config.schema.clone(),
            config.rest.clone(),
            Arc::new(accounts),
            Arc::new(admins),
            public_url.starts_with("https://"),
            config.ratelimit.clone(),
            metrics,
            config.metrics.bearer_token.clone(),
        )
        .with_operator_view(galley_gateway::OperatorView {
            anon_key: mint_api_key(secret, ApiRole::Anon, chrono::Utc::now()),
            service_key: mint_api_key(secret, ApiRole::ServiceRole, chrono::Utc::now()).into(),
            config: serde_json::from_str(&config.redacted_json()).unwrap_or_default(),
            project: config.auth.project_name.clone(),
            public_authority: public_url
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_owned())
                .unwrap_or_default(),
        })
        .with_backups(Arc::new(crate::backup::AdminBackups {
            config: config.clone(),
            owner: targets.owner.clone(),
        }));
        let state = match realtime {
            Some(realtime) => state.with_realtime(realtime),
            None => state,
        };
        let state = match storage {
            Some(storage) => state.with_storage(storage),
            None => state,
        };
        let metrics_server = if let Some(listener) = listeners.metrics {
            let address = listener
                .local_addr()
                .context("reading the metrics address")?;
            let server = galley_gateway::metrics_server(listener, state.clone())
                .context("starting the metrics listener")?;
            Some((address, server))
        } else {
            None
        };
        let server = galley_gateway::server(listener, state.clone(), &config.http)
            .context("starting HTTP")?;
        Ok(Serving {
            address,
            server,
            state,
            pools,
            catalog_listener,
            change_feed,
            mail_worker,
            storage_sweep,
            metrics: metrics_server,
            registry,
            backup_destination,
            backup_schedule,
            public_url,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.serving.address
    }

    /// Where the metrics listener serves `/metrics`, when it runs.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.serving.metrics.as_ref().map(|(address, _)| *address)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (up to `http.shutdown_timeout_secs`), closes the pools and stops the embedded
    /// cluster.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Serving {
            address,
            server,
            state,
            pools,
            catalog_listener,
            change_feed,
            mail_worker,
            storage_sweep,
            metrics,
            registry,
            backup_destination,
            backup_schedule,
            public_url,
        } = self.serving;
        let url = format!("http://{address}");
        tracing::info!(
            url = %url,
            "Galley is serving: REST at {url}/rest/v1, auth at {url}/auth/v1; `galley keys` prints the API keys"
        );
        if self.embedded.is_some() {
            tracing::info!("`galley db url` prints a connection string for psql and pg_dump");
        }
        let handle = server.handle();
        let mut serving = tokio::spawn(server);
        let backup_watch = tokio::spawn(watch_backups(registry.clone(), backup_destination));
        let backup_scheduler =
            backup_schedule.map(|schedule| tokio::spawn(run_backup_schedule(schedule, registry)));
        let supervisor = self.embedded.as_ref().map(|embedded| {
            tokio::spawn(supervise(
                embedded.cluster.clone(),
                state.clone(),
                self.restart_timeout,
            ))
        });
        let metrics_url = metrics
            .as_ref()
            .map(|(address, _)| format!("http://{address}/metrics"));
        let metrics_handle = metrics.map(|(address, server)| {
            tracing::info!(url = %format!("http://{address}/metrics"), "metrics are served");
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let setup_link = match state.admins().setup_token().await {
            Ok(Some(token)) => {
                tracing::info!(
                    event = "admin.setup_link",
                    "no admin exists yet: a one-time setup link is printed on standard output (or run `galley admin create EMAIL`)"
                );
                Some(format!("{public_url}/admin/#setup={token}"))
            }
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %galley_db::report(&err), "could not make an admin setup link");
                None
            }
        };
        self.banner
            .print(&url, metrics_url.as_deref(), setup_link.as_deref());
        let mut stopped = false;
        tokio::select! {
            () = shutdown => {}
            ended = &mut serving => {
                tracing::warn!(?ended, "the HTTP server stopped on its own");
                stopped = true;
            }
        }
        state.begin_shutdown();
        if !stopped && !self.drain_delay.is_zero() {
            // Still serving, but no longer ready: a load balancer's health check takes
            // this instance out of rotation before its port closes.
            tracing::info!(
                seconds = self.drain_delay.as_secs(),
                "shutting down: /health/ready answers 503; still serving until load balancers notice"
            );
            tokio::select! {
                () = tokio::time::sleep(self.drain_delay) => {}
                ended = &mut serving => {
                    tracing::warn!(?ended, "the HTTP server stopped on its own");
                }
            }
        }
        tracing::info!("shutting down: draining in-flight requests");
        // Realtime sockets never finish on their own: they are told to go (1001) so
        // their clients reconnect elsewhere, and the drain does not wait on them.
        state.close_realtime();
        handle.stop(true).await;
        let served = serving.await;
        backup_watch.abort();
        if let Some(scheduler) = backup_scheduler {
            scheduler.abort();
        }
        // Before the cluster is stopped below, so nothing starts it again.
        if let Some(supervisor) = supervisor {
            supervisor.abort();
        }
        catalog_listener.abort();
        if let Some(feed) = change_feed {
            feed.abort();
        }
        if let Some(handle) = metrics_handle {
            handle.stop(true).await;
        }
        if let Some(worker) = mail_worker {
            worker.abort();
        }
        if let Some(sweep) = storage_sweep {
            sweep.abort();
        }
        pools.api.close();
        pools.owner.close();
        if let Some(embedded) = self.embedded {
            let cluster = embedded.cluster.clone();
            tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .context("stopping PostgreSQL")?
                .context("stopping PostgreSQL")?;
            tracing::info!("PostgreSQL stopped");
        }
        match served {
            Ok(result) => result.context("serving HTTP"),
            Err(err) => Err(err).context("serving HTTP"),
        }
    }
}

impl Banner {
    /// Writes the banner to standard output. The keys are shown only on a terminal: an
    /// output collected into logs (a container's, a journal) gets the command that prints
    /// them instead, since the `service_role` key bypasses row-level security.
    fn print(&self, url: &str, metrics_url: Option<&str>, setup_link: Option<&str>) {
        use std::io::{IsTerminal, Write};
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let mut text = format!(
            "\nGalley is ready.\n\n\
             {:>18}: {url}\n{:>18}: {url}/rest/v1\n{:>18}: {url}/auth/v1\n",
            "API URL", "REST URL", "Auth URL"
        );
        if let Some(metrics_url) = metrics_url {
            text.push_str(&format!("{:>18}: {metrics_url}\n", "Metrics URL"));
        }
        text.push_str(&format!("{:>18}: {url}/admin/\n", "Admin UI"));
        text.push_str(&format!("{:>18}: {}\n", "Database URL", self.database));
        if terminal {
            for (role, key) in &self.keys {
                text.push_str(&format!("{:>18}: {key}\n", format!("{role} key")));
            }
        } else {
            text.push_str(&format!(
                "{:>18}: `{}` prints them (not shown: this output is not a terminal)\n",
                "API keys", self.keys_command
            ));
        }
        if let Some(link) = setup_link {
            // One-time and short-lived: printed even when this output is collected, or
            // nobody could reach the first sign-in.
            text.push_str(&format!(
                "\nNo admin exists yet. Open this one-time link to create the first one\n\
                 (or run `galley admin create EMAIL`):\n\n    {link}\n"
            ));
        }
        text.push('\n');
        let mut out = stdout.lock();
        // Nothing to do if standard output is gone; the log has the addresses too.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// Keeps `galley_backup_age_seconds{target="local"}` at the age of the newest backup in
/// `dir` (backups are written by `galley backup create`, another process), so the
/// `GalleyBackupTooOld` alert watches a real series. No backup yet: no series.
async fn watch_backups(
    metrics: Arc<galley_metrics::Metrics>,
    destination: crate::backup::Destination,
) {
    // A bucket is asked less often: each look is a LIST request.
    let every = match destination {
        crate::backup::Destination::Dir(_) => Duration::from_secs(15),
        crate::backup::Destination::Bucket(_) => Duration::from_secs(60),
    };
    loop {
        match destination.newest().await {
            Ok(Some(newest)) => {
                let age = (chrono::Utc::now() - newest).num_milliseconds() as f64 / 1000.0;
                metrics
                    .backup_age_seconds
                    .with_label_values(&[destination.target()])
                    .set(age.max(0.0));
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "could not look for the newest backup");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Takes a backup at every moment `backup.schedule` names. Each moment is claimed with a
/// row in `galley.backup_runs` (its primary key is the moment), so of several instances
/// exactly one runs it, and a pruning follows. A failure is logged as an error and
/// counted in `galley_backup_runs_total{outcome="failed"}`.
async fn run_backup_schedule(schedule: BackupSchedule, metrics: Arc<galley_metrics::Metrics>) {
    use chrono::Timelike;
    // Whole seconds: croner keeps the start's fraction, and every instance must compute
    // the same moment for the claim in `galley.backup_runs` to be one row.
    let whole = |at: chrono::DateTime<chrono::Utc>| at.with_nanosecond(0).unwrap_or(at);
    let mut after = whole(chrono::Utc::now());
    loop {
        let Ok(slot) = schedule.cron.find_next_occurrence(&after, false) else {
            tracing::error!("backup.schedule names no future moment; scheduled backups stop");
            return;
        };
        let slot = whole(slot);
        after = slot;
        let wait = (slot - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let claimed = match schedule.pool.get().await {
            Ok(client) => client
                .execute(
                    "INSERT INTO galley.backup_runs (slot) VALUES ($1) ON CONFLICT (slot) DO NOTHING",
                    &[&slot],
                )
                .await
                .map_err(|err| galley_db::report(&err).to_string()),
            Err(err) => Err(galley_db::report(&err).to_string()),
        };
        match claimed {
            Ok(1) => {}
            Ok(_) => continue, // another instance runs this one
            Err(error) => {
                metrics.backup_runs.with_label_values(&["failed"]).inc();
                tracing::error!(event = "backup.failed", %slot, %error, "a scheduled backup could not be claimed");
                continue;
            }
        }
        let started = std::time::Instant::now();
        let result = crate::backup::create(&schedule.config, schedule.owner.clone()).await;
        let (outcome, name, error) = match &result {
            Ok(created) => {
                let bytes = created.bytes;
                metrics.backup_runs.with_label_values(&["succeeded"]).inc();
                metrics
                    .backup_last_duration_seconds
                    .set(started.elapsed().as_secs_f64());
                metrics.backup_last_size_bytes.set(bytes as f64);
                let name = Some(created.name.clone());
                tracing::info!(event = "backup.created", %slot, name = created.name, location = created.location, bytes, "scheduled backup taken");
                match crate::backup::prune(&schedule.config).await {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(
                            event = "backup.pruned",
                            removed = removed.join(","),
                            "old backups removed"
                        );
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::error!(event = "backup.prune_failed", error = %format!("{err:#}"), "pruning backups failed")
                    }
                }
                ("succeeded", name, None)
            }
            Err(err) => {
                metrics.backup_runs.with_label_values(&["failed"]).inc();
                let error = format!("{err:#}");
                tracing::error!(event = "backup.failed", %slot, %error, "a scheduled backup failed");
                ("failed", None, Some(error))
            }
        };
        if let Ok(client) = schedule.pool.get().await {
            let _ = client
                .execute(
                    "UPDATE galley.backup_runs SET finished_at = now(), outcome = $2, name = $3, error = $4 WHERE slot = $1",
                    &[&slot, &outcome, &name, &error],
                )
                .await;
        }
    }
}

/// How often the supervisor looks at the embedded postmaster.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
/// The first and the longest pause between two restart attempts.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(10));

/// Keeps the embedded PostgreSQL running: when its postmaster is gone (killed, crashed,
/// or its crash recovery failed, say on a full disk), starts it again with backoff until
/// it stays up. Meanwhile requests get 503 and `/health/ready` fails; once the cluster
/// has been down for `give_up_after`, `/health/live` fails too, until it is back.
async fn supervise(cluster: Cluster, state: AppState, give_up_after: Duration) {
    let mut down_since: Option<std::time::Instant> = None;
    let mut backoff = RESTART_BACKOFF.0;
    let mut attempts: u32 = 0;
    let mut gave_up = false;
    loop {
        tokio::time::sleep(if down_since.is_some() {
            backoff
        } else {
            SUPERVISE_EVERY
        })
        .await;
        if cluster.postmaster_alive() {
            continue;
        }
        let since = *down_since.get_or_insert_with(|| {
            tracing::error!(
                event = "postgres.down",
                "the embedded PostgreSQL is not running; restarting it"
            );
            std::time::Instant::now()
        });
        attempts += 1;
        let starting = cluster.clone();
        match tokio::task::spawn_blocking(move || starting.start()).await {
            Ok(Ok(())) => {
                tracing::info!(
                    event = "postgres.restarted",
                    attempts,
                    down_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "the embedded PostgreSQL is running again"
                );
                state.set_unrecoverable(false);
                gave_up = false;
                down_since = None;
                attempts = 0;
                backoff = RESTART_BACKOFF.0;
            }
            failed => {
                let error = match failed {
                    Ok(Err(err)) => galley_db::report(&err).to_string(),
                    Err(err) => err.to_string(),
                    Ok(Ok(())) => String::new(),
                };
                tracing::warn!(event = "postgres.restart_failed", attempts, %error, "the embedded PostgreSQL did not start; trying again");
                if since.elapsed() >= give_up_after && !gave_up {
                    gave_up = true;
                    tracing::error!(
                        event = "postgres.unrecoverable",
                        seconds = give_up_after.as_secs(),
                        "the embedded PostgreSQL has been down too long: /health/live fails so the process is restarted"
                    );
                    state.set_unrecoverable(true);
                }
                backoff = (backoff * 2).min(RESTART_BACKOFF.1);
            }
        }
    }
}

/// Open files left for everything but client connections: database connections, the
/// log, the data directory, the metrics listener.
const RESERVED_FILES: u64 = 256;

/// Raises this process's open-file limit to its hard limit (a soft limit of 1,024 is
/// common and 1,100 stalled uploads would exhaust it, until not even `/health/live` was
/// accepted), then lowers `http.max_connections` to fit under it, so connections past the
/// cap wait in the listen queue instead of failing to be accepted.
fn fit_open_files(config: &mut Config) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        tracing::info!(from = soft, to = hard, "raised the open-file limit");
        hard
    } else {
        soft
    };
    let pools = u64::try_from(config.database.pool_size).unwrap_or(u64::MAX);
    let budget = limit.saturating_sub(RESERVED_FILES + 2 * pools).max(16);
    let wanted = u64::try_from(config.http.max_connections).unwrap_or(u64::MAX);
    if wanted > budget {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = limit,
            lowered_to = budget,
            "http.max_connections does not fit under the open-file limit; lowered (raise the limit: `ulimit -n`, LimitNOFILE=, or the container's nofile ulimit)"
        );
        config.http.max_connections = usize::try_from(budget).unwrap_or(usize::MAX);
    }
}

/// Finds the PostgreSQL programs and the user to run them as.
pub(crate) fn embedded_cluster(config: &Config) -> anyhow::Result<Cluster> {
    let bins = PgBinaries::locate(config.database.pg_bin.as_deref())?;
    let options = ClusterOptions {
        durable: true,
        os_user: config.database.os_user.clone(),
        max_connections: 100,
    };
    Ok(Cluster::new(config.data_dir(), bins, options)?)
}

async fn start_embedded(config: &Config, cluster: Cluster) -> anyhow::Result<Embedded> {
    let lock = cluster.lock(false)?.ok_or_else(|| {
        anyhow::anyhow!(
            "another galley process is serving the data directory {}",
            config.data_dir().display()
        )
    })?;
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start())
        .await
        .context("starting PostgreSQL")??;
    tracing::info!(socket = %cluster.socket_dir().display(), "embedded PostgreSQL is up");
    create_database(&cluster).await?;
    Ok(Embedded {
        cluster,
        _lock: lock,
    })
}

/// Creates Galley's database in a new cluster; `initdb` only makes `postgres`.
async fn create_database(cluster: &Cluster) -> anyhow::Result<()> {
    let (client, connection) = cluster
        .connect_config("postgres", SUPERUSER)
        .connect(NoTls)
        .await
        .context("connecting to the embedded PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&EMBEDDED_DATABASE],
        )
        .await
        .context("looking for Galley's database")?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {EMBEDDED_DATABASE}"))
            .await
            .context("creating Galley's database")?;
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// The account operations behind `/auth/v1`, from `[auth]`.
/// The URL clients reach Galley at: `auth.public_url`, else the bound address.
fn public_url(config: &Config, address: SocketAddr) -> String {
    config
        .auth
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"))
        .trim_end_matches('/')
        .to_owned()
}

/// App accounts and admin accounts, sharing one pool of password hashing slots.
fn accounts(
    config: &Config,
    secret: &JwtSecret,
    keys: &KeySet,
    pools: &Pools,
    public_url: &str,
) -> anyhow::Result<(Accounts, galley_auth::Admins)> {
    let auth = &config.auth;
    auth.templates
        .validate()
        .map_err(|err| anyhow::anyhow!(err))?;
    // A weaker password policy is the operator's choice, said once where it is read.
    if auth.password_min_length < 8 {
        tracing::warn!(
            event = "auth.weaker_password_policy",
            password_min_length = auth.password_min_length,
            "auth.password_min_length is below 8: app passwords may be as short as this"
        );
    }
    if !auth.password_blocklist {
        tracing::warn!(
            event = "auth.weaker_password_policy",
            "auth.password_blocklist is off: common breached passwords are accepted for app users"
        );
    }
    let public_url = public_url.to_owned();
    let site_url = auth.site_url.clone().unwrap_or_else(|| public_url.clone());
    let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let hasher =
        PasswordHasherPool::new(HashCost::default(), auth.hash_concurrency.unwrap_or(cpus))
            .context("setting up password hashing")?;
    let seconds = |n: u64| chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX));
    let policy = PasswordPolicy {
        min_chars: auth.password_min_length,
        max_bytes: auth.password_max_bytes,
        blocklist: auth.password_blocklist,
    };
    let admins = galley_auth::Admins::new(
        pools.owner.clone(),
        hasher.clone(),
        policy,
        config.admin.clone(),
    );
    let passkeys = if auth.passkeys {
        Some(std::sync::Arc::new(
            galley_auth::PasskeyConfig::for_site(
                &site_url,
                auth.webauthn_rp_id.as_deref(),
                &auth.webauthn_origins,
                &auth.project_name,
            )
            .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?,
        ))
    } else {
        None
    };
    let accounts = Accounts::new(
        pools.owner.clone(),
        hasher,
        policy,
        secret,
        AccessSigner::with_keys(secret, keys),
        Templates {
            project: auth.project_name.clone(),
            custom: auth.templates.clone(),
        },
        AuthSettings {
            issuer: format!("{public_url}/auth/v1"),
            public_url,
            site_url,
            redirect_urls: auth.redirect_urls.clone(),
            access_token_ttl: seconds(auth.access_token_ttl_secs),
            refresh_reuse_interval: seconds(auth.refresh_reuse_interval_secs),
            // Without SMTP a confirmation mail could not arrive.
            confirm_email: auth.confirm_email.unwrap_or(config.smtp.is_some()),
            disable_signup: auth.disable_signup,
            anonymous_sign_ins: auth.anonymous_sign_ins,
            secure_password_change: auth.secure_password_change,
            link_ttl: seconds(auth.link_ttl_secs),
            external: std::sync::Arc::new(
                galley_auth::Providers::from_config(&auth.external)
                    .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?,
            ),
            manual_linking: auth.manual_linking,
            passkeys,
        },
    );
    Ok((accounts, admins))
}
