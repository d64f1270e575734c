//! The live catalog: an immutable [`Catalog`] behind an atomic pointer, reloaded when
//! PostgreSQL announces a schema change on [`CHANNEL`] — from Galley's schema manager on
//! any instance, or from the event trigger that catches DDL run by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use galley_db::tokio_postgres::{self, AsyncMessage, NoTls};
use galley_db::{DbError, Pool};
use tokio::sync::mpsc;

use crate::catalog::Catalog;
use crate::error::SchemaError;
use crate::introspect::load_catalog;

/// The NOTIFY channel that announces schema changes.
pub const CHANNEL: &str = "galley_schema";

/// Longest wait between attempts to re-establish the listening connection.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

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
        let (client, mut connection) = config.connect(NoTls).await?;
        let (notify, mut notified) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if notify.send(()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %galley_db::report(&err), "schema change listener connection failed");
                        break;
                    }
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // Changes made while no one was listening are only visible by looking.
        self.reload().await?;
        while notified.recv().await.is_some() {
            while notified.try_recv().is_ok() {}
            if let Err(err) = self.reload().await {
                tracing::warn!(error = %galley_db::report(&err), "catalog reload failed; keeping the previous snapshot");
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }
}
