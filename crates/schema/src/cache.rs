//! The live catalog: an immutable [`Catalog`] behind an atomic pointer, reloaded when
//! PostgreSQL announces a schema change on [`CHANNEL`] — from Galley's schema manager on
//! any instance, or from the event trigger that catches DDL run by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use galley_db::tokio_postgres;
use galley_db::{DbError, Pool};

use crate::catalog::Catalog;
use crate::error::SchemaError;
use crate::introspect::load_catalog;

/// The NOTIFY channel that announces schema changes.
pub const CHANNEL: &str = "galley_schema";

/// Longest wait between attempts to re-establish the listening connection.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Without the event trigger (Galley is not a superuser there), how often the listener
/// looks for DDL run outside Galley.
const POLL: Duration = Duration::from_secs(3);

/// Whether the event trigger that announces (and adopts) DDL run by hand exists.
const HAS_EVENT_TRIGGER: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger \
     WHERE evtname = 'galley_schema_ddl' AND evtenabled <> 'D')";

pub struct CatalogCache {
    current: ArcSwap<Catalog>,
    /// Tickets order reloads by when they started; a reload stores its snapshot only if
    /// no later-started reload has stored one, so a slow reload never replaces a newer
    /// snapshot with an older one.
    issued: AtomicU64,
    stored: Mutex<u64>,
    exposed: Vec<String>,
    pool: Pool,
}

impl CatalogCache {
    /// An empty cache over the `exposed` schemas; call [`CatalogCache::reload`] to fill it.
    pub fn new(pool: Pool, exposed: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(Catalog::default()),
            issued: AtomicU64::new(0),
            stored: Mutex::new(0),
            exposed,
            pool,
        })
    }

    /// The current snapshot. Holding it never blocks a reload.
    pub fn snapshot(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Introspects the database and swaps the new snapshot in. When it returns, the
    /// cache reflects at least every change committed before it was called.
    pub async fn reload(&self) -> Result<(), SchemaError> {
        let started = Instant::now();
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let catalog = load_catalog(&mut client, &self.exposed).await?;
        let relations = catalog.relations.len();
        {
            let mut stored = self
                .stored
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if ticket < *stored {
                return Ok(());
            }
            *stored = ticket;
            self.current.store(Arc::new(catalog));
        }
        tracing::debug!(
            relations,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "catalog reloaded"
        );
        Ok(())
    }

    /// Listens on [`CHANNEL`] over a dedicated connection and reloads on every
    /// notification (a burst of them costs one reload). When the connection drops, it
    /// reconnects with backoff and reloads once, since notifications sent meanwhile are lost.
    /// Where no event trigger announces DDL run by hand, it also polls the schema's
    /// fingerprint every few seconds, adopts new tables (see [`crate::adopt_new_tables`])
    /// and reloads when it moves.
    pub fn spawn_listener(
        self: &Arc<Self>,
        config: tokio_postgres::Config,
    ) -> tokio::task::JoinHandle<()> {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match cache.listen(&config).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(err) => {
                        tracing::warn!(error = %galley_db::report(&err), "schema change listener lost its connection")
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// One listening session; returns when its connection ends.
    async fn listen(&self, config: &tokio_postgres::Config) -> Result<(), SchemaError> {
        let galley_db::Listening {
            mut client,
            mut notified,
            driver,
        } = galley_db::listen(config, CHANNEL).await?;
        let poll = !client
            .query_one(HAS_EVENT_TRIGGER, &[])
            .await?
            .get::<_, bool>(0);
        // Changes made while no one was listening are only visible by looking.
        let mut fingerprint = String::new();
        if poll {
            fingerprint = self.look(&mut client).await?;
        }
        self.reload().await?;
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = notified.recv() => {
                    if message.is_none() {
                        break;
                    }
                    while notified.try_recv().is_ok() {}
                }
                _ = ticks.tick(), if poll => {
                    let now: String = client.query_one(crate::SCHEMA_FINGERPRINT, &[]).await?.get(0);
                    if now == fingerprint {
                        continue;
                    }
                    fingerprint = self.look(&mut client).await?;
                }
            }
            if let Err(err) = self.reload().await {
                tracing::warn!(error = %galley_db::report(&err), "catalog reload failed; keeping the previous snapshot");
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    /// Adopts the tables made outside Galley since the last look (recorded in the schema
    /// history, every instance told) and returns the schema's fingerprint after that.
    async fn look(&self, client: &mut tokio_postgres::Client) -> Result<String, SchemaError> {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&crate::apply::SCHEMA_LOCK],
        )
        .await?;
        let actor = tx
            .query_one("SELECT current_user || ' (outside Galley)'", &[])
            .await?
            .get::<_, String>(0);
        let adopted = crate::adopt::adopt_new_tables(&tx, Some(&actor)).await?;
        let fingerprint = tx.query_one(crate::SCHEMA_FINGERPRINT, &[]).await?.get(0);
        tx.commit().await?;
        if !adopted.is_empty() {
            tracing::info!(event = "schema.adopted", tables = %adopted.join(","), "tables made outside Galley adopted: row-level security forced, service_role granted");
        }
        Ok(fingerprint)
    }
}
