//! Admin accounts and their sessions: the people who run the deployment through `/admin`.
//! They are not app users (their rows are in `galley.admins`, never `auth.users`), sign in
//! with an email and an argon2id-hashed password, and hold a server-side session whose
//! random token travels only in an HttpOnly cookie; the database keeps its SHA-256. A
//! session ends when it has been idle too long or reaches its absolute lifetime, both
//! checked on every request, or when the admin signs out, is deleted or gets a new
//! password.

use chrono::{DateTime, Utc};
use galley_db::Pool;
use galley_db::tokio_postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::password::{PasswordHasherPool, PasswordPolicy};
use crate::tokens::{one_time_hash, one_time_token};

/// `[admin]`: how long admin sessions and setup links last.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// A session unused this long is over.
    pub session_idle_secs: u64,
    /// A session is over this long after sign-in, used or not.
    pub session_max_secs: u64,
    /// How long the first-admin setup link `galley serve` prints works.
    pub setup_link_ttl_secs: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: 2 * 3600,
            session_max_secs: 24 * 3600,
            setup_link_ttl_secs: 3600,
        }
    }
}

/// The shortest admin password: admins hold every key to the deployment.
pub const ADMIN_PASSWORD_MIN: usize = 12;

/// A signed-in admin.
#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub id: Uuid,
    pub email: String,
}

/// An admin as `galley admin list` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct AdminRecord {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Wrong email or password, or no such admin: the same answer for both.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("{0}")]
    WeakPassword(String),
    #[error("{0}")]
    InvalidEmail(String),
    #[error("an admin with this email already exists")]
    Exists,
    #[error("no admin with this email")]
    NotFound,
    /// The setup link is unknown, used or expired, or an admin exists already.
    #[error(
        "this setup link is invalid, used or expired; ask the operator for a new one (`galley admin create`)"
    )]
    SetupClosed,
    /// The password was right and the admin has a second factor: the code is next.
    #[error("enter the code from your authenticator app")]
    TotpRequired,
    #[error("the code is wrong or was already used")]
    InvalidTotp,
    #[error("start enrolling first: no authenticator is waiting for its first code")]
    NoPendingTotp,
    #[error(transparent)]
    Db(#[from] galley_db::DbError),
    #[error(transparent)]
    Hash(#[from] crate::password::HashError),
}

impl From<galley_db::tokio_postgres::Error> for AdminError {
    fn from(err: galley_db::tokio_postgres::Error) -> Self {
        Self::Db(err.into())
    }
}

impl From<galley_db::PoolError> for AdminError {
    fn from(err: galley_db::PoolError) -> Self {
        Self::Db(err.into())
    }
}

/// A normalised email, or why it is not one.
pub fn admin_email(email: &str) -> Result<String, AdminError> {
    crate::accounts::normalise_email(email).map_err(|err| AdminError::InvalidEmail(err.message))
}

/// Whether `password` may be an admin's: the app's policy, and at least
/// [`ADMIN_PASSWORD_MIN`] characters.
pub fn check_admin_password(policy: &PasswordPolicy, password: &str) -> Result<(), AdminError> {
    // The app's policy, raised: a longer minimum, and the blocklist always.
    let floor = PasswordPolicy {
        min_chars: policy.min_chars.max(ADMIN_PASSWORD_MIN),
        blocklist: true,
        ..*policy
    };
    floor
        .check(password)
        .map_err(|weak| AdminError::WeakPassword(weak.message))
}

/// Adds an admin; `password_hash` is an argon2id PHC string.
pub async fn create_admin(
    client: &impl GenericClient,
    email: &str,
    password_hash: &str,
) -> Result<Uuid, AdminError> {
    let email = admin_email(email)?;
    let row = client
        .query_opt(
            "INSERT INTO galley.admins (email, password_hash) VALUES ($1, $2) \
             ON CONFLICT (lower(email)) DO NOTHING RETURNING id",
            &[&email, &password_hash],
        )
        .await?;
    row.map(|row| row.get(0)).ok_or(AdminError::Exists)
}

/// Every admin, oldest first.
pub async fn list_admins(client: &impl GenericClient) -> Result<Vec<AdminRecord>, AdminError> {
    Ok(client
        .query(
            "SELECT id, email, created_at, last_sign_in_at FROM galley.admins ORDER BY created_at, email",
            &[],
        )
        .await?
        .iter()
        .map(|row| AdminRecord {
            id: row.get(0),
            email: row.get(1),
            created_at: row.get(2),
            last_sign_in_at: row.get(3),
        })
        .collect())
}

/// Gives an admin a new password and ends every session they have.
pub async fn set_admin_password(
    client: &mut Client,
    email: &str,
    password_hash: &str,
) -> Result<(), AdminError> {
    let email = admin_email(email)?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE galley.admins SET password_hash = $2, updated_at = now() \
             WHERE lower(email) = $1 RETURNING id",
            &[&email, &password_hash],
        )
        .await?
        .ok_or(AdminError::NotFound)?;
    let id: Uuid = row.get(0);
    tx.execute(
        "DELETE FROM galley.admin_sessions WHERE admin_id = $1",
        &[&id],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes an admin, and with them their sessions.
pub async fn delete_admin(client: &impl GenericClient, email: &str) -> Result<(), AdminError> {
    let email = admin_email(email)?;
    let deleted = client
        .execute(
            "DELETE FROM galley.admins WHERE lower(email) = $1",
            &[&email],
        )
        .await?;
    if deleted == 0 {
        return Err(AdminError::NotFound);
    }
    Ok(())
}

/// Turns an admin's second factor off, from the command line (an admin who lost their
/// authenticator).
pub async fn disable_admin_totp(
    client: &impl GenericClient,
    email: &str,
) -> Result<(), AdminError> {
    let email = admin_email(email)?;
    let updated = client
        .execute(
            "UPDATE galley.admins SET totp_secret = NULL, totp_pending = NULL WHERE lower(email) = $1",
            &[&email],
        )
        .await?;
    if updated == 0 {
        return Err(AdminError::NotFound);
    }
    Ok(())
}

fn totp_for(secret: &str, label: Option<(&str, &str)>) -> Result<totp_rs::TOTP, AdminError> {
    crate::totp::totp_for(secret, label).ok_or(AdminError::InvalidTotp)
}

/// The time step `code` is valid for, if newer than `after`.
fn totp_step(secret: &str, code: &str, after: i64) -> Result<i64, AdminError> {
    let totp = totp_for(secret, None)?;
    crate::totp::accepted_step(&totp, code, after, chrono::Utc::now().timestamp())
        .ok_or(AdminError::InvalidTotp)
}

/// Admin sign-in, sessions and the first-admin setup, for the gateway.
pub struct Admins {
    pool: Pool,
    hasher: PasswordHasherPool,
    policy: PasswordPolicy,
    config: AdminConfig,
}

/// A new session: the token for the cookie, and who it is.
#[derive(Debug)]
pub struct NewSession {
    pub token: String,
    pub admin: Admin,
    /// How long the cookie may live: the session's absolute lifetime.
    pub max_age_secs: u64,
}

impl Admins {
    pub fn new(
        pool: Pool,
        hasher: PasswordHasherPool,
        policy: PasswordPolicy,
        config: AdminConfig,
    ) -> Self {
        Self {
            pool,
            hasher,
            policy,
            config,
        }
    }

    /// Signs an admin in. An unknown email costs as much as a wrong password, and gets
    /// the same answer.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
        user_agent: Option<&str>,
        source_ip: &str,
    ) -> Result<NewSession, AdminError> {
        let email = admin_email(email).map_err(|_| AdminError::InvalidCredentials)?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, email, password_hash, totp_secret, totp_last_step FROM galley.admins \
                 WHERE lower(email) = $1",
                &[&email],
            )
            .await?;
        let hash: Option<String> = row.as_ref().map(|row| row.get(2));
        if !self.hasher.verify(password, hash.as_deref()).await {
            return Err(AdminError::InvalidCredentials);
        }
        let row = row.ok_or(AdminError::InvalidCredentials)?;
        let admin = Admin {
            id: row.get(0),
            email: row.get(1),
        };
        if let Some(secret) = row.get::<_, Option<String>>(3) {
            let code = code.ok_or(AdminError::TotpRequired)?;
            let step = totp_step(&secret, code, row.get(4))?;
            // Claimed only if no other request took this step first.
            let claimed = client
                .execute(
                    "UPDATE galley.admins SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
                    &[&admin.id, &step],
                )
                .await?;
            if claimed != 1 {
                return Err(AdminError::InvalidTotp);
            }
        }
        client
            .execute(
                "UPDATE galley.admins SET last_sign_in_at = now() WHERE id = $1",
                &[&admin.id],
            )
            .await?;
        let client: &Client = &client;
        self.open_session(client, admin, user_agent, source_ip)
            .await
    }

    async fn open_session(
        &self,
        client: &impl GenericClient,
        admin: Admin,
        user_agent: Option<&str>,
        source_ip: &str,
    ) -> Result<NewSession, AdminError> {
        let token = one_time_token();
        let max_age = self.config.session_max_secs as f64;
        client
            .execute(
                "INSERT INTO galley.admin_sessions (token_hash, admin_id, expires_at, user_agent, source_ip) \
                 VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)",
                &[&one_time_hash(&token), &admin.id, &max_age, &user_agent, &source_ip],
            )
            .await?;
        Ok(NewSession {
            token,
            admin,
            max_age_secs: self.config.session_max_secs,
        })
    }

    /// The admin a session token belongs to, while the session lasts; using it keeps it
    /// from going idle.
    pub async fn session(&self, token: &str) -> Result<Option<Admin>, AdminError> {
        let idle = self.config.session_idle_secs as f64;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "UPDATE galley.admin_sessions s SET last_seen_at = now() \
                 FROM galley.admins a \
                 WHERE s.token_hash = $1 AND a.id = s.admin_id AND s.expires_at > now() \
                   AND s.last_seen_at > now() - make_interval(secs => $2) \
                 RETURNING a.id, a.email",
                &[&one_time_hash(token), &idle],
            )
            .await?;
        Ok(row.map(|row| Admin {
            id: row.get(0),
            email: row.get(1),
        }))
    }

    /// Starts enrolling an authenticator: a new secret waits for its first code. Returns
    /// the secret (base32, to type in) and its `otpauth://` URL (for a QR code).
    pub async fn totp_begin(
        &self,
        admin: &Admin,
        issuer: &str,
        code: Option<&str>,
    ) -> Result<(String, String), AdminError> {
        // Replacing an authenticator takes a code from the current one: a stolen session
        // alone cannot swap the second factor.
        self.require_current_code(admin, code).await?;
        let secret = crate::totp::new_secret();
        let totp = totp_for(&secret, Some((issuer, &admin.email)))?;
        self.pool
            .get()
            .await?
            .execute(
                "UPDATE galley.admins SET totp_pending = $2 WHERE id = $1",
                &[&admin.id, &secret],
            )
            .await?;
        Ok((secret, totp.get_url()))
    }

    /// Finishes enrolling with a first code from the authenticator.
    pub async fn totp_confirm(&self, admin: &Admin, code: &str) -> Result<(), AdminError> {
        let client = self.pool.get().await?;
        let pending: Option<String> = client
            .query_one(
                "SELECT totp_pending FROM galley.admins WHERE id = $1",
                &[&admin.id],
            )
            .await?
            .get(0);
        let pending = pending.ok_or(AdminError::NoPendingTotp)?;
        let step = totp_step(&pending, code, 0)?;
        client
            .execute(
                "UPDATE galley.admins SET totp_secret = totp_pending, totp_pending = NULL, \
                 totp_last_step = $2 WHERE id = $1",
                &[&admin.id, &step],
            )
            .await?;
        Ok(())
    }

    /// Turns the second factor off, with a current code.
    pub async fn totp_disable(&self, admin: &Admin, code: &str) -> Result<(), AdminError> {
        self.require_current_code(admin, Some(code)).await?;
        self.pool
            .get()
            .await?
            .execute(
                "UPDATE galley.admins SET totp_secret = NULL, totp_pending = NULL WHERE id = $1",
                &[&admin.id],
            )
            .await?;
        Ok(())
    }

    /// When the admin has a second factor: a current code, spent (its step recorded, so it
    /// works once). Without one, nothing to check.
    async fn require_current_code(
        &self,
        admin: &Admin,
        code: Option<&str>,
    ) -> Result<(), AdminError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT totp_secret, totp_last_step FROM galley.admins WHERE id = $1",
                &[&admin.id],
            )
            .await?;
        let Some(secret) = row.get::<_, Option<String>>(0) else {
            return Ok(());
        };
        let step = totp_step(&secret, code.ok_or(AdminError::TotpRequired)?, row.get(1))?;
        let claimed = client
            .execute(
                "UPDATE galley.admins SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
                &[&admin.id, &step],
            )
            .await?;
        if claimed != 1 {
            return Err(AdminError::InvalidTotp);
        }
        Ok(())
    }

    /// Whether the admin signs in with a second factor.
    pub async fn totp_enabled(&self, admin: &Admin) -> Result<bool, AdminError> {
        Ok(self
            .pool
            .get()
            .await?
            .query_one(
                "SELECT totp_secret IS NOT NULL FROM galley.admins WHERE id = $1",
                &[&admin.id],
            )
            .await?
            .get(0))
    }

    /// Ends the session with this token, if there is one.
    pub async fn sign_out(&self, token: &str) -> Result<(), AdminError> {
        self.pool
            .get()
            .await?
            .execute(
                "DELETE FROM galley.admin_sessions WHERE token_hash = $1 OR expires_at < now()",
                &[&one_time_hash(token)],
            )
            .await?;
        Ok(())
    }

    /// Whether any admin exists.
    pub async fn any(&self) -> Result<bool, AdminError> {
        Ok(self
            .pool
            .get()
            .await?
            .query_one("SELECT EXISTS (SELECT 1 FROM galley.admins)", &[])
            .await?
            .get(0))
    }

    /// A new one-time setup token, valid for `setup_link_ttl_secs`, if no admin exists
    /// yet.
    pub async fn setup_token(&self) -> Result<Option<String>, AdminError> {
        if self.any().await? {
            return Ok(None);
        }
        let token = one_time_token();
        let ttl = self.config.setup_link_ttl_secs as f64;
        self.pool
            .get()
            .await?
            .execute(
                "INSERT INTO galley.admin_setup_tokens (token_hash, expires_at) \
                 VALUES ($1, now() + make_interval(secs => $2))",
                &[&one_time_hash(&token), &ttl],
            )
            .await?;
        Ok(Some(token))
    }

    /// Creates the first admin through a setup link, and signs them in. Refused once any
    /// admin exists, and for a link that is unknown, used or expired.
    pub async fn set_up(
        &self,
        token: &str,
        email: &str,
        password: &str,
        user_agent: Option<&str>,
        source_ip: &str,
    ) -> Result<NewSession, AdminError> {
        let email = admin_email(email)?;
        check_admin_password(&self.policy, password)?;
        let hash = self.hasher.hash(password).await?;
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let tx = &transaction;
        // One setup at a time, whichever instance serves it: the first to commit wins.
        tx.execute("LOCK TABLE galley.admins IN SHARE ROW EXCLUSIVE MODE", &[])
            .await?;
        let claimed = tx
            .execute(
                "UPDATE galley.admin_setup_tokens SET used_at = now() \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() \
                   AND NOT EXISTS (SELECT 1 FROM galley.admins)",
                &[&one_time_hash(token)],
            )
            .await?;
        if claimed != 1 {
            return Err(AdminError::SetupClosed);
        }
        let tx: &galley_db::tokio_postgres::Transaction<'_> = tx;
        let id = create_admin(tx, &email, &hash).await?;
        tx.execute(
            "UPDATE galley.admins SET last_sign_in_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
        let session = self
            .open_session(tx, Admin { id, email }, user_agent, source_ip)
            .await?;
        transaction.commit().await?;
        Ok(session)
    }
}
