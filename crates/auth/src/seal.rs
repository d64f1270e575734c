//! Secrets Galley must read back (MFA factors' TOTP seeds) are stored sealed:
//! ChaCha20-Poly1305 under a key derived from the project secret, with a fresh 96-bit
//! nonce each time and the owning row's id as associated data, so a sealed value moved
//! to another row does not open. Stored as `nonce ‖ ciphertext ‖ tag`.
//!
//! The key follows the project secret: replacing the secret (which already signs every
//! session out and revokes the API keys) leaves sealed values unreadable, and the
//! factors holding them must be enrolled again.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::JwtSecret;

const NONCE_BYTES: usize = 12;

#[derive(Clone)]
pub(crate) struct SealKey(Key);

impl SealKey {
    pub(crate) fn derive(secret: &JwtSecret) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"galley sealed secrets v1");
        Self(mac.finalize().into_bytes())
    }

    pub(crate) fn seal(&self, plaintext: &[u8], bound_to: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: bound_to,
                },
            )
            .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext, if this key sealed `stored` for `bound_to` and it is unaltered.
    pub(crate) fn open(&self, stored: &[u8], bound_to: &[u8]) -> Option<Vec<u8>> {
        if stored.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = stored.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        ChaCha20Poly1305::new(&self.0)
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: bound_to,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_row() {
        let key = SealKey::derive(&JwtSecret::generate());
        let sealed = key.seal(b"JBSWY3DPEHPK3PXP", b"row-1");
        assert_eq!(
            key.open(&sealed, b"row-1").as_deref(),
            Some(&b"JBSWY3DPEHPK3PXP"[..])
        );
        assert_eq!(key.open(&sealed, b"row-2"), None);
        assert_eq!(
            SealKey::derive(&JwtSecret::generate()).open(&sealed, b"row-1"),
            None
        );
        let mut altered = sealed.clone();
        altered[NONCE_BYTES] ^= 1;
        assert_eq!(key.open(&altered, b"row-1"), None);
        assert_ne!(
            key.seal(b"JBSWY3DPEHPK3PXP", b"row-1"),
            sealed,
            "fresh nonce each time"
        );
        assert_eq!(key.open(b"short", b"row-1"), None);
    }
}
