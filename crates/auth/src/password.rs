//! Passwords: a length policy and a list of common breached passwords, and argon2id
//! hashing run off the async executor with bounded concurrency, so a storm of logins
//! queues for the hashing threads instead of starving every other request.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// The password rules: a length in characters and bytes, and no common password.
/// No composition rules (NIST SP 800-63B).
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_bytes: usize,
    /// Refuse the commonest breached passwords (`auth.password_blocklist`).
    pub blocklist: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_bytes: 128,
            blocklist: true,
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
        if self.blocklist && COMMON.contains(password.to_lowercase().as_str()) {
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

/// Hashes and verifies on the blocking thread pool, at most `permits` at a time, each in
/// one of `permits` reusable buffers: the memory hashing takes is bounded by construction
/// (`permits` × the cost's memory), not by what the allocator keeps of per-call buffers.
#[derive(Clone)]
pub struct PasswordHasherPool {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    slots: Arc<Slots>,
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

/// How long a hashing buffer may lie unused before it is freed.
const IDLE: Duration = Duration::from_secs(10);

/// What the hashing buffers hold now and held at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashMemory {
    /// Buffers that exist (busy or kept for reuse).
    pub buffers: usize,
    /// Buffers hashing right now.
    pub busy: usize,
    /// The most buffers that ever existed at once.
    pub peak_buffers: usize,
    /// The size of one buffer in bytes.
    pub buffer_bytes: usize,
}

/// The hashing buffers: made on first use, kept while hashing goes on, freed when idle.
/// Their number never exceeds the permits, since a buffer is only taken under a permit.
struct Slots {
    blocks: usize,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    free: Vec<(Box<[Block]>, Instant)>,
    buffers: usize,
    busy: usize,
    peak_buffers: usize,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self) -> Box<[Block]> {
        let mut state = self.lock();
        state.busy += 1;
        if let Some((buffer, _)) = state.free.pop() {
            return buffer;
        }
        state.buffers += 1;
        state.peak_buffers = state.peak_buffers.max(state.buffers);
        drop(state);
        vec![Block::default(); self.blocks].into_boxed_slice()
    }

    fn give_back(&self, buffer: Box<[Block]>) {
        let mut state = self.lock();
        state.busy -= 1;
        state.free.push((buffer, Instant::now()));
    }

    /// Frees the buffers unused for `idle` or longer.
    fn release_idle(&self, idle: Duration) {
        let mut state = self.lock();
        let before = state.free.len();
        state.free.retain(|(_, since)| since.elapsed() < idle);
        state.buffers -= before - state.free.len();
    }

    fn memory(&self) -> HashMemory {
        let state = self.lock();
        HashMemory {
            buffers: state.buffers,
            busy: state.busy,
            peak_buffers: state.peak_buffers,
            buffer_bytes: self.blocks * Block::SIZE,
        }
    }
}

impl PasswordHasherPool {
    pub fn new(cost: HashCost, permits: usize) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|err| HashError::Hash(err.to_string()))?;
        let slots = Arc::new(Slots {
            blocks: params.block_count(),
            state: Mutex::new(SlotState::default()),
        });
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut buffer = slots.take();
        let dummy = hash_with(
            &argon,
            &random_salt(),
            "galley: no such account",
            &mut buffer,
        );
        slots.give_back(buffer);
        slots.release_idle(Duration::ZERO);
        // Frees idle buffers for as long as the pool lives, where there is a runtime (a
        // one-shot command has none, and exits soon anyway).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&slots);
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(IDLE / 2);
                loop {
                    ticks.tick().await;
                    let Some(slots) = weak.upgrade() else { break };
                    slots.release_idle(IDLE);
                }
            });
        }
        Ok(Self {
            argon,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            slots,
            dummy: Arc::new(dummy?),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=...`) of a password with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let argon = self.argon.clone();
        let password = password.to_owned();
        let salt = random_salt();
        self.blocking(move |memory| hash_with(&argon, &salt, &password, memory))
            .await?
    }

    /// Whether `password` matches `hash`. Without a hash (no such account, or one with no
    /// password) the dummy hash is checked instead, and the answer is false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| (*self.dummy).clone(), str::to_owned);
        let password = password.to_owned();
        let matched = self
            .blocking(move |memory| verify_with(&password, &hash, memory))
            .await
            .unwrap_or(false);
        known && matched
    }

    /// What the hashing buffers hold.
    pub fn memory(&self) -> HashMemory {
        self.slots.memory()
    }

    /// Frees every buffer not hashing now (the pool frees idle ones by itself after
    /// a few seconds).
    pub fn release_idle(&self) {
        self.slots.release_idle(Duration::ZERO);
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Join)?;
        let slots = Arc::clone(&self.slots);
        tokio::task::spawn_blocking(move || {
            let mut buffer = slots.take();
            let result = work(&mut buffer);
            slots.give_back(buffer);
            result
        })
        .await
        .map_err(|_| HashError::Join)
    }
}

fn random_salt() -> SaltString {
    let bytes: [u8; 16] = rand::random();
    // 16 random bytes always encode to a valid salt.
    SaltString::encode_b64(&bytes).expect("16 bytes make a valid salt")
}

/// Runs argon2 over `memory`, or, for a hash made at a higher cost than the buffers were
/// sized for (the cost was lowered since), over a buffer of its own for this call.
fn argon_into(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut [Block],
) -> Result<(), argon2::Error> {
    let needed = argon.params().block_count();
    match memory.get_mut(..needed) {
        Some(memory) => argon.hash_password_into_with_memory(password, salt, out, memory),
        None => argon.hash_password_into(password, salt, out),
    }
}

fn hash_with(
    argon: &Argon2<'_>,
    salt: &SaltString,
    password: &str,
    memory: &mut [Block],
) -> Result<String, HashError> {
    let failed = |err: &dyn std::fmt::Display| HashError::Hash(err.to_string());
    let params = argon.params();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|err| failed(&err))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon_into(argon, password.as_bytes(), salt_bytes, &mut out, memory)
        .map_err(|err| failed(&err))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|err| failed(&err))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|err| failed(&err))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` gives `phc` under the algorithm, version and cost `phc` names.
fn verify_with(password: &str, phc: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if argon_into(&argon, password.as_bytes(), salt_bytes, &mut out, memory).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
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
        // GoTrue's lowest minimum, and the blocklist off: both the operator's choice.
        let weaker = PasswordPolicy {
            min_chars: 6,
            blocklist: false,
            ..PasswordPolicy::default()
        };
        assert!(weaker.check("123456").is_ok());
        assert!(weaker.check("abcde").is_err());
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

    #[tokio::test]
    async fn hashes_made_elsewhere_at_another_cost_verify() {
        // A cheaper and a costlier hash than the pool's buffers were sized for, made by
        // the argon2 crate's own PHC path.
        use argon2::password_hash::PasswordHasher;
        let pool = PasswordHasherPool::new(
            HashCost {
                memory_kib: 8 * 1024,
                iterations: 1,
                parallelism: 1,
            },
            1,
        )
        .expect("pool");
        for (memory_kib, parallelism) in [(4 * 1024, 1), (12 * 1024, 2)] {
            let params = Params::new(memory_kib, 1, parallelism, None).expect("params");
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            let hash = argon
                .hash_password(b"correct horse", &random_salt())
                .expect("hash")
                .to_string();
            assert!(pool.verify("correct horse", Some(&hash)).await, "{hash}");
            assert!(!pool.verify("correct horsf", Some(&hash)).await, "{hash}");
        }
        // And the pool's own hashes are what the crate's verifier accepts.
        use argon2::password_hash::PasswordVerifier;
        let own = pool.hash("correct horse").await.expect("hash");
        let parsed = PasswordHash::new(&own).expect("PHC");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hashing_never_holds_more_buffers_than_permits() {
        let cost = HashCost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let pool = PasswordHasherPool::new(cost, 3).expect("pool");
        assert_eq!(pool.memory().buffers, 0, "none made before they are needed");
        let stored = pool.hash("correct horse").await.expect("hash");
        let mut work = tokio::task::JoinSet::new();
        for n in 0..48 {
            let pool = pool.clone();
            let stored = stored.clone();
            work.spawn(async move {
                if n % 2 == 0 {
                    pool.hash(&format!("password {n}")).await.is_ok()
                } else {
                    pool.verify("correct horse", Some(&stored)).await
                }
            });
        }
        while let Some(done) = work.join_next().await {
            assert!(done.expect("joined"), "every hash and verify succeeds");
        }
        let memory = pool.memory();
        assert!(
            memory.peak_buffers >= 1 && memory.peak_buffers <= 3,
            "{memory:?}"
        );
        assert_eq!(memory.busy, 0);
        assert_eq!(memory.buffer_bytes, 1024 * 1024);
        pool.release_idle();
        assert_eq!(pool.memory().buffers, 0, "idle buffers are freed");
    }
}
