//! `[realtime]` configuration: the Supabase Realtime protocol at `/realtime/v1`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeConfig {
    /// Serve `/realtime/v1` at all.
    pub enabled: bool,
    /// WebSocket connections this instance holds at once; past it the handshake gets 429.
    pub max_connections: usize,
    /// Channels one connection may have joined at once.
    pub max_channels_per_connection: usize,
    /// Joins one connection may make per second; past it the join is refused and the
    /// connection closed.
    pub max_joins_per_second: u32,
    /// Broadcast and presence messages one connection may send per second; past it the
    /// channel sending is closed with a system message.
    pub max_messages_per_second: u32,
    /// Presence `track`/`untrack` calls one channel may make per 30 seconds.
    pub max_presence_calls_per_window: u32,
    /// Largest broadcast payload or presence meta, in bytes.
    pub max_payload_bytes: usize,
    /// Largest WebSocket message, in bytes; a larger one closes the connection (1009).
    pub max_frame_bytes: usize,
    /// Seconds without any message from the client (realtime-js sends a heartbeat every
    /// 25) before the connection is closed.
    pub idle_timeout_secs: u64,
    /// Frames queued for one connection; a client that falls this far behind is closed.
    pub outbox_frames: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_connections: 10_000,
            max_channels_per_connection: 100,
            max_joins_per_second: 100,
            max_messages_per_second: 100,
            max_presence_calls_per_window: 5,
            max_payload_bytes: 256 * 1024,
            max_frame_bytes: 1024 * 1024,
            idle_timeout_secs: 60,
            outbox_frames: 1024,
        }
    }
}
