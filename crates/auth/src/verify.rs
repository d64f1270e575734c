//! Verifying the bearer tokens requests carry: API keys now, user sessions later.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::JwtSecret;
use crate::signing::KeySet;

/// Why a token was not accepted. Messages are safe to show to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("JWT expired")]
    Expired,
    #[error("JWT signature or format invalid")]
    Invalid,
    #[error("JWT has no role claim")]
    NoRole,
    /// `nbf` is still ahead (beyond the clock skew allowed).
    #[error("JWT not yet valid")]
    NotYetValid,
    /// `iat` is ahead (beyond the clock skew allowed).
    #[error("JWT issued at future")]
    IssuedInFuture,
    /// `aud` names another audience.
    #[error("JWT not in audience")]
    WrongAudience,
    /// The header names an algorithm the key is not for.
    #[error("Wrong or unsupported encoding algorithm")]
    BadAlgorithm,
}

/// The audience of the access tokens Galley issues.
pub const AUDIENCE: &str = "authenticated";

/// The claims Galley acts on; the full claim set travels on as JSON.
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    pub role: String,
    pub raw: serde_json::Value,
}

/// Checks access tokens and API keys. A token without `kid` is HS256 with the project's
/// secret; one with a `kid` is verified by that configured key only, with that key's
/// algorithm. The algorithm is never taken from the token: `none`, or RS256 "signed" with
/// the secret as an HMAC key, is refused.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    keys: KeySet,
}

impl TokenVerifier {
    pub fn new(secret: &JwtSecret) -> Self {
        Self::with_keys(secret, KeySet::secret_only())
    }

    pub fn with_keys(secret: &JwtSecret, keys: KeySet) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.validate_nbf = true;
        // Checked below: a token without `aud` (the API keys) is accepted, one with another
        // audience is not.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            key: crate::signing::secret_key(secret),
            validation,
            keys,
        }
    }

    /// The public keys tokens may be verified with, as a JWKS.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.jwks()
    }

    pub fn verify(&self, token: &str) -> Result<VerifiedClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let keyed;
        let (key, validation) = match &header.kid {
            None => (&self.key, &self.validation),
            Some(kid) => {
                let verifier = self.keys.verifier(kid).ok_or(TokenError::Invalid)?;
                let mut validation = self.validation.clone();
                validation.algorithms = vec![verifier.algorithm];
                keyed = validation;
                (&verifier.key, &keyed)
            }
        };
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, key, validation).map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidAlgorithmName
                    | ErrorKind::MissingAlgorithm => TokenError::BadAlgorithm,
                    _ => TokenError::Invalid,
                }
            })?;
        let audience_ok = match data.claims.get("aud") {
            None => true,
            Some(serde_json::Value::String(aud)) => aud == AUDIENCE,
            Some(serde_json::Value::Array(auds)) => auds.iter().any(|a| a == AUDIENCE),
            Some(_) => false,
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        // Issued in the future (beyond the clock skew allowed): refused.
        if let Some(iat) = data.claims.get("iat").and_then(serde_json::Value::as_i64)
            && iat > chrono::Utc::now().timestamp() + 30
        {
            return Err(TokenError::IssuedInFuture);
        }
        let role = data
            .claims
            .get("role")
            .and_then(serde_json::Value::as_str)
            .ok_or(TokenError::NoRole)?
            .to_owned();
        Ok(VerifiedClaims {
            role,
            raw: data.claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::{ApiRole, mint_api_key};

    #[test]
    fn api_keys_verify_and_carry_their_role() {
        let secret = JwtSecret::generate();
        let verifier = TokenVerifier::new(&secret);
        let key = mint_api_key(&secret, ApiRole::ServiceRole, chrono::Utc::now());
        assert_eq!(verifier.verify(&key).expect("valid").role, "service_role");
    }

    #[test]
    fn forged_expired_and_alg_none_tokens_are_refused() {
        let secret = JwtSecret::generate();
        let verifier = TokenVerifier::new(&secret);
        let other = mint_api_key(
            &JwtSecret::generate(),
            ApiRole::ServiceRole,
            chrono::Utc::now(),
        );
        assert_eq!(verifier.verify(&other).unwrap_err(), TokenError::Invalid);

        let long_ago = chrono::Utc::now() - chrono::Duration::days(3651);
        let expired = mint_api_key(&secret, ApiRole::ServiceRole, long_ago);
        assert_eq!(verifier.verify(&expired).unwrap_err(), TokenError::Expired);

        // {"alg":"none"} with a service_role claim and no signature.
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert_eq!(verifier.verify(unsigned).unwrap_err(), TokenError::Invalid);

        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &serde_json::json!({"role": "service_role", "exp": 4102444800u64}),
            &EncodingKey::from_secret(secret.expose().as_bytes()),
        )
        .expect("encode");
        assert_eq!(
            verifier.verify(&hs384).unwrap_err(),
            TokenError::BadAlgorithm
        );
        // Claims that are not yet, or not for this audience.
        let claims = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret.expose().as_bytes()),
            )
            .expect("encode")
        };
        let later = chrono::Utc::now().timestamp() + 3600;
        let cases = [
            (
                serde_json::json!({"role": "anon", "exp": later + 60, "nbf": later}),
                TokenError::NotYetValid,
            ),
            (
                serde_json::json!({"role": "anon", "exp": later + 60, "iat": later}),
                TokenError::IssuedInFuture,
            ),
            (
                serde_json::json!({"role": "anon", "exp": later, "aud": "elsewhere"}),
                TokenError::WrongAudience,
            ),
        ];
        for (claims_, expected) in cases {
            assert_eq!(verifier.verify(&claims(claims_)).unwrap_err(), expected);
        }
    }
}
