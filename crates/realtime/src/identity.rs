//! Who a socket or channel acts as: a JWT verified exactly as `/rest/v1` verifies it
//! (the same [`TokenVerifier`]: keys, algorithms, audience, role claim), whose role must
//! be one of the API roles. Expiry is strict here: a channel lives on, so a token is
//! refused (and an open channel closed) the second its `exp` passes, with the message
//! Supabase Realtime's clients expect.

use base64::Engine;
use galley_auth::{TokenError, TokenVerifier};
use serde_json::Value;

/// The roles a channel may act as, as on `/rest/v1`.
const API_ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];

#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub role: &'static str,
    /// The verified claims, as `request.jwt.claims` carries them in policies.
    pub claims: Value,
    /// The token itself, to tell a refresh from a repeat.
    pub token: String,
    /// Unix seconds.
    pub exp: i64,
}

/// Why a token was refused; [`Refusal::code`] and [`Refusal::message`] are Supabase
/// Realtime's words for it.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Expired { seconds_ago: i64 },
    Malformed,
    Signature,
    MissingClaims,
    Role(String),
}

impl Refusal {
    /// The error code a join reply puts before the message.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Expired { .. } | Refusal::MissingClaims => "InvalidJWTToken",
            Refusal::Malformed => "MalformedJWT",
            Refusal::Signature => "JwtSignatureError",
            Refusal::Role(_) => "Unauthorized",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Expired { seconds_ago } => {
                format!("Token has expired {seconds_ago} seconds ago")
            }
            Refusal::Malformed => "The token provided is not a valid JWT".to_owned(),
            Refusal::Signature => "Failed to validate JWT signature".to_owned(),
            Refusal::MissingClaims => "Fields `role` and `exp` are required in JWT".to_owned(),
            Refusal::Role(role) => format!("role \"{role}\" is not allowed"),
        }
    }
}

/// The payload segment of a token, decoded but not verified.
fn unverified_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = serde_json::from_slice(&engine.decode(header).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&engine.decode(payload).ok()?).ok()?;
    (header.is_object() && claims.is_object()).then_some(claims)
}

/// Verifies `token` at `now` (Unix seconds).
pub(crate) fn verify(tokens: &TokenVerifier, token: &str, now: i64) -> Result<Identity, Refusal> {
    let claims = match tokens.verify(token) {
        Ok(verified) => verified.raw,
        // Past the verifier's leeway: the signature was good, so the claims can be read
        // for how long ago it expired.
        Err(TokenError::Expired) => {
            let exp = unverified_claims(token)
                .and_then(|claims| claims.get("exp").and_then(Value::as_i64))
                .unwrap_or(now);
            return Err(Refusal::Expired {
                seconds_ago: (now - exp).max(0),
            });
        }
        Err(TokenError::NoRole) => return Err(Refusal::MissingClaims),
        Err(
            TokenError::Invalid
            | TokenError::NotYetValid
            | TokenError::IssuedInFuture
            | TokenError::WrongAudience
            | TokenError::BadAlgorithm,
        ) => {
            return Err(if unverified_claims(token).is_some() {
                Refusal::Signature
            } else {
                Refusal::Malformed
            });
        }
    };
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Err(Refusal::MissingClaims);
    };
    if exp <= now {
        return Err(Refusal::Expired {
            seconds_ago: now - exp,
        });
    }
    let named = claims
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(role) = API_ROLES.iter().find(|role| **role == named) else {
        return Err(Refusal::Role(named.chars().take(64).collect()));
    };
    Ok(Identity {
        role,
        claims,
        token: token.to_owned(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use galley_auth::JwtSecret;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "a realtime test secret that is long enough to be accepted";

    fn token(claims: Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn tokens_are_refused_with_supabase_realtime_words() {
        let verifier = TokenVerifier::new(&JwtSecret::parse(SECRET).unwrap());
        let now = chrono::Utc::now().timestamp();
        let good = verify(
            &verifier,
            &token(json!({"role": "authenticated", "sub": "u", "exp": now + 60})),
            now,
        )
        .unwrap();
        assert_eq!(good.role, "authenticated");
        assert_eq!(good.exp, now + 60);

        // Within the verifier's leeway, and long past it: both expired, with the age.
        let just = token(json!({"role": "anon", "exp": now - 5}));
        assert_eq!(
            verify(&verifier, &just, now),
            Err(Refusal::Expired { seconds_ago: 5 })
        );
        let long = token(json!({"role": "anon", "exp": now - 600}));
        let refusal = verify(&verifier, &long, now).unwrap_err();
        assert_eq!(refusal, Refusal::Expired { seconds_ago: 600 });
        assert_eq!(refusal.message(), "Token has expired 600 seconds ago");
        assert_eq!(refusal.code(), "InvalidJWTToken");

        assert_eq!(
            verify(&verifier, "not a token", now),
            Err(Refusal::Malformed)
        );
        let forged = encode(
            &Header::default(),
            &json!({"role": "service_role", "exp": now + 60}),
            &EncodingKey::from_secret(b"some other secret that is long enough"),
        )
        .unwrap();
        assert_eq!(verify(&verifier, &forged, now), Err(Refusal::Signature));
        assert_eq!(
            verify(&verifier, &token(json!({"exp": now + 60})), now),
            Err(Refusal::MissingClaims)
        );
        assert_eq!(
            verify(
                &verifier,
                &token(json!({"role": "postgres", "exp": now + 60})),
                now
            ),
            Err(Refusal::Role("postgres".into()))
        );
    }
}
