//! Accounts, sessions and tokens. For now: the project's JWT secret and the long-lived
//! API keys (`anon`, `service_role`) that app developers hand to `createClient`.

mod config;
mod keys;
mod secret;

pub use config::AuthConfig;
pub use keys::{ApiRole, KeyClaims, mint_api_key};
pub use secret::{JwtSecret, SecretError};

/// `iss` of every token Galley signs.
pub const ISSUER: &str = "galley";
