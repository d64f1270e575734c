//! The wire format: Phoenix channel messages as Supabase Realtime speaks them, in the
//! `1.0.0` serializer (a JSON object per text frame) and the `2.0.0` one (a JSON array
//! `[join_ref, ref, topic, event, payload]` per text frame, and user broadcasts as binary
//! frames: kind 3 from the client, kind 4 to it).
//!
//! Refs are echoed as the JSON values the client sent (realtime-js sends strings).
//! Nothing here allocates per subscriber: a fan-out message is encoded once per
//! serializer ([`Encoded`]) and the frame shared.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The serializer a socket asked for with `vsn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vsn {
    V1,
    V2,
}

impl Vsn {
    /// The `vsn` query parameter: absent means `1.0.0` (Phoenix's default); otherwise it
    /// must match `~> 1.0.0` or `~> 2.0.0` (same major and minor). `None` is a refusal.
    pub fn parse(param: Option<&str>) -> Option<Self> {
        let Some(param) = param else {
            return Some(Vsn::V1);
        };
        let mut parts = param.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || patch.is_empty() || !patch.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        match (major, minor) {
            ("1", "0") => Some(Vsn::V1),
            ("2", "0") => Some(Vsn::V2),
            _ => None,
        }
    }
}

/// A frame for the socket, shared between the subscribers it goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Text(ByteString),
    Binary(Bytes),
    /// Close the socket with this code and reason.
    Close(u16, String),
    /// Not for the client: a decision the session waited for, handed back to it
    /// ([`crate::Session::resume`]) in order with its frames.
    Resume(Resume),
}

/// A private channel's authorization, decided on the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub(crate) topic: String,
    pub(crate) join_ref: Value,
    pub(crate) access: Result<crate::authorize::Access, String>,
}

/// What a client sent.
#[derive(Debug, PartialEq)]
pub struct Incoming {
    pub join_ref: Value,
    pub msg_ref: Value,
    pub topic: String,
    pub event: String,
    pub payload: InPayload,
}

#[derive(Debug, PartialEq)]
pub enum InPayload {
    Json(Value),
    /// A binary (kind 3) broadcast push: the user's event, the payload's bytes, and
    /// whether they are JSON text (else opaque bytes).
    UserBroadcast {
        event: String,
        json: bool,
        data: Bytes,
    },
}

impl Incoming {
    /// The payload, leaving `null` in its place (the refs and topic stay for the reply).
    pub fn take_payload(&mut self) -> InPayload {
        std::mem::replace(&mut self.payload, InPayload::Json(Value::Null))
    }
}

/// Why a frame was not understood. It is logged and dropped; the socket stays open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("not JSON")]
    NotJson,
    #[error("expected [join_ref, ref, topic, event, payload]")]
    NotV2Array,
    #[error("expected {{topic, event, payload, ref}}")]
    NotV1Object,
    #[error("binary frames are only understood with vsn 2.0.0")]
    BinaryOnV1,
    #[error("unknown binary frame kind {0}")]
    UnknownKind(u8),
    #[error("binary frame shorter than its header")]
    Truncated,
    #[error("binary frame fields are not UTF-8")]
    NotUtf8,
}

const KIND_USER_BROADCAST_PUSH: u8 = 3;
const KIND_USER_BROADCAST: u8 = 4;
const ENCODING_BINARY: u8 = 0;
const ENCODING_JSON: u8 = 1;

/// A text frame, in the socket's serializer.
pub fn decode_text(vsn: Vsn, text: &str) -> Result<Incoming, Malformed> {
    let value: Value = serde_json::from_str(text).map_err(|_| Malformed::NotJson)?;
    match vsn {
        Vsn::V2 => {
            let Value::Array(items) = value else {
                return Err(Malformed::NotV2Array);
            };
            let mut items = items.into_iter();
            let (
                Some(join_ref),
                Some(msg_ref),
                Some(Value::String(topic)),
                Some(Value::String(event)),
                Some(payload),
            ) = (
                items.next(),
                items.next(),
                items.next(),
                items.next(),
                items.next(),
            )
            else {
                return Err(Malformed::NotV2Array);
            };
            Ok(Incoming {
                join_ref,
                msg_ref,
                topic,
                event,
                payload: InPayload::Json(payload),
            })
        }
        Vsn::V1 => {
            let Value::Object(mut map) = value else {
                return Err(Malformed::NotV1Object);
            };
            let (
                Some(Value::String(topic)),
                Some(Value::String(event)),
                Some(payload),
                Some(msg_ref),
            ) = (
                map.remove("topic"),
                map.remove("event"),
                map.remove("payload"),
                map.remove("ref"),
            )
            else {
                return Err(Malformed::NotV1Object);
            };
            Ok(Incoming {
                join_ref: map.remove("join_ref").unwrap_or(Value::Null),
                msg_ref,
                topic,
                event,
                payload: InPayload::Json(payload),
            })
        }
    }
}

/// A binary frame: only the 2.0.0 serializer's kind 3 (a user broadcast push):
/// `kind, join_ref_len, ref_len, topic_len, event_len, metadata_len, encoding`, then the
/// five strings, then the payload.
pub fn decode_binary(vsn: Vsn, data: &Bytes) -> Result<Incoming, Malformed> {
    if vsn != Vsn::V2 {
        return Err(Malformed::BinaryOnV1);
    }
    let kind = *data.first().ok_or(Malformed::Truncated)?;
    if kind != KIND_USER_BROADCAST_PUSH {
        return Err(Malformed::UnknownKind(kind));
    }
    let header = data.get(1..7).ok_or(Malformed::Truncated)?;
    let lengths = [header[0], header[1], header[2], header[3], header[4]].map(usize::from);
    let encoding = header[5];
    let mut offset = 7;
    let mut fields = Vec::with_capacity(5);
    for length in lengths {
        let bytes = data
            .get(offset..offset + length)
            .ok_or(Malformed::Truncated)?;
        fields.push(std::str::from_utf8(bytes).map_err(|_| Malformed::NotUtf8)?);
        offset += length;
    }
    let text_ref = |text: &str| {
        if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.to_owned())
        }
    };
    Ok(Incoming {
        join_ref: text_ref(fields[0]),
        msg_ref: text_ref(fields[1]),
        topic: fields[2].to_owned(),
        event: "broadcast".to_owned(),
        payload: InPayload::UserBroadcast {
            event: fields[3].to_owned(),
            json: encoding != ENCODING_BINARY,
            data: data.slice(offset..),
        },
    })
}

/// One message to one socket: `[join_ref, ref, topic, event, payload]` (2.0.0) or
/// `{event, payload, ref, topic}` (1.0.0, which carries no join_ref).
pub fn encode<P: Serialize + ?Sized>(
    vsn: Vsn,
    join_ref: &Value,
    msg_ref: &Value,
    topic: &str,
    event: &str,
    payload: &P,
) -> Frame {
    // Keys in the order Phoenix writes them (an Elixir map's, sorted).
    #[derive(Serialize)]
    struct V1<'a, P: ?Sized> {
        event: &'a str,
        payload: &'a P,
        #[serde(rename = "ref")]
        msg_ref: &'a Value,
        topic: &'a str,
    }
    let text = match vsn {
        Vsn::V2 => serde_json::to_string(&(join_ref, msg_ref, topic, event, payload)),
        Vsn::V1 => serde_json::to_string(&V1 {
            event,
            payload,
            msg_ref,
            topic,
        }),
    }
    .expect("JSON values and strings always serialize");
    Frame::Text(ByteString::from(text))
}

/// A reply to the message `(join_ref, msg_ref)`: `phx_reply` with `{status, response}`.
pub fn reply<R: Serialize + ?Sized>(
    vsn: Vsn,
    join_ref: &Value,
    msg_ref: &Value,
    topic: &str,
    ok: bool,
    response: &R,
) -> Frame {
    // Keys in the order Phoenix's encoder writes them (an Elixir map's, sorted).
    #[derive(Serialize)]
    struct Reply<'a, R: ?Sized> {
        response: &'a R,
        status: &'static str,
    }
    encode(
        vsn,
        join_ref,
        msg_ref,
        topic,
        "phx_reply",
        &Reply {
            response,
            status: if ok { "ok" } else { "error" },
        },
    )
}

/// What goes to every subscriber of a topic alike (broadcasts, presence diffs, database
/// changes): join_ref and ref are null, so one encoding per serializer serves them all.
#[derive(Debug)]
pub enum Fanout {
    /// A JSON event: `[null, null, topic, event, payload]`.
    Json {
        event: &'static str,
        payload: Box<RawValue>,
    },
    /// A user broadcast that arrived as bytes (a binary push, the single-message HTTP
    /// API, the database): a kind-4 frame for 2.0.0 sockets, and for 1.0.0 sockets the
    /// JSON `broadcast` event when the bytes are JSON (opaque bytes cannot reach them).
    User {
        event: String,
        json: bool,
        data: Bytes,
        /// A JSON object, or empty.
        metadata: String,
    },
}

/// A fan-out message for one topic, encoded on first use for each serializer.
#[derive(Debug)]
pub struct Encoded {
    topic: String,
    message: Fanout,
    v1: OnceLock<Option<Frame>>,
    v2: OnceLock<Option<Frame>>,
}

impl Encoded {
    pub fn new(topic: String, message: Fanout) -> Self {
        Self {
            topic,
            message,
            v1: OnceLock::new(),
            v2: OnceLock::new(),
        }
    }

    /// The frame for a socket with this serializer, if it can carry the message.
    pub fn frame(&self, vsn: Vsn) -> Option<Frame> {
        let cell = match vsn {
            Vsn::V1 => &self.v1,
            Vsn::V2 => &self.v2,
        };
        cell.get_or_init(|| self.encode(vsn)).clone()
    }

    fn encode(&self, vsn: Vsn) -> Option<Frame> {
        match (&self.message, vsn) {
            (Fanout::Json { event, payload }, _) => Some(encode(
                vsn,
                &Value::Null,
                &Value::Null,
                &self.topic,
                event,
                payload.as_ref(),
            )),
            (
                Fanout::User {
                    event,
                    json,
                    data,
                    metadata,
                },
                Vsn::V2,
            ) => user_broadcast(&self.topic, event, metadata, *json, data).map(Frame::Binary),
            (
                Fanout::User {
                    event,
                    json: true,
                    data,
                    ..
                },
                Vsn::V1,
            ) => {
                let payload: &RawValue = serde_json::from_slice(data).ok()?;
                #[derive(Serialize)]
                struct Broadcast<'a> {
                    event: &'a str,
                    payload: &'a RawValue,
                    #[serde(rename = "type")]
                    kind: &'static str,
                }
                Some(encode(
                    vsn,
                    &Value::Null,
                    &Value::Null,
                    &self.topic,
                    "broadcast",
                    &Broadcast {
                        event,
                        payload,
                        kind: "broadcast",
                    },
                ))
            }
            (Fanout::User { json: false, .. }, Vsn::V1) => None,
        }
    }
}

/// A kind-4 frame: `kind, topic_len, event_len, metadata_len, encoding`, the three
/// strings, the payload. `None` when a string is longer than 255 bytes (the format's
/// limit; the topic and event were checked on the way in, so this does not happen).
pub fn user_broadcast(
    topic: &str,
    event: &str,
    metadata: &str,
    json: bool,
    payload: &[u8],
) -> Option<Bytes> {
    let lengths = [topic.len(), event.len(), metadata.len()];
    let lengths = lengths.map(|len| u8::try_from(len).ok());
    let [Some(topic_len), Some(event_len), Some(metadata_len)] = lengths else {
        return None;
    };
    let mut out =
        BytesMut::with_capacity(5 + topic.len() + event.len() + metadata.len() + payload.len());
    out.put_u8(KIND_USER_BROADCAST);
    out.put_u8(topic_len);
    out.put_u8(event_len);
    out.put_u8(metadata_len);
    out.put_u8(if json { ENCODING_JSON } else { ENCODING_BINARY });
    out.put_slice(topic.as_bytes());
    out.put_slice(event.as_bytes());
    out.put_slice(metadata.as_bytes());
    out.put_slice(payload);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn versions_follow_phoenix_requirements() {
        assert_eq!(Vsn::parse(None), Some(Vsn::V1));
        assert_eq!(Vsn::parse(Some("1.0.0")), Some(Vsn::V1));
        assert_eq!(Vsn::parse(Some("2.0.0")), Some(Vsn::V2));
        assert_eq!(Vsn::parse(Some("2.0.7")), Some(Vsn::V2));
        for refused in ["2.1.0", "3.0.0", "2.0", "", "2.0.x", "2.0.0.0"] {
            assert_eq!(Vsn::parse(Some(refused)), None, "{refused}");
        }
    }

    #[test]
    fn text_frames_decode_in_both_serializers() {
        let v2 = decode_text(
            Vsn::V2,
            r#"["1","2","realtime:room","phx_join",{"config":{}}]"#,
        )
        .unwrap();
        assert_eq!(v2.join_ref, json!("1"));
        assert_eq!(v2.msg_ref, json!("2"));
        assert_eq!(v2.topic, "realtime:room");
        assert_eq!(v2.event, "phx_join");
        assert_eq!(v2.payload, InPayload::Json(json!({"config": {}})));
        let v1 = decode_text(
            Vsn::V1,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}"#,
        )
        .unwrap();
        assert_eq!(v1.join_ref, Value::Null);
        assert_eq!(v1.msg_ref, json!("7"));
        for bad in [
            "",
            "{",
            "[1,2,3]",
            r#"[null,null,1,"e",{}]"#,
            r#"{"topic":"t"}"#,
        ] {
            assert!(decode_text(Vsn::V2, bad).is_err(), "{bad}");
            assert!(decode_text(Vsn::V1, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn binary_pushes_decode_and_broadcasts_encode_as_realtime_js_expects() {
        // What realtime-js's serializer builds for send({type: "broadcast", event: "hi",
        // payload: {a: 1}}) on channel "realtime:room" with join_ref "1", ref "3".
        let mut push = vec![3u8, 1, 1, 13, 2, 0, 1];
        push.extend_from_slice(b"13realtime:roomhi");
        push.extend_from_slice(br#"{"a":1}"#);
        let incoming = decode_binary(Vsn::V2, &Bytes::from(push)).unwrap();
        assert_eq!(incoming.join_ref, json!("1"));
        assert_eq!(incoming.msg_ref, json!("3"));
        assert_eq!(incoming.topic, "realtime:room");
        assert_eq!(
            incoming.payload,
            InPayload::UserBroadcast {
                event: "hi".into(),
                json: true,
                data: Bytes::from_static(br#"{"a":1}"#),
            }
        );
        assert_eq!(
            decode_binary(Vsn::V2, &Bytes::from_static(&[3, 200, 0, 0, 0, 0, 1])),
            Err(Malformed::Truncated)
        );
        assert_eq!(
            decode_binary(Vsn::V2, &Bytes::from_static(&[9])),
            Err(Malformed::UnknownKind(9))
        );
        assert_eq!(
            decode_binary(Vsn::V1, &Bytes::from_static(&[3])),
            Err(Malformed::BinaryOnV1)
        );

        let fanout = Encoded::new(
            "realtime:room".into(),
            Fanout::User {
                event: "hi".into(),
                json: true,
                data: Bytes::from_static(br#"{"a":1}"#),
                metadata: String::new(),
            },
        );
        let mut kind4 = vec![4u8, 13, 2, 0, 1];
        kind4.extend_from_slice(b"realtime:roomhi");
        kind4.extend_from_slice(br#"{"a":1}"#);
        assert_eq!(
            fanout.frame(Vsn::V2),
            Some(Frame::Binary(Bytes::from(kind4)))
        );
        assert_eq!(
            fanout.frame(Vsn::V1),
            Some(Frame::Text(
                r#"{"event":"broadcast","payload":{"event":"hi","payload":{"a":1},"type":"broadcast"},"ref":null,"topic":"realtime:room"}"#
                    .into()
            ))
        );
    }

    #[test]
    fn replies_echo_refs_in_each_serializer() {
        let ok = reply(
            Vsn::V2,
            &json!("1"),
            &json!("4"),
            "phoenix",
            true,
            &json!({}),
        );
        assert_eq!(
            ok,
            Frame::Text(r#"["1","4","phoenix","phx_reply",{"response":{},"status":"ok"}]"#.into())
        );
        let v1 = reply(
            Vsn::V1,
            &json!("1"),
            &json!("4"),
            "t",
            false,
            &json!({"reason": "x"}),
        );
        assert_eq!(
            v1,
            Frame::Text(
                r#"{"event":"phx_reply","payload":{"response":{"reason":"x"},"status":"error"},"ref":"4","topic":"t"}"#
                    .into()
            )
        );
    }
}
