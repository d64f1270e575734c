//! The tokens Galley issues for accounts: access JWTs, refresh tokens, and the
//! single-use tokens emailed links carry.
//!
//! A refresh token is `base64url(session id ‖ counter ‖ HMAC-SHA256(key, session id ‖
//! counter)[..16])`, the key derived from the project secret. The database keeps only the
//! session's current counter, so nothing stored can be replayed, and the server can
//! hand the current token out again (to a client that lost the answer to its refresh)
//! without having kept it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::JwtSecret;

type HmacSha256 = Hmac<Sha256>;

/// The MAC's length in a refresh token: 128 bits.
const MAC_BYTES: usize = 16;

/// Signs refresh tokens; derived from the project secret, so every instance agrees.
#[derive(Clone)]
pub struct RefreshKey([u8; 32]);

impl RefreshKey {
    pub fn derive(secret: &JwtSecret) -> Self {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"galley refresh tokens v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self, session: Uuid, counter: i64) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(session.as_bytes());
        mac.update(&counter.to_be_bytes());
        mac
    }

    /// The token for `session` at `counter`.
    pub fn token(&self, session: Uuid, counter: i64) -> String {
        let tag = self.mac(session, counter).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(16 + 8 + MAC_BYTES);
        bytes.extend_from_slice(session.as_bytes());
        bytes.extend_from_slice(&counter.to_be_bytes());
        bytes.extend_from_slice(&tag[..MAC_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The session and counter a token names, if this key made it.
    pub fn open(&self, token: &str) -> Option<(Uuid, i64)> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if bytes.len() != 16 + 8 + MAC_BYTES {
            return None;
        }
        let session = Uuid::from_slice(&bytes[..16]).ok()?;
        let counter = i64::from_be_bytes(bytes[16..24].try_into().ok()?);
        self.mac(session, counter)
            .verify_truncated_left(&bytes[24..])
            .ok()?;
        Some((session, counter))
    }
}

/// A single-use token for a link: 256 random bits, base64url. Only its
/// [`one_time_hash`] is stored.
pub fn one_time_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a one-time token: its SHA-256.
pub fn one_time_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// A one-time code for a mail: six digits, uniformly drawn.
pub(crate) fn one_time_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// What is stored of a one-time code: the SHA-256 of the address it was sent to and the
/// code, so equal codes sent to two addresses are stored differently.
pub(crate) fn code_hash(address: &str, code: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(address.as_bytes());
    hasher.update([0]);
    hasher.update(code.trim().as_bytes());
    hasher.finalize().to_vec()
}

/// Whether `code` sent to `address` is the one `stored` was made from, compared in
/// constant time.
pub(crate) fn code_matches(stored: &[u8], address: &str, code: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(stored.ct_eq(&code_hash(address, code)))
}

/// The claims of an access token, as Supabase Auth issues them.
#[derive(Debug, Clone, Serialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub email: String,
    pub phone: String,
    pub app_metadata: serde_json::Value,
    pub user_metadata: serde_json::Value,
    pub role: String,
    pub aal: String,
    pub amr: serde_json::Value,
    pub session_id: String,
    pub is_anonymous: bool,
}

/// Signs access tokens: HS256 with the project secret, or the first configured
/// asymmetric key, whose `kid` goes in the header.
#[derive(Clone)]
pub struct AccessSigner {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: Option<String>,
}

impl AccessSigner {
    pub fn new(secret: &JwtSecret) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.expose().as_bytes()),
            algorithm: Algorithm::HS256,
            kid: None,
        }
    }

    pub fn with_keys(secret: &JwtSecret, keys: &crate::signing::KeySet) -> Self {
        match &keys.signer {
            Some((kid, algorithm, key)) => Self {
                key: key.clone(),
                algorithm: *algorithm,
                kid: Some(kid.clone()),
            },
            None => Self::new(secret),
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_owned());
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, claims, &self.key)
            .expect("signing serialisable claims with a loaded key cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_open_only_with_their_key_and_unaltered() {
        let key = RefreshKey::derive(&JwtSecret::generate());
        let session = Uuid::new_v4();
        let token = key.token(session, 7);
        assert_eq!(key.open(&token), Some((session, 7)));
        assert_ne!(key.token(session, 8), token);
        let other = RefreshKey::derive(&JwtSecret::generate());
        assert_eq!(other.open(&token), None);
        // Another counter under the same MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        bytes[23] ^= 1;
        assert_eq!(key.open(&URL_SAFE_NO_PAD.encode(bytes)), None);
        assert_eq!(key.open("short"), None);
        assert!(token.len() >= 22, "at least 128 bits");
    }

    #[test]
    fn one_time_tokens_are_256_bits_and_stored_as_sha256() {
        let token = one_time_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).expect("base64").len(), 32);
        assert_eq!(one_time_hash(&token).len(), 32);
        assert_ne!(one_time_token(), token);
    }
}
