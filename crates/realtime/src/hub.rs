//! Who on this instance listens to what: the channels joined per topic, their presence,
//! and the fan-out of a message to them. One mutex over the topic map; nothing under it
//! waits (frames are handed to each socket's [`Outbox`] without blocking).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc};

use crate::authorize::Access;
use crate::protocol::{Encoded, Frame, Vsn};

/// The frames waiting for one socket. Bounded: a socket that stops reading while
/// messages keep coming overflows, and is then closed rather than buffered without end.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    overflow: Arc<Overflow>,
}

struct Overflow {
    happened: AtomicBool,
    notify: Notify,
}

impl Outbox {
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity);
        let overflow = Arc::new(Overflow {
            happened: AtomicBool::new(false),
            notify: Notify::new(),
        });
        (Self { tx, overflow }, rx)
    }

    /// Queues a frame; `false` when the socket is gone or has overflowed.
    pub fn send(&self, frame: Frame) -> bool {
        if self.overflow.happened.load(Ordering::Relaxed) {
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.happened.store(true, Ordering::Relaxed);
                self.overflow.notify.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Resolves once a frame could not be queued because the socket fell behind.
    pub async fn overflowed(&self) {
        loop {
            let notified = self.overflow.notify.notified();
            if self.overflow.happened.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }
}

/// A topic as the hub keys it: public and private channels of the same name are apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TopicKey {
    /// The topic as joined, `realtime:<name>`.
    pub(crate) topic: String,
    pub(crate) private: bool,
}

/// One joined channel, as fan-out sees it.
pub(crate) struct Member {
    pub(crate) channel: u64,
    pub(crate) vsn: Vsn,
    pub(crate) outbox: Outbox,
    pub(crate) access: Access,
}

/// What a fan-out carries, for the members allowed to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Broadcast,
    Presence,
}

/// One tracked presence: a channel's `track`.
struct Presence {
    channel: u64,
    key: String,
    meta: Map<String, Value>,
}

#[derive(Default)]
struct Topic {
    members: Vec<Member>,
    presences: Vec<Presence>,
    /// Other instances' presences on this topic, by instance, as they last told.
    remote: HashMap<String, Remote>,
}

/// `(key, meta)` pairs, each meta with its `phx_ref`.
pub(crate) type Presences = Vec<(String, Map<String, Value>)>;

struct Remote {
    heard: Instant,
    /// `(key, meta)`, each meta with its `phx_ref`.
    presences: Vec<(String, Map<String, Value>)>,
}

impl Topic {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.presences.is_empty() && self.remote.is_empty()
    }
}

/// A change in presence: `{joins, leaves}`, each `key -> {metas: [...]}`.
pub(crate) struct PresenceDiff {
    pub(crate) joins: Map<String, Value>,
    pub(crate) leaves: Map<String, Value>,
}

impl PresenceDiff {
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({ "joins": self.joins, "leaves": self.leaves })
    }
}

pub(crate) struct Hub {
    topics: Mutex<HashMap<TopicKey, Topic>>,
    /// Makes each presence's `phx_ref` unique on this instance.
    presence_refs: AtomicU64,
    /// And this, across instances.
    ref_prefix: String,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            topics: Mutex::default(),
            presence_refs: AtomicU64::new(0),
            ref_prefix: format!("{:08x}", rand_prefix()),
        }
    }
}

fn rand_prefix() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The `phx_ref`s of a grouped `key -> {metas}` map.
fn refs(grouped: &Map<String, Value>) -> Vec<Value> {
    ungrouped(grouped)
        .into_iter()
        .filter_map(|(_, meta)| meta.get("phx_ref").cloned())
        .collect()
}

/// `key -> {metas: [...]}` back into `(key, meta)` pairs.
fn ungrouped(grouped: &Map<String, Value>) -> Vec<(String, Map<String, Value>)> {
    let mut out = Vec::new();
    for (key, entry) in grouped {
        if let Some(Value::Array(metas)) = entry.get("metas") {
            for meta in metas {
                if let Value::Object(meta) = meta {
                    out.push((key.clone(), meta.clone()));
                }
            }
        }
    }
    out
}

/// What changed from `before` to `after` (by `phx_ref`), or `None` if nothing did.
fn difference(
    before: &[(String, Map<String, Value>)],
    after: &[(String, Map<String, Value>)],
) -> Option<PresenceDiff> {
    let has = |list: &[(String, Map<String, Value>)], meta: &Map<String, Value>| {
        list.iter()
            .any(|(_, m)| m.get("phx_ref") == meta.get("phx_ref"))
    };
    let joins: Vec<_> = after.iter().filter(|(_, m)| !has(before, m)).collect();
    let leaves: Vec<_> = before.iter().filter(|(_, m)| !has(after, m)).collect();
    if joins.is_empty() && leaves.is_empty() {
        return None;
    }
    Some(PresenceDiff {
        joins: grouped(joins.iter().map(|(k, m)| (k.as_str(), m))),
        leaves: grouped(leaves.iter().map(|(k, m)| (k.as_str(), m))),
    })
}

fn grouped<'a>(
    presences: impl Iterator<Item = (&'a str, &'a Map<String, Value>)>,
) -> Map<String, Value> {
    let mut state = Map::new();
    for (key, meta) in presences {
        let entry = state
            .entry(key.to_owned())
            .or_insert_with(|| serde_json::json!({ "metas": [] }));
        if let Some(Value::Array(metas)) = entry.get_mut("metas") {
            metas.push(Value::Object(meta.clone()));
        }
    }
    state
}

impl Hub {
    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<TopicKey, Topic>> {
        // A panic while holding the lock leaves the map consistent (every update is one
        // push or retain), so a poisoned lock is still usable.
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn join(&self, key: TopicKey, member: Member) {
        self.topics().entry(key).or_default().members.push(member);
    }

    /// Removes a channel, and its presence if it had one (the diff to fan out).
    pub(crate) fn leave(&self, key: &TopicKey, channel: u64) -> Option<PresenceDiff> {
        let mut topics = self.topics();
        let topic = topics.get_mut(key)?;
        topic.members.retain(|member| member.channel != channel);
        let diff = Self::remove_presence(topic, channel);
        if topic.is_empty() {
            topics.remove(key);
        }
        diff
    }

    fn remove_presence(topic: &mut Topic, channel: u64) -> Option<PresenceDiff> {
        let index = topic.presences.iter().position(|p| p.channel == channel)?;
        let gone = topic.presences.remove(index);
        Some(PresenceDiff {
            joins: Map::new(),
            leaves: grouped(std::iter::once((gone.key.as_str(), &gone.meta))),
        })
    }

    /// Sends a message to every channel on the topic but `except`; returns how many
    /// sockets it was queued for.
    pub(crate) fn publish(
        &self,
        key: &TopicKey,
        kind: Kind,
        message: &Encoded,
        except: Option<u64>,
    ) -> usize {
        let topics = self.topics();
        let Some(topic) = topics.get(key) else {
            return 0;
        };
        let mut queued = 0;
        for member in &topic.members {
            let reads = match kind {
                Kind::Broadcast => member.access.broadcast_read,
                Kind::Presence => member.access.presence_read,
            };
            if Some(member.channel) == except || !reads {
                continue;
            }
            if let Some(frame) = message.frame(member.vsn)
                && member.outbox.send(frame)
            {
                queued += 1;
            }
        }
        queued
    }

    /// Tracks (or re-tracks) a channel's presence under `key`. `None` when nothing
    /// changed (the same key and meta again).
    pub(crate) fn track(
        &self,
        topic_key: &TopicKey,
        channel: u64,
        key: &str,
        mut meta: Map<String, Value>,
    ) -> Option<PresenceDiff> {
        let mut topics = self.topics();
        let topic = topics.entry(topic_key.clone()).or_default();
        let existing = topic.presences.iter().position(|p| p.channel == channel);
        if let Some(index) = existing {
            let old = &topic.presences[index];
            let mut unchanged = old.meta.clone();
            unchanged.remove("phx_ref");
            unchanged.remove("phx_ref_prev");
            if old.key == key && unchanged == meta {
                return None;
            }
        }
        // Unique across instances too: their presences meet in one presence_state.
        let phx_ref = format!(
            "{}{}",
            self.ref_prefix,
            self.presence_refs.fetch_add(1, Ordering::Relaxed) + 1
        );
        let mut diff = PresenceDiff {
            joins: Map::new(),
            leaves: Map::new(),
        };
        if let Some(index) = existing {
            let old = topic.presences.remove(index);
            if old.key == key
                && let Some(Value::String(prev)) = old.meta.get("phx_ref")
            {
                meta.insert("phx_ref_prev".into(), Value::String(prev.clone()));
            }
            diff.leaves = grouped(std::iter::once((old.key.as_str(), &old.meta)));
        }
        meta.insert("phx_ref".into(), Value::String(phx_ref));
        diff.joins = grouped(std::iter::once((key, &meta)));
        topic.presences.push(Presence {
            channel,
            key: key.to_owned(),
            meta,
        });
        Some(diff)
    }

    /// Drops a channel's presence; `None` when it had none.
    pub(crate) fn untrack(&self, key: &TopicKey, channel: u64) -> Option<PresenceDiff> {
        let mut topics = self.topics();
        Self::remove_presence(topics.get_mut(key)?, channel)
    }

    /// Everyone present on the topic, on every instance: `key -> {metas: [...]}`.
    pub(crate) fn presence_state(&self, key: &TopicKey) -> Map<String, Value> {
        let topics = self.topics();
        topics.get(key).map_or_else(Map::new, |topic| {
            let local = topic.presences.iter().map(|p| (p.key.as_str(), &p.meta));
            let remote = topic
                .remote
                .values()
                .flat_map(|r| r.presences.iter().map(|(k, m)| (k.as_str(), m)));
            grouped(local.chain(remote))
        })
    }

    /// This instance's presences, per topic (what it tells the others periodically).
    pub(crate) fn local_presences(&self) -> Vec<(TopicKey, Presences)> {
        self.topics()
            .iter()
            .filter(|(_, topic)| !topic.presences.is_empty())
            .map(|(key, topic)| {
                let list = topic
                    .presences
                    .iter()
                    .map(|p| (p.key.clone(), p.meta.clone()))
                    .collect();
                (key.clone(), list)
            })
            .collect()
    }

    /// Another instance's diff on a topic: kept, to answer presence_state here.
    pub(crate) fn remote_diff(&self, key: &TopicKey, origin: &str, diff: &PresenceDiff) {
        let mut topics = self.topics();
        let topic = topics.entry(key.clone()).or_default();
        let remote = topic
            .remote
            .entry(origin.to_owned())
            .or_insert_with(|| Remote {
                heard: Instant::now(),
                presences: Vec::new(),
            });
        remote.heard = Instant::now();
        let gone = refs(&diff.leaves);
        remote
            .presences
            .retain(|(_, meta)| !meta.get("phx_ref").is_some_and(|r| gone.contains(r)));
        remote.presences.extend(ungrouped(&diff.joins));
        if topic.is_empty() {
            topics.remove(key);
        }
    }

    /// Another instance's whole presence, every topic: replaces what it said before;
    /// the differences are returned, for this instance's members.
    pub(crate) fn remote_sync(
        &self,
        origin: &str,
        state: Vec<(TopicKey, Presences)>,
    ) -> Vec<(TopicKey, PresenceDiff)> {
        let mut topics = self.topics();
        let mut diffs = Vec::new();
        // Topics where it had presences and now has none.
        let stale: Vec<TopicKey> = topics
            .iter()
            .filter(|(key, topic)| {
                topic.remote.contains_key(origin) && !state.iter().any(|(k, _)| k == *key)
            })
            .map(|(key, _)| key.clone())
            .collect();
        let updates = state
            .into_iter()
            .chain(stale.into_iter().map(|key| (key, Vec::new())));
        for (key, presences) in updates {
            let topic = topics.entry(key.clone()).or_default();
            let before = topic
                .remote
                .get(origin)
                .map(|r| r.presences.clone())
                .unwrap_or_default();
            let diff = difference(&before, &presences);
            if presences.is_empty() {
                topic.remote.remove(origin);
            } else {
                topic.remote.insert(
                    origin.to_owned(),
                    Remote {
                        heard: Instant::now(),
                        presences,
                    },
                );
            }
            if topic.is_empty() {
                topics.remove(&key);
            }
            if let Some(diff) = diff {
                diffs.push((key, diff));
            }
        }
        diffs
    }

    /// Forgets instances not heard from for `silence` (stopped, or cut off): their
    /// presences leave.
    pub(crate) fn expire_remote(&self, silence: Duration) -> Vec<(TopicKey, PresenceDiff)> {
        let mut topics = self.topics();
        let mut diffs = Vec::new();
        for (key, topic) in topics.iter_mut() {
            let quiet: Vec<String> = topic
                .remote
                .iter()
                .filter(|(_, r)| r.heard.elapsed() >= silence)
                .map(|(origin, _)| origin.clone())
                .collect();
            for origin in quiet {
                if let Some(remote) = topic.remote.remove(&origin)
                    && let Some(diff) = difference(&remote.presences, &[])
                {
                    diffs.push((key.clone(), diff));
                }
            }
        }
        topics.retain(|_, topic| !topic.is_empty());
        diffs
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::Fanout;

    fn key() -> TopicKey {
        TopicKey {
            topic: "realtime:room".into(),
            private: false,
        }
    }

    fn meta(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn presence_joins_updates_and_leaves_as_phoenix_diffs() {
        let hub = Hub::default();
        let r = |n: u32| format!("{}{n}", hub.ref_prefix);
        let joined = hub.track(&key(), 1, "ann", meta(json!({"at": 1}))).unwrap();
        assert_eq!(
            joined.to_json(),
            json!({"joins": {"ann": {"metas": [{"at": 1, "phx_ref": r(1)}]}}, "leaves": {}})
        );
        assert!(
            hub.track(&key(), 1, "ann", meta(json!({"at": 1})))
                .is_none()
        );
        let updated = hub.track(&key(), 1, "ann", meta(json!({"at": 2}))).unwrap();
        assert_eq!(
            updated.to_json(),
            json!({
                "joins": {"ann": {"metas": [{"at": 2, "phx_ref": r(2), "phx_ref_prev": r(1)}]}},
                "leaves": {"ann": {"metas": [{"at": 1, "phx_ref": r(1)}]}}
            })
        );
        hub.track(&key(), 2, "ann", meta(json!({"tab": 2})));
        assert_eq!(
            Value::Object(hub.presence_state(&key())),
            json!({"ann": {"metas": [
                {"at": 2, "phx_ref": r(2), "phx_ref_prev": r(1)},
                {"tab": 2, "phx_ref": r(3)}
            ]}})
        );
        let left = hub.leave(&key(), 1).unwrap();
        assert_eq!(
            left.to_json(),
            json!({"joins": {}, "leaves": {"ann": {"metas": [{"at": 2, "phx_ref": r(2), "phx_ref_prev": r(1)}]}}})
        );
        assert!(hub.untrack(&key(), 1).is_none());
        assert!(hub.untrack(&key(), 2).is_some());
    }

    #[test]
    fn publish_skips_the_sender_and_a_full_outbox_overflows() {
        let hub = Hub::default();
        let (one, mut one_rx) = Outbox::new(1);
        let (two, mut two_rx) = Outbox::new(8);
        hub.join(
            key(),
            Member {
                channel: 1,
                vsn: Vsn::V2,
                outbox: one.clone(),
                access: Access::PUBLIC,
            },
        );
        hub.join(
            key(),
            Member {
                channel: 2,
                vsn: Vsn::V1,
                outbox: two,
                access: Access::PUBLIC,
            },
        );
        let message = |n: u32| {
            Encoded::new(
                "realtime:room".into(),
                Fanout::Json {
                    event: "broadcast",
                    payload: serde_json::value::to_raw_value(&json!({"n": n})).unwrap(),
                },
            )
        };
        assert_eq!(
            hub.publish(&key(), Kind::Broadcast, &message(1), Some(2)),
            1
        );
        assert_eq!(
            hub.publish(&key(), Kind::Broadcast, &message(2), None),
            1,
            "channel 1 is full"
        );
        assert!(
            matches!(one_rx.try_recv(), Ok(Frame::Text(text)) if text.starts_with("[null,null,"))
        );
        assert!(one_rx.try_recv().is_err());
        assert!(
            !one.send(Frame::Close(1000, String::new())),
            "an overflowed outbox stays closed"
        );
        assert!(
            matches!(two_rx.try_recv(), Ok(Frame::Text(text)) if text.starts_with("{\"event\""))
        );
    }

    #[test]
    fn a_private_member_hears_only_what_its_policies_let_it_read() {
        let hub = Hub::default();
        let (outbox, mut rx) = Outbox::new(8);
        let presence_only = Access {
            presence_read: true,
            ..Access::default()
        };
        hub.join(
            key(),
            Member {
                channel: 1,
                vsn: Vsn::V2,
                outbox,
                access: presence_only,
            },
        );
        let message = Encoded::new(
            "realtime:room".into(),
            Fanout::Json {
                event: "broadcast",
                payload: serde_json::value::to_raw_value(&json!({})).unwrap(),
            },
        );
        assert_eq!(hub.publish(&key(), Kind::Broadcast, &message, None), 0);
        assert!(rx.try_recv().is_err());
        assert_eq!(hub.publish(&key(), Kind::Presence, &message, None), 1);
    }

    #[test]
    fn other_instances_presences_join_the_state_and_leave_when_they_fall_silent() {
        let hub = Hub::default();
        let theirs = |phx_ref: &str| {
            let mut m = meta(json!({"where": "there"}));
            m.insert("phx_ref".into(), json!(phx_ref));
            m
        };
        let diffs = hub.remote_sync("b", vec![(key(), vec![("bob".into(), theirs("b1"))])]);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].1.joins.keys().collect::<Vec<_>>(), ["bob"]);
        assert!(hub.presence_state(&key()).contains_key("bob"));
        // The same state again changes nothing.
        assert!(
            hub.remote_sync("b", vec![(key(), vec![("bob".into(), theirs("b1"))])])
                .is_empty()
        );
        // A diff from it: bob leaves, carol joins.
        hub.remote_diff(
            &key(),
            "b",
            &PresenceDiff {
                joins: grouped(std::iter::once(("carol", &theirs("b2")))),
                leaves: grouped(std::iter::once(("bob", &theirs("b1")))),
            },
        );
        let state = hub.presence_state(&key());
        assert_eq!(state.keys().collect::<Vec<_>>(), ["carol"]);
        // Silent past the limit: forgotten, and carol leaves.
        let gone = hub.expire_remote(Duration::ZERO);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.leaves.keys().collect::<Vec<_>>(), ["carol"]);
        assert!(hub.presence_state(&key()).is_empty());
    }
}
