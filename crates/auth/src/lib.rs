//! Accounts, sessions and tokens: the project's JWT secret and the long-lived API keys
//! (`anon`, `service_role`), the verification of the tokens requests carry, and the
//! Supabase Auth–compatible account operations behind `/auth/v1` (passwords hashed with
//! argon2id, sessions with rotating refresh tokens, single-use emailed links, the mail
//! outbox).

mod accounts;
mod admins;
mod config;
mod error;
mod external;
mod identities;
mod keys;
mod mail;
mod mfa;
mod passkeys;
mod password;
mod seal;
mod secret;
mod signing;
mod tokens;
mod totp;
mod user;
mod verify;

pub use accounts::{
    Accounts, AdminUser, AuthSettings, Caller, LogoutScope, Pkce, Proof, Session, Signup,
    UserUpdate, Verified, VerifyKind, normalise_email,
};
pub use admins::{
    ADMIN_PASSWORD_MIN, Admin, AdminConfig, AdminError, AdminRecord, Admins, NewSession,
    admin_email, check_admin_password, create_admin, delete_admin, disable_admin_totp, list_admins,
    set_admin_password,
};
pub use config::{AuthConfig, redact};
pub use error::AuthError;
pub use external::{ExternalProviderConfig, ExternalUser, Providers};
pub use identities::ExternalSignIn;
pub use keys::{ApiRole, KeyClaims, mint_api_key};
pub use mail::{
    MailKind, MailTemplate, MailTemplates, OutboxWorker, SmtpConfig, SmtpTls, Templates,
};
pub use mfa::EnrolledFactor;
pub use passkeys::PasskeyConfig;
pub use password::{HashCost, PasswordHasherPool, PasswordPolicy, WeakPassword};
pub use secret::{JwtSecret, SecretError};
pub use signing::{KeySet, SigningKeyConfig};
pub use tokens::{AccessClaims, AccessSigner, RefreshKey, one_time_hash, one_time_token};
pub use user::{UserRecord, timestamp};
pub use verify::{AUDIENCE, TokenError, TokenVerifier, VerifiedClaims};

/// `iss` of every token Galley signs.
pub const ISSUER: &str = "galley";
