//! Passkeys (WebAuthn) as a way to sign in, in Supabase Auth's dialect (`/passkeys`):
//! a signed-in user registers a passkey (options, then the authenticator's answer), and
//! anyone signs in with one (options with no user named, then an assertion whose user
//! handle names the account: a discoverable credential). The ceremonies are
//! webauthn-rs's; their state waits in `auth.webauthn_challenges`, used once, within five
//! minutes, so any instance finishes what another began. Users list, rename and delete
//! their passkeys; admins list and delete them.

use chrono::Utc;
use galley_db::GenericClient;
use serde_json::{Value, json};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use crate::accounts::{Accounts, Caller, Session, load_user, session_is_aal2};
use crate::error::AuthError;
use crate::user::{UserRecord, timestamp};

/// Passkeys a user may hold.
const MAX_PASSKEYS: i64 = 10;
/// Seconds a ceremony may take.
const CEREMONY_SECS: i64 = 300;

/// The relying party passkeys are registered with.
pub struct PasskeyConfig {
    webauthn: Webauthn,
}

impl std::fmt::Debug for PasskeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyConfig")
            .field("origins", &self.webauthn.get_allowed_origins())
            .finish()
    }
}

impl PasskeyConfig {
    /// The relying party of an app at `site_url`: unless given, its host is the RP id
    /// and its origin the one origin allowed.
    pub fn for_site(
        site_url: &str,
        rp_id: Option<&str>,
        origins: &[String],
        rp_name: &str,
    ) -> Result<Self, String> {
        let site = Url::parse(site_url).map_err(|err| format!("auth.site_url: {err}"))?;
        let rp_id = match rp_id {
            Some(id) => id.to_owned(),
            None => site
                .host_str()
                .ok_or("auth.site_url has no host to be the WebAuthn relying party id")?
                .to_owned(),
        };
        let origins = if origins.is_empty() {
            vec![site.origin().ascii_serialization()]
        } else {
            origins.to_vec()
        };
        Self::new(&rp_id, &origins, rp_name)
    }

    /// `rp_id` a domain; `origins` the URLs ceremonies may come from (the first at least).
    pub fn new(rp_id: &str, origins: &[String], rp_name: &str) -> Result<Self, String> {
        let parse = |origin: &String| {
            Url::parse(origin).map_err(|err| format!("auth.webauthn_origins: {origin}: {err}"))
        };
        if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') {
            return Err(format!(
                "passkeys need a domain, not an address ({rp_id}): set auth.webauthn_rp_id and \
                 auth.webauthn_origins, or an auth.site_url with a domain (localhost works for development)"
            ));
        }
        let first = origins
            .first()
            .ok_or("auth.webauthn_origins: at least one origin is needed")?;
        let first_url = parse(first)?;
        let mut builder = WebauthnBuilder::new(rp_id, &first_url)
            .map_err(|err| format!("auth.webauthn_rp_id {rp_id:?} does not fit {first}: {err}"))?
            .rp_name(rp_name);
        for origin in &origins[1..] {
            let url = parse(origin)?;
            // Browsers only run a ceremony for an RP id the page's host is, or is under.
            let host = url.host_str().unwrap_or_default();
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(format!(
                    "auth.webauthn_origins: {origin} is not {rp_id} or under it (auth.webauthn_rp_id)"
                ));
            }
            builder = builder.append_allowed_origin(&url);
        }
        Ok(Self {
            webauthn: builder
                .build()
                .map_err(|err| format!("the WebAuthn relying party: {err}"))?,
        })
    }
}

fn disabled() -> AuthError {
    AuthError::new(404, "passkey_disabled", "Passkeys are disabled")
}

fn not_found() -> AuthError {
    AuthError::new(404, "validation_failed", "Passkey not found")
}

fn verification_failed(message: &str, err: impl std::fmt::Display) -> AuthError {
    tracing::info!(event = "auth.passkey_refused", reason = %err, "a passkey answer was refused");
    AuthError::new(400, "webauthn_verification_failed", message)
}

/// A passkey as the list answers it.
fn passkey_json(row: &galley_db::tokio_postgres::Row) -> Result<Value, AuthError> {
    let id: Uuid = row.try_get(0)?;
    let name: String = row.try_get(1)?;
    let created: chrono::DateTime<Utc> = row.try_get(2)?;
    let used: Option<chrono::DateTime<Utc>> = row.try_get(3)?;
    let mut item = json!({"id": id, "created_at": timestamp(created)});
    if !name.is_empty() {
        item["friendly_name"] = json!(name);
    }
    if let Some(used) = used {
        item["last_used_at"] = json!(timestamp(used));
    }
    Ok(item)
}

const PASSKEY_COLUMNS: &str = "id, friendly_name, created_at, last_used_at";

impl Accounts {
    fn passkeys(&self) -> Result<&Webauthn, AuthError> {
        self.settings
            .passkeys
            .as_deref()
            .map(|config| &config.webauthn)
            .ok_or_else(disabled)
    }

    /// Whether passkeys are offered.
    pub fn passkeys_enabled(&self) -> bool {
        self.settings.passkeys.is_some()
    }

    /// The caller, allowed to manage passkeys: with a verified MFA factor, only at aal2.
    async fn passkey_manager(
        &self,
        client: &impl GenericClient,
        caller: &Caller,
    ) -> Result<UserRecord, AuthError> {
        let user = self.load_caller(client, caller).await?;
        if user.has_verified_factor() && !session_is_aal2(client, caller).await? {
            return Err(AuthError::new(
                403,
                "insufficient_aal",
                "AAL2 session is required to manage passkeys when MFA is enabled",
            ));
        }
        Ok(user)
    }

    async fn stored_passkeys(
        client: &impl GenericClient,
        user_id: Uuid,
    ) -> Result<Vec<Passkey>, AuthError> {
        let rows = client
            .query(
                "SELECT credential FROM auth.webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                serde_json::from_value(row.try_get(0)?).map_err(|err| {
                    tracing::error!(error = %err, "a stored passkey does not read back");
                    AuthError::unexpected()
                })
            })
            .collect()
    }

    /// Stores a ceremony's state: `{challenge_id, options, expires_at}` for the client.
    async fn begin_ceremony(
        client: &impl GenericClient,
        user_id: Option<Uuid>,
        kind: &str,
        state: Value,
        options: Value,
    ) -> Result<Value, AuthError> {
        client
            .execute(
                "DELETE FROM auth.webauthn_challenges WHERE expires_at < now() - interval '1 hour'",
                &[],
            )
            .await?;
        let row = client
            .query_one(
                "INSERT INTO auth.webauthn_challenges (user_id, kind, state, expires_at) \
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
                 RETURNING id, extract(epoch from expires_at)::bigint",
                &[&user_id, &kind, &state, &(CEREMONY_SECS as f64)],
            )
            .await?;
        let id: Uuid = row.try_get(0)?;
        let expires_at: i64 = row.try_get(1)?;
        Ok(json!({"challenge_id": id, "options": options, "expires_at": expires_at}))
    }

    /// Takes a ceremony's state, once.
    async fn take_ceremony(
        client: &impl GenericClient,
        challenge_id: &str,
        user_id: Option<Uuid>,
        kind: &str,
    ) -> Result<Value, AuthError> {
        if challenge_id.is_empty() {
            return Err(AuthError::validation("challenge_id is required"));
        }
        let id = Uuid::parse_str(challenge_id)
            .map_err(|_| AuthError::validation("challenge_id must be a valid UUID"))?;
        let row = client
            .query_opt(
                "DELETE FROM auth.webauthn_challenges WHERE id = $1 AND kind = $2 \
                 AND user_id IS NOT DISTINCT FROM $3 RETURNING state, expires_at < now()",
                &[&id, &kind, &user_id],
            )
            .await?
            .ok_or_else(|| {
                AuthError::new(
                    400,
                    "webauthn_challenge_not_found",
                    "Challenge not found or already used",
                )
            })?;
        if row.try_get::<_, bool>(1)? {
            return Err(AuthError::new(
                400,
                "webauthn_challenge_expired",
                "Challenge has expired",
            ));
        }
        Ok(row.try_get(0)?)
    }

    /// `POST /passkeys/registration/options`.
    pub async fn passkey_registration_options(&self, caller: &Caller) -> Result<Value, AuthError> {
        let webauthn = self.passkeys()?;
        let client = self.pool.get().await?;
        let user = self.passkey_manager(&client, caller).await?;
        let existing = Self::stored_passkeys(&client, user.id).await?;
        if existing.len() as i64 >= MAX_PASSKEYS {
            return Err(AuthError::new(
                422,
                "too_many_passkeys",
                "Maximum number of passkeys reached",
            ));
        }
        let name = user
            .email
            .clone()
            .or_else(|| user.phone.clone())
            .unwrap_or_else(|| user.id.to_string());
        let display = user
            .user_metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map_or_else(|| name.clone(), str::to_owned);
        let exclude = existing.iter().map(|p| p.cred_id().clone()).collect();
        let (challenge, state) = webauthn
            .start_passkey_registration(user.id, &name, &display, Some(exclude))
            .map_err(|err| {
                tracing::error!(error = %err, "WebAuthn registration options failed");
                AuthError::unexpected()
            })?;
        let mut options =
            serde_json::to_value(&challenge.public_key).map_err(|_| AuthError::unexpected())?;
        // A passkey signs in without a user named first: the credential must be
        // discoverable.
        options["authenticatorSelection"]["residentKey"] = json!("required");
        options["authenticatorSelection"]["requireResidentKey"] = json!(true);
        let state = serde_json::to_value(&state).map_err(|_| AuthError::unexpected())?;
        Self::begin_ceremony(&client, Some(user.id), "registration", state, options).await
    }

    /// `POST /passkeys/registration/verify`: `{id, friendly_name?, created_at}`.
    pub async fn passkey_registration_verify(
        &self,
        caller: &Caller,
        challenge_id: &str,
        credential: Option<Value>,
    ) -> Result<Value, AuthError> {
        let webauthn = self.passkeys()?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = self.passkey_manager(&tx, caller).await?;
        let Some(credential) = credential.filter(|c| !c.is_null()) else {
            return Err(AuthError::validation("credential is required"));
        };
        let state = Self::take_ceremony(&tx, challenge_id, Some(user.id), "registration").await?;
        tx.commit().await?;
        let state: PasskeyRegistration =
            serde_json::from_value(state).map_err(|_| AuthError::unexpected())?;
        let answer: RegisterPublicKeyCredential = serde_json::from_value(credential)
            .map_err(|err| verification_failed("Invalid credential response", err))?;
        let passkey = webauthn
            .finish_passkey_registration(&answer, &state)
            .map_err(|err| verification_failed("Credential verification failed", err))?;
        let stored = serde_json::to_value(&passkey).map_err(|_| AuthError::unexpected())?;
        let tx = client.transaction().await?;
        let count: i64 = tx
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM auth.webauthn_credentials WHERE user_id = $1 FOR UPDATE) AS c",
                &[&user.id],
            )
            .await?
            .try_get(0)?;
        if count >= MAX_PASSKEYS {
            return Err(AuthError::new(
                422,
                "too_many_passkeys",
                "Maximum number of passkeys reached",
            ));
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO auth.webauthn_credentials (user_id, credential_id, credential) \
                     VALUES ($1, $2, $3) RETURNING {PASSKEY_COLUMNS}"
                ),
                &[&user.id, &passkey.cred_id().as_slice(), &stored],
            )
            .await
            .map_err(|err| {
                if galley_db::classify(&err) == galley_db::SqlState::UniqueViolation {
                    AuthError::new(
                        422,
                        "webauthn_credential_exists",
                        "This credential is already registered",
                    )
                } else {
                    err.into()
                }
            })?;
        tx.commit().await?;
        tracing::info!(event = "auth.passkey_registered", user_id = %user.id, "a passkey was registered");
        passkey_json(&row)
    }

    /// `POST /passkeys/authentication/options`: a challenge any passkey may answer.
    pub async fn passkey_authentication_options(&self) -> Result<Value, AuthError> {
        let webauthn = self.passkeys()?;
        let (challenge, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|err| {
                tracing::error!(error = %err, "WebAuthn sign-in options failed");
                AuthError::unexpected()
            })?;
        let options =
            serde_json::to_value(&challenge.public_key).map_err(|_| AuthError::unexpected())?;
        let state = serde_json::to_value(&state).map_err(|_| AuthError::unexpected())?;
        let client = self.pool.get().await?;
        Self::begin_ceremony(&client, None, "authentication", state, options).await
    }

    /// `POST /passkeys/authentication/verify`: the session of the passkey's user.
    pub async fn passkey_authentication_verify(
        &self,
        challenge_id: &str,
        credential: Option<Value>,
        user_agent: Option<&str>,
    ) -> Result<Session, AuthError> {
        let webauthn = self.passkeys()?;
        let Some(credential) = credential.filter(|c| !c.is_null()) else {
            return Err(AuthError::validation("credential is required"));
        };
        let mut client = self.pool.get().await?;
        let state = Self::take_ceremony(&client, challenge_id, None, "authentication").await?;
        let state: DiscoverableAuthentication =
            serde_json::from_value(state).map_err(|_| AuthError::unexpected())?;
        let answer: PublicKeyCredential = serde_json::from_value(credential)
            .map_err(|err| verification_failed("Invalid credential response", err))?;
        let (user_id, credential_id) = webauthn
            .identify_discoverable_authentication(&answer)
            .map_err(|err| verification_failed("Credential verification failed", err))?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT id, credential FROM auth.webauthn_credentials WHERE credential_id = $1 AND user_id = $2 FOR UPDATE",
                &[&credential_id, &user_id],
            )
            .await?
            .ok_or_else(|| verification_failed("Credential verification failed", "unknown credential"))?;
        let id: Uuid = row.try_get(0)?;
        let mut passkey: Passkey =
            serde_json::from_value(row.try_get(1)?).map_err(|_| AuthError::unexpected())?;
        let result = webauthn
            .finish_discoverable_authentication_v2(&answer, state, &passkey)
            .map_err(|err| verification_failed("Credential verification failed", err))?;
        passkey.update_credential(&result);
        let stored = serde_json::to_value(&passkey).map_err(|_| AuthError::unexpected())?;
        tx.execute(
            "UPDATE auth.webauthn_credentials SET credential = $2, last_used_at = now() WHERE id = $1",
            &[&id, &stored],
        )
        .await?;
        let user = load_user(&tx, user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or_else(|| verification_failed("Credential verification failed", "no such user"))?;
        if user.email.is_some() && user.email_confirmed_at.is_none() {
            return Err(AuthError::new(
                403,
                "email_not_confirmed",
                "Email not confirmed",
            ));
        }
        if user.is_banned(Utc::now()) {
            return Err(AuthError::new(403, "user_banned", "User is banned"));
        }
        let session = self.start_session(&tx, user, "passkey", user_agent).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// `GET /passkeys`, or an admin's `GET /admin/users/{id}/passkeys` (`caller` none).
    pub async fn list_passkeys(
        &self,
        caller: Option<&Caller>,
        user_id: Uuid,
    ) -> Result<Value, AuthError> {
        self.passkeys()?;
        let client = self.pool.get().await?;
        let user_id = match caller {
            Some(caller) => self.load_caller(&client, caller).await?.id,
            None => self.get_user(user_id).await?.id,
        };
        let rows = client
            .query(
                &format!("SELECT {PASSKEY_COLUMNS} FROM auth.webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id"),
                &[&user_id],
            )
            .await?;
        Ok(Value::Array(
            rows.iter().map(passkey_json).collect::<Result<_, _>>()?,
        ))
    }

    /// `PATCH /passkeys/{id}`: renames it.
    pub async fn rename_passkey(
        &self,
        caller: &Caller,
        passkey_id: &str,
        friendly_name: Option<&str>,
    ) -> Result<Value, AuthError> {
        self.passkeys()?;
        let id = Uuid::parse_str(passkey_id).map_err(|_| not_found())?;
        let name = friendly_name.unwrap_or_default();
        if name.is_empty() {
            return Err(AuthError::validation("friendly_name is required"));
        }
        if name.len() > 120 {
            return Err(AuthError::validation(
                "friendly_name must be 120 characters or less",
            ));
        }
        let client = self.pool.get().await?;
        let user = self.load_caller(&client, caller).await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE auth.webauthn_credentials SET friendly_name = $3, updated_at = now() \
                     WHERE id = $1 AND user_id = $2 RETURNING {PASSKEY_COLUMNS}"
                ),
                &[&id, &user.id, &name],
            )
            .await?
            .ok_or_else(not_found)?;
        passkey_json(&row)
    }

    /// `DELETE /passkeys/{id}` (the owner; at aal2 when MFA is on), or an admin's (`caller`
    /// none) for `user_id`.
    pub async fn delete_passkey(
        &self,
        caller: Option<&Caller>,
        user_id: Uuid,
        passkey_id: &str,
    ) -> Result<(), AuthError> {
        self.passkeys()?;
        let id = Uuid::parse_str(passkey_id).map_err(|_| not_found())?;
        let client = self.pool.get().await?;
        let user_id = match caller {
            Some(caller) => self.passkey_manager(&client, caller).await?.id,
            None => user_id,
        };
        let deleted = client
            .execute(
                "DELETE FROM auth.webauthn_credentials WHERE id = $1 AND user_id = $2",
                &[&id, &user_id],
            )
            .await?;
        if deleted == 0 {
            return Err(not_found());
        }
        tracing::info!(event = "auth.passkey_deleted", user_id = %user_id, by_admin = caller.is_none(), "a passkey was deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_a_domain_its_origins_belong_to() {
        let ok = |site: &str, rp: Option<&str>, origins: &[&str]| {
            let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
            PasskeyConfig::for_site(site, rp, &origins, "Galley")
        };
        assert!(ok("http://localhost:3000/app", None, &[]).is_ok());
        assert!(ok("https://app.example.com", Some("example.com"), &[]).is_ok());
        assert!(
            ok(
                "https://app.example.com",
                None,
                &["https://app.example.com", "https://admin.example.com"]
            )
            .is_err(),
            "admin.example.com is not within app.example.com"
        );
        let err = ok("http://127.0.0.1:3000", None, &[]).expect_err("an address");
        assert!(err.contains("need a domain"), "{err}");
        assert!(ok("https://app.example.com", Some("evil.example"), &[]).is_err());
    }
}
