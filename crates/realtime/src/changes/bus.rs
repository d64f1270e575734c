//! Broadcast and presence across instances, through the change log: what one instance's
//! clients broadcast (over the socket or HTTP) and their presence diffs are written to
//! `galley.realtime_changes` as `galley.bus` rows, which every other instance's feed
//! reads as it reads table changes (the origin skips its own). Only while another
//! instance is alive: each instance records itself in `galley.realtime_instances` every
//! few seconds, and a lone instance writes nothing.
//!
//! Presence converges: diffs go out as they happen, and every few seconds each instance
//! also sends its whole presence, which replaces what the others held for it (so an
//! instance that started later learns everyone's); an instance silent for
//! [`SILENCE`] is forgotten and its presences leave.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use galley_db::tokio_postgres;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::Changes;
use crate::Realtime;
use crate::hub::{Kind, PresenceDiff, TopicKey};
use crate::protocol::{Encoded, Fanout};

/// How often an instance says it is alive, and sends its presence.
const BEAT: Duration = Duration::from_secs(5);
/// An instance not heard from this long is gone.
const SILENCE: Duration = Duration::from_secs(15);
/// Messages waiting for the database at most; past them, cross-instance delivery drops
/// (and logs) rather than holding memory.
const QUEUE: usize = 10_000;
/// Rows per insert.
const BATCH: usize = 256;

pub(crate) struct Bus {
    tx: mpsc::Sender<Value>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<Value>>>,
    others: AtomicBool,
}

impl Default for Bus {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            others: AtomicBool::new(false),
        }
    }
}

impl Bus {
    /// Whether another instance is alive (so messages must cross).
    pub(crate) fn active(&self) -> bool {
        self.others.load(Ordering::Relaxed)
    }

    pub(crate) fn send(&self, message: Value) {
        if self.tx.try_send(message).is_err() {
            tracing::warn!(
                "realtime's cross-instance queue is full; a message reaches this instance only"
            );
        }
    }
}

/// A fan-out message as the bus carries it.
pub(crate) fn fanout_json(fanout: &Fanout) -> Value {
    match fanout {
        Fanout::Json { event, payload } => json!({
            "event": event,
            "payload": serde_json::from_str::<Value>(payload.get()).unwrap_or(Value::Null),
        }),
        Fanout::User {
            event,
            json,
            data,
            metadata,
        } => json!({
            "user_event": event,
            "json": json,
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "metadata": metadata,
        }),
    }
}

fn fanout_from(value: &Value) -> Option<Fanout> {
    if let Some(event) = value.get("user_event").and_then(Value::as_str) {
        let data = base64::engine::general_purpose::STANDARD
            .decode(value.get("data")?.as_str()?)
            .ok()?;
        return Some(Fanout::User {
            event: event.to_owned(),
            json: value.get("json")?.as_bool()?,
            data: Bytes::from(data),
            metadata: value
                .get("metadata")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    // Only broadcasts travel as JSON fan-outs; presence has messages of its own.
    (value.get("event")?.as_str()? == "broadcast").then_some(())?;
    let payload = serde_json::value::to_raw_value(value.get("payload")?).ok()?;
    Some(Fanout::Json {
        event: "broadcast",
        payload,
    })
}

fn topic_json(key: &TopicKey) -> (Value, Value) {
    (json!(key.topic), json!(key.private))
}

impl Realtime {
    fn bus(&self) -> Option<&Bus> {
        self.changes
            .get()
            .map(|changes| &changes.bus)
            .filter(|bus| bus.active())
    }

    /// Sends a broadcast this instance delivered to the other instances.
    pub(crate) fn bus_broadcast(&self, key: &TopicKey, fanout: &Fanout) {
        if let Some(bus) = self.bus() {
            let (topic, private) = topic_json(key);
            bus.send(json!({
                "origin": self.instance,
                "kind": "broadcast",
                "topic": topic,
                "private": private,
                "fanout": fanout_json(fanout),
            }));
        }
    }

    /// Sends a presence diff of this instance's to the other instances.
    pub(crate) fn bus_presence(&self, key: &TopicKey, diff: &PresenceDiff) {
        if let Some(bus) = self.bus() {
            let (topic, private) = topic_json(key);
            bus.send(json!({
                "origin": self.instance,
                "kind": "presence",
                "topic": topic,
                "private": private,
                "joins": diff.joins,
                "leaves": diff.leaves,
            }));
        }
    }

    /// Fans a presence diff out to this instance's members of the topic.
    pub(crate) fn announce_local(&self, key: &TopicKey, diff: &PresenceDiff) {
        let Ok(payload) = serde_json::value::to_raw_value(&diff.to_json()) else {
            return;
        };
        let message = Encoded::new(
            key.topic.clone(),
            Fanout::Json {
                event: "presence_diff",
                payload,
            },
        );
        let queued = self.hub.publish(key, Kind::Presence, &message, None);
        self.count_out("presence", queued);
    }
}

/// A `galley.bus` row another instance wrote.
pub(crate) fn receive(rt: &Realtime, record: &Map<String, Value>) {
    let text = |key: &str| record.get(key).and_then(Value::as_str);
    let Some(origin) = text("origin") else {
        return;
    };
    if origin == rt.instance {
        return;
    }
    let key = |topic: Option<&str>, private: Option<&Value>| {
        Some(TopicKey {
            topic: topic?.to_owned(),
            private: private.and_then(Value::as_bool).unwrap_or(false),
        })
    };
    match text("kind") {
        Some("broadcast") => {
            let (Some(key), Some(fanout)) = (
                key(text("topic"), record.get("private")),
                record.get("fanout").and_then(fanout_from),
            ) else {
                return;
            };
            let message = Encoded::new(key.topic.clone(), fanout);
            let queued = rt.hub.publish(&key, Kind::Broadcast, &message, None);
            rt.count_out("broadcast", queued);
        }
        Some("presence") => {
            let Some(key) = key(text("topic"), record.get("private")) else {
                return;
            };
            let map = |name: &str| match record.get(name) {
                Some(Value::Object(map)) => map.clone(),
                _ => Map::new(),
            };
            let diff = PresenceDiff {
                joins: map("joins"),
                leaves: map("leaves"),
            };
            rt.hub.remote_diff(&key, origin, &diff);
            rt.announce_local(&key, &diff);
        }
        Some("presence_sync") => {
            let topics = record
                .get("topics")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let state = topics
                .iter()
                .filter_map(|entry| {
                    let key = key(entry.get("topic")?.as_str(), entry.get("private"))?;
                    let presences = entry
                        .get("presences")?
                        .as_array()?
                        .iter()
                        .filter_map(|pair| {
                            Some((
                                pair.get(0)?.as_str()?.to_owned(),
                                pair.get(1)?.as_object()?.clone(),
                            ))
                        })
                        .collect();
                    Some((key, presences))
                })
                .collect();
            for (key, diff) in rt.hub.remote_sync(origin, state) {
                rt.announce_local(&key, &diff);
            }
        }
        _ => {}
    }
}

const INSERT: &str = "WITH written AS ( \
     INSERT INTO galley.realtime_changes (schema_name, table_name, op, record) \
     SELECT 'galley', 'bus', 'INSERT', message FROM jsonb_array_elements($1::text::jsonb) AS message \
     RETURNING 1) \
     SELECT pg_notify('galley_realtime', '') WHERE EXISTS (SELECT 1 FROM written)";

const BEAT_SQL: &str = "INSERT INTO galley.realtime_instances (id, seen_at) VALUES ($1::text, now()) \
     ON CONFLICT (id) DO UPDATE SET seen_at = now()";

const OTHERS_SQL: &str = "SELECT EXISTS (SELECT 1 FROM galley.realtime_instances \
     WHERE id <> $1::text AND seen_at > now() - make_interval(secs => $2::text::float8))";

/// Writes what is queued for the other instances, says this one is alive, sends its
/// presence, forgets silent instances; for as long as the runtime runs.
pub(crate) async fn run(changes: Arc<Changes>, rt: Arc<Realtime>) {
    let Some(mut queue) = changes
        .bus
        .rx
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
    else {
        return;
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        match session(&changes, &rt, &mut queue).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %galley_db::report(&err), "realtime's cross-instance connection failed; reconnecting");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn session(
    changes: &Changes,
    rt: &Realtime,
    queue: &mut mpsc::Receiver<Value>,
) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = changes
        .sources
        .listen
        .connect(tokio_postgres::NoTls)
        .await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    // Broadcasts are not data: they need not wait for the disk.
    client.batch_execute("SET synchronous_commit = off").await?;
    let mut beat = tokio::time::interval(BEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            message = queue.recv() => {
                let Some(message) = message else { break Ok(()) };
                let mut batch = vec![message];
                while batch.len() < BATCH {
                    match queue.try_recv() {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    }
                }
                if let Err(err) = client.execute(INSERT, &[&Value::Array(batch).to_string()]).await {
                    break Err(err);
                }
            }
            _ = beat.tick() => {
                if let Err(err) = heartbeat(&client, changes, rt).await {
                    break Err(err);
                }
            }
        }
    };
    drop(client);
    let _ = driver.await;
    result
}

async fn heartbeat(
    client: &tokio_postgres::Client,
    changes: &Changes,
    rt: &Realtime,
) -> Result<(), tokio_postgres::Error> {
    client.execute(BEAT_SQL, &[&rt.instance]).await?;
    let silence = SILENCE.as_secs_f64().to_string();
    let others: bool = client
        .query_one(OTHERS_SQL, &[&rt.instance, &silence])
        .await?
        .get(0);
    let was = changes.bus.others.swap(others, Ordering::Relaxed);
    if others != was {
        tracing::info!(
            others,
            "realtime: other instances {}",
            if others {
                "joined; broadcasts and presence now cross them"
            } else {
                "are gone"
            }
        );
    }
    if others {
        let topics: Vec<Value> = rt
            .hub
            .local_presences()
            .into_iter()
            .map(|(key, presences)| {
                let pairs: Vec<Value> = presences
                    .into_iter()
                    .map(|(k, meta)| json!([k, meta]))
                    .collect();
                json!({ "topic": key.topic, "private": key.private, "presences": pairs })
            })
            .collect();
        changes.bus.send(json!({
            "origin": rt.instance,
            "kind": "presence_sync",
            "topics": topics,
        }));
    }
    for (key, diff) in rt.hub.expire_remote(SILENCE) {
        rt.announce_local(&key, &diff);
    }
    client
        .execute(
            "DELETE FROM galley.realtime_instances WHERE seen_at < now() - interval '1 hour'",
            &[],
        )
        .await?;
    Ok(())
}
