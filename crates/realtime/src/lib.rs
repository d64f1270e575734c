//! Galley's realtime: Supabase Realtime's protocol (Phoenix channels) for
//! `supabase.channel()`: broadcast between clients and presence, per instance. The
//! gateway owns the WebSocket (it is the crate that knows HTTP) and hands this crate
//! the frames: [`Realtime::connect`] checks a handshake and gives a [`Session`], whose
//! `on_text`/`on_binary` answer what the client sends; everything for the client comes
//! out of the receiver `connect` returns, in order.

mod authorize;
pub mod changes;
mod config;
mod http;
mod hub;
mod identity;
pub mod protocol;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use galley_auth::TokenVerifier;
use galley_metrics::Metrics;
use tokio::sync::mpsc;

pub use authorize::Access;
pub use config::RealtimeConfig;
pub use http::{HttpBatch, HttpMessage, HttpRefusal};
pub use hub::Outbox;
pub use identity::{Identity, Refusal};
pub use protocol::{Frame, Resume, Vsn};
pub use session::Session;

/// Why a WebSocket handshake was refused: the status and the `{"error": ...}` message
/// Supabase Realtime answers with.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// 401: no API key, or one that does not verify.
    Unauthorized(String),
    /// 429: this instance holds `realtime.max_connections` already.
    TooManyConnections,
}

impl Handshake {
    pub fn status(&self) -> u16 {
        match self {
            Handshake::Unauthorized(_) => 401,
            Handshake::TooManyConnections => 429,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Handshake::Unauthorized(message) => message.clone(),
            Handshake::TooManyConnections => "Too many connected users".to_owned(),
        }
    }
}

pub struct Realtime {
    config: RealtimeConfig,
    tokens: TokenVerifier,
    hub: hub::Hub,
    metrics: Arc<Metrics>,
    connections: AtomicUsize,
    next_id: AtomicU64,
    /// Every open connection's outbox, to close them all at shutdown.
    sockets: Mutex<HashMap<u64, Outbox>>,
    /// Database changes, once [`Realtime::start_changes`] ran (never in unit tests).
    changes: OnceLock<Arc<changes::Changes>>,
    /// This instance, among the others on the database (cross-instance messages).
    instance: String,
}

impl Realtime {
    pub fn new(config: RealtimeConfig, tokens: TokenVerifier, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            config,
            tokens,
            hub: hub::Hub::default(),
            metrics,
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            sockets: Mutex::new(HashMap::new()),
            changes: OnceLock::new(),
            instance: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Starts delivering database changes to `postgres_changes` subscribers: follows
    /// the change log for as long as the runtime runs. Without it, every such
    /// subscription is refused as one to a table that does not publish.
    pub fn start_changes(
        self: &Arc<Self>,
        sources: changes::ChangeSources,
    ) -> tokio::task::JoinHandle<()> {
        let feed = self.changes.get_or_init(|| changes::Changes::new(sources));
        feed.spawn(self)
    }

    /// A write through this instance committed: the change feed reads now (and tells
    /// the other instances), rather than at its next poll.
    pub fn wake(&self) {
        if let Some(changes) = self.changes.get() {
            changes.wake.notify_one();
        }
    }

    pub fn config(&self) -> &RealtimeConfig {
        &self.config
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Outbox>> {
        self.sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A WebSocket handshake with this API key (`apikey` in the query): the session to
    /// feed the client's frames to, and the frames to send it.
    pub fn connect(
        self: &Arc<Self>,
        apikey: Option<&str>,
        vsn: Vsn,
    ) -> Result<(Session, mpsc::Receiver<Frame>), Handshake> {
        let apikey = apikey
            .filter(|key| !key.is_empty())
            .ok_or_else(|| Handshake::Unauthorized("API key is missing".to_owned()))?;
        let socket = identity::verify(&self.tokens, apikey, chrono::Utc::now().timestamp())
            .map_err(|refusal| Handshake::Unauthorized(refusal.message()))?;
        let open = self.connections.fetch_add(1, Ordering::SeqCst);
        if open >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::SeqCst);
            return Err(Handshake::TooManyConnections);
        }
        self.metrics.realtime_connections.inc();
        let id = self.next_id();
        let (outbox, frames) = Outbox::new(self.config.outbox_frames);
        self.sockets().insert(id, outbox.clone());
        Ok((Session::new(self.clone(), id, vsn, outbox, socket), frames))
    }

    fn disconnected(&self, id: u64) {
        self.sockets().remove(&id);
        self.connections.fetch_sub(1, Ordering::SeqCst);
        self.metrics.realtime_connections.dec();
    }

    /// Channels subscribed to database changes on this instance.
    pub fn change_subscriptions(&self) -> usize {
        self.changes
            .get()
            .map_or(0, |changes| changes.subscription_count())
    }

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Asks every connection to close (`1001`, going away): the instance is stopping.
    pub fn close_all(&self) {
        for outbox in self.sockets().values() {
            outbox.send(Frame::Close(1001, "server shutting down".to_owned()));
        }
    }

    fn channel_opened(&self) {
        self.metrics.realtime_channels.inc();
    }

    fn channel_closed(&self) {
        self.metrics.realtime_channels.dec();
    }

    fn count_in(&self, kind: &str) {
        self.metrics
            .realtime_messages
            .with_label_values(&["in", kind])
            .inc();
    }

    fn count_out(&self, kind: &str, frames: usize) {
        if frames > 0 {
            self.metrics
                .realtime_messages
                .with_label_values(&["out", kind])
                .inc_by(frames as u64);
        }
    }
}
