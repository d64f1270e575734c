//! Sign-in with external identities (`/authorize`, `/callback`, `grant_type=id_token`)
//! and the linking of identities to a signed-in user, in Supabase Auth's dialect.
//!
//! An identity is one provider account (`auth.identities`, unique by provider and the
//! provider's subject). Signing in with one that is known signs its user in. An unknown
//! one whose provider vouches for its email joins the user with that address (when that
//! user never confirmed it, their password is cleared first: whoever registered the
//! address without owning it loses the account to the owner); otherwise a new user is
//! made. A linked identity joins the signed-in user, and an anonymous user so becomes
//! permanent with the same id.

use chrono::Utc;
use galley_db::GenericClient;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{Accounts, Caller, Pkce, Session, load_user, normalise_email};
use crate::error::AuthError;
use crate::external::{ExternalUser, Nonce};
use crate::tokens::{one_time_hash, one_time_token};
use crate::user::UserRecord;

/// Seconds between `/authorize` and `/callback`.
const STATE_TTL_SECS: f64 = 600.0;

/// How an external sign-in ends.
/// `Debug` leaves every token out.
pub enum ExternalSignIn {
    /// The session, with the provider's own tokens for the app.
    Session {
        session: Box<Session>,
        provider_token: Option<String>,
        provider_refresh_token: Option<String>,
    },
    /// The app started PKCE: a code for `grant_type=pkce`.
    AuthCode(String),
}

impl std::fmt::Debug for ExternalSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session { session, .. } => f.debug_tuple("Session").field(session).finish(),
            Self::AuthCode(_) => f.write_str("AuthCode(..)"),
        }
    }
}

/// The `app_metadata.providers` update adding `$2` (an `UPDATE auth.users` assignment).
const ADD_PROVIDER: &str = "raw_app_meta_data = jsonb_set( \
      CASE WHEN raw_app_meta_data ? 'provider' THEN raw_app_meta_data \
           ELSE raw_app_meta_data || jsonb_build_object('provider', $2::text) END, \
      '{providers}', \
      (SELECT coalesce(jsonb_agg(DISTINCT p ORDER BY p), '[]'::jsonb) FROM jsonb_array_elements_text( \
         CASE WHEN jsonb_typeof(raw_app_meta_data -> 'providers') = 'array' \
              THEN raw_app_meta_data -> 'providers' ELSE '[]'::jsonb END || to_jsonb($2::text)) AS t(p)))";

impl Accounts {
    /// Whether sign-in with `provider` is offered.
    pub fn offers_provider(&self, provider: &str) -> bool {
        self.settings.external.get(provider).is_some()
    }

    /// Where providers send the browser back.
    fn callback_url(&self) -> String {
        format!(
            "{}/auth/v1/callback",
            self.settings.public_url.trim_end_matches('/')
        )
    }

    /// `GET /authorize` (and, with `link_user`, `GET /user/identities/authorize`): the
    /// provider's URL to send the browser to. The sign-in under way is kept until the
    /// callback, at most ten minutes.
    pub async fn oauth_authorize(
        &self,
        provider: &str,
        redirect_to: Option<&str>,
        pkce: Option<Pkce>,
        scopes: Option<&str>,
        link_user: Option<&Caller>,
    ) -> Result<String, AuthError> {
        let external = &self.settings.external;
        let spec = external.get(provider).ok_or_else(|| {
            AuthError::validation("Unsupported provider: provider is not enabled")
        })?;
        let target = redirect_to
            .filter(|target| self.allowed_redirect(target))
            .unwrap_or(&self.settings.site_url)
            .to_owned();
        let client = self.pool.get().await?;
        let link_user = match link_user {
            Some(caller) => Some(self.load_caller(&client, caller).await?.id),
            None => None,
        };
        let state = one_time_token();
        let verifier = one_time_token();
        let nonce = one_time_token();
        let url = external
            .authorize_url(
                spec,
                &self.callback_url(),
                &state,
                &verifier,
                &nonce,
                scopes,
            )
            .await?;
        client
            .execute(
                "DELETE FROM auth.oauth_states WHERE created_at < now() - make_interval(secs => $1)",
                &[&STATE_TTL_SECS],
            )
            .await?;
        client
            .execute(
                "INSERT INTO auth.oauth_states (state_hash, provider, redirect_to, code_verifier, nonce, \
                 code_challenge, code_challenge_method, link_user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &one_time_hash(&state),
                    &provider,
                    &target,
                    &verifier,
                    &nonce,
                    &pkce.as_ref().map(|p| p.challenge.as_str()),
                    &pkce.as_ref().map(|p| p.method),
                    &link_user,
                ],
            )
            .await?;
        Ok(url)
    }

    /// `GET /callback`: where to send the browser, and how the sign-in ended. `failure` is
    /// the provider's own refusal (`error`, `error_description`), if it sent one.
    pub async fn oauth_callback(
        &self,
        state: &str,
        code: &str,
        failure: Option<(&str, &str)>,
        user_agent: Option<&str>,
    ) -> (String, Result<ExternalSignIn, AuthError>) {
        let row = match self.take_state(state).await {
            Ok(row) => row,
            Err(err) => return (self.settings.site_url.clone(), Err(err)),
        };
        let target = row.redirect_to.clone();
        let result = async {
            if let Some((error, description)) = failure {
                tracing::info!(event = "auth.oauth_refused", provider = %row.provider, error, "the identity provider refused the sign-in");
                return Err(AuthError::new(
                    400,
                    "bad_oauth_callback",
                    if description.is_empty() { error.to_owned() } else { description.to_owned() },
                ));
            }
            if code.is_empty() {
                return Err(AuthError::new(
                    400,
                    "bad_oauth_callback",
                    "OAuth callback with missing authorization code",
                ));
            }
            let external = &self.settings.external;
            let spec = external.get(&row.provider).ok_or_else(|| {
                AuthError::validation("Unsupported provider: provider is not enabled")
            })?;
            let user = external
                .exchange(spec, code, &self.callback_url(), &row.verifier, &row.nonce)
                .await?;
            self.finish_external(&row.provider, user, row.link_user, row.pkce, user_agent)
                .await
        }
        .await;
        (target, result)
    }

    /// The sign-in under way that `state` names, taken once.
    async fn take_state(&self, state: &str) -> Result<StateRow, AuthError> {
        let invalid = || AuthError::new(400, "bad_oauth_state", "OAuth state parameter is invalid");
        if state.is_empty() {
            return Err(AuthError::new(
                400,
                "bad_oauth_state",
                "OAuth state parameter missing",
            ));
        }
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "DELETE FROM auth.oauth_states WHERE state_hash = $1 RETURNING provider, redirect_to, \
                 code_verifier, nonce, code_challenge, code_challenge_method, link_user_id, \
                 created_at < now() - make_interval(secs => $2)",
                &[&one_time_hash(state), &STATE_TTL_SECS],
            )
            .await?
            .ok_or_else(invalid)?;
        if row.try_get::<_, bool>(7)? {
            return Err(AuthError::new(
                400,
                "bad_oauth_state",
                "OAuth state has expired",
            ));
        }
        let challenge: Option<String> = row.try_get(4)?;
        let method: Option<String> = row.try_get(5)?;
        Ok(StateRow {
            provider: row.try_get(0)?,
            redirect_to: row.try_get(1)?,
            verifier: row.try_get(2)?,
            nonce: row.try_get(3)?,
            pkce: challenge.zip(method),
            link_user: row.try_get(6)?,
        })
    }

    /// `POST /token?grant_type=id_token`: a native app's ID token from a configured OIDC
    /// provider, verified, signs its user in.
    pub async fn id_token_grant(
        &self,
        provider: &str,
        id_token: &str,
        nonce: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Session, AuthError> {
        if id_token.is_empty() {
            return Err(AuthError::oauth("invalid request", "id_token required"));
        }
        if provider.is_empty() {
            return Err(AuthError::oauth(
                "invalid request",
                "provider or client_id and issuer required",
            ));
        }
        let external = &self.settings.external;
        let spec = external.get(provider).ok_or_else(|| {
            AuthError::validation(format!("Custom OIDC provider {provider:?} not allowed"))
        })?;
        let user = external
            .verify_id_token(spec, id_token, Nonce::Hashed(nonce))
            .await?;
        match self
            .finish_external(provider, user, None, None, user_agent)
            .await?
        {
            ExternalSignIn::Session { session, .. } => Ok(*session),
            ExternalSignIn::AuthCode(_) => Err(AuthError::unexpected()),
        }
    }

    /// Signs the identity's user in (or links it to `link_user`), in one transaction.
    async fn finish_external(
        &self,
        provider: &str,
        external: ExternalUser,
        link_user: Option<Uuid>,
        pkce: Option<(String, String)>,
        user_agent: Option<&str>,
    ) -> Result<ExternalSignIn, AuthError> {
        if external.subject.is_empty() {
            return Err(AuthError::oauth(
                "invalid request",
                "Missing sub claim in id_token",
            ));
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = match link_user {
            Some(user) => self.link_identity(&tx, user, provider, &external).await?,
            None => self.external_account(&tx, provider, &external).await?,
        };
        if user.is_banned(Utc::now()) {
            return Err(AuthError::new(403, "user_banned", "User is banned"));
        }
        let answer = match pkce {
            Some((challenge, method)) => {
                let code = one_time_token();
                // The provider's tokens wait for the exchange sealed, bound to the flow.
                let id = Uuid::new_v4();
                let seal = |token: &Option<String>| {
                    token
                        .as_ref()
                        .map(|token| self.seal.seal(token.as_bytes(), id.as_bytes()))
                };
                tx.execute(
                    "INSERT INTO auth.flow_states (id, user_id, code_challenge, code_challenge_method, \
                     authentication_method, auth_code_hash, auth_code_issued_at, provider_access_token, \
                     provider_refresh_token) VALUES ($1, $2, $3, $4, 'oauth', $5, now(), $6, $7)",
                    &[
                        &id,
                        &user.id,
                        &challenge,
                        &method,
                        &one_time_hash(&code),
                        &seal(&external.access_token),
                        &seal(&external.refresh_token),
                    ],
                )
                .await?;
                ExternalSignIn::AuthCode(code)
            }
            None => ExternalSignIn::Session {
                session: Box::new(self.start_session(&tx, user, "oauth", user_agent).await?),
                provider_token: external.access_token.clone(),
                provider_refresh_token: external.refresh_token.clone(),
            },
        };
        tx.commit().await?;
        tracing::info!(
            event = "auth.oauth_sign_in",
            provider,
            linked = link_user.is_some(),
            "an external identity signed in"
        );
        Ok(answer)
    }

    /// The user an identity signs in: its own, the one with its verified address, or a
    /// new one.
    async fn external_account(
        &self,
        client: &impl GenericClient,
        provider: &str,
        external: &ExternalUser,
    ) -> Result<UserRecord, AuthError> {
        let data = Value::Object(external.identity_data.clone());
        let known = client
            .query_opt(
                "UPDATE auth.identities SET identity_data = $3, last_sign_in_at = now(), updated_at = now() \
                 WHERE provider = $1 AND provider_id = $2 RETURNING user_id",
                &[&provider, &external.subject, &data],
            )
            .await?;
        if let Some(row) = known {
            let user_id: Uuid = row.try_get(0)?;
            return signed_in_with(client, user_id, provider, &data).await;
        }
        let email = external
            .email
            .as_deref()
            .map(normalise_email)
            .transpose()
            .ok()
            .flatten();
        if let (Some(email), true) = (&email, external.email_verified) {
            let existing = client
                .query_opt(
                    "SELECT id, email_confirmed_at IS NOT NULL FROM auth.users WHERE email = $1 AND deleted_at IS NULL FOR UPDATE",
                    &[email],
                )
                .await?;
            if let Some(row) = existing {
                let user_id: Uuid = row.try_get(0)?;
                let confirmed: bool = row.try_get(1)?;
                if !confirmed {
                    // Whoever registered this address never proved they own it; the
                    // provider says this person does. Everything the first comer could
                    // sign in with or left behind goes (as GoTrue's
                    // RemoveUnconfirmedIdentities): password, other identities, passkeys,
                    // factors, pending links and codes, sessions, metadata.
                    client
                        .execute(
                            "UPDATE auth.users SET encrypted_password = NULL, email_confirmed_at = now(), \
                             raw_user_meta_data = '{}'::jsonb, raw_app_meta_data = raw_app_meta_data - 'providers' \
                             WHERE id = $1",
                            &[&user_id],
                        )
                        .await?;
                    for statement in [
                        "DELETE FROM auth.sessions WHERE user_id = $1",
                        "DELETE FROM auth.identities WHERE user_id = $1",
                        "DELETE FROM auth.webauthn_credentials WHERE user_id = $1",
                        "DELETE FROM auth.mfa_factors WHERE user_id = $1",
                        "UPDATE auth.one_time_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
                    ] {
                        client.execute(statement, &[&user_id]).await?;
                    }
                }
                insert_identity(client, user_id, provider, external).await?;
                return signed_in_with(client, user_id, provider, &data).await;
            }
        }
        if self.settings.disable_signup {
            return Err(AuthError::new(
                422,
                "signup_disabled",
                "Signups not allowed for this instance",
            ));
        }
        let Some(email) = email else {
            return Err(AuthError::new(
                500,
                "unexpected_failure",
                "Error getting user email from external provider",
            ));
        };
        if !external.email_verified && self.settings.confirm_email {
            return Err(AuthError::new(
                422,
                "provider_email_needs_verification",
                format!(
                    "Unverified email with {provider}. Verify the email with {provider} in order to sign in"
                ),
            ));
        }
        let app = json!({"provider": provider, "providers": [provider]});
        let row = client
            .query_one(
                "INSERT INTO auth.users (email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data) \
                 VALUES ($1, now(), $2, $3) RETURNING id",
                &[&email, &app, &data],
            )
            .await
            .map_err(crate::accounts::unique_email)?;
        let user_id: Uuid = row.try_get(0)?;
        insert_identity(client, user_id, provider, external).await?;
        live_user(client, user_id).await
    }

    /// Links an identity to `user_id` (refused when it is linked already, to anyone, as
    /// GoTrue does); an anonymous user becomes permanent, and a user without an address
    /// takes the identity's verified one (refused when another user has it).
    async fn link_identity(
        &self,
        client: &impl GenericClient,
        user_id: Uuid,
        provider: &str,
        external: &ExternalUser,
    ) -> Result<UserRecord, AuthError> {
        let owner = client
            .query_opt(
                "SELECT user_id FROM auth.identities WHERE provider = $1 AND provider_id = $2 FOR UPDATE",
                &[&provider, &external.subject],
            )
            .await?;
        match owner {
            Some(row) if row.try_get::<_, Uuid>(0)? != user_id => {
                return Err(AuthError::new(
                    422,
                    "identity_already_exists",
                    "Identity is already linked to another user",
                ));
            }
            Some(_) => {
                return Err(AuthError::new(
                    422,
                    "identity_already_exists",
                    "Identity is already linked",
                ));
            }
            None => insert_identity(client, user_id, provider, external).await?,
        }
        let email = external
            .email
            .as_deref()
            .filter(|_| external.email_verified)
            .and_then(|e| normalise_email(e).ok());
        // A user without an address takes the identity's verified one; when another user
        // has it, the unique index refuses the update (400 `email_exists`).
        client
            .execute(
                &format!(
                    "UPDATE auth.users SET {ADD_PROVIDER}, updated_at = now(), \
                     email = CASE WHEN email IS NULL AND $3::text IS NOT NULL THEN $3 ELSE email END, \
                     email_confirmed_at = CASE WHEN email IS NULL AND $3::text IS NOT NULL THEN now() ELSE email_confirmed_at END, \
                     is_anonymous = false WHERE id = $1"
                ),
                &[&user_id, &provider, &email],
            )
            .await
            .map_err(|err| {
                if galley_db::classify(&err) == galley_db::SqlState::UniqueViolation {
                    AuthError::new(
                        400,
                        "email_exists",
                        "A user with this email address has already been registered",
                    )
                } else {
                    err.into()
                }
            })?;
        live_user(client, user_id).await
    }

    /// `DELETE /user/identities/{id}`: the user keeps at least one identity.
    pub async fn unlink_identity(
        &self,
        caller: &Caller,
        identity_id: &str,
    ) -> Result<(), AuthError> {
        let identity_id = Uuid::parse_str(identity_id.trim())
            .map_err(|_| AuthError::new(404, "validation_failed", "identity_id must be an UUID"))?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let user = self.load_caller(&tx, caller).await?;
        let identities = user.identities_json();
        if identities.len() <= 1 {
            return Err(AuthError::new(
                422,
                "single_identity_not_deletable",
                "User must have at least 1 identity after unlinking",
            ));
        }
        let provider: String = tx
            .query_opt(
                "DELETE FROM auth.identities WHERE id = $1 AND user_id = $2 RETURNING provider",
                &[&identity_id, &user.id],
            )
            .await?
            .ok_or_else(|| AuthError::new(422, "identity_not_found", "Identity doesn't exist"))?
            .try_get(0)?;
        tx.execute(
            "UPDATE auth.users u SET updated_at = now(), raw_app_meta_data = jsonb_set(u.raw_app_meta_data, '{providers}', \
               coalesce((SELECT jsonb_agg(p ORDER BY p) FROM jsonb_array_elements_text(u.raw_app_meta_data -> 'providers') AS t(p) \
                 WHERE p <> $2 OR EXISTS (SELECT 1 FROM auth.identities i WHERE i.user_id = u.id AND i.provider = $2)), '[]'::jsonb)) \
             WHERE u.id = $1 AND jsonb_typeof(u.raw_app_meta_data -> 'providers') = 'array'",
            &[&user.id, &provider],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(event = "auth.identity_unlinked", user_id = %user.id, provider = %provider, "an identity was unlinked");
        Ok(())
    }
}

struct StateRow {
    provider: String,
    redirect_to: String,
    verifier: String,
    nonce: String,
    pkce: Option<(String, String)>,
    link_user: Option<Uuid>,
}

async fn insert_identity(
    client: &impl GenericClient,
    user_id: Uuid,
    provider: &str,
    external: &ExternalUser,
) -> Result<(), AuthError> {
    // Two first sign-ins with one identity can race here: the one that comes second finds
    // the row the first made, which is its own when both were for the same user.
    let stored = client
        .execute(
            "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at) \
             VALUES ($1, $2, $3, $4, now()) \
             ON CONFLICT (provider_id, provider) DO UPDATE \
               SET identity_data = EXCLUDED.identity_data, last_sign_in_at = now(), updated_at = now() \
               WHERE auth.identities.user_id = EXCLUDED.user_id",
            &[
                &external.subject,
                &user_id,
                &Value::Object(external.identity_data.clone()),
                &provider,
            ],
        )
        .await?;
    if stored == 0 {
        return Err(AuthError::new(
            422,
            "identity_already_exists",
            "Identity is already linked to another user",
        ));
    }
    Ok(())
}

/// The user after signing in with an identity at `provider`: its claims merged into
/// `user_metadata`, the provider in `app_metadata.providers`.
async fn signed_in_with(
    client: &impl GenericClient,
    user_id: Uuid,
    provider: &str,
    data: &Value,
) -> Result<UserRecord, AuthError> {
    client
        .execute(
            &format!("UPDATE auth.users SET raw_user_meta_data = raw_user_meta_data || $3, {ADD_PROVIDER}, updated_at = now() WHERE id = $1"),
            &[&user_id, &provider, data],
        )
        .await?;
    live_user(client, user_id).await
}

async fn live_user(client: &impl GenericClient, id: Uuid) -> Result<UserRecord, AuthError> {
    load_user(client, id)
        .await?
        .filter(|user| user.deleted_at.is_none())
        .ok_or_else(AuthError::user_not_found)
}
