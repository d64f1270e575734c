//! Signed URLs: a JWT (HS256) naming the object (`url`, `<bucket>/<key>`), what it is for
//! (`scope`: `download` or `upload`), and until when. The key is derived from the JWT
//! secret for this use only, so a URL token is never an access token and no access token
//! opens a URL.

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::StorageError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignedClaims {
    pub url: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsert: Option<bool>,
    /// Image transformations a download applies (`width`, `height`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformations: Option<serde_json::Value>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Clone)]
pub struct UrlSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl UrlSigner {
    pub fn new(secret: &galley_auth::JwtSecret) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"galley storage urls v1");
        let key = mac.finalize().into_bytes();
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }

    pub fn sign(&self, claims: &SignedClaims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The claims of `token` when it is ours, unexpired, for `scope`, and for `url`; the
    /// refusal otherwise, in Supabase's words.
    pub fn verify(
        &self,
        token: &str,
        scope: &str,
        url: &str,
    ) -> Result<SignedClaims, StorageError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<SignedClaims>(token, &self.decoding, &validation)
            .map_err(|err| {
                StorageError::invalid_jwt(match err.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "\"exp\" claim timestamp check failed"
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "signature verification failed"
                    }
                    _ => "Invalid Compact JWS",
                })
            })?
            .claims;
        if claims.scope != scope {
            return Err(StorageError::invalid_signature(format!(
                "Token is not scoped for {scope}"
            )));
        }
        if claims.url != url {
            return Err(StorageError::invalid_signature("Invalid signature"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scope: &str, exp: i64) -> SignedClaims {
        SignedClaims {
            url: "b/k.png".into(),
            scope: scope.into(),
            owner: None,
            upsert: None,
            transformations: None,
            iat: 0,
            exp,
        }
    }

    #[test]
    fn tokens_open_only_their_object_scope_and_time() {
        let signer = UrlSigner::new(&galley_auth::JwtSecret::generate());
        let later = chrono::Utc::now().timestamp() + 60;
        let token = signer.sign(&claims("download", later));
        assert!(signer.verify(&token, "download", "b/k.png").is_ok());
        assert_eq!(
            signer
                .verify(&token, "download", "b/other.png")
                .unwrap_err()
                .message,
            "Invalid signature"
        );
        assert_eq!(
            signer
                .verify(&token, "upload", "b/k.png")
                .unwrap_err()
                .message,
            "Token is not scoped for upload"
        );
        let expired = signer.sign(&claims("download", later - 120));
        assert_eq!(
            signer
                .verify(&expired, "download", "b/k.png")
                .unwrap_err()
                .message,
            "\"exp\" claim timestamp check failed"
        );
        let other = UrlSigner::new(&galley_auth::JwtSecret::generate());
        assert_eq!(
            other
                .verify(&token, "download", "b/k.png")
                .unwrap_err()
                .code,
            "InvalidJWT"
        );
        assert_eq!(
            signer
                .verify("nonsense", "download", "b/k.png")
                .unwrap_err()
                .message,
            "Invalid Compact JWS"
        );
    }
}
