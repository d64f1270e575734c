//! One WebSocket connection: the channels it joined, what each may do, and the answer to
//! every message it sends. Frames for the socket (its own replies and what other
//! connections fan out to it) all go through its [`Outbox`], so a join's reply always
//! precedes what the channel then receives.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::Realtime;
use crate::authorize::Access;
use crate::changes::{Binding, Viewer};
use crate::hub::{Kind, Member, Outbox, PresenceDiff, TopicKey};
use crate::identity::{self, Identity};
use crate::protocol::{self, Encoded, Fanout, Frame, InPayload, Incoming, Resume, Vsn};

/// Counts events in fixed windows.
struct Window {
    limit: u32,
    period: Duration,
    started: Instant,
    count: u32,
}

impl Window {
    fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
            started: Instant::now(),
            count: 0,
        }
    }

    /// Counts one event; `false` when it is over the window's limit.
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.started) >= self.period {
            self.started = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= self.limit
    }
}

struct Channel {
    id: u64,
    key: TopicKey,
    join_ref: Value,
    ack: bool,
    /// `config.broadcast.self`: the sender receives its own broadcasts.
    echo: bool,
    presence_key: String,
    identity: Identity,
    presence_calls: Window,
    /// What a private channel's policies allow; everything on a public one.
    access: Access,
}

/// A join waiting for its private channel's authorization.
struct Pending {
    channel: Channel,
    msg_ref: Value,
    /// The `postgres_changes` bindings with their ids, as the reply echoes them.
    changes: Vec<Value>,
    presence: bool,
}

impl Channel {
    fn sub_topic(&self) -> &str {
        self.key
            .topic
            .strip_prefix("realtime:")
            .unwrap_or(&self.key.topic)
    }
}

/// Booleans as Supabase Realtime accepts them in a join's config: JSON booleans, or the
/// strings `"true"` and `"false"` in any case.
fn flexible_bool(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A postgres_changes binding's id: stable for the same parameters, never 0 (realtime-js
/// treats 0 as "no id").
fn binding_id(params: &Value) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    params.to_string().hash(&mut hasher);
    hasher.finish() % ((1 << 27) - 1) + 1
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

pub struct Session {
    rt: Arc<Realtime>,
    id: u64,
    vsn: Vsn,
    outbox: Outbox,
    /// The API key the socket connected with: a channel's identity unless its join
    /// carries an access token.
    socket: Identity,
    /// Joined channels, by topic.
    channels: HashMap<String, Channel>,
    /// Private joins being authorized, by topic.
    pending: HashMap<String, Pending>,
    joins: Window,
    messages: Window,
}

impl Session {
    pub(crate) fn new(
        rt: Arc<Realtime>,
        id: u64,
        vsn: Vsn,
        outbox: Outbox,
        socket: Identity,
    ) -> Self {
        let config = rt.config();
        let joins = Window::new(config.max_joins_per_second, Duration::from_secs(1));
        let messages = Window::new(config.max_messages_per_second, Duration::from_secs(1));
        Self {
            rt,
            id,
            vsn,
            outbox,
            socket,
            channels: HashMap::new(),
            pending: HashMap::new(),
            joins,
            messages,
        }
    }

    /// This connection's id on this instance (for logs).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Resolves when the socket fell behind and a frame for it was dropped: the caller
    /// closes the connection.
    pub async fn overflowed(&self) {
        self.outbox.overflowed().await
    }

    /// A text frame from the client.
    pub fn on_text(&mut self, text: &str) {
        match protocol::decode_text(self.vsn, text) {
            Ok(message) => self.on_message(message),
            Err(err) => self.malformed(&err),
        }
    }

    /// A binary frame from the client.
    pub fn on_binary(&mut self, data: &Bytes) {
        match protocol::decode_binary(self.vsn, data) {
            Ok(message) => self.on_message(message),
            Err(err) => self.malformed(&err),
        }
    }

    /// A frame that is not a message: the connection is closed with the reason (a
    /// client that sends one is not speaking the protocol; nobody else notices).
    fn malformed(&mut self, err: &protocol::Malformed) {
        self.rt.count_in("malformed");
        tracing::info!(connection = self.id, error = %err, "a realtime client sent a malformed frame; closing its connection");
        self.outbox
            .send(Frame::Close(1007, format!("malformed message: {err}")));
    }

    fn send(&self, kind: &str, frame: Frame) {
        if self.outbox.send(frame) {
            self.rt.count_out(kind, 1);
        }
    }

    fn reply(&self, join_ref: &Value, msg_ref: &Value, topic: &str, ok: bool, response: &Value) {
        self.send(
            "reply",
            protocol::reply(self.vsn, join_ref, msg_ref, topic, ok, response),
        );
    }

    /// The reply to one client message, on its topic with its refs.
    fn answer(&self, message: &Incoming, ok: bool, response: &Value) {
        self.reply(
            &message.join_ref,
            &message.msg_ref,
            &message.topic,
            ok,
            response,
        );
    }

    /// A push on one channel: its join_ref, no ref.
    fn push(&self, kind: &str, join_ref: &Value, topic: &str, event: &str, payload: &Value) {
        self.send(
            kind,
            protocol::encode(self.vsn, join_ref, &Value::Null, topic, event, payload),
        );
    }

    fn on_message(&mut self, message: Incoming) {
        if message.topic == "phoenix" && message.event == "heartbeat" {
            self.rt.count_in("heartbeat");
            self.reply(&Value::Null, &message.msg_ref, "phoenix", true, &json!({}));
            return;
        }
        if message.event == "phx_join" {
            self.rt.count_in("join");
            self.join(message);
            return;
        }
        let Some(channel) = self.channels.get(&message.topic) else {
            self.rt.count_in("unmatched");
            if message.event == "phx_leave" {
                self.answer(&message, true, &json!({}));
            } else {
                self.unmatched(&message);
            }
            return;
        };
        // A message for an earlier join of this topic.
        if !message.join_ref.is_null() && message.join_ref != channel.join_ref {
            self.rt.count_in("stale");
            return;
        }
        match message.event.as_str() {
            "phx_leave" => {
                self.rt.count_in("leave");
                self.answer(&message, true, &json!({}));
                self.close_channel(&message.topic);
            }
            "broadcast" => {
                self.rt.count_in("broadcast");
                self.broadcast(message);
            }
            "presence" => {
                self.rt.count_in("presence");
                self.presence(message);
            }
            "access_token" => {
                self.rt.count_in("access_token");
                self.refresh(message);
            }
            _ => self.rt.count_in("other"),
        }
    }

    /// Phoenix's answer to a message for no channel of this socket (join_ref null).
    fn unmatched(&self, message: &Incoming) {
        self.reply(
            &Value::Null,
            &message.msg_ref,
            &message.topic,
            false,
            &json!({ "reason": "unmatched topic" }),
        );
    }

    fn join_error(&self, message: &Incoming, code: &str, text: &str) {
        self.answer(
            message,
            false,
            &json!({ "reason": format!("{code}: {text}") }),
        );
    }

    fn join(&mut self, message: Incoming) {
        let Some(sub_topic) = message.topic.strip_prefix("realtime:") else {
            self.unmatched(&message);
            return;
        };
        if !self.joins.allow() {
            self.join_error(
                &message,
                "ClientJoinRateLimitReached",
                "Too many joins per second",
            );
            self.outbox
                .send(Frame::Close(1008, "Too many joins per second".to_owned()));
            return;
        }
        if sub_topic.is_empty() {
            self.join_error(
                &message,
                "TopicNameRequired",
                "You must provide a topic name",
            );
            return;
        }
        // Binary frames carry the topic's length in a byte.
        if message.topic.len() > 255 {
            self.join_error(
                &message,
                "TopicNameTooLong",
                "The topic must be at most 255 bytes",
            );
            return;
        }
        // Joining a topic again replaces the earlier join (as Phoenix does).
        if self.channels.contains_key(&message.topic) {
            self.close_channel(&message.topic);
        }
        self.pending.remove(&message.topic);
        if self.channels.len() + self.pending.len() >= self.rt.config().max_channels_per_connection
        {
            self.join_error(&message, "ChannelRateLimitReached", "Too many channels");
            return;
        }
        let payload = match &message.payload {
            InPayload::Json(payload) => payload,
            InPayload::UserBroadcast { .. } => &Value::Null,
        };
        let config = payload.get("config");
        let setting = |path: &[&str]| path.iter().try_fold(config?, |value, key| value.get(*key));
        let identity = match payload.get("access_token").and_then(Value::as_str) {
            Some(token) if !token.starts_with("sb_") => {
                identity::verify(&self.rt.tokens, token, now_unix())
            }
            _ if self.socket.exp <= now_unix() => Err(identity::Refusal::Expired {
                seconds_ago: now_unix() - self.socket.exp,
            }),
            _ => Ok(self.socket.clone()),
        };
        let identity = match identity {
            Ok(identity) => identity,
            Err(refusal) => {
                self.join_error(&message, refusal.code(), &refusal.message());
                return;
            }
        };
        let private = flexible_bool(setting(&["private"]));
        let changes: Vec<Value> = setting(&["postgres_changes"])
            .and_then(Value::as_array)
            .map(|bindings| {
                bindings
                    .iter()
                    .filter_map(|binding| {
                        let mut params: Map<String, Value> = binding
                            .as_object()?
                            .iter()
                            .filter(|(_, value)| !value.is_null())
                            .map(|(key, value)| (key.clone(), value.clone()))
                            .collect();
                        let id = binding_id(&Value::Object(params.clone()));
                        params.insert("id".into(), json!(id));
                        Some(Value::Object(params))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let presence_key = match setting(&["presence", "key"]) {
            Some(Value::String(key)) if !key.is_empty() => key.clone(),
            Some(key @ Value::Number(_)) => key.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let presence = flexible_bool(setting(&["presence", "enabled"]));
        let channel = Channel {
            id: self.rt.next_id(),
            key: TopicKey {
                topic: message.topic.clone(),
                private,
            },
            join_ref: message.join_ref.clone(),
            ack: flexible_bool(setting(&["broadcast", "ack"])),
            echo: flexible_bool(setting(&["broadcast", "self"])),
            presence_key,
            identity,
            presence_calls: Window::new(
                self.rt.config().max_presence_calls_per_window,
                Duration::from_secs(30),
            ),
            access: Access::PUBLIC,
        };
        let pending = Pending {
            channel,
            msg_ref: message.msg_ref.clone(),
            changes,
            presence,
        };
        if !private {
            self.admit(pending);
            return;
        }
        // Realtime Authorization: the policies on realtime.messages decide, on the
        // database; the join is answered when they have.
        let Some(feed) = self.rt.changes.get() else {
            self.join_error(
                &message,
                "Unauthorized",
                &format!(
                    "You do not have permissions to read from this Channel topic: {sub_topic}"
                ),
            );
            return;
        };
        let api = feed.sources.api.clone();
        let outbox = self.outbox.clone();
        let topic = message.topic.clone();
        let join_ref = message.join_ref.clone();
        let name = sub_topic.to_owned();
        let identity = pending.channel.identity.clone();
        self.pending.insert(message.topic.clone(), pending);
        tokio::spawn(async move {
            let decided = crate::authorize::authorize(&api, &name, &identity, presence).await;
            outbox.send(Frame::Resume(Resume {
                topic,
                join_ref,
                access: decided,
            }));
        });
    }

    /// Finishes a private join once its authorization is decided.
    pub fn resume(&mut self, resume: Resume) {
        let Some(pending) = self.pending.remove(&resume.topic) else {
            return;
        };
        if pending.channel.join_ref != resume.join_ref {
            // A later join replaced this one; it waits for its own answer.
            self.pending.insert(resume.topic, pending);
            return;
        }
        match resume.access {
            Ok(access) if access.may_join() => {
                let mut pending = pending;
                pending.channel.access = access;
                self.admit(pending);
            }
            outcome => {
                if let Err(err) = outcome {
                    tracing::warn!(connection = self.id, topic = %resume.topic, error = %err, "realtime could not authorize a private channel");
                }
                let sub_topic = resume
                    .topic
                    .strip_prefix("realtime:")
                    .unwrap_or(&resume.topic);
                self.reply(
                    &pending.channel.join_ref,
                    &pending.msg_ref,
                    &resume.topic,
                    false,
                    &json!({ "reason": format!("Unauthorized: You do not have permissions to read from this Channel topic: {sub_topic}") }),
                );
            }
        }
    }

    /// A channel whose join succeeded: into the hub, answered, its presence state and
    /// its database changes set up.
    fn admit(&mut self, pending: Pending) {
        let Pending {
            channel,
            msg_ref,
            changes,
            presence,
        } = pending;
        let topic = channel.key.topic.clone();
        self.rt.hub.join(
            channel.key.clone(),
            Member {
                channel: channel.id,
                vsn: self.vsn,
                outbox: self.outbox.clone(),
                access: channel.access,
            },
        );
        self.rt.channel_opened();
        self.reply(
            &channel.join_ref,
            &msg_ref,
            &topic,
            true,
            &json!({ "postgres_changes": changes }),
        );
        if presence && channel.access.presence_read {
            let state = self.rt.hub.presence_state(&channel.key);
            self.push(
                "presence",
                &channel.join_ref,
                &topic,
                "presence_state",
                &Value::Object(state),
            );
        }
        if !changes.is_empty() {
            self.subscribe_changes(&channel, &changes);
        }
        tracing::debug!(connection = self.id, topic = %topic, role = channel.identity.role, private = channel.key.private, "realtime channel joined");
        self.channels.insert(topic, channel);
    }

    /// Subscribes a channel's `postgres_changes` bindings (each echoed in the join reply
    /// with its id), or tells the client why not in a `system` message; the channel
    /// stays joined either way, as in Supabase Realtime.
    fn subscribe_changes(&self, channel: &Channel, bindings: &[Value]) {
        let parsed: Result<Vec<Binding>, String> = bindings
            .iter()
            .map(|params| {
                let id = params.get("id").and_then(Value::as_u64).unwrap_or_default();
                let mut params = params.as_object().cloned().unwrap_or_default();
                params.remove("id");
                Binding::parse(id, &params)
            })
            .collect();
        let subscribed = parsed.and_then(|parsed| match self.rt.changes.get() {
            Some(feed) => feed
                .subscribe(
                    channel.id,
                    &channel.key.topic,
                    &channel.join_ref,
                    self.vsn,
                    &self.outbox,
                    Viewer::of(&channel.identity),
                    parsed,
                )
                .map(|sub| (feed.clone(), sub)),
            // No change feed (Realtime runs without a database): no table publishes.
            None => Err(format!(
                "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: {}",
                parsed.first().map(Binding::describe).unwrap_or_default()
            )),
        });
        match subscribed {
            Ok((feed, sub)) => feed.confirm(sub),
            Err(text) => {
                tracing::info!(connection = self.id, topic = %channel.key.topic, reason = %text, "realtime postgres_changes subscription refused");
                self.push(
                    "system",
                    &channel.join_ref,
                    &channel.key.topic,
                    "system",
                    &json!({
                        "channel": channel.sub_topic(),
                        "extension": "postgres_changes",
                        "message": text,
                        "status": "error",
                    }),
                );
            }
        }
    }

    /// Leaves a channel: out of the hub, its presence gone (and announced).
    fn close_channel(&mut self, topic: &str) -> Option<Channel> {
        let channel = self.channels.remove(topic)?;
        if let Some(feed) = self.rt.changes.get() {
            feed.unsubscribe(channel.id);
        }
        if let Some(diff) = self.rt.hub.leave(&channel.key, channel.id) {
            self.announce(&channel.key, &diff);
        }
        self.rt.channel_closed();
        let close = protocol::encode(
            self.vsn,
            &channel.join_ref,
            &channel.join_ref,
            topic,
            "phx_close",
            &json!({}),
        );
        self.send("close", close);
        Some(channel)
    }

    /// Closes a channel for a reason the client is told in a `system` message first.
    fn shut_down(&mut self, topic: &str, text: &str) {
        let Some(channel) = self.channels.get(topic) else {
            return;
        };
        let system = json!({
            "channel": channel.sub_topic(),
            "extension": "system",
            "message": text,
            "status": "error",
        });
        self.push("system", &channel.join_ref, topic, "system", &system);
        tracing::info!(
            connection = self.id,
            topic,
            reason = text,
            "realtime channel closed by the server"
        );
        self.close_channel(topic);
    }

    /// A presence change of this instance's: to its members, and to the other instances.
    fn announce(&self, key: &TopicKey, diff: &PresenceDiff) {
        self.rt.announce_local(key, diff);
        self.rt.bus_presence(key, diff);
    }

    fn broadcast(&mut self, mut message: Incoming) {
        if !self.messages.allow() {
            self.shut_down(&message.topic, "Too many messages per second");
            return;
        }
        let Some(channel) = self.channels.get(&message.topic) else {
            return;
        };
        if !channel.access.broadcast_write {
            // As Supabase: a private channel's broadcast without write permission is
            // dropped without an answer, even with ack.
            return;
        }
        let max = self.rt.config().max_payload_bytes;
        let (fanout, size) = match message.take_payload() {
            InPayload::Json(payload) => {
                let raw = serde_json::value::to_raw_value(&payload)
                    .expect("a JSON value always serializes");
                let size = raw.get().len();
                (
                    Fanout::Json {
                        event: "broadcast",
                        payload: raw,
                    },
                    size,
                )
            }
            InPayload::UserBroadcast { event, json, data } => {
                let size = data.len();
                (
                    Fanout::User {
                        event,
                        json,
                        data,
                        metadata: String::new(),
                    },
                    size,
                )
            }
        };
        if size > max {
            if channel.ack {
                self.answer(&message, false, &json!("payload_size_exceeded"));
            }
            return;
        }
        self.rt.bus_broadcast(&channel.key, &fanout);
        let encoded = Encoded::new(message.topic.clone(), fanout);
        let except = (!channel.echo).then_some(channel.id);
        let queued = self
            .rt
            .hub
            .publish(&channel.key, Kind::Broadcast, &encoded, except);
        self.rt.count_out("broadcast", queued);
        if channel.ack {
            self.answer(&message, true, &json!({}));
        }
    }

    fn presence(&mut self, mut message: Incoming) {
        if !self.messages.allow() {
            self.shut_down(&message.topic, "Too many messages per second");
            return;
        }
        let InPayload::Json(payload) = message.take_payload() else {
            return;
        };
        let Some(channel) = self.channels.get_mut(&message.topic) else {
            return;
        };
        let event = payload
            .get("event")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let within_limit = event.is_none() || channel.presence_calls.allow();
        let (key, id, presence_key, presence_write) = (
            channel.key.clone(),
            channel.id,
            channel.presence_key.clone(),
            channel.access.presence_write,
        );
        if !within_limit {
            self.shut_down(&message.topic, "Client presence rate limit exceeded");
            return;
        }
        let reply_ok = |session: &Self| {
            session.answer(&message, true, &json!({}));
        };
        match event.as_deref() {
            None => reply_ok(self),
            Some("track") if !presence_write => self.answer(&message, false, &json!({})),
            Some("track") => {
                let meta = match payload.get("payload") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(meta)) => meta.clone(),
                    Some(_) => {
                        self.answer(
                            &message,
                            false,
                            &json!({ "reason": "Presence track payload must be a map" }),
                        );
                        return;
                    }
                };
                if Value::Object(meta.clone()).to_string().len()
                    > self.rt.config().max_payload_bytes
                {
                    self.shut_down(&message.topic, "Track message size exceeded");
                    return;
                }
                if let Some(diff) = self.rt.hub.track(&key, id, &presence_key, meta) {
                    self.announce(&key, &diff);
                }
                reply_ok(self);
            }
            Some("untrack") => {
                if let Some(diff) = self.rt.hub.untrack(&key, id) {
                    self.announce(&key, &diff);
                }
                reply_ok(self);
            }
            Some(_) => self.answer(&message, false, &json!({})),
        }
    }

    /// `access_token`: the channel's identity from now on, or, if the token is not
    /// good, the channel closes with the reason.
    fn refresh(&mut self, message: Incoming) {
        let InPayload::Json(payload) = &message.payload else {
            return;
        };
        let Some(token) = payload.get("access_token").and_then(Value::as_str) else {
            return;
        };
        let Some(channel) = self.channels.get_mut(&message.topic) else {
            return;
        };
        if token.starts_with("sb_") || token == channel.identity.token {
            return;
        }
        match identity::verify(&self.rt.tokens, token, now_unix()) {
            Ok(identity) => {
                let resubscribed = self
                    .rt
                    .changes
                    .get()
                    .is_some_and(|feed| feed.set_viewer(channel.id, Viewer::of(&identity)));
                channel.identity = identity;
                if resubscribed {
                    // As Supabase Realtime resubscribes with the new claims.
                    let system = json!({
                        "channel": channel.sub_topic(),
                        "extension": "postgres_changes",
                        "message": "Subscribed to PostgreSQL",
                        "status": "ok",
                    });
                    let join_ref = channel.join_ref.clone();
                    self.push("system", &join_ref, &message.topic, "system", &system);
                }
            }
            Err(refusal) => self.shut_down(&message.topic, &refusal.message()),
        }
    }

    /// When the soonest channel token expires.
    pub fn next_expiry(&self) -> Option<tokio::time::Instant> {
        let exp = self.channels.values().map(|c| c.identity.exp).min()?;
        let wait = u64::try_from(exp - now_unix()).unwrap_or(0);
        Some(tokio::time::Instant::now() + Duration::from_secs(wait))
    }

    /// Closes the channels whose token has expired.
    pub fn expire(&mut self) {
        let now = now_unix();
        let expired: Vec<(String, i64)> = self
            .channels
            .iter()
            .filter(|(_, channel)| channel.identity.exp <= now)
            .map(|(topic, channel)| (topic.clone(), now - channel.identity.exp))
            .collect();
        for (topic, seconds_ago) in expired {
            self.shut_down(
                &topic,
                &format!("Token has expired {seconds_ago} seconds ago"),
            );
        }
    }
}

impl Drop for Session {
    /// The connection is gone: its channels leave, their presence and their database
    /// subscriptions with them.
    fn drop(&mut self) {
        for channel in std::mem::take(&mut self.channels).into_values() {
            if let Some(diff) = self.rt.hub.leave(&channel.key, channel.id) {
                self.announce(&channel.key, &diff);
            }
            if let Some(feed) = self.rt.changes.get() {
                feed.unsubscribe(channel.id);
            }
            self.rt.channel_closed();
        }
        self.rt.disconnected(self.id);
    }
}
