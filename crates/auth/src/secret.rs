//! The project's JWT signing secret: generated strong, refused when weak.

use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};

/// Fewer bytes than this is refused: HS256 wants a key at least as long as its output.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Secrets that appear in tutorials and example configs; anyone could sign tokens with them.
const PLACEHOLDERS: &[&str] = &[
    "super-secret-jwt-token-with-at-least-32-characters-long",
    "your-super-secret-jwt-token-with-at-least-32-characters-long",
    "your-super-secret-jwt-token-with-at-least-32-characters",
    "changeme-changeme-changeme-changeme",
    "change-me-to-a-long-random-secret-string",
    "replace-me-with-a-long-random-secret-string",
    "secretsecretsecretsecretsecretsecret",
    "0000000000000000000000000000000000000000000000000000000000000000",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "the JWT secret is {len} bytes; it must be at least {MIN_SECRET_BYTES} (generate one with `openssl rand -hex 32`)"
    )]
    TooShort { len: usize },
    #[error(
        "the JWT secret is a well-known example value; generate one with `openssl rand -hex 32`"
    )]
    Placeholder,
    #[error("the JWT secret repeats one character; generate one with `openssl rand -hex 32`")]
    NoEntropy,
}

/// A signing secret that passed [`JwtSecret::parse`]. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct JwtSecret(SecretString);

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret([redacted])")
    }
}

impl JwtSecret {
    /// Accepts a configured secret, refusing short, placeholder and constant ones.
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { len: secret.len() });
        }
        let lower = secret.to_ascii_lowercase();
        if PLACEHOLDERS.contains(&lower.as_str()) {
            return Err(SecretError::Placeholder);
        }
        let mut chars = secret.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err(SecretError::NoEntropy);
        }
        Ok(Self(SecretString::from(secret.to_owned())))
    }

    /// 256 bits from the operating system's generator, hex-encoded (64 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random generator is available");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(SecretString::from(hex))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_placeholder_and_constant_secrets_are_refused() {
        assert_eq!(
            JwtSecret::parse("short").unwrap_err(),
            SecretError::TooShort { len: 5 }
        );
        assert_eq!(
            JwtSecret::parse("super-secret-jwt-token-with-at-least-32-characters-long")
                .unwrap_err(),
            SecretError::Placeholder
        );
        assert_eq!(
            JwtSecret::parse(&"a".repeat(40)).unwrap_err(),
            SecretError::NoEntropy
        );
        assert!(JwtSecret::parse("4f0c2b0f9a0e4c1b8f7d6e5a4b3c2d1e0f9a8b7c").is_ok());
    }

    #[test]
    fn generated_secrets_are_256_bits_and_distinct() {
        let a = JwtSecret::generate();
        let b = JwtSecret::generate();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert!(JwtSecret::parse(a.expose()).is_ok());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secret = JwtSecret::generate();
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
