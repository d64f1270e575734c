//! What every handler can reach: built once by `server` and shared by all workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use galley_auth::{Accounts, TokenVerifier};
use galley_db::Pools;
use galley_schema::{CatalogCache, SchemaConfig};

use crate::config::RestConfig;
use crate::ratelimit::{RateLimitConfig, RateLimiter};

#[derive(Clone)]
pub struct AppState {
    pub(crate) pools: Pools,
    pub(crate) catalog: Arc<CatalogCache>,
    pub(crate) tokens: TokenVerifier,
    pub(crate) schema: SchemaConfig,
    pub(crate) rest: RestConfig,
    pub(crate) accounts: Arc<Accounts>,
    /// Admin accounts and their sessions.
    pub(crate) admins: Arc<galley_auth::Admins>,
    /// Admin session cookies are `Secure` (the public URL is https).
    pub(crate) secure_cookies: bool,
    /// What the admin UI's operations pages show: the API keys and the configuration.
    pub(crate) operator: Arc<OperatorView>,
    /// `galley backup` for the admin UI, when the server provides it.
    pub(crate) backups: Option<Arc<dyn Backups>>,
    pub(crate) limits: Arc<RateLimiter>,
    pub(crate) metrics: Arc<galley_metrics::Metrics>,
    /// When set, `/metrics` is served on the main address to requests carrying it.
    pub(crate) metrics_token: Option<secrecy::SecretString>,
    /// `/realtime/v1`, unless `realtime.enabled` is off.
    pub(crate) realtime: Option<Arc<galley_realtime::Realtime>>,
    /// `/storage/v1`, unless `storage.enabled` is off.
    pub(crate) storage: Option<Arc<galley_storage::Storage>>,
    shutting_down: Arc<AtomicBool>,
    /// Set when something this process depends on cannot be brought back (the embedded
    /// PostgreSQL, past its restart budget): `/health/live` fails so a supervisor
    /// restarts the process.
    unrecoverable: Arc<AtomicBool>,
}

/// A failure of a backup operation, in words for the admin UI (no secrets, no SQL).
pub type BackupFailure = String;

/// Backups as the admin UI reaches them; `server` implements it over `galley backup`
/// (the gateway does not run `pg_dump` itself). Answers are JSON for the API to pass on.
pub trait Backups: Send + Sync {
    /// Every backup, newest first.
    fn list(
        &self,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<serde_json::Value, BackupFailure>>;
    /// Takes a backup now.
    fn create(
        &self,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<serde_json::Value, BackupFailure>>;
    /// Restores backup `name` into a scratch database and compares it with its manifest.
    fn verify(
        &self,
        name: String,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<serde_json::Value, BackupFailure>>;
    /// Where one file of backup `name` (a part or `manifest.json`) is on disk, to
    /// download; `None` when there is no such file.
    fn file(
        &self,
        name: String,
        file: String,
    ) -> futures_util::future::LocalBoxFuture<
        'static,
        Result<Option<std::path::PathBuf>, BackupFailure>,
    >;
}

/// What the admin UI's operations pages show of this instance.
#[derive(Default)]
pub struct OperatorView {
    pub anon_key: String,
    /// Revealed only on an admin's explicit, audited request.
    pub service_key: secrecy::SecretString,
    /// The effective configuration, secrets redacted.
    pub config: serde_json::Value,
    /// `auth.project_name`, for mail the admin UI sends.
    pub project: String,
    /// The public URL's `host[:port]`: an admin UI loaded through it is this origin.
    pub public_authority: String,
}

impl AppState {
    /// Sets what the operations pages show (the caller holds the secret and the config).
    pub fn with_operator_view(mut self, view: OperatorView) -> Self {
        self.operator = Arc::new(view);
        self
    }

    /// A connection from the owner pool, for Galley's own bookkeeping queries.
    pub(crate) async fn owner(&self) -> Result<galley_db::PooledClient, crate::error::ApiError> {
        Ok(self
            .pools
            .owner
            .get()
            .await
            .map_err(galley_db::DbError::from)?)
    }

    /// The one JSON value a bookkeeping query on the owner pool answers (a `json_agg`,
    /// a `row_to_json`).
    pub(crate) async fn owner_json(
        &self,
        sql: &str,
        params: &[&(dyn galley_db::tokio_postgres::types::ToSql + Sync)],
    ) -> Result<serde_json::Value, crate::error::ApiError> {
        Ok(self
            .owner()
            .await?
            .query_one(sql, params)
            .await
            .map_err(galley_db::DbError::from)?
            .get(0))
    }

    /// Serves `/realtime/v1` with this hub.
    pub fn with_realtime(mut self, realtime: Arc<galley_realtime::Realtime>) -> Self {
        self.realtime = Some(realtime);
        self
    }

    /// Serves `/storage/v1` with this storage.
    pub fn with_storage(mut self, storage: Arc<galley_storage::Storage>) -> Self {
        let config = storage.config();
        self.limits = Arc::new(self.limits.with_uploads(
            config.uploads_per_minute_per_user,
            config.uploads_per_minute,
        ));
        self.storage = Some(storage);
        self
    }

    /// Gives the admin UI `galley backup`.
    pub fn with_backups(mut self, backups: Arc<dyn Backups>) -> Self {
        self.backups = Some(backups);
        self
    }

    /// Admin accounts, for start-up's first-admin setup link.
    pub fn admins(&self) -> &Arc<galley_auth::Admins> {
        &self.admins
    }

    // One argument per shared service, each named at the single call site in `server`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pools: Pools,
        catalog: Arc<CatalogCache>,
        tokens: TokenVerifier,
        schema: SchemaConfig,
        rest: RestConfig,
        accounts: Arc<Accounts>,
        admins: Arc<galley_auth::Admins>,
        secure_cookies: bool,
        limits: RateLimitConfig,
        metrics: Arc<galley_metrics::Metrics>,
        metrics_token: Option<secrecy::SecretString>,
    ) -> Self {
        Self {
            pools,
            catalog,
            tokens,
            schema,
            rest,
            accounts,
            admins,
            secure_cookies,
            operator: Arc::new(OperatorView::default()),
            backups: None,
            limits: Arc::new(RateLimiter::new(limits)),
            metrics,
            metrics_token,
            realtime: None,
            storage: None,
            shutting_down: Arc::new(AtomicBool::new(false)),
            unrecoverable: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on readiness reports 503, so load balancers stop sending new requests
    /// while in-flight ones drain.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// `/health/live` fails while this is set (and passes again when it is cleared).
    pub fn set_unrecoverable(&self, unrecoverable: bool) {
        self.unrecoverable.store(unrecoverable, Ordering::SeqCst);
    }

    /// A write committed through this instance: realtime looks for its changes at once
    /// when `table` publishes them (a function's writes, `None`, may touch any table).
    pub(crate) fn wrote(&self, table: Option<(&str, &str)>) {
        let Some(realtime) = &self.realtime else {
            return;
        };
        let publishes = match table {
            Some((schema, table)) => self
                .catalog
                .snapshot()
                .relation(schema, table)
                .is_some_and(|relation| relation.realtime),
            None => true,
        };
        if publishes {
            realtime.wake();
        }
    }

    /// Closes every realtime connection (the instance is stopping).
    pub fn close_realtime(&self) {
        if let Some(realtime) = &self.realtime {
            realtime.close_all();
        }
    }

    pub(crate) fn is_unrecoverable(&self) -> bool {
        self.unrecoverable.load(Ordering::SeqCst)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
