//! Galley's storage: Supabase Storage's buckets and objects for `supabase.storage`. This
//! crate knows no HTTP (the gateway's `routes/storage` speaks it); it decides what each
//! operation does, in Supabase's words.
//!
//! Metadata is `storage.buckets` and `storage.objects` (V16), read and written as the
//! caller's role and claims on the request pool, so row-level security decides. Bytes
//! live in the [`Store`] under the row's `version`. Invariants: bytes are stored (and, on
//! the local backend, flushed) before the row naming them is written, and removed only
//! after the row stops naming them, so a row never points at missing bytes; bytes no row
//! names (a failed write, a crash between the two) are removed by [`sweep`].

pub mod buckets;
pub mod config;
pub mod error;
pub mod objects;
pub mod presets;
pub mod resumable;
pub mod rules;
pub mod signing;
mod sql;
pub mod store;
pub mod sweep;
pub mod transform;

use std::sync::Arc;

pub use config::StorageConfig;
pub use error::StorageError;
pub use objects::{ObjectInfo, ObjectRead, ReadMode, UploadMeta, UploadTarget};
pub use signing::{SignedClaims, UrlSigner};
pub use store::{Download, PutError, S3Settings, Store, Stored};

use galley_db::ApiPool;
use galley_db::wire::Queued;

/// Who a request runs as: an API role and the verified claims (`request.jwt.claims`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: String,
    pub claims: serde_json::Value,
}

impl Caller {
    /// Galley acting for a signed URL (the token authorises, not a role).
    pub fn service() -> Self {
        Self {
            role: "service_role".to_owned(),
            claims: serde_json::json!({ "role": "service_role" }),
        }
    }

    /// The claims' `sub`, or empty.
    pub fn sub(&self) -> &str {
        self.claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }

    /// `sub` when it is a UUID (what `owner` holds), or empty.
    pub fn owner_uuid(&self) -> &str {
        let sub = self.sub();
        if uuid::Uuid::parse_str(sub).is_ok() {
            sub
        } else {
            ""
        }
    }

    pub fn is_service(&self) -> bool {
        self.role == "service_role"
    }
}

/// The storage service: the store, the request pool, the URL signer, the limits.
pub struct Storage {
    pub(crate) config: StorageConfig,
    pub(crate) store: Store,
    pub(crate) api: ApiPool,
    /// Galley's own pool, for the bookkeeping of resumable uploads (`galley` schema).
    pub(crate) owner: galley_db::Pool,
    pub(crate) signer: UrlSigner,
    pub(crate) metrics: Arc<galley_metrics::Metrics>,
}

impl Storage {
    pub fn new(
        config: StorageConfig,
        store: Store,
        api: ApiPool,
        owner: galley_db::Pool,
        signer: UrlSigner,
        metrics: Arc<galley_metrics::Metrics>,
    ) -> Self {
        Self {
            config,
            store,
            api,
            owner,
            signer,
            metrics,
        }
    }

    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    pub fn metrics(&self) -> &galley_metrics::Metrics {
        &self.metrics
    }
}

/// The statement that makes the rest of a transaction run as `caller` performing
/// `operation` (readable in policies as `storage.operation()`).
pub(crate) fn settings(caller: &Caller, operation: &str) -> Queued {
    (
        std::borrow::Cow::Borrowed(sql::SETTINGS),
        vec![
            caller.role.clone(),
            caller.claims.to_string(),
            caller.sub().to_owned(),
            operation.to_owned(),
        ],
    )
}

pub(crate) fn statement(sql: &'static str, params: Vec<String>) -> Queued {
    (std::borrow::Cow::Borrowed(sql), params)
}
