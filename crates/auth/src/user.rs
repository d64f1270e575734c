//! An account as `auth.users` holds it, and as Supabase Auth shows it (`User`).

use chrono::{DateTime, SecondsFormat, Utc};
use galley_db::tokio_postgres::Row;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Runs a statement that answers at most one user (its row read with
/// [`UserRecord::from_row`]) as a prepared statement kept in the connection's cache: the
/// factors and identities subqueries of [`USER_COLUMNS`] make parsing and planning cost
/// more than running on the sign-in paths, and these statements are a fixed few.
pub(crate) async fn user_row(
    client: &impl galley_db::GenericClient,
    sql: &str,
    params: &[&(dyn galley_db::tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<Row>, galley_db::tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

/// The columns [`UserRecord::from_row`] reads, for `SELECT` and `RETURNING` lists.
pub(crate) const USER_COLUMNS: &str = "u.id, u.aud, u.role, u.email, u.encrypted_password, \
    u.email_confirmed_at, u.phone, u.phone_confirmed_at, u.confirmation_sent_at, u.recovery_sent_at, \
    u.email_change, u.email_change_sent_at, u.invited_at, u.last_sign_in_at, u.raw_app_meta_data, \
    u.raw_user_meta_data, u.is_anonymous, u.banned_until, u.created_at, u.updated_at, u.deleted_at, \
    (SELECT jsonb_agg(jsonb_build_object('id', f.id, 'friendly_name', f.friendly_name, \
       'factor_type', f.factor_type, 'status', f.status, \
       'created_at', to_char(f.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
       'updated_at', to_char(f.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
       'last_challenged_at', to_char(f.last_challenged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
       'phone', '') ORDER BY f.created_at, f.id) \
     FROM auth.mfa_factors f WHERE f.user_id = u.id), \
    (SELECT jsonb_agg(jsonb_build_object('identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id, \
       'identity_data', i.identity_data, 'provider', i.provider, \
       'last_sign_in_at', to_char(i.last_sign_in_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
       'created_at', to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
       'updated_at', to_char(i.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
       'email', i.email) ORDER BY i.created_at, i.id) \
     FROM auth.identities i WHERE i.user_id = u.id)";

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub aud: String,
    pub role: String,
    pub email: Option<String>,
    pub encrypted_password: Option<String>,
    pub email_confirmed_at: Option<DateTime<Utc>>,
    pub phone: Option<String>,
    pub phone_confirmed_at: Option<DateTime<Utc>>,
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    pub recovery_sent_at: Option<DateTime<Utc>>,
    pub email_change: Option<String>,
    pub email_change_sent_at: Option<DateTime<Utc>>,
    pub invited_at: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub app_metadata: Value,
    pub user_metadata: Value,
    pub is_anonymous: bool,
    pub banned_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The user's MFA factors, as the `factors` of the user object.
    pub factors: Vec<Value>,
    /// The user's identities at external providers (`auth.identities`).
    pub external_identities: Vec<Value>,
}

impl UserRecord {
    /// Reads the [`USER_COLUMNS`] starting at column `at`.
    pub(crate) fn from_row(row: &Row, at: usize) -> Result<Self, galley_db::tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get(at)?,
            aud: row.try_get(at + 1)?,
            role: row.try_get(at + 2)?,
            email: row.try_get(at + 3)?,
            encrypted_password: row.try_get(at + 4)?,
            email_confirmed_at: row.try_get(at + 5)?,
            phone: row.try_get(at + 6)?,
            phone_confirmed_at: row.try_get(at + 7)?,
            confirmation_sent_at: row.try_get(at + 8)?,
            recovery_sent_at: row.try_get(at + 9)?,
            email_change: row.try_get(at + 10)?,
            email_change_sent_at: row.try_get(at + 11)?,
            invited_at: row.try_get(at + 12)?,
            last_sign_in_at: row.try_get(at + 13)?,
            app_metadata: row.try_get(at + 14)?,
            user_metadata: row.try_get(at + 15)?,
            is_anonymous: row.try_get(at + 16)?,
            banned_until: row.try_get(at + 17)?,
            created_at: row.try_get(at + 18)?,
            updated_at: row.try_get(at + 19)?,
            deleted_at: row.try_get(at + 20)?,
            factors: row
                .try_get::<_, Option<Value>>(at + 21)?
                .and_then(|v| match v {
                    Value::Array(factors) => Some(factors),
                    _ => None,
                })
                .unwrap_or_default()
                .into_iter()
                .map(|mut factor| {
                    // GoTrue leaves an empty friendly name out.
                    if let Some(object) = factor.as_object_mut()
                        && object.get("friendly_name").and_then(Value::as_str) == Some("")
                    {
                        object.remove("friendly_name");
                    }
                    factor
                })
                .collect(),
            external_identities: match row.try_get::<_, Option<Value>>(at + 22)? {
                Some(Value::Array(identities)) => identities,
                _ => Vec::new(),
            },
        })
    }

    /// Whether the user has a verified MFA factor (and so needs `aal2` for some changes).
    pub fn has_verified_factor(&self) -> bool {
        self.factors
            .iter()
            .any(|f| f.get("status").and_then(Value::as_str) == Some("verified"))
    }

    pub fn is_banned(&self, now: DateTime<Utc>) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }

    /// The `User` object of the Supabase Auth API.
    pub fn to_json(&self) -> Value {
        let mut user = Map::new();
        user.insert("id".into(), json!(self.id));
        user.insert("aud".into(), json!(self.aud));
        user.insert("role".into(), json!(self.role));
        user.insert(
            "email".into(),
            json!(self.email.clone().unwrap_or_default()),
        );
        let times = [
            ("email_confirmed_at", self.email_confirmed_at),
            ("phone_confirmed_at", self.phone_confirmed_at),
            ("confirmation_sent_at", self.confirmation_sent_at),
            ("recovery_sent_at", self.recovery_sent_at),
            ("email_change_sent_at", self.email_change_sent_at),
            ("invited_at", self.invited_at),
            (
                "confirmed_at",
                match (self.email_confirmed_at, self.phone_confirmed_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            ),
            ("last_sign_in_at", self.last_sign_in_at),
            ("banned_until", self.banned_until),
            ("deleted_at", self.deleted_at),
        ];
        for (name, time) in times {
            if let Some(time) = time {
                user.insert(name.into(), json!(timestamp(time)));
            }
        }
        user.insert(
            "phone".into(),
            json!(self.phone.clone().unwrap_or_default()),
        );
        if let Some(new_email) = &self.email_change {
            user.insert("new_email".into(), json!(new_email));
        }
        user.insert("app_metadata".into(), self.app_metadata.clone());
        user.insert("user_metadata".into(), self.user_metadata.clone());
        let identities = self.identities_json();
        user.insert("identities".into(), Value::Array(identities));
        if !self.factors.is_empty() {
            user.insert("factors".into(), Value::Array(self.factors.clone()));
        }
        user.insert("created_at".into(), json!(timestamp(self.created_at)));
        user.insert("updated_at".into(), json!(timestamp(self.updated_at)));
        user.insert("is_anonymous".into(), json!(self.is_anonymous));
        Value::Object(user)
    }
}

impl UserRecord {
    /// The user's identities as GoTrue lists them: the email one (for an address the
    /// user signed up with, not one that came with an external identity), then those at
    /// external providers.
    pub fn identities_json(&self) -> Vec<Value> {
        let providers = self.app_metadata.get("providers").and_then(Value::as_array);
        let email_provider = providers.is_none_or(|p| p.iter().any(|p| p == "email"));
        let mut identities = match (&self.email, email_provider) {
            (Some(email), true) => vec![json!({
                "identity_id": self.id,
                "id": self.id,
                "user_id": self.id,
                "identity_data": {
                    "sub": self.id,
                    "email": email,
                    "email_verified": self.email_confirmed_at.is_some(),
                    "phone_verified": false,
                },
                "provider": "email",
                "last_sign_in_at": self.last_sign_in_at.map(timestamp),
                "created_at": timestamp(self.created_at),
                "updated_at": timestamp(self.updated_at),
                "email": email,
            })],
            _ => Vec::new(),
        };
        identities.extend(self.external_identities.iter().cloned());
        identities
    }
}

/// RFC 3339 with microseconds and `Z`, as GoTrue prints times.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}
