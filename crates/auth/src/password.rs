//! Passwords: a length policy and a list of common breached passwords, and argon2id
//! hashing run off the async executor with bounded concurrency, so a storm of logins
//! queues for the hashing threads instead of starving every other request.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// The password rules: a length in characters and bytes, and no common password.
/// No composition rules (NIST SP 800-63B).
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_bytes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_bytes: 128,
        }
    }
}

/// Why a password is refused: GoTrue's `weak_password` reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakPassword {
    pub message: String,
    /// `length` or `pwned`.
    pub reasons: Vec<&'static str>,
}

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect()
});

impl PasswordPolicy {
    /// Checks a password against the rules. Nothing is truncated: a password over the
    /// byte limit is refused, not shortened.
    pub fn check(&self, password: &str) -> Result<(), WeakPassword> {
        let chars = password.chars().count();
        if chars < self.min_chars || password.len() > self.max_bytes {
            return Err(WeakPassword {
                message: format!(
                    "Password should be at least {} characters and at most {} bytes.",
                    self.min_chars, self.max_bytes
                ),
                reasons: vec!["length"],
            });
        }
        if COMMON.contains(password.to_lowercase().as_str()) {
            return Err(WeakPassword {
                message:
                    "Password is known to be weak and easy to guess, please choose a different one."
                        .to_owned(),
                reasons: vec!["pwned"],
            });
        }
        Ok(())
    }
}

/// argon2id cost: memory in KiB, iterations, lanes. The default is OWASP's minimum
/// (m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies on the blocking thread pool, at most `permits` at a time.
#[derive(Clone)]
pub struct PasswordHasherPool {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// A hash of nothing anyone knows: verified against when the account does not exist,
    /// so a login for an unknown email takes as long as one for a known email.
    dummy: Arc<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task stopped")]
    Join,
}

impl PasswordHasherPool {
    pub fn new(cost: HashCost, permits: usize) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|err| HashError::Hash(err.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = hash_with(&argon, &random_salt(), "galley: no such account")?;
        Ok(Self {
            argon,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            dummy: Arc::new(dummy),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=...`) of a password with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let argon = self.argon.clone();
        let password = password.to_owned();
        let salt = random_salt();
        self.blocking(move || hash_with(&argon, &salt, &password))
            .await?
    }

    /// Whether `password` matches `hash`. Without a hash (no such account, or one with no
    /// password) the dummy hash is checked instead, and the answer is false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| (*self.dummy).clone(), str::to_owned);
        let argon = self.argon.clone();
        let password = password.to_owned();
        let matched = self
            .blocking(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
        known && matched
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Join)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError::Join)
    }
}

fn random_salt() -> SaltString {
    let bytes: [u8; 16] = rand::random();
    // 16 random bytes always encode to a valid salt.
    SaltString::encode_b64(&bytes).expect("16 bytes make a valid salt")
}

fn hash_with(argon: &Argon2<'_>, salt: &SaltString, password: &str) -> Result<String, HashError> {
    argon
        .hash_password(password.as_bytes(), salt)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError::Hash(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_counts_characters_caps_bytes_and_refuses_common_passwords() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("short").unwrap_err().reasons, vec!["length"]);
        assert!(policy.check("ééééééé").is_err(), "7 characters");
        assert!(policy.check("éééééééé").is_ok(), "8 characters, 16 bytes");
        assert!(
            policy.check(&"x".repeat(129)).is_err(),
            "no silent truncation"
        );
        assert_eq!(policy.check("Password").unwrap_err().reasons, vec!["pwned"]);
        assert_eq!(policy.check("iloveyou").unwrap_err().reasons, vec!["pwned"]);
        assert!(policy.check("correct horse battery staple").is_ok());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_at_the_configured_cost_and_verify() {
        let pool = PasswordHasherPool::new(HashCost::default(), 2).expect("pool");
        let hash = pool.hash("correct horse").await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(pool.verify("correct horse", Some(&hash)).await);
        assert!(!pool.verify("wrong horse", Some(&hash)).await);
        assert!(!pool.verify("correct horse", None).await);
        assert!(!pool.verify("correct horse", Some("not a hash")).await);
    }
}
