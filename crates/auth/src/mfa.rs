//! Multi-factor authentication in Supabase Auth's dialect (`/factors`): a signed-in user
//! enrols a TOTP factor (its secret and QR code shown once), asks for a challenge, and
//! answers it with a code; the session is then `aal2`, with `totp` first in its `amr`.
//! Removing a verified factor needs an `aal2` session. Admins list, rename and delete a
//! user's factors.
//!
//! Rules kept here, as GoTrue keeps them:
//! - at most ten factors a user, friendly names unique per user (the empty name too);
//! - a user with a verified factor enrols another only from an `aal2` session;
//! - a challenge lives five minutes and is answered from the address it was issued to;
//! - verifying upgrades the current session, moves its refresh token two steps on (the
//!   `aal1` token cannot refresh into `aal2`), and ends the user's other `aal1` sessions;
//! - removing a factor brings the sessions it raised back to `aal1`.
//!
//! Beyond GoTrue: a challenge takes at most five wrong codes, and a factor ten in a row
//! across all its challenges before each further try must wait, twice as long each time
//! (new challenges do not reset the count: only a right code does); a code's time step
//! is never accepted twice; secrets are sealed at rest ([`crate::seal`]).
//!
//! Locks are taken factor first, then session: a verify deletes the user's other `aal1`
//! sessions, and a request from one of them waits on the factor before it holds its own
//! session, so the two never wait on each other.

use galley_db::GenericClient;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{Accounts, Caller, Session};
use crate::error::AuthError;
use crate::totp;
use crate::user::{USER_COLUMNS, UserRecord, timestamp};

/// Factors a user may hold, verified or not.
const MAX_FACTORS: i64 = 10;
/// Seconds a challenge may be answered in.
const CHALLENGE_TTL_SECS: i64 = 300;
/// Seconds an unverified factor without a challenge is kept.
const UNVERIFIED_TTL_SECS: i64 = 300;
/// Wrong codes a challenge takes before it is gone.
const MAX_CHALLENGE_ATTEMPTS: i32 = 5;
/// Wrong codes in a row a factor takes before each further try must wait.
const FREE_FAILURES: i32 = 10;
/// The first wait past [`FREE_FAILURES`], doubled with each further wrong code (at most
/// 2^10 times).
const BACKOFF_BASE_SECS: i32 = 60;

/// The columns [`factor_json`] reads.
const FACTOR_COLUMNS: &str = "f.id, f.friendly_name, f.factor_type, f.status, f.created_at, f.updated_at, f.last_challenged_at";

/// A factor as GoTrue shows it in the user object and the admin API.
pub(crate) fn factor_json(
    row: &galley_db::tokio_postgres::Row,
    at: usize,
) -> Result<Value, AuthError> {
    let id: Uuid = row.try_get(at)?;
    let friendly_name: String = row.try_get(at + 1)?;
    let factor_type: String = row.try_get(at + 2)?;
    let status: String = row.try_get(at + 3)?;
    let created_at: chrono::DateTime<chrono::Utc> = row.try_get(at + 4)?;
    let updated_at: chrono::DateTime<chrono::Utc> = row.try_get(at + 5)?;
    let last_challenged_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get(at + 6)?;
    let mut factor = json!({
        "id": id,
        "factor_type": factor_type,
        "status": status,
        "created_at": timestamp(created_at),
        "updated_at": timestamp(updated_at),
        "last_challenged_at": last_challenged_at.map(timestamp),
        "phone": "",
    });
    if !friendly_name.is_empty() {
        factor["friendly_name"] = json!(friendly_name);
    }
    Ok(factor)
}

fn name_conflict(name: &str) -> AuthError {
    AuthError::new(
        422,
        "mfa_factor_name_conflict",
        format!("A factor with the friendly name {name:?} for this user already exists"),
    )
}

fn factor_not_found() -> AuthError {
    AuthError::new(404, "mfa_factor_not_found", "Factor not found")
}

/// What enrolling a TOTP factor answers; the secret is shown this once.
/// `Debug` leaves the secret out.
pub struct EnrolledFactor {
    pub id: Uuid,
    pub friendly_name: String,
    pub qr_code: String,
    pub secret: String,
    pub uri: String,
}

impl std::fmt::Debug for EnrolledFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolledFactor")
            .field("id", &self.id)
            .field("friendly_name", &self.friendly_name)
            .finish_non_exhaustive()
    }
}

impl EnrolledFactor {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "totp",
            "friendly_name": self.friendly_name,
            "totp": {"qr_code": self.qr_code, "secret": self.secret, "uri": self.uri},
        })
    }
}

/// The session a request is made in, locked for the change it leads to.
struct CallerSession {
    id: Uuid,
    counter: i64,
    aal: String,
    amr: Value,
}

impl Accounts {
    /// The caller's user and session; a token without a live session cannot use MFA.
    async fn mfa_caller(
        &self,
        client: &impl GenericClient,
        caller: &Caller,
    ) -> Result<(UserRecord, CallerSession), AuthError> {
        let user = self.load_caller(client, caller).await?;
        let session = self.caller_session(client, caller, &user).await?;
        Ok((user, session))
    }

    /// The caller's session row, locked.
    async fn caller_session(
        &self,
        client: &impl GenericClient,
        caller: &Caller,
        user: &UserRecord,
    ) -> Result<CallerSession, AuthError> {
        let missing = || {
            AuthError::new(
                403,
                "session_not_found",
                "Session from session_id claim in JWT does not exist",
            )
        };
        let session_id = caller.session_id.ok_or_else(missing)?;
        let row = client
            .query_opt(
                "SELECT refresh_counter, aal, amr FROM auth.sessions WHERE id = $1 AND user_id = $2 FOR UPDATE",
                &[&session_id, &user.id],
            )
            .await?
            .ok_or_else(missing)?;
        Ok(CallerSession {
            id: session_id,
            counter: row.try_get(0)?,
            aal: row.try_get(1)?,
            amr: row.try_get(2)?,
        })
    }

    /// `POST /factors`.
    pub async fn enroll_factor(
        &self,
        caller: &Caller,
        factor_type: &str,
        friendly_name: Option<String>,
        issuer: Option<String>,
    ) -> Result<EnrolledFactor, AuthError> {
        match factor_type {
            "totp" => {}
            "phone" => {
                return Err(AuthError::new(
                    422,
                    "mfa_phone_enroll_not_enabled",
                    "MFA enroll is disabled for Phone",
                ));
            }
            "webauthn" => {
                return Err(AuthError::new(
                    422,
                    "mfa_webauthn_enroll_not_enabled",
                    "MFA enroll is disabled for WebAuthn",
                ));
            }
            _ => {
                return Err(AuthError::validation(
                    "factor_type needs to be totp, phone, or webauthn",
                ));
            }
        }
        let friendly_name = friendly_name.unwrap_or_default();
        if friendly_name.chars().count() > 256 {
            return Err(AuthError::validation(
                "friendly_name must be at most 256 characters",
            ));
        }
        let issuer = match issuer.filter(|i| !i.is_empty()) {
            Some(issuer) => issuer,
            None => host_of(&self.settings.site_url),
        };
        if issuer.chars().count() > 256 {
            return Err(AuthError::validation(
                "issuer must be at most 256 characters",
            ));
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (user, session) = self.mfa_caller(&tx, caller).await?;
        tx.execute(
            "DELETE FROM auth.mfa_factors f WHERE f.user_id = $1 AND f.status = 'unverified' \
             AND f.created_at < now() - make_interval(secs => $2) \
             AND NOT EXISTS (SELECT 1 FROM auth.mfa_challenges c WHERE c.factor_id = f.id)",
            &[&user.id, &(UNVERIFIED_TTL_SECS as f64)],
        )
        .await?;
        let factors = tx
            .query(
                "SELECT friendly_name, status FROM auth.mfa_factors WHERE user_id = $1 FOR UPDATE",
                &[&user.id],
            )
            .await?;
        let mut verified = 0;
        for factor in &factors {
            let name: String = factor.try_get(0)?;
            if name == friendly_name {
                return Err(name_conflict(&friendly_name));
            }
            if factor.try_get::<_, String>(1)? == "verified" {
                verified += 1;
            }
        }
        if factors.len() as i64 >= MAX_FACTORS {
            return Err(AuthError::new(
                422,
                "too_many_enrolled_mfa_factors",
                "Maximum number of verified factors reached, unenroll to continue",
            ));
        }
        if verified > 0 && session.aal != "aal2" {
            return Err(AuthError::new(
                403,
                "insufficient_aal",
                "AAL2 required to enroll a new factor",
            ));
        }
        let secret = totp::new_secret();
        let account = user.email.clone().unwrap_or_default();
        let code = totp::totp_for(&secret, Some((&issuer, &account)))
            .ok_or_else(|| AuthError::validation("issuer or account name cannot label a TOTP"))?;
        let uri = code.get_url();
        let qr_code = totp::qr_svg(&uri).ok_or_else(|| {
            AuthError::validation("issuer and account name are too long for a QR code")
        })?;
        let id = Uuid::new_v4();
        let sealed = self.seal.seal(secret.as_bytes(), id.as_bytes());
        tx.execute(
            "INSERT INTO auth.mfa_factors (id, user_id, friendly_name, factor_type, secret) VALUES ($1, $2, $3, 'totp', $4)",
            &[&id, &user.id, &friendly_name, &sealed],
        )
        .await
        .map_err(|err| {
            if galley_db::classify(&err) == galley_db::SqlState::UniqueViolation {
                name_conflict(&friendly_name)
            } else {
                err.into()
            }
        })?;
        tx.commit().await?;
        tracing::info!(event = "auth.mfa_enrolled", user_id = %user.id, factor_id = %id, "a TOTP factor was enrolled");
        Ok(EnrolledFactor {
            id,
            friendly_name,
            qr_code,
            secret,
            uri,
        })
    }

    /// `POST /factors/{id}/challenge`: `{id, type, expires_at}`.
    pub async fn challenge_factor(
        &self,
        caller: &Caller,
        factor_id: &str,
        ip: &str,
    ) -> Result<Value, AuthError> {
        let factor_id = parse_factor_id(factor_id)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = self.load_caller(&tx, caller).await?;
        let factor = tx
            .query_opt(
                "UPDATE auth.mfa_factors SET last_challenged_at = now() WHERE id = $1 AND user_id = $2 RETURNING factor_type",
                &[&factor_id, &user.id],
            )
            .await?;
        self.caller_session(&tx, caller, &user).await?;
        let factor_type: String = factor.ok_or_else(factor_not_found)?.try_get(0)?;
        if factor_type != "totp" {
            return Err(AuthError::new(
                422,
                "mfa_webauthn_verify_not_enabled",
                "MFA verification is disabled for WebAuthn",
            ));
        }
        let row = tx
            .query_one(
                "INSERT INTO auth.mfa_challenges (factor_id, ip_address) VALUES ($1, $2) \
                 RETURNING id, extract(epoch from created_at)::bigint",
                &[&factor_id, &ip],
            )
            .await?;
        tx.commit().await?;
        let id: Uuid = row.try_get(0)?;
        let created: i64 = row.try_get(1)?;
        Ok(json!({"id": id, "type": factor_type, "expires_at": created + CHALLENGE_TTL_SECS}))
    }

    /// `POST /factors/{id}/verify`: the session, raised to `aal2`.
    pub async fn verify_factor(
        &self,
        caller: &Caller,
        factor_id: &str,
        challenge_id: &str,
        code: &str,
        ip: &str,
    ) -> Result<Session, AuthError> {
        let factor_id = parse_factor_id(factor_id)?;
        if code.is_empty() {
            return Err(AuthError::validation("Code needs to be non-empty"));
        }
        let challenge_id = Uuid::parse_str(challenge_id.trim()).map_err(|_| {
            AuthError::new(
                422,
                "mfa_factor_not_found",
                "MFA factor with the provided challenge ID not found",
            )
        })?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = self.load_caller(&tx, caller).await?;
        let factor = tx
            .query_opt(
                "SELECT factor_type, secret, last_step, status, \
                 CASE WHEN failed_attempts >= $3 THEN ceil(extract(epoch from \
                   last_failed_at + make_interval(secs => $4 * power(2, least(failed_attempts - $3, 10))) - now()))::bigint END \
                 FROM auth.mfa_factors WHERE id = $1 AND user_id = $2 FOR UPDATE",
                &[&factor_id, &user.id, &FREE_FAILURES, &f64::from(BACKOFF_BASE_SECS)],
            )
            .await?;
        let session = self.caller_session(&tx, caller, &user).await?;
        let factor = factor.ok_or_else(factor_not_found)?;
        if let Some(wait) = factor
            .try_get::<_, Option<i64>>(4)?
            .filter(|&wait| wait > 0)
        {
            tracing::warn!(event = "auth.mfa_backoff", user_id = %user.id, factor_id = %factor_id, wait_secs = wait, "a factor with many wrong codes in a row: this try waits");
            return Err(AuthError::new(
                429,
                "over_request_rate_limit",
                format!("Too many wrong codes for this factor. Try again in {wait} seconds"),
            ));
        }
        let factor_type: String = factor.try_get(0)?;
        if factor_type != "totp" {
            return Err(AuthError::new(
                422,
                "mfa_webauthn_verify_not_enabled",
                "MFA verification is disabled for WebAuthn",
            ));
        }
        let challenge = tx
            .query_opt(
                "SELECT verified_at IS NOT NULL, ip_address, \
                 created_at + make_interval(secs => $3) < now(), failed_attempts \
                 FROM auth.mfa_challenges WHERE id = $1 AND factor_id = $2 FOR UPDATE",
                &[&challenge_id, &factor_id, &(CHALLENGE_TTL_SECS as f64)],
            )
            .await?
            .ok_or_else(|| {
                AuthError::new(
                    422,
                    "mfa_factor_not_found",
                    "MFA factor with the provided challenge ID not found",
                )
            })?;
        let used: bool = challenge.try_get(0)?;
        let issued_to: String = challenge.try_get(1)?;
        if used || issued_to != ip {
            return Err(AuthError::new(
                422,
                "mfa_ip_address_mismatch",
                "Challenge and verify IP addresses mismatch.",
            ));
        }
        if challenge.try_get::<_, bool>(2)? {
            tx.execute(
                "DELETE FROM auth.mfa_challenges WHERE id = $1",
                &[&challenge_id],
            )
            .await?;
            tx.commit().await?;
            return Err(AuthError::new(
                422,
                "mfa_challenge_expired",
                format!(
                    "MFA challenge {challenge_id} has expired, verify against another challenge or create a new challenge."
                ),
            ));
        }
        let sealed: Vec<u8> = factor.try_get(1)?;
        let last_step: i64 = factor.try_get(2)?;
        let secret = self
            .seal
            .open(&sealed, factor_id.as_bytes())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                tracing::error!(event = "auth.mfa_secret_unreadable", factor_id = %factor_id, "a TOTP secret does not open with this project's key (was the project secret replaced?)");
                AuthError::unexpected()
            })?;
        let step = totp::totp_for(&secret, None).and_then(|totp| {
            totp::accepted_step(&totp, code, last_step, chrono::Utc::now().timestamp())
        });
        let Some(step) = step else {
            let attempts: i32 = challenge.try_get(3)?;
            if attempts + 1 >= MAX_CHALLENGE_ATTEMPTS {
                tx.execute(
                    "DELETE FROM auth.mfa_challenges WHERE id = $1",
                    &[&challenge_id],
                )
                .await?;
            } else {
                tx.execute(
                    "UPDATE auth.mfa_challenges SET failed_attempts = failed_attempts + 1 WHERE id = $1",
                    &[&challenge_id],
                )
                .await?;
            }
            tx.execute(
                "UPDATE auth.mfa_factors SET failed_attempts = failed_attempts + 1, last_failed_at = now() WHERE id = $1",
                &[&factor_id],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(event = "auth.mfa_verify_failed", user_id = %user.id, factor_id = %factor_id, "a wrong TOTP code");
            return Err(AuthError::new(
                422,
                "mfa_verification_failed",
                "Invalid TOTP code entered",
            ));
        };
        tx.execute(
            "UPDATE auth.mfa_challenges SET verified_at = now() WHERE id = $1",
            &[&challenge_id],
        )
        .await?;
        tx.execute(
            "UPDATE auth.mfa_factors SET last_step = $2, status = 'verified', failed_attempts = 0, \
             last_failed_at = NULL, updated_at = now() WHERE id = $1",
            &[&factor_id, &step],
        )
        .await?;
        tx.execute(
            "DELETE FROM auth.mfa_factors WHERE user_id = $1 AND factor_type = $2 AND status = 'unverified'",
            &[&user.id, &factor_type],
        )
        .await?;
        let session = self
            .raise_session(&tx, &user, session, factor_id, "totp")
            .await?;
        tx.commit().await?;
        tracing::info!(event = "auth.mfa_verified", user_id = %session.user.id, factor_id = %factor_id, "a session reached aal2");
        Ok(session)
    }

    /// Raises the caller's session to `aal2` by `factor_id`, puts `method` first in its
    /// `amr`, moves its refresh token two steps on, and ends the user's other `aal1`
    /// sessions.
    async fn raise_session(
        &self,
        client: &impl GenericClient,
        user: &UserRecord,
        session: CallerSession,
        factor_id: Uuid,
        method: &str,
    ) -> Result<Session, AuthError> {
        let counter = session.counter + 2;
        let now = chrono::Utc::now().timestamp();
        let mut amr = vec![json!({"method": method, "timestamp": now})];
        amr.extend(
            session
                .amr
                .as_array()
                .into_iter()
                .flatten()
                .filter(|entry| entry.get("method").and_then(Value::as_str) != Some(method))
                .cloned(),
        );
        let amr = Value::Array(amr);
        client
            .execute(
                "UPDATE auth.sessions SET aal = 'aal2', factor_id = $2, amr = $3, \
                 refresh_counter = $4, refreshed_at = now(), updated_at = now() WHERE id = $1",
                &[&session.id, &factor_id, &amr, &counter],
            )
            .await?;
        client
            .execute(
                "DELETE FROM auth.sessions WHERE user_id = $1 AND aal < 'aal2'",
                &[&user.id],
            )
            .await?;
        let row = client
            .query_one(
                &format!("SELECT {USER_COLUMNS} FROM auth.users u WHERE u.id = $1"),
                &[&user.id],
            )
            .await?;
        let user = UserRecord::from_row(&row, 0)?;
        Ok(self.session_for(user, session.id, counter, "aal2", amr))
    }

    /// `DELETE /factors/{id}`: `{id}`. A verified factor needs an `aal2` session.
    pub async fn unenroll_factor(
        &self,
        caller: &Caller,
        factor_id: &str,
    ) -> Result<Value, AuthError> {
        let factor_id = parse_factor_id(factor_id)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (user, session) = self.mfa_caller(&tx, caller).await?;
        let status: String = tx
            .query_opt(
                "SELECT status FROM auth.mfa_factors WHERE id = $1 AND user_id = $2 FOR UPDATE",
                &[&factor_id, &user.id],
            )
            .await?
            .ok_or_else(factor_not_found)?
            .try_get(0)?;
        if status == "verified" && session.aal != "aal2" {
            return Err(AuthError::new(
                422,
                "insufficient_aal",
                "AAL2 required to unenroll verified factor",
            ));
        }
        remove_factor(&tx, factor_id).await?;
        tx.commit().await?;
        tracing::info!(event = "auth.mfa_unenrolled", user_id = %user.id, factor_id = %factor_id, "a factor was removed by its user");
        Ok(json!({"id": factor_id}))
    }

    /// `GET /admin/users/{id}/factors`.
    pub async fn admin_factors(&self, user_id: Uuid) -> Result<Value, AuthError> {
        let client = self.pool.get().await?;
        self.get_user(user_id).await?;
        let rows = client
            .query(
                &format!("SELECT {FACTOR_COLUMNS} FROM auth.mfa_factors f WHERE f.user_id = $1 ORDER BY f.created_at, f.id"),
                &[&user_id],
            )
            .await?;
        Ok(Value::Array(
            rows.iter()
                .map(|row| factor_json(row, 0))
                .collect::<Result<_, _>>()?,
        ))
    }

    /// `DELETE /admin/users/{id}/factors/{factor}`: the factor as it was.
    pub async fn admin_delete_factor(
        &self,
        user_id: Uuid,
        factor_id: &str,
    ) -> Result<Value, AuthError> {
        let factor_id = parse_factor_id(factor_id)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!("SELECT {FACTOR_COLUMNS} FROM auth.mfa_factors f WHERE f.id = $1 AND f.user_id = $2 FOR UPDATE"),
                &[&factor_id, &user_id],
            )
            .await?
            .ok_or_else(factor_not_found)?;
        let factor = factor_json(&row, 0)?;
        remove_factor(&tx, factor_id).await?;
        tx.commit().await?;
        tracing::info!(event = "auth.mfa_unenrolled", user_id = %user_id, factor_id = %factor_id, "an admin removed a user's factor");
        Ok(factor)
    }

    /// `PUT /admin/users/{id}/factors/{factor}`: renames it.
    pub async fn admin_update_factor(
        &self,
        user_id: Uuid,
        factor_id: &str,
        friendly_name: Option<String>,
    ) -> Result<Value, AuthError> {
        let factor_id = parse_factor_id(factor_id)?;
        let client = self.pool.get().await?;
        let name = friendly_name.filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 256) {
            return Err(AuthError::validation(
                "friendly_name must be at most 256 characters",
            ));
        }
        let row = client
            .query_opt(
                &format!(
                    "UPDATE auth.mfa_factors f SET friendly_name = coalesce($3, f.friendly_name), \
                     updated_at = CASE WHEN $3::text IS NULL THEN f.updated_at ELSE now() END \
                     WHERE f.id = $1 AND f.user_id = $2 RETURNING {FACTOR_COLUMNS}"
                ),
                &[&factor_id, &user_id, &name],
            )
            .await
            .map_err(|err| {
                if galley_db::classify(&err) == galley_db::SqlState::UniqueViolation {
                    name_conflict(name.as_deref().unwrap_or_default())
                } else {
                    err.into()
                }
            })?
            .ok_or_else(factor_not_found)?;
        factor_json(&row, 0)
    }
}

/// Deletes a factor, first bringing the sessions it raised back to `aal1` without its
/// method in `amr`.
async fn remove_factor(client: &impl GenericClient, factor_id: Uuid) -> Result<(), AuthError> {
    client
        .execute(
            "UPDATE auth.sessions s SET aal = 'aal1', factor_id = NULL, updated_at = now(), \
             amr = coalesce((SELECT jsonb_agg(e ORDER BY n) FROM jsonb_array_elements(s.amr) WITH ORDINALITY AS a(e, n) \
                             WHERE e->>'method' NOT IN ('totp', 'mfa/webauthn')), '[]'::jsonb) \
             WHERE s.factor_id = $1",
            &[&factor_id],
        )
        .await?;
    client
        .execute("DELETE FROM auth.mfa_factors WHERE id = $1", &[&factor_id])
        .await?;
    Ok(())
}

fn parse_factor_id(text: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(text.trim())
        .map_err(|_| AuthError::new(404, "validation_failed", "factor_id must be an UUID"))
}

/// The host of a URL, as the default TOTP issuer (GoTrue uses the site URL's).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_issuer_is_the_site_urls_host() {
        assert_eq!(
            host_of("https://app.example.com/path?q=1"),
            "app.example.com"
        );
        assert_eq!(host_of("http://localhost:3000"), "localhost:3000");
        assert_eq!(host_of("https://user:pw@example.com"), "example.com");
    }
}
