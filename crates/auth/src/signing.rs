//! Which key signs access tokens and which keys verify them. By default both are the
//! project's HS256 secret. An operator may configure RS256 or ES256 keys, each with a key
//! id: the first listed signs (its `kid` in the header), every listed key verifies the
//! tokens that name it and is published in the JWKS. Rotation is a change of list: put
//! the new key first (after publishing it for a while if clients cache the JWKS); keep
//! the old one listed while its tokens live; remove it, and they are refused at once.

use std::path::PathBuf;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use crate::JwtSecret;

/// One configured asymmetric key (`[[auth.signing_keys]]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The key id tokens carry in their header.
    pub kid: String,
    /// `RS256` or `ES256`.
    pub algorithm: String,
    /// A PEM file holding the private key (PKCS#8, or PKCS#1 for RSA).
    pub private_key_file: PathBuf,
}

/// A verifying key, pinned to its algorithm.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The keys of this deployment.
#[derive(Clone)]
pub struct KeySet {
    /// The key that signs: `None` for the HS256 secret.
    pub(crate) signer: Option<(String, Algorithm, EncodingKey)>,
    pub(crate) verifiers: Vec<VerifyingKey>,
    jwks: Vec<Jwk>,
}

impl KeySet {
    /// Only the project secret.
    pub fn secret_only() -> Self {
        Self {
            signer: None,
            verifiers: Vec::new(),
            jwks: Vec::new(),
        }
    }

    /// Reads the configured keys; errors name the key and what is wrong.
    pub fn load(configs: &[SigningKeyConfig]) -> Result<Self, String> {
        let mut set = Self::secret_only();
        for (index, config) in configs.iter().enumerate() {
            let kid = config.kid.trim();
            if kid.is_empty() || set.verifiers.iter().any(|v| v.kid == kid) {
                return Err(format!(
                    "auth.signing_keys: kid {kid:?} is empty or repeated"
                ));
            }
            let pem = std::fs::read(&config.private_key_file).map_err(|err| {
                format!(
                    "auth.signing_keys {kid}: reading {}: {err}",
                    config.private_key_file.display()
                )
            })?;
            let algorithm = match config.algorithm.as_str() {
                "RS256" => Algorithm::RS256,
                "ES256" => Algorithm::ES256,
                other => {
                    return Err(format!(
                        "auth.signing_keys {kid}: algorithm {other:?} is not RS256 or ES256"
                    ));
                }
            };
            let encoding = match algorithm {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                _ => EncodingKey::from_ec_pem(&pem),
            }
            .map_err(|err| {
                format!("auth.signing_keys {kid}: not a {algorithm:?} private key: {err}")
            })?;
            let mut jwk = Jwk::from_encoding_key(&encoding, algorithm)
                .map_err(|err| format!("auth.signing_keys {kid}: {err}"))?;
            jwk.common.key_id = Some(kid.to_owned());
            jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
            let decoding = DecodingKey::from_jwk(&jwk)
                .map_err(|err| format!("auth.signing_keys {kid}: {err}"))?;
            if index == 0 {
                set.signer = Some((kid.to_owned(), algorithm, encoding));
            }
            set.verifiers.push(VerifyingKey {
                kid: kid.to_owned(),
                algorithm,
                key: decoding,
            });
            set.jwks.push(jwk);
        }
        Ok(set)
    }

    /// The public keys, as `/.well-known/jwks.json` lists them.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": self.jwks})
    }

    /// The key an incoming token names, pinned to its algorithm.
    pub(crate) fn verifier(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifiers.iter().find(|v| v.kid == kid)
    }
}

/// Whether the secret is usable as a HS256 key at all (always: checked at parse).
pub(crate) fn secret_key(secret: &JwtSecret) -> DecodingKey {
    DecodingKey::from_secret(secret.expose().as_bytes())
}
