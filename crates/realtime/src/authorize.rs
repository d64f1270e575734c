//! Private channels, authorized as Supabase's Realtime Authorization does: by the
//! row-level security policies on `realtime.messages`, evaluated as the subscriber's role
//! and claims with `realtime.topic()` set to the channel.
//!
//! Read: probe rows (one per extension checked) are written as Galley's owner
//! (`galley.realtime_probe`), then read back as the subscriber; a visible probe grants
//! reading that extension. Write: a row inserted as the subscriber; refused by policy
//! (42501), no write. Every check runs in a transaction that is rolled back, so nothing
//! persists. Both are decided at join (Supabase decides writes at the first push; the
//! answer is the same, cached until the token changes).

use std::borrow::Cow;

use galley_db::ApiPool;
use galley_db::wire::Queued;

use crate::identity::Identity;

/// What a subscriber may do on a private channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub broadcast_read: bool,
    pub presence_read: bool,
    pub broadcast_write: bool,
    pub presence_write: bool,
}

impl Access {
    /// A public channel: everything.
    pub const PUBLIC: Access = Access {
        broadcast_read: true,
        presence_read: true,
        broadcast_write: true,
        presence_write: true,
    };

    pub fn may_join(&self) -> bool {
        self.broadcast_read || self.presence_read
    }
}

const SETTINGS: &str = "SELECT set_config('role', $1::text, true), set_config('realtime.topic', $2::text, true), \
     set_config('request.jwt.claims', $3::text, true), set_config('request.jwt.claim.sub', $4::text, true), \
     set_config('request.jwt.claim.role', $1::text, true)";

fn settings(identity: &Identity, topic: &str) -> Queued {
    let sub = identity
        .claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    (
        Cow::Borrowed(SETTINGS),
        vec![
            identity.role.to_owned(),
            topic.to_owned(),
            identity.claims.to_string(),
            sub.to_owned(),
        ],
    )
}

fn statement(sql: &'static str, params: Vec<String>) -> Queued {
    (Cow::Borrowed(sql), params)
}

/// Decides `identity`'s access to the private channel `topic` (the name without
/// `realtime:`); presence is checked only when the channel uses it. `Err` when the
/// database could not answer (the join is then refused as unauthorized, as Supabase does
/// when a policy fails).
pub(crate) async fn authorize(
    api: &ApiPool,
    topic: &str,
    identity: &Identity,
    presence: bool,
) -> Result<Access, String> {
    let mut conn = api.get().await.map_err(|err| err.to_string())?;
    let mut extensions = vec!["broadcast"];
    if presence {
        extensions.push("presence");
    }
    let ids: Vec<String> = extensions
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let id_array = format!("{{{}}}", ids.join(","));
    let ext_array = format!("{{{}}}", extensions.join(","));
    let read = [
        statement("BEGIN", Vec::new()),
        statement(
            "SELECT galley.realtime_probe($1::text::uuid[], $2::text, $3::text::text[])",
            vec![id_array.clone(), topic.to_owned(), ext_array],
        ),
        settings(identity, topic),
        statement(
            "SELECT extension FROM realtime.messages WHERE id = ANY ($1::text::uuid[])",
            vec![id_array],
        ),
        statement("ROLLBACK", Vec::new()),
    ];
    conn.push_all(&read).map_err(|err| err.to_string())?;
    let mut access = Access::default();
    match conn.sync().await {
        Ok(results) => {
            for row in results.get(3).map(Vec::as_slice).unwrap_or_default() {
                match row.text(0) {
                    Some("broadcast") => access.broadcast_read = true,
                    Some("presence") => access.presence_read = true,
                    _ => {}
                }
            }
        }
        // A policy that fails denies, as in Supabase.
        Err(err) if err.server().is_some() => {
            tracing::info!(topic, error = %err, "a realtime read policy failed; the channel is refused");
            return Ok(access);
        }
        Err(err) => return Err(err.to_string()),
    }
    if !access.may_join() {
        return Ok(access);
    }
    for extension in extensions {
        let write = [
            statement("BEGIN", Vec::new()),
            settings(identity, topic),
            statement(
                "INSERT INTO realtime.messages (topic, extension) VALUES ($1::text, $2::text)",
                vec![topic.to_owned(), extension.to_owned()],
            ),
            statement("ROLLBACK", Vec::new()),
        ];
        conn.push_all(&write).map_err(|err| err.to_string())?;
        let allowed = match conn.sync().await {
            Ok(_) => true,
            Err(err) if err.server().is_some() => false,
            Err(err) => return Err(err.to_string()),
        };
        match extension {
            "broadcast" => access.broadcast_write = allowed,
            _ => access.presence_write = allowed,
        }
    }
    Ok(access)
}
