//! Accounts, sessions and tokens. For now: the project's JWT secret, the long-lived API
//! keys (`anon`, `service_role`) that app developers hand to `createClient`, and the
//! verification of the tokens requests carry.

mod config;
mod keys;
mod secret;
mod verify;

pub use config::AuthConfig;
pub use keys::{ApiRole, KeyClaims, mint_api_key};
pub use secret::{JwtSecret, SecretError};
pub use verify::{TokenError, TokenVerifier, VerifiedClaims};

/// `iss` of every token Galley signs.
pub const ISSUER: &str = "galley";
