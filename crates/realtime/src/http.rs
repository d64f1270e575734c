//! Broadcast over HTTP, as Supabase Realtime's REST API: `POST /api/broadcast` (a batch
//! of JSON messages) and `POST /api/broadcast/{topic}/events/{event}` (one payload, JSON
//! or bytes, delivered as a user broadcast). The gateway parses HTTP; this is what the
//! requests do and how they are refused, in Supabase's words.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Realtime;
use crate::hub::{Kind, TopicKey};
use crate::identity::{self, Identity};
use crate::protocol::{Encoded, Fanout};

/// A refusal: the status and Supabase Realtime's JSON body for it.
#[derive(Debug, PartialEq)]
pub struct HttpRefusal {
    pub status: u16,
    pub body: Value,
}

impl HttpRefusal {
    fn unauthorized() -> Self {
        Self {
            status: 401,
            body: json!({ "message": "Unauthorized" }),
        }
    }

    fn invalid(errors: Value) -> Self {
        Self {
            status: 422,
            body: json!({ "errors": errors }),
        }
    }
}

/// One message of a batch.
#[derive(Debug, Deserialize)]
pub struct HttpMessage {
    pub topic: Option<String>,
    pub event: Option<String>,
    pub payload: Option<Value>,
    #[serde(default)]
    pub private: bool,
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct HttpBatch {
    pub messages: Option<Vec<HttpMessage>>,
}

impl Realtime {
    fn http_identity(&self, token: Option<&str>) -> Result<Identity, HttpRefusal> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(HttpRefusal::unauthorized)?;
        identity::verify(&self.tokens, token, chrono::Utc::now().timestamp())
            .map_err(|_| HttpRefusal::unauthorized())
    }

    /// Whether `identity` may broadcast on the private channel `topic`.
    async fn may_write(&self, topic: &str, identity: &Identity) -> bool {
        let Some(feed) = self.changes.get() else {
            return false;
        };
        match crate::authorize::authorize(&feed.sources.api, topic, identity, false).await {
            Ok(access) => access.broadcast_write,
            Err(err) => {
                tracing::warn!(topic, error = %err, "realtime could not authorize an HTTP broadcast");
                false
            }
        }
    }

    /// `POST /api/broadcast`: every valid message goes out as a `broadcast` event; a
    /// private one only if the caller may write there (otherwise it is dropped, and the
    /// answer is still 202, as in Supabase).
    pub async fn broadcast_batch(
        &self,
        token: Option<&str>,
        batch: HttpBatch,
    ) -> Result<(), HttpRefusal> {
        let identity = self.http_identity(token)?;
        let messages = match batch.messages {
            Some(messages) if !messages.is_empty() => messages,
            _ => {
                return Err(HttpRefusal::invalid(
                    json!({ "messages": ["can't be blank"] }),
                ));
            }
        };
        let max = self.config.max_payload_bytes;
        let mut problems = Vec::with_capacity(messages.len());
        let mut any = false;
        for message in &messages {
            let mut errors = Map::new();
            for (field, missing) in [
                ("topic", message.topic.as_deref().is_none_or(str::is_empty)),
                ("event", message.event.as_deref().is_none_or(str::is_empty)),
                (
                    "payload",
                    !matches!(message.payload, Some(Value::Object(_))),
                ),
            ] {
                if missing {
                    errors.insert(field.into(), json!(["can't be blank"]));
                }
            }
            if message
                .payload
                .as_ref()
                .is_some_and(|p| p.to_string().len() > max)
            {
                errors.insert(
                    "payload".into(),
                    json!(["Payload size exceeds tenant limit"]),
                );
            }
            any |= !errors.is_empty();
            problems.push(Value::Object(errors));
        }
        if any {
            return Err(HttpRefusal::invalid(json!({ "messages": problems })));
        }
        let mut allowed: Vec<(String, bool)> = Vec::new();
        for message in messages {
            let (Some(topic), Some(event), Some(payload)) =
                (message.topic, message.event, message.payload)
            else {
                continue;
            };
            if message.private {
                let known = allowed.iter().find(|(t, _)| *t == topic).map(|(_, ok)| *ok);
                let ok = match known {
                    Some(ok) => ok,
                    None => {
                        let ok = self.may_write(&topic, &identity).await;
                        allowed.push((topic.clone(), ok));
                        ok
                    }
                };
                if !ok {
                    continue;
                }
            }
            // Keys in the order Supabase Realtime writes them (sorted).
            let mut body = Map::new();
            body.insert("event".into(), json!(event));
            if let Some(id) = message.id {
                body.insert("meta".into(), json!({ "id": id }));
            }
            body.insert("payload".into(), payload);
            body.insert("type".into(), json!("broadcast"));
            let Ok(raw) = serde_json::value::to_raw_value(&body) else {
                continue;
            };
            self.publish_http(
                &topic,
                message.private,
                Fanout::Json {
                    event: "broadcast",
                    payload: raw,
                },
            );
        }
        Ok(())
    }

    /// `POST /api/broadcast/{topic}/events/{event}`: the body as a user broadcast.
    pub async fn broadcast_single(
        &self,
        token: Option<&str>,
        topic: &str,
        event: &str,
        private: bool,
        body: Bytes,
        json: bool,
    ) -> Result<(), HttpRefusal> {
        let identity = self.http_identity(token)?;
        if body.is_empty() {
            return Err(HttpRefusal::invalid(
                json!({ "payload": ["can't be blank"] }),
            ));
        }
        if body.len() > self.config.max_payload_bytes {
            return Err(HttpRefusal::invalid(
                json!({ "payload": ["Payload size exceeds tenant limit"] }),
            ));
        }
        if json && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            return Err(HttpRefusal::invalid(json!({ "payload": ["is invalid"] })));
        }
        if format!("realtime:{topic}").len() > 255 || event.len() > 255 {
            return Err(HttpRefusal::invalid(json!({ "topic": ["is too long"] })));
        }
        if private && !self.may_write(topic, &identity).await {
            return Err(HttpRefusal {
                status: 403,
                body: json!({ "message": "Unauthorized" }),
            });
        }
        self.publish_http(
            topic,
            private,
            Fanout::User {
                event: event.to_owned(),
                json,
                data: body,
                metadata: String::new(),
            },
        );
        Ok(())
    }

    fn publish_http(&self, topic: &str, private: bool, message: Fanout) {
        let key = TopicKey {
            topic: format!("realtime:{topic}"),
            private,
        };
        self.bus_broadcast(&key, &message);
        let encoded = Encoded::new(key.topic.clone(), message);
        let queued = self.hub.publish(&key, Kind::Broadcast, &encoded, None);
        self.count_in("http_broadcast");
        self.count_out("broadcast", queued);
    }
}
