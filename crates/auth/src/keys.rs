//! The API keys: long-lived JWTs whose `role` claim names the database role a request
//! without a user session runs as.

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::{ISSUER, JwtSecret};

/// The roles an API key can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiRole {
    /// Public key for browsers and apps; RLS policies decide what it sees.
    Anon,
    /// Server-side key that bypasses RLS; never ship it to a client.
    ServiceRole,
}

impl ApiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::Anon => "anon",
            ApiRole::ServiceRole => "service_role",
        }
    }
}

/// Claims of an API key, shaped like Supabase's so its clients accept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyClaims {
    pub iss: String,
    pub role: ApiRole,
    pub iat: i64,
    pub exp: i64,
}

/// API keys last ten years, as Supabase's do; rotating the secret revokes them.
const KEY_LIFETIME_DAYS: i64 = 3650;

/// Signs an API key for `role` with the project's secret (HS256).
pub fn mint_api_key(
    secret: &JwtSecret,
    role: ApiRole,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let claims = KeyClaims {
        iss: ISSUER.to_owned(),
        role,
        iat: now.timestamp(),
        exp: (now + chrono::Duration::days(KEY_LIFETIME_DAYS)).timestamp(),
    };
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .expect("HS256 signing of serialisable claims cannot fail")
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    use super::*;

    #[test]
    fn keys_carry_their_role_and_verify_with_the_secret_only() {
        let secret = JwtSecret::generate();
        let now = chrono::Utc::now();
        let key = mint_api_key(&secret, ApiRole::ServiceRole, now);

        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        let decoded = jsonwebtoken::decode::<KeyClaims>(
            &key,
            &DecodingKey::from_secret(secret.expose().as_bytes()),
            &validation,
        )
        .expect("valid key");
        assert_eq!(decoded.claims.role, ApiRole::ServiceRole);
        assert!(decoded.claims.exp > now.timestamp() + 365 * 24 * 3600);

        let other = JwtSecret::generate();
        assert!(
            jsonwebtoken::decode::<KeyClaims>(
                &key,
                &DecodingKey::from_secret(other.expose().as_bytes()),
                &validation
            )
            .is_err()
        );
    }
}
