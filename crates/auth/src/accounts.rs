//! The account operations behind `/auth/v1`: signup, sign-in, refresh, sign-out, the
//! user's own record, password recovery, email confirmation and the admin's user
//! management. State lives in `auth.users`, `auth.sessions`, `auth.one_time_tokens` and
//! `galley.outbox`, reached through the owner pool; every multi-step change is one
//! transaction.

use chrono::{DateTime, Duration, Utc};
use galley_db::GenericClient;
use galley_db::Pool;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::AuthError;
use crate::mail::{self, MailKind, Templates};
use crate::password::{PasswordHasherPool, PasswordPolicy};
use crate::seal::SealKey;
use crate::tokens::{AccessClaims, AccessSigner, RefreshKey, one_time_hash, one_time_token};
use crate::user::{USER_COLUMNS, UserRecord, user_row};

/// What the account operations need to know about this deployment.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `iss` of access tokens.
    pub issuer: String,
    /// The URL clients reach Galley at: emailed links start with it, never with the
    /// request's `Host`.
    pub public_url: String,
    /// Where a confirmed link sends the browser by default.
    pub site_url: String,
    /// Other `redirect_to` targets allowed (prefixes of whole URLs).
    pub redirect_urls: Vec<String>,
    pub access_token_ttl: Duration,
    /// A refresh token's parent stays usable this long after it was rotated.
    pub refresh_reuse_interval: Duration,
    /// Signups must confirm their email before signing in.
    pub confirm_email: bool,
    pub disable_signup: bool,
    /// `/signup` without credentials makes an anonymous user.
    pub anonymous_sign_ins: bool,
    /// A new password needs the code `GET /reauthenticate` mails, unless the session
    /// signed in within the last 24 hours.
    pub secure_password_change: bool,
    /// How long an emailed link works.
    pub link_ttl: Duration,
    /// The OAuth and OpenID Connect providers users may sign in with.
    pub external: std::sync::Arc<crate::Providers>,
    /// Signed-in users may link and unlink identities.
    pub manual_linking: bool,
    /// The WebAuthn relying party, when passkeys are on.
    pub passkeys: Option<std::sync::Arc<crate::PasskeyConfig>>,
}

/// A signed-in session as the API answers it. `Debug` leaves the tokens out.
#[derive(Clone)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub user: UserRecord,
    pub session_id: Uuid,
    /// An OAuth provider's own tokens, when the session comes from signing in there
    /// (`provider_token`, `provider_refresh_token`).
    pub provider_token: Option<String>,
    pub provider_refresh_token: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "user": self.user.to_json(),
        });
        for (key, value) in [
            ("provider_token", &self.provider_token),
            ("provider_refresh_token", &self.provider_refresh_token),
        ] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        body
    }
}

/// What a signup answers: a session when no confirmation is needed, else the user.
#[derive(Debug)]
pub enum Signup {
    Session(Box<Session>),
    User(Value),
}

/// How far a sign-out reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    Global,
    Local,
    Others,
}

/// Which emailed link is being followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyKind {
    Signup,
    Invite,
    MagicLink,
    Recovery,
    EmailChange,
    /// `email`: a confirmation, a magic link or a recovery, whichever the token is.
    Email,
}

impl VerifyKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "signup" => Some(Self::Signup),
            "invite" => Some(Self::Invite),
            "magiclink" => Some(Self::MagicLink),
            "recovery" => Some(Self::Recovery),
            "email_change" => Some(Self::EmailChange),
            "email" => Some(Self::Email),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Invite => "invite",
            Self::MagicLink => "magiclink",
            Self::Recovery => "recovery",
            Self::EmailChange => "email_change",
            Self::Email => "email",
        }
    }

    fn token_kinds(self) -> &'static [&'static str] {
        match self {
            Self::Signup => &["confirmation"],
            Self::Invite => &["invite"],
            // Older magic links were recovery links.
            Self::MagicLink => &["magiclink", "recovery"],
            Self::Recovery => &["recovery"],
            Self::EmailChange => &["email_change"],
            Self::Email => &["confirmation", "magiclink", "recovery", "invite"],
        }
    }
}

/// What a `/verify` presents: the token of a mailed link, or the address and the code
/// the mail carried.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    Link(&'a str),
    Code { email: &'a str, code: &'a str },
}

/// A PKCE code challenge a client sent with a request that mails a link.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub challenge: String,
    /// `s256` or `plain`.
    pub method: &'static str,
}

impl Pkce {
    /// GoTrue's checks: both or neither of the challenge and its method, the method
    /// `s256` or `plain` (any case), the challenge 43 to 128 characters.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Option<Self>, AuthError> {
        let (challenge, method) = match (challenge, method) {
            (None | Some(""), None | Some("")) => return Ok(None),
            (Some(challenge), Some(method)) if !challenge.is_empty() && !method.is_empty() => {
                (challenge, method)
            }
            _ => {
                return Err(AuthError::validation(
                    "PKCE flow requires code_challenge_method and code_challenge",
                ));
            }
        };
        let method = match method.to_ascii_lowercase().as_str() {
            "s256" => "s256",
            "plain" => "plain",
            _ => {
                return Err(AuthError::validation(format!(
                    "code challenge method not supported: {method}"
                )));
            }
        };
        if !(43..=128).contains(&challenge.chars().count()) {
            return Err(AuthError::validation(
                "code challenge has to be between 43 and 128 characters",
            ));
        }
        Ok(Some(Self {
            challenge: challenge.to_owned(),
            method,
        }))
    }

    /// Whether `verifier` answers the challenge, compared in constant time.
    fn answered_by(challenge: &str, method: &str, verifier: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = if method == "s256" {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()))
        } else {
            verifier.to_owned()
        };
        bool::from(expected.as_bytes().ct_eq(challenge.as_bytes()))
    }
}

/// What following a mailed link gives: a session, or for a link started with a PKCE
/// challenge an authorization code to exchange for one.
pub enum Verified {
    Session(Box<Session>),
    AuthCode(String),
}

/// How long a PKCE flow's authorization code may be exchanged, from when it was issued.
const FLOW_STATE_TTL_SECONDS: i64 = 300;

/// A token made for a link: what a mail carries, or what `generate_link` answers.
struct IssuedLink {
    user: UserRecord,
    token: String,
    code: String,
    link: String,
    redirect_to: String,
    verify_type: &'static str,
}

/// `POST /admin/generate_link`'s answer: the user, and the link and code a mail would
/// have carried (none is sent).
pub struct GeneratedLink {
    pub user: UserRecord,
    pub action_link: String,
    pub email_otp: String,
    /// What `/verify` takes as `token_hash`.
    pub hashed_token: String,
    pub redirect_to: String,
    pub verification_type: &'static str,
}

impl GeneratedLink {
    /// The user's fields with the link's beside them, as GoTrue answers.
    pub fn to_json(&self) -> Value {
        let mut out = self.user.to_json();
        if let Value::Object(map) = &mut out {
            map.insert("action_link".into(), json!(self.action_link));
            map.insert("email_otp".into(), json!(self.email_otp));
            map.insert("hashed_token".into(), json!(self.hashed_token));
            map.insert("redirect_to".into(), json!(self.redirect_to));
            map.insert("verification_type".into(), json!(self.verification_type));
        }
        out
    }
}

/// How many wrong codes kill a mailed token.
const MAX_CODE_ATTEMPTS: i32 = 5;

/// The caller of a user endpoint, from a verified access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
}

/// Changes a user asks for on their own record (`PUT /user`).
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub password: Option<String>,
    /// Merged into `user_metadata`; a null value removes the key.
    pub data: Option<Map<String, Value>>,
    /// The code `GET /reauthenticate` mailed, when a password change needs it.
    pub nonce: Option<String>,
}

/// An admin's view of a user to create or change.
#[derive(Debug, Default)]
pub struct AdminUser {
    pub email: Option<String>,
    pub password: Option<String>,
    pub email_confirm: Option<bool>,
    pub user_metadata: Option<Map<String, Value>>,
    pub app_metadata: Option<Map<String, Value>>,
    /// `"none"` lifts a ban; otherwise a duration like `24h`, `30m`, `3600s`.
    pub ban_duration: Option<String>,
    pub role: Option<String>,
}

pub struct Accounts {
    pub(crate) pool: Pool,
    /// Woken when mail is queued, so the outbox worker sends it at once.
    mail_queued: std::sync::Arc<tokio::sync::Notify>,
    hasher: PasswordHasherPool,
    policy: PasswordPolicy,
    refresh: RefreshKey,
    signer: AccessSigner,
    templates: Templates,
    pub(crate) settings: AuthSettings,
    /// Seals MFA secrets at rest.
    pub(crate) seal: SealKey,
}

impl Accounts {
    /// A new password's hash, once the password policy accepts it.
    async fn checked_hash(&self, password: &str) -> Result<String, AuthError> {
        self.policy
            .check(password)
            .map_err(AuthError::weak_password)?;
        Ok(self.hasher.hash(password).await?)
    }

    pub fn new(
        pool: Pool,
        hasher: PasswordHasherPool,
        policy: PasswordPolicy,
        secret: &crate::JwtSecret,
        signer: AccessSigner,
        templates: Templates,
        settings: AuthSettings,
    ) -> Self {
        Self {
            // Both follow the project secret, so every instance agrees.
            refresh: RefreshKey::derive(secret),
            seal: SealKey::derive(secret),
            pool,
            mail_queued: std::sync::Arc::new(tokio::sync::Notify::new()),
            hasher,
            policy,
            signer,
            templates,
            settings,
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// What the outbox worker waits on.
    pub fn mail_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.mail_queued.clone()
    }

    /// `POST /signup`.
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        data: Option<Map<String, Value>>,
        redirect_to: Option<&str>,
        pkce: Option<&Pkce>,
    ) -> Result<Signup, AuthError> {
        if self.settings.disable_signup {
            return Err(AuthError::new(
                422,
                "signup_disabled",
                "Signups not allowed for this instance",
            ));
        }
        let email = normalise_email(email)?;
        if password.is_empty() {
            return Err(AuthError::validation("Signup requires a valid password"));
        }
        // Hashed before anything is looked up: a known email costs what a new one does.
        let hash = self.checked_hash(password).await?;
        let metadata = Value::Object(data.unwrap_or_default());
        let confirmed = !self.settings.confirm_email;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .query_opt(
                &format!(
                    "INSERT INTO auth.users AS u (email, encrypted_password, raw_user_meta_data, raw_app_meta_data, email_confirmed_at) \
                     VALUES ($1, $2, $3, '{{\"provider\": \"email\", \"providers\": [\"email\"]}}', CASE WHEN $4 THEN now() END) \
                     ON CONFLICT (email) WHERE email IS NOT NULL DO NOTHING RETURNING {USER_COLUMNS}"
                ),
                &[&email, &hash, &with_email_verified(metadata, confirmed), &confirmed],
            )
            .await?;
        let user = match inserted {
            Some(row) => UserRecord::from_row(&row, 0)?,
            None => {
                let existing = load_user_by_email(&tx, &email).await?;
                match existing {
                    Some(user)
                        if user.email_confirmed_at.is_some() || !self.settings.confirm_email =>
                    {
                        tx.commit().await?;
                        if !self.settings.confirm_email {
                            return Err(AuthError::new(
                                422,
                                "user_already_exists",
                                "User already registered",
                            ));
                        }
                        // As Supabase Auth does: a look-alike of a new, unconfirmed user,
                        // so the answer does not tell that the address is registered.
                        return Ok(Signup::User(obfuscated_user(&email)));
                    }
                    Some(user) => {
                        // Not confirmed yet: send the confirmation again.
                        let user = self
                            .send_link(
                                &tx,
                                &user,
                                MailKind::Confirmation,
                                &email,
                                redirect_to,
                                pkce,
                            )
                            .await?;
                        tx.commit().await?;
                        self.mail_queued.notify_one();
                        return Ok(Signup::User(user.to_json()));
                    }
                    None => return Err(AuthError::unexpected()),
                }
            }
        };
        if confirmed {
            let session = self.start_session(&tx, user, "password", None).await?;
            tx.commit().await?;
            Ok(Signup::Session(Box::new(session)))
        } else {
            let user = self
                .send_link(
                    &tx,
                    &user,
                    MailKind::Confirmation,
                    &email,
                    redirect_to,
                    pkce,
                )
                .await?;
            tx.commit().await?;
            self.mail_queued.notify_one();
            Ok(Signup::User(user.to_json()))
        }
    }

    /// `POST /signup` with neither email nor phone: an anonymous user (`is_anonymous`,
    /// no identity, no password) and a session, when `auth.anonymous_sign_ins` is on.
    pub async fn signup_anonymous(
        &self,
        data: Option<Map<String, Value>>,
        user_agent: Option<&str>,
    ) -> Result<Session, AuthError> {
        if !self.settings.anonymous_sign_ins {
            return Err(AuthError::new(
                422,
                "anonymous_provider_disabled",
                "Anonymous sign-ins are disabled",
            ));
        }
        if self.settings.disable_signup {
            return Err(AuthError::new(
                422,
                "signup_disabled",
                "Signups not allowed for this instance",
            ));
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO auth.users AS u (raw_user_meta_data, raw_app_meta_data, is_anonymous) \
                     VALUES ($1, '{{}}', true) RETURNING {USER_COLUMNS}"
                ),
                &[&Value::Object(data.unwrap_or_default())],
            )
            .await?;
        let user = UserRecord::from_row(&row, 0)?;
        let session = self
            .start_session(&tx, user, "anonymous", user_agent)
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    /// `POST /token?grant_type=password`.
    pub async fn password_grant(
        &self,
        email: &str,
        password: &str,
        user_agent: Option<&str>,
    ) -> Result<Session, AuthError> {
        let email = email.trim().to_lowercase();
        let client = self.pool.get().await?;
        let user = load_user_by_email(&client, &email)
            .await?
            .filter(|user| user.deleted_at.is_none());
        // Verified (against a dummy hash when there is no account) before anything else
        // is decided, so every answer takes the time of one hash.
        let matched = self
            .hasher
            .verify(
                password,
                user.as_ref().and_then(|u| u.encrypted_password.as_deref()),
            )
            .await;
        let user = match user {
            Some(user) if matched => user,
            _ => return Err(AuthError::invalid_credentials()),
        };
        if user.is_banned(Utc::now()) {
            return Err(AuthError::new(400, "user_banned", "User is banned"));
        }
        if self.settings.confirm_email && user.email_confirmed_at.is_none() {
            return Err(AuthError::new(
                400,
                "email_not_confirmed",
                "Email not confirmed",
            ));
        }
        drop(client);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let session = self
            .start_session(&tx, user, "password", user_agent)
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    /// `POST /token?grant_type=refresh_token`: rotates the session's refresh token. The
    /// session row is locked, so concurrent refreshes of one token queue: the first
    /// rotates, the others (within the reuse interval) get the token it made. A token
    /// older than its successor's parent, or presented after the interval, is reuse: the
    /// session ends.
    pub async fn refresh_grant(&self, token: &str) -> Result<Session, AuthError> {
        let not_found = || {
            AuthError::new(
                400,
                "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found",
            )
        };
        let (session_id, counter) = self.refresh.open(token).ok_or_else(not_found)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT s.refresh_counter, s.refreshed_at, s.aal, s.amr, now(), {USER_COLUMNS} \
                     FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id WHERE s.id = $1 FOR UPDATE OF s"
                ),
                &[&session_id],
            )
            .await?
            .ok_or_else(not_found)?;
        let current: i64 = row.try_get(0)?;
        let refreshed_at: Option<DateTime<Utc>> = row.try_get(1)?;
        let aal: String = row.try_get(2)?;
        let amr: Value = row.try_get(3)?;
        let now: DateTime<Utc> = row.try_get(4)?;
        let user = UserRecord::from_row(&row, 5)?;
        if user.deleted_at.is_some() {
            return Err(not_found());
        }
        if user.is_banned(now) {
            return Err(AuthError::new(400, "user_banned", "User is banned"));
        }
        let next = if counter == current {
            tx.execute(
                "UPDATE auth.sessions SET refresh_counter = refresh_counter + 1, refreshed_at = now(), updated_at = now() WHERE id = $1",
                &[&session_id],
            )
            .await?;
            current + 1
        } else if counter + 1 == current
            && refreshed_at.is_some_and(|at| now - at <= self.settings.refresh_reuse_interval)
        {
            // The client lost the answer to its refresh, or refreshed twice at once.
            current
        } else if counter < current {
            tx.execute("DELETE FROM auth.sessions WHERE id = $1", &[&session_id])
                .await?;
            tx.commit().await?;
            tracing::warn!(
                event = "auth.refresh_token_reused",
                user_id = %user.id,
                session_id = %session_id,
                "a rotated refresh token was used again; the session is revoked"
            );
            return Err(AuthError::new(
                400,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
            ));
        } else {
            return Err(AuthError::validation(
                "Invalid Refresh Token: Not Issued By This Server",
            ));
        };
        tx.commit().await?;
        Ok(self.session_for(user, session_id, next, &aal, amr))
    }

    /// `POST /logout`.
    pub async fn logout(&self, caller: &Caller, scope: LogoutScope) -> Result<(), AuthError> {
        let client = self.pool.get().await?;
        match (scope, caller.session_id) {
            (LogoutScope::Local, Some(session)) => {
                client
                    .execute("DELETE FROM auth.sessions WHERE id = $1", &[&session])
                    .await?;
            }
            (LogoutScope::Others, Some(session)) => {
                client
                    .execute(
                        "DELETE FROM auth.sessions WHERE user_id = $1 AND id <> $2",
                        &[&caller.user_id, &session],
                    )
                    .await?;
            }
            (LogoutScope::Others, None) => {}
            (LogoutScope::Global | LogoutScope::Local, _) => {
                client
                    .execute(
                        "DELETE FROM auth.sessions WHERE user_id = $1",
                        &[&caller.user_id],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The caller's own record (`GET /user`); the session the token names must still
    /// exist, so a signed-out or revoked session's tokens stop working here at once.
    pub async fn current_user(&self, caller: &Caller) -> Result<UserRecord, AuthError> {
        let client = self.pool.get().await?;
        self.load_caller(&client, caller).await
    }

    pub(crate) async fn load_caller(
        &self,
        client: &impl GenericClient,
        caller: &Caller,
    ) -> Result<UserRecord, AuthError> {
        let user = load_user(client, caller.user_id)
            .await?
            .filter(|user| user.deleted_at.is_none())
            .ok_or_else(|| {
                AuthError::new(
                    403,
                    "user_not_found",
                    "User from sub claim in JWT does not exist",
                )
            })?;
        if let Some(session) = caller.session_id {
            let exists = client
                .query_opt(
                    "SELECT 1 FROM auth.sessions WHERE id = $1 AND user_id = $2",
                    &[&session, &caller.user_id],
                )
                .await?
                .is_some();
            if !exists {
                return Err(AuthError::new(
                    403,
                    "session_not_found",
                    "Session from session_id claim in JWT does not exist",
                ));
            }
        }
        if user.is_banned(Utc::now()) {
            return Err(AuthError::new(403, "user_banned", "User is banned"));
        }
        Ok(user)
    }

    /// `PUT /user`: metadata merged, a new password (which ends every other session), or
    /// a new email (applied once the new address confirms it, when mail is confirmed).
    pub async fn update_user(
        &self,
        caller: &Caller,
        update: UserUpdate,
        redirect_to: Option<&str>,
    ) -> Result<UserRecord, AuthError> {
        let new_hash = match &update.password {
            Some(password) => Some(self.checked_hash(password).await?),
            None => None,
        };
        let new_email = update.email.as_deref().map(normalise_email).transpose()?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut user = self.load_caller(&tx, caller).await?;
        if user.is_anonymous
            && update.password.as_deref().is_some_and(|p| !p.is_empty())
            && new_email.is_none()
        {
            return Err(AuthError::new(
                422,
                "validation_failed",
                "Updating password of an anonymous user without an email or phone is not allowed",
            ));
        }
        let changes_credentials = update.password.as_deref().is_some_and(|p| !p.is_empty())
            || new_email
                .as_ref()
                .is_some_and(|e| user.email.as_ref() != Some(e));
        if changes_credentials
            && user.has_verified_factor()
            && !session_is_aal2(&tx, caller).await?
        {
            return Err(AuthError::new(
                401,
                "insufficient_aal",
                "AAL2 session is required to update email or password when MFA is enabled.",
            ));
        }
        if update.password.is_some() && self.settings.secure_password_change {
            let recent = match caller.session_id {
                Some(session) => tx
                    .query_opt(
                        "SELECT 1 FROM auth.sessions WHERE id = $1 AND created_at > now() - interval '24 hours'",
                        &[&session],
                    )
                    .await?
                    .is_some(),
                None => false,
            };
            if !recent {
                let Some(nonce) = update.nonce.as_deref().filter(|n| !n.is_empty()) else {
                    return Err(AuthError::new(
                        400,
                        "reauthentication_needed",
                        "Password update requires reauthentication",
                    ));
                };
                let email = user.email.clone().unwrap_or_default();
                if take_code(&tx, &email, &["reauthentication"], nonce)
                    .await?
                    .is_none()
                {
                    tx.commit().await?;
                    return Err(AuthError::new(
                        422,
                        "reauthentication_not_valid",
                        "Nonce has expired or is invalid",
                    ));
                }
            }
        }
        if let (Some(password), Some(old)) = (&update.password, &user.encrypted_password)
            && self.hasher.verify(password, Some(old)).await
        {
            return Err(AuthError::new(
                422,
                "same_password",
                "New password should be different from the old password.",
            ));
        }
        if let Some(data) = update.data {
            let row = tx
                .query_one(
                    &format!(
                        "UPDATE auth.users AS u SET raw_user_meta_data = jsonb_strip_nulls(raw_user_meta_data || $2), updated_at = now() \
                         WHERE id = $1 RETURNING {USER_COLUMNS}"
                    ),
                    &[&user.id, &Value::Object(data)],
                )
                .await?;
            user = UserRecord::from_row(&row, 0)?;
        }
        if let Some(hash) = new_hash {
            let row = tx
                .query_one(
                    &format!(
                        "UPDATE auth.users AS u SET encrypted_password = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
                    ),
                    &[&user.id, &hash],
                )
                .await?;
            user = UserRecord::from_row(&row, 0)?;
            // A new password ends every other session (ASVS 3.3.3).
            tx.execute(
                "DELETE FROM auth.sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2",
                &[&user.id, &caller.session_id],
            )
            .await?;
        }
        if let Some(email) = new_email
            && Some(&email) != user.email.as_ref()
        {
            let taken = tx
                .query_opt("SELECT 1 FROM auth.users WHERE email = $1", &[&email])
                .await?
                .is_some();
            if taken {
                return Err(AuthError::new(
                    422,
                    "email_exists",
                    "A user with this email address has already been registered",
                ));
            }
            if self.settings.confirm_email {
                let row = tx
                    .query_one(
                        &format!(
                            "UPDATE auth.users AS u SET email_change = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
                        ),
                        &[&user.id, &email],
                    )
                    .await?;
                user = UserRecord::from_row(&row, 0)?;
                user = self
                    .send_link(&tx, &user, MailKind::EmailChange, &email, redirect_to, None)
                    .await?;
            } else {
                let row = tx
                    .query_one(
                        &format!(
                            "UPDATE auth.users AS u SET email = $2, email_change = NULL, {PERMANENT}, updated_at = now() \
                             WHERE id = $1 RETURNING {USER_COLUMNS}"
                        ),
                        &[&user.id, &email],
                    )
                    .await
                    .map_err(unique_email)?;
                user = UserRecord::from_row(&row, 0)?;
            }
        }
        tx.commit().await?;
        self.mail_queued.notify_one();
        Ok(user)
    }

    /// `GET /reauthenticate`: mails the caller a code that a password change then needs
    /// (`auth.secure_password_change`).
    pub async fn reauthenticate(&self, caller: &Caller) -> Result<(), AuthError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = self.load_caller(&tx, caller).await?;
        let Some(email) = user.email.clone() else {
            return Err(AuthError::new(
                422,
                "reauthentication_not_valid",
                "Reauthentication requires an email or a phone number",
            ));
        };
        self.send_link(&tx, &user, MailKind::Reauthentication, &email, None, None)
            .await?;
        tx.commit().await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// The account for `email` to invite or make a link for: the existing one unless it
    /// has confirmed (422 `email_exists`), or a new one without a password.
    async fn unconfirmed_user(
        &self,
        client: &impl GenericClient,
        email: &str,
        password_hash: Option<&str>,
        data: Option<Map<String, Value>>,
    ) -> Result<UserRecord, AuthError> {
        if let Some(user) = load_user_by_email(client, email).await? {
            if user.email_confirmed_at.is_some() {
                return Err(AuthError::new(
                    422,
                    "email_exists",
                    "A user with this email address has already been registered",
                ));
            }
            return Ok(user);
        }
        let metadata = with_email_verified(Value::Object(data.unwrap_or_default()), false);
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO auth.users AS u (email, encrypted_password, raw_user_meta_data, raw_app_meta_data) \
                     VALUES ($1, $2, $3, '{{\"provider\": \"email\", \"providers\": [\"email\"]}}') \
                     RETURNING {USER_COLUMNS}"
                ),
                &[&email, &password_hash, &metadata],
            )
            .await
            .map_err(unique_email)?;
        Ok(UserRecord::from_row(&row, 0)?)
    }

    /// `POST /invite` (admins): an account for `email` without a password, and an
    /// invitation whose link (or code) signs the invitee in to choose one.
    pub async fn invite(
        &self,
        email: &str,
        data: Option<Map<String, Value>>,
        redirect_to: Option<&str>,
    ) -> Result<UserRecord, AuthError> {
        let email = normalise_email(email)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = self.unconfirmed_user(&tx, &email, None, data).await?;
        let user = self
            .send_link(&tx, &user, MailKind::Invite, &email, redirect_to, None)
            .await?;
        tx.commit().await?;
        self.mail_queued.notify_one();
        Ok(user)
    }

    /// `POST /admin/generate_link`: the link and code a mail of `kind` would carry,
    /// without sending it. `signup` and `invite` make the account when there is none;
    /// `magiclink` too; `recovery` and the email changes need one.
    pub async fn generate_link(
        &self,
        kind: &str,
        email: &str,
        password: Option<&str>,
        new_email: Option<&str>,
        data: Option<Map<String, Value>>,
        redirect_to: Option<&str>,
    ) -> Result<GeneratedLink, AuthError> {
        let email = normalise_email(email)?;
        let hash = match (kind, password) {
            ("signup", Some(password)) if !password.is_empty() => {
                Some(self.checked_hash(password).await?)
            }
            ("signup", _) => {
                return Err(AuthError::validation("Signup requires a valid password"));
            }
            _ => None,
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let existing = || async {
            load_user_by_email(&tx, &email)
                .await?
                .filter(|user| user.deleted_at.is_none())
                .ok_or_else(|| {
                    AuthError::new(404, "user_not_found", "User with this email not found")
                })
        };
        let (user, mail, address) = match kind {
            "signup" => (
                self.unconfirmed_user(&tx, &email, hash.as_deref(), data)
                    .await?,
                MailKind::Confirmation,
                email.clone(),
            ),
            "invite" => (
                self.unconfirmed_user(&tx, &email, None, data).await?,
                MailKind::Invite,
                email.clone(),
            ),
            "magiclink" => {
                let user = match load_user_by_email(&tx, &email).await? {
                    Some(user) => user,
                    None => self.unconfirmed_user(&tx, &email, None, data).await?,
                };
                (user, MailKind::MagicLink, email.clone())
            }
            "recovery" => (existing().await?, MailKind::Recovery, email.clone()),
            "email_change_current" | "email_change_new" => {
                let user = existing().await?;
                let new_email = normalise_email(new_email.unwrap_or_default())?;
                if load_user_by_email(&tx, &new_email).await?.is_some() {
                    return Err(AuthError::new(
                        422,
                        "email_exists",
                        "A user with this email address has already been registered",
                    ));
                }
                let row = tx
                    .query_one(
                        &format!(
                            "UPDATE auth.users AS u SET email_change = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
                        ),
                        &[&user.id, &new_email],
                    )
                    .await?;
                (
                    UserRecord::from_row(&row, 0)?,
                    MailKind::EmailChange,
                    new_email,
                )
            }
            _ => {
                return Err(AuthError::validation(format!("Invalid link type: {kind}")));
            }
        };
        let issued = self
            .issue_link(&tx, &user, mail, &address, redirect_to, None)
            .await?;
        tx.commit().await?;
        Ok(GeneratedLink {
            user: issued.user,
            action_link: issued.link,
            email_otp: issued.code,
            hashed_token: issued.token,
            redirect_to: issued.redirect_to,
            verification_type: issued.verify_type,
        })
    }

    /// `POST /recover`: mails a single-use link when the address belongs to an account,
    /// and answers the same either way.
    pub async fn recover(
        &self,
        email: &str,
        redirect_to: Option<&str>,
        pkce: Option<&Pkce>,
    ) -> Result<(), AuthError> {
        if email.trim().is_empty() {
            return Err(AuthError::validation("Password recovery requires an email"));
        }
        let email = normalise_email(email)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(user) = load_user_by_email(&tx, &email)
            .await?
            .filter(|user| user.deleted_at.is_none())
        {
            self.send_link(&tx, &user, MailKind::Recovery, &email, redirect_to, pkce)
                .await?;
        }
        tx.commit().await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// `POST /recover` without the caller waiting for it: the address is checked here,
    /// the lookup, the link and the mail happen on a task of their own, so the answer
    /// takes the same time whether the address is registered or not. A failure is
    /// logged; the caller, who may not learn whether the address exists, hears nothing of it.
    pub fn recover_in_background(
        self: &std::sync::Arc<Self>,
        email: &str,
        redirect_to: Option<&str>,
        pkce: Option<Pkce>,
    ) -> Result<(), AuthError> {
        if email.trim().is_empty() {
            return Err(AuthError::validation("Password recovery requires an email"));
        }
        let email = normalise_email(email)?;
        let accounts = std::sync::Arc::clone(self);
        let redirect_to = redirect_to.map(str::to_owned);
        tokio::spawn(async move {
            if let Err(err) = accounts
                .recover(&email, redirect_to.as_deref(), pkce.as_ref())
                .await
            {
                tracing::error!(event = "auth.recover_failed", error = %err, "a password recovery could not be queued");
            }
        });
        Ok(())
    }

    /// `POST /otp`: mails a sign-in link and code. An account that has not confirmed its
    /// address gets the confirmation instead; an unknown address gets an account (without
    /// a password, unconfirmed until the link or code is used) when `create_user`, and
    /// 422 `otp_disabled` otherwise, as Supabase Auth answers.
    pub async fn otp(
        &self,
        email: &str,
        create_user: bool,
        data: Option<Map<String, Value>>,
        redirect_to: Option<&str>,
        pkce: Option<&Pkce>,
    ) -> Result<(), AuthError> {
        let email = normalise_email(email)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let existing = load_user_by_email(&tx, &email)
            .await?
            .filter(|user| user.deleted_at.is_none());
        match existing {
            Some(user) if user.email_confirmed_at.is_some() => {
                self.send_link(&tx, &user, MailKind::MagicLink, &email, redirect_to, pkce)
                    .await?;
            }
            Some(user) => {
                self.send_link(
                    &tx,
                    &user,
                    MailKind::Confirmation,
                    &email,
                    redirect_to,
                    pkce,
                )
                .await?;
            }
            None if !create_user => {
                return Err(AuthError::new(
                    422,
                    "otp_disabled",
                    "Signups not allowed for otp",
                ));
            }
            None if self.settings.disable_signup => {
                return Err(AuthError::new(
                    422,
                    "signup_disabled",
                    "Signups not allowed for this instance",
                ));
            }
            None => {
                let metadata = with_email_verified(Value::Object(data.unwrap_or_default()), false);
                let row = user_row(
                    &tx,
                    &format!(
                        "INSERT INTO auth.users AS u (email, raw_user_meta_data, raw_app_meta_data) \
                         VALUES ($1, $2, '{{\"provider\": \"email\", \"providers\": [\"email\"]}}') \
                         ON CONFLICT (email) WHERE email IS NOT NULL DO NOTHING RETURNING {USER_COLUMNS}"
                    ),
                    &[&email, &metadata],
                )
                .await?;
                // A concurrent request made it first; its mail is on the way.
                if let Some(row) = row {
                    let user = UserRecord::from_row(&row, 0)?;
                    self.send_link(
                        &tx,
                        &user,
                        MailKind::Confirmation,
                        &email,
                        redirect_to,
                        pkce,
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// `POST /resend`: the confirmation again, for an account that has not confirmed.
    pub async fn resend(
        &self,
        kind: &str,
        email: &str,
        redirect_to: Option<&str>,
        pkce: Option<&Pkce>,
    ) -> Result<(), AuthError> {
        let email = normalise_email(email)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = load_user_by_email(&tx, &email).await?;
        match (kind, user) {
            ("signup", Some(user)) if user.email_confirmed_at.is_none() => {
                self.send_link(
                    &tx,
                    &user,
                    MailKind::Confirmation,
                    &email,
                    redirect_to,
                    pkce,
                )
                .await?;
            }
            ("email_change", _) => {
                let pending = tx
                    .query_opt(
                        &format!(
                            "SELECT {USER_COLUMNS} FROM auth.users u WHERE u.email_change = $1"
                        ),
                        &[&email],
                    )
                    .await?;
                if let Some(row) = pending {
                    let user = UserRecord::from_row(&row, 0)?;
                    self.send_link(&tx, &user, MailKind::EmailChange, &email, redirect_to, pkce)
                        .await?;
                }
            }
            ("signup", _) => {}
            _ => {
                return Err(AuthError::validation(
                    "Missing one of these types: signup, email_change",
                ));
            }
        }
        tx.commit().await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// Follows an emailed link, or takes the code a mail carried: the token is consumed
    /// atomically (once, unexpired), its effect applied, and a session started. A wrong
    /// code counts against every live token of that kind sent to the address; the fifth
    /// kills them.
    ///
    /// A link started with a PKCE challenge, followed in a browser (`pkce_redirect`),
    /// gives an authorization code instead of a session.
    pub async fn verify(
        &self,
        kind: VerifyKind,
        proof: Proof<'_>,
        pkce_redirect: bool,
    ) -> Result<Verified, AuthError> {
        let kinds: Vec<&str> = kind.token_kinds().to_vec();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (row, invalid) = match proof {
            Proof::Link(token) => {
                let invalid =
                    || AuthError::new(403, "otp_expired", "Email link is invalid or has expired");
                if token.trim().is_empty() {
                    return Err(invalid());
                }
                let row = tx
                    .query_opt(
                        "UPDATE auth.one_time_tokens SET used_at = now() \
                         WHERE token_hash = $1 AND kind = ANY($2) AND used_at IS NULL AND expires_at > now() \
                         AND failed_attempts < $3 \
                         RETURNING user_id, kind, relates_to, flow_state_id",
                        &[&one_time_hash(token), &kinds, &MAX_CODE_ATTEMPTS],
                    )
                    .await?;
                (row, invalid as fn() -> AuthError)
            }
            Proof::Code { email, code } => {
                let invalid =
                    || AuthError::new(403, "otp_expired", "Token has expired or is invalid");
                let email = normalise_email(email)?;
                let Some(row) = take_code(&tx, &email, &kinds, code).await? else {
                    // The miss is counted even though the request fails.
                    tx.commit().await?;
                    return Err(invalid());
                };
                (Some(row), invalid as fn() -> AuthError)
            }
        };
        let row = row.ok_or_else(invalid)?;
        let user_id: Uuid = row.try_get(0)?;
        let token_kind: String = row.try_get(1)?;
        let relates_to: String = row.try_get(2)?;
        let flow_state: Option<Uuid> = row.try_get(3)?;
        let sql = match token_kind.as_str() {
            "email_change" => format!(
                "UPDATE auth.users AS u SET email = email_change, email_change = NULL, email_change_sent_at = NULL, \
                 email_confirmed_at = coalesce(email_confirmed_at, now()), {PERMANENT}, updated_at = now() \
                 WHERE id = $1 AND email_change = $2 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
            ),
            // Following a link sent to the address proves it, for recovery too.
            _ => format!(
                "UPDATE auth.users AS u SET email_confirmed_at = coalesce(email_confirmed_at, now()), \
                 raw_user_meta_data = raw_user_meta_data || '{{\"email_verified\": true}}', updated_at = now() \
                 WHERE id = $1 AND email = $2 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
            ),
        };
        let row = tx
            .query_opt(&sql, &[&user_id, &relates_to])
            .await
            .map_err(unique_email)?
            .ok_or_else(invalid)?;
        let user = UserRecord::from_row(&row, 0)?;
        if user.is_banned(Utc::now()) {
            return Err(AuthError::new(403, "user_banned", "User is banned"));
        }
        // Older links of the same kind die with this one.
        tx.execute(
            "UPDATE auth.one_time_tokens SET used_at = now() WHERE user_id = $1 AND kind = $2 AND used_at IS NULL",
            &[&user_id, &token_kind],
        )
        .await?;
        if let Some(flow_state) = flow_state {
            if pkce_redirect {
                let code = one_time_token();
                tx.execute(
                    "UPDATE auth.flow_states SET auth_code_hash = $2, auth_code_issued_at = now() WHERE id = $1",
                    &[&flow_state, &one_time_hash(&code)],
                )
                .await?;
                tx.commit().await?;
                return Ok(Verified::AuthCode(code));
            }
            tx.execute("DELETE FROM auth.flow_states WHERE id = $1", &[&flow_state])
                .await?;
        }
        let session = self
            .start_session(&tx, user, amr_method(&token_kind), None)
            .await?;
        tx.commit().await?;
        Ok(Verified::Session(Box::new(session)))
    }

    /// `POST /token?grant_type=pkce`: exchanges the authorization code a PKCE link gave
    /// for a session, once, within five minutes, for the verifier of its challenge.
    pub async fn exchange_pkce(
        &self,
        auth_code: &str,
        verifier: &str,
        user_agent: Option<&str>,
    ) -> Result<Session, AuthError> {
        if auth_code.is_empty() || verifier.is_empty() {
            return Err(AuthError::validation(
                "invalid request: both auth code and code verifier should be non-empty",
            ));
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT id, user_id, code_challenge, code_challenge_method, authentication_method, \
                 coalesce(auth_code_issued_at, created_at) < now() - make_interval(secs => $2), \
                 provider_access_token, provider_refresh_token \
                 FROM auth.flow_states WHERE auth_code_hash = $1 FOR UPDATE",
                &[&one_time_hash(auth_code), &(FLOW_STATE_TTL_SECONDS as f64)],
            )
            .await?
            .ok_or_else(|| {
                AuthError::new(
                    404,
                    "flow_state_not_found",
                    "invalid flow state, no valid flow state found",
                )
            })?;
        let id: Uuid = row.try_get(0)?;
        let user_id: Uuid = row.try_get(1)?;
        let challenge: String = row.try_get(2)?;
        let method: String = row.try_get(3)?;
        let authentication_method: String = row.try_get(4)?;
        let expired: bool = row.try_get(5)?;
        if expired {
            return Err(AuthError::new(
                422,
                "flow_state_expired",
                "invalid flow state, flow state has expired",
            ));
        }
        if !Pkce::answered_by(&challenge, &method, verifier) {
            return Err(AuthError::new(
                400,
                "bad_code_verifier",
                "code challenge does not match previously saved code verifier",
            ));
        }
        tx.execute("DELETE FROM auth.flow_states WHERE id = $1", &[&id])
            .await?;
        let user = load_user(&tx, user_id)
            .await?
            .filter(|user| user.deleted_at.is_none())
            .ok_or_else(|| {
                AuthError::new(
                    404,
                    "flow_state_not_found",
                    "invalid flow state, no valid flow state found",
                )
            })?;
        if user.is_banned(Utc::now()) {
            return Err(AuthError::new(400, "user_banned", "User is banned"));
        }
        let mut session = self
            .start_session(&tx, user, &authentication_method, user_agent)
            .await?;
        // An OAuth sign-in's provider tokens, kept sealed to this flow state.
        let unseal = |sealed: Option<Vec<u8>>| {
            sealed
                .and_then(|sealed| self.seal.open(&sealed, id.as_bytes()))
                .and_then(|plain| String::from_utf8(plain).ok())
        };
        session.provider_token = unseal(row.try_get(6)?);
        session.provider_refresh_token = unseal(row.try_get(7)?);
        tx.commit().await?;
        Ok(session)
    }

    /// Whether `target` may follow a link: the site URL or an allowed redirect.
    pub fn allowed_redirect(&self, target: &str) -> bool {
        let allowed = |base: &str| {
            !base.is_empty()
                && (target == base
                    || target.strip_prefix(base).is_some_and(|rest| {
                        base.ends_with('/') || rest.starts_with(['/', '?', '#'])
                    }))
        };
        allowed(&self.settings.site_url) || self.settings.redirect_urls.iter().any(|u| allowed(u))
    }

    // ---- admin ----

    /// `GET /admin/users`: a page of users, newest first, and the total.
    pub async fn list_users(
        &self,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<UserRecord>, i64), AuthError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM auth.users u WHERE u.deleted_at IS NULL \
                     ORDER BY u.created_at DESC, u.id LIMIT $1 OFFSET $2"
                ),
                &[&per_page, &((page - 1).max(0) * per_page)],
            )
            .await?;
        let total: i64 = client
            .query_one(
                "SELECT count(*) FROM auth.users WHERE deleted_at IS NULL",
                &[],
            )
            .await?
            .try_get(0)?;
        let users = rows
            .iter()
            .map(|row| UserRecord::from_row(row, 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((users, total))
    }

    /// Users whose email contains `query` (any case), or whose id it is; newest first,
    /// at most `limit`. An empty query lists the newest.
    pub async fn search_users(
        &self,
        query: &str,
        limit: i64,
    ) -> Result<Vec<UserRecord>, AuthError> {
        let query = query.trim();
        let id = Uuid::parse_str(query).ok();
        // LIKE's own characters in the query are matched literally.
        let pattern = format!(
            "%{}%",
            query
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM auth.users u WHERE u.deleted_at IS NULL \
                     AND (u.id = $1 OR u.email ILIKE $2) \
                     ORDER BY u.created_at DESC, u.id LIMIT $3"
                ),
                &[&id, &pattern, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| UserRecord::from_row(row, 0))
            .collect::<Result<Vec<_>, _>>()?)
    }

    pub async fn get_user(&self, id: Uuid) -> Result<UserRecord, AuthError> {
        let client = self.pool.get().await?;
        load_user(&client, id)
            .await?
            .filter(|user| user.deleted_at.is_none())
            .ok_or_else(AuthError::user_not_found)
    }

    /// `POST /admin/users`.
    pub async fn create_user(&self, spec: AdminUser) -> Result<UserRecord, AuthError> {
        let email = spec
            .email
            .as_deref()
            .map(normalise_email)
            .transpose()?
            .ok_or_else(|| {
                AuthError::validation("Unable to validate email address: invalid format")
            })?;
        let hash = match &spec.password {
            Some(password) => Some(self.checked_hash(password).await?),
            None => None,
        };
        let confirmed = spec.email_confirm.unwrap_or(false);
        let mut app = json!({"provider": "email", "providers": ["email"]});
        if let (Some(extra), Some(app)) = (spec.app_metadata, app.as_object_mut()) {
            app.extend(extra);
        }
        let user_meta = with_email_verified(
            Value::Object(spec.user_metadata.unwrap_or_default()),
            confirmed,
        );
        let banned_until = ban_until(spec.ban_duration.as_deref())?;
        let role = spec.role.unwrap_or_else(|| "authenticated".to_owned());
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "INSERT INTO auth.users AS u (email, encrypted_password, raw_user_meta_data, raw_app_meta_data, email_confirmed_at, banned_until, role) \
                     VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END, $6, $7) \
                     ON CONFLICT (email) WHERE email IS NOT NULL DO NOTHING RETURNING {USER_COLUMNS}"
                ),
                &[&email, &hash, &user_meta, &app, &confirmed, &banned_until.flatten(), &role],
            )
            .await
            .map_err(role_error)?
            .ok_or_else(|| {
                AuthError::new(422, "email_exists", "A user with this email address has already been registered")
            })?;
        Ok(UserRecord::from_row(&row, 0)?)
    }

    /// `PUT /admin/users/{id}`. A ban ends the user's sessions at once.
    pub async fn admin_update_user(
        &self,
        id: Uuid,
        spec: AdminUser,
    ) -> Result<UserRecord, AuthError> {
        let hash = match &spec.password {
            Some(password) => Some(self.checked_hash(password).await?),
            None => None,
        };
        let email = spec.email.as_deref().map(normalise_email).transpose()?;
        let ban = ban_until(spec.ban_duration.as_deref())?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        load_user(&tx, id)
            .await?
            .filter(|user| user.deleted_at.is_none())
            .ok_or_else(AuthError::user_not_found)?;
        let row = tx
            .query_one(
                &format!(
                    "UPDATE auth.users AS u SET \
                       email = coalesce($2, email), \
                       encrypted_password = coalesce($3, encrypted_password), \
                       email_confirmed_at = CASE WHEN $4::bool IS TRUE THEN coalesce(email_confirmed_at, now()) \
                                                 WHEN $4::bool IS FALSE THEN NULL ELSE email_confirmed_at END, \
                       raw_user_meta_data = CASE WHEN $5::jsonb IS NULL THEN raw_user_meta_data ELSE jsonb_strip_nulls(raw_user_meta_data || $5) END, \
                       raw_app_meta_data = CASE WHEN $6::jsonb IS NULL THEN raw_app_meta_data ELSE jsonb_strip_nulls(raw_app_meta_data || $6) END, \
                       banned_until = CASE WHEN $7 THEN $8 ELSE banned_until END, \
                       role = coalesce($9, role), \
                       updated_at = now() \
                     WHERE id = $1 RETURNING {USER_COLUMNS}"
                ),
                &[
                    &id,
                    &email,
                    &hash,
                    &spec.email_confirm,
                    &spec.user_metadata.map(Value::Object),
                    &spec.app_metadata.map(Value::Object),
                    &ban.is_some(),
                    &ban.flatten(),
                    &spec.role,
                ],
            )
            .await
            .map_err(role_error)?;
        let user = UserRecord::from_row(&row, 0)?;
        if user.is_banned(Utc::now()) || hash.is_some() {
            tx.execute("DELETE FROM auth.sessions WHERE user_id = $1", &[&id])
                .await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// `DELETE /admin/users/{id}`: the user and (by cascade) their sessions and tokens;
    /// a soft delete keeps the row, marked, and ends the sessions.
    pub async fn delete_user(&self, id: Uuid, soft: bool) -> Result<(), AuthError> {
        let client = self.pool.get().await?;
        let affected = if soft {
            let n = client
                .execute(
                    "UPDATE auth.users SET deleted_at = now(), email = NULL, encrypted_password = NULL, updated_at = now() \
                     WHERE id = $1 AND deleted_at IS NULL",
                    &[&id],
                )
                .await?;
            client
                .execute("DELETE FROM auth.sessions WHERE user_id = $1", &[&id])
                .await?;
            n
        } else {
            client
                .execute("DELETE FROM auth.users WHERE id = $1", &[&id])
                .await?
        };
        if affected == 0 {
            return Err(AuthError::user_not_found());
        }
        Ok(())
    }

    /// Queues a test mail to `recipient`, to check the mail setup end to end.
    pub async fn send_test_mail(&self, recipient: &str, project: &str) -> Result<(), AuthError> {
        let recipient = normalise_email(recipient)?;
        let client = self.pool.get().await?;
        mail::enqueue_as(
            &client,
            "test",
            &recipient,
            &format!("{project}: a test mail"),
            "This mail was sent from the admin UI to check that mail from this deployment arrives.\n",
        )
        .await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// Pending and recent mail, newest first (for operators without SMTP).
    pub async fn outbox(&self, limit: i64) -> Result<Vec<Value>, AuthError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, kind, recipient, subject, body_text, created_at, attempts, sent_at, last_error \
                 FROM galley.outbox ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(json!({
                    "id": row.try_get::<_, i64>(0)?,
                    "kind": row.try_get::<_, String>(1)?,
                    "recipient": row.try_get::<_, String>(2)?,
                    "subject": row.try_get::<_, String>(3)?,
                    "body": row.try_get::<_, String>(4)?,
                    "created_at": crate::user::timestamp(row.try_get(5)?),
                    "attempts": row.try_get::<_, i32>(6)?,
                    "sent_at": row.try_get::<_, Option<DateTime<Utc>>>(7)?.map(crate::user::timestamp),
                    "last_error": row.try_get::<_, Option<String>>(8)?,
                }))
            })
            .collect::<Result<Vec<_>, galley_db::tokio_postgres::Error>>()
            .map_err(AuthError::from)
    }

    // ---- shared ----

    /// Creates a single-use token and its code, records when it was sent, and queues its
    /// mail.
    async fn send_link(
        &self,
        client: &impl GenericClient,
        user: &UserRecord,
        kind: MailKind,
        address: &str,
        redirect_to: Option<&str>,
        pkce: Option<&Pkce>,
    ) -> Result<UserRecord, AuthError> {
        let issued = self
            .issue_link(client, user, kind, address, redirect_to, pkce)
            .await?;
        let (subject, body) = self.templates.render(kind, &issued.link, &issued.code);
        mail::enqueue(client, kind, address, &subject, &body).await?;
        Ok(issued.user)
    }

    /// A single-use token and its code for `address`, replacing older ones of the kind,
    /// with the link that carries it; the user's `*_sent_at` (or `invited_at`) is set.
    async fn issue_link(
        &self,
        client: &impl GenericClient,
        user: &UserRecord,
        kind: MailKind,
        address: &str,
        redirect_to: Option<&str>,
        pkce: Option<&Pkce>,
    ) -> Result<IssuedLink, AuthError> {
        let token = one_time_token();
        let code = crate::tokens::one_time_code();
        let expires_at = Utc::now() + self.settings.link_ttl;
        let (token_kind, column, verify_type) = match kind {
            MailKind::Confirmation => ("confirmation", "confirmation_sent_at", "signup"),
            MailKind::Recovery => ("recovery", "recovery_sent_at", "recovery"),
            MailKind::EmailChange => ("email_change", "email_change_sent_at", "email_change"),
            MailKind::MagicLink => ("magiclink", "recovery_sent_at", "magiclink"),
            MailKind::Invite => ("invite", "invited_at", "invite"),
            MailKind::Reauthentication => (
                "reauthentication",
                "reauthentication_sent_at",
                "reauthentication",
            ),
        };
        // A new link replaces the older ones of its kind.
        client
            .execute(
                "UPDATE auth.one_time_tokens SET used_at = now() WHERE user_id = $1 AND kind = $2 AND used_at IS NULL",
                &[&user.id, &token_kind],
            )
            .await?;
        let flow_state: Option<Uuid> = match pkce {
            None => None,
            Some(pkce) => Some(
                client
                    .query_one(
                        "INSERT INTO auth.flow_states (user_id, code_challenge, code_challenge_method, authentication_method) \
                         VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&user.id, &pkce.challenge, &pkce.method, &amr_method(token_kind)],
                    )
                    .await?
                    .try_get(0)?,
            ),
        };
        client
            .execute(
                "INSERT INTO auth.one_time_tokens (user_id, kind, token_hash, code_hash, relates_to, expires_at, flow_state_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &user.id,
                    &token_kind,
                    &one_time_hash(&token),
                    &crate::tokens::code_hash(address, &code),
                    &address,
                    &expires_at,
                    &flow_state,
                ],
            )
            .await?;
        let redirect = redirect_to
            .filter(|target| self.allowed_redirect(target))
            .unwrap_or(&self.settings.site_url);
        let query = serde_urlencoded::to_string([
            ("token", token.as_str()),
            ("type", verify_type),
            ("redirect_to", redirect),
        ])
        .map_err(|_| AuthError::unexpected())?;
        let link = format!(
            "{}/auth/v1/verify?{query}",
            self.settings.public_url.trim_end_matches('/')
        );
        let row = user_row(
            client,
            &format!(
                "UPDATE auth.users AS u SET {column} = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
            ),
            &[&user.id],
        )
        .await?
        .ok_or_else(AuthError::unexpected)?;
        Ok(IssuedLink {
            user: UserRecord::from_row(&row, 0)?,
            token,
            code,
            link,
            redirect_to: redirect.to_owned(),
            verify_type,
        })
    }

    pub(crate) async fn start_session(
        &self,
        client: &impl GenericClient,
        user: UserRecord,
        method: &str,
        user_agent: Option<&str>,
    ) -> Result<Session, AuthError> {
        let row = client
            .query_one(
                "INSERT INTO auth.sessions (user_id, amr, user_agent) \
                 VALUES ($1, jsonb_build_array(jsonb_build_object('method', $2::text, 'timestamp', extract(epoch from now())::bigint)), $3) \
                 RETURNING id, aal, amr",
                &[&user.id, &method, &user_agent],
            )
            .await?;
        let session_id: Uuid = row.try_get(0)?;
        let aal: String = row.try_get(1)?;
        let amr: Value = row.try_get(2)?;
        let row = user_row(
            client,
            &format!("UPDATE auth.users AS u SET last_sign_in_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"),
            &[&user.id],
        )
        .await?
        .ok_or_else(AuthError::unexpected)?;
        let user = UserRecord::from_row(&row, 0)?;
        Ok(self.session_for(user, session_id, 0, &aal, amr))
    }

    pub(crate) fn session_for(
        &self,
        user: UserRecord,
        session_id: Uuid,
        counter: i64,
        aal: &str,
        amr: Value,
    ) -> Session {
        let now = Utc::now();
        let ttl = self.settings.access_token_ttl.num_seconds();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: user.id.to_string(),
            aud: user.aud.clone(),
            exp: now.timestamp() + ttl,
            iat: now.timestamp(),
            email: user.email.clone().unwrap_or_default(),
            phone: user.phone.clone().unwrap_or_default(),
            app_metadata: user.app_metadata.clone(),
            user_metadata: user.user_metadata.clone(),
            role: user.role.clone(),
            aal: aal.to_owned(),
            amr,
            session_id: session_id.to_string(),
            is_anonymous: user.is_anonymous,
        };
        Session {
            access_token: self.signer.sign(&claims),
            refresh_token: self.refresh.token(session_id, counter),
            expires_in: ttl,
            expires_at: now.timestamp() + ttl,
            user,
            session_id,
            provider_token: None,
            provider_refresh_token: None,
        }
    }
}

/// Consumes the live token of one of `kinds` sent to `address` whose code is `code`:
/// every candidate is compared, in constant time; a miss is counted on all of them (the
/// fifth kills them) and gives `None`. The caller commits either way.
async fn take_code(
    client: &impl GenericClient,
    address: &str,
    kinds: &[&str],
    code: &str,
) -> Result<Option<galley_db::tokio_postgres::Row>, AuthError> {
    let candidates = client
        .query(
            "SELECT id, code_hash FROM auth.one_time_tokens \
             WHERE relates_to = $1 AND kind = ANY($2) AND used_at IS NULL AND expires_at > now() \
             AND failed_attempts < $3 AND code_hash IS NOT NULL \
             ORDER BY id FOR UPDATE",
            &[&address, &kinds, &MAX_CODE_ATTEMPTS],
        )
        .await?;
    let mut matched = None;
    for candidate in &candidates {
        let stored: Vec<u8> = candidate.try_get(1)?;
        if crate::tokens::code_matches(&stored, address, code) {
            matched = Some(candidate.try_get::<_, i64>(0)?);
        }
    }
    let Some(id) = matched else {
        let ids = candidates
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<Result<Vec<_>, _>>()?;
        client
            .execute(
                "UPDATE auth.one_time_tokens SET failed_attempts = failed_attempts + 1 WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        return Ok(None);
    };
    Ok(client
        .query_opt(
            "UPDATE auth.one_time_tokens SET used_at = now() WHERE id = $1 \
             RETURNING user_id, kind, relates_to, flow_state_id",
            &[&id],
        )
        .await?)
}

/// Whether the caller's session has reached `aal2`.
pub(crate) async fn session_is_aal2(
    client: &impl GenericClient,
    caller: &Caller,
) -> Result<bool, AuthError> {
    Ok(match caller.session_id {
        Some(session) => client
            .query_opt(
                "SELECT 1 FROM auth.sessions WHERE id = $1 AND aal = 'aal2'",
                &[&session],
            )
            .await?
            .is_some(),
        None => false,
    })
}

/// What an anonymous user becomes on gaining a confirmed email: permanent, with email as
/// its provider (an `UPDATE` assignment list; a no-op for other users).
const PERMANENT: &str = "is_anonymous = false, \
    raw_app_meta_data = CASE WHEN is_anonymous \
      THEN raw_app_meta_data || '{\"provider\": \"email\", \"providers\": [\"email\"]}' \
      ELSE raw_app_meta_data END";

/// The sign-in method a mailed token of `kind` stands for, as Supabase Auth names it in
/// `amr`.
fn amr_method(kind: &str) -> &'static str {
    match kind {
        "confirmation" => "email/signup",
        "invite" => "invite",
        "email_change" => "email_change",
        _ => "otp",
    }
}

pub(crate) async fn load_user(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, AuthError> {
    let row = user_row(
        client,
        &format!("SELECT {USER_COLUMNS} FROM auth.users u WHERE u.id = $1"),
        &[&id],
    )
    .await?;
    Ok(row.map(|row| UserRecord::from_row(&row, 0)).transpose()?)
}

async fn load_user_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<UserRecord>, AuthError> {
    let row = user_row(
        client,
        &format!("SELECT {USER_COLUMNS} FROM auth.users u WHERE u.email = $1"),
        &[&email],
    )
    .await?;
    Ok(row.map(|row| UserRecord::from_row(&row, 0)).transpose()?)
}

/// Trimmed and lower-cased, one `@` with text on both sides, no whitespace or control
/// characters (a CR/LF could inject mail headers), at most 254 bytes.
pub fn normalise_email(email: &str) -> Result<String, AuthError> {
    let email = email.trim().to_lowercase();
    let invalid = || AuthError::validation("Unable to validate email address: invalid format");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email.contains(['<', '>', '"', ',', ';'])
    {
        return Err(invalid());
    }
    Ok(email)
}

fn with_email_verified(metadata: Value, verified: bool) -> Value {
    let mut metadata = match metadata {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if verified {
        metadata.insert("email_verified".into(), Value::Bool(true));
    }
    Value::Object(metadata)
}

/// What a signup for an already confirmed address answers when confirmations are on:
/// indistinguishable from a new account waiting for its confirmation.
fn obfuscated_user(email: &str) -> Value {
    let now = crate::user::timestamp(Utc::now());
    json!({
        "id": Uuid::new_v4(),
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "phone": "",
        "confirmation_sent_at": now,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "identities": [],
        "created_at": now,
        "updated_at": now,
        "is_anonymous": false,
    })
}

/// `ban_duration`: `None` to leave the ban alone, `Some(None)` to lift it, else the end.
fn ban_until(duration: Option<&str>) -> Result<Option<Option<DateTime<Utc>>>, AuthError> {
    let Some(text) = duration else {
        return Ok(None);
    };
    if text == "none" {
        return Ok(Some(None));
    }
    let invalid = || AuthError::validation("invalid format for ban duration");
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?,
    );
    let n: i64 = number.parse().map_err(|_| invalid())?;
    let duration = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        _ => None,
    }
    .ok_or_else(invalid)?;
    Ok(Some(Some(Utc::now() + duration)))
}

/// An email another account took between our check and our write.
pub(crate) fn unique_email(err: galley_db::tokio_postgres::Error) -> AuthError {
    if galley_db::classify(&err) == galley_db::SqlState::UniqueViolation {
        return AuthError::new(
            422,
            "email_exists",
            "A user with this email address has already been registered",
        );
    }
    err.into()
}

/// A role outside the ones `auth.users` allows, or a taken email.
fn role_error(err: galley_db::tokio_postgres::Error) -> AuthError {
    match galley_db::classify(&err) {
        galley_db::SqlState::CheckViolation => {
            AuthError::validation("role must be authenticated or service_role")
        }
        _ => unique_email(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_refused_when_they_could_inject_headers() {
        assert_eq!(
            normalise_email("  Alice@Example.COM ").expect("valid"),
            "alice@example.com"
        );
        for bad in [
            "",
            "no-at",
            "@x.y",
            "a@",
            "a@b@c",
            "a@b.c\r\nBcc: x@y",
            "a b@c.d",
            "a@.x",
            "<a@b.c>",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ban_durations_parse() {
        assert!(ban_until(None).expect("none").is_none());
        assert_eq!(ban_until(Some("none")).expect("lift"), Some(None));
        assert!(
            ban_until(Some("24h"))
                .expect("hours")
                .is_some_and(|b| b.is_some())
        );
        assert!(ban_until(Some("forever")).is_err());
    }
}
