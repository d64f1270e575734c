//! Rate limits for the auth endpoints: token buckets per client IP, in this instance's
//! memory (they bound what one client costs this instance; behind a load balancer each
//! instance counts its own share), and per account, in PostgreSQL
//! (`galley.rate_limits`), so the limit that protects an account from password guessing
//! is the same however many instances share the database. The client IP is the peer's
//! address, or, when the peer is a configured trusted proxy, the nearest untrusted
//! address in `X-Forwarded-For`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};

/// `[ratelimit]`: auth requests allowed per five minutes (a burst of that many, refilled
/// evenly).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// `/token` (password and refresh grants), per IP.
    pub token_per_ip: u32,
    /// `/signup`, `/recover`, `/resend`, per IP.
    pub email_per_ip: u32,
    /// `/verify`, per IP.
    pub verify_per_ip: u32,
    /// Password sign-ins, recoveries and resends for one email address from one client:
    /// past it that client is refused (429) for that address, and no one else is.
    pub per_account: u32,
    /// The same for one address from all clients together: past it every attempt is
    /// slowed (by up to `MAX_SLOWDOWN`), never refused, so no third party can lock an
    /// owner out of their account.
    pub per_account_all_clients: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            token_per_ip: 150,
            email_per_ip: 30,
            verify_per_ip: 30,
            per_account: 30,
            per_account_all_clients: 300,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    Token,
    Email,
    Verify,
    Account,
    /// One address from every client: slows, never refuses.
    AccountAllClients,
    /// Storage uploads by one user (or, without one, one client address).
    Upload,
    /// Storage uploads by everyone, on this instance.
    UploadAll,
}

impl Bucket {
    /// The bucket's name in `galley.rate_limits`.
    fn name(self) -> &'static str {
        match self {
            Bucket::Token => "token",
            Bucket::Email => "email",
            Bucket::Verify => "verify",
            Bucket::Account => "account",
            Bucket::AccountAllClients => "account_all_clients",
            Bucket::Upload => "upload",
            Bucket::UploadAll => "upload_all",
        }
    }
}

const WINDOW: Duration = Duration::from_secs(300);
/// Past this many buckets, idle full ones are forgotten.
const PRUNE_AT: usize = 10_000;

struct State {
    tokens: f64,
    updated: Instant,
}

pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    /// Storage uploads per minute: by one user, by everyone.
    uploads: (u32, u32),
    buckets: Mutex<HashMap<(Bucket, String), State>>,
    /// Shared takes since the last prune of idle shared buckets.
    shared_takes: std::sync::atomic::AtomicU32,
}

/// One take from a shared bucket, refilled evenly up to its capacity, in one statement
/// (the row lock orders concurrent takes from every instance). `allowed` records whether
/// this take found a whole token.
const TAKE_SHARED: &str = "\
    INSERT INTO galley.rate_limits AS r (bucket, key, tokens, allowed, updated_at) \
    VALUES ($1, $2, $3::float8 - 1, true, now()) \
    ON CONFLICT (bucket, key) DO UPDATE SET \
      tokens = CASE WHEN least($3::float8, r.tokens + extract(epoch FROM now() - r.updated_at)::float8 * $4::float8) >= 1 \
                    THEN least($3::float8, r.tokens + extract(epoch FROM now() - r.updated_at)::float8 * $4::float8) - 1 \
                    ELSE least($3::float8, r.tokens + extract(epoch FROM now() - r.updated_at)::float8 * $4::float8) END, \
      allowed = least($3::float8, r.tokens + extract(epoch FROM now() - r.updated_at)::float8 * $4::float8) >= 1, \
      updated_at = now() \
    RETURNING allowed, tokens";

/// A take from a bucket that lends: an empty bucket goes into debt (down to minus its
/// capacity) instead of refusing, and the debt is how long this take must wait.
const TAKE_SHARED_SLOWING: &str = "\
    INSERT INTO galley.rate_limits AS r (bucket, key, tokens, allowed, updated_at) \
    VALUES ($1, $2, $3::float8 - 1, true, now()) \
    ON CONFLICT (bucket, key) DO UPDATE SET \
      tokens = greatest(-$3::float8, least($3::float8, r.tokens + extract(epoch FROM now() - r.updated_at)::float8 * $4::float8) - 1), \
      allowed = least($3::float8, r.tokens + extract(epoch FROM now() - r.updated_at)::float8 * $4::float8) >= 1, \
      updated_at = now() \
    RETURNING allowed, tokens";

/// The longest a take from a lending bucket waits.
pub(crate) const MAX_SLOWDOWN: Duration = Duration::from_secs(5);

/// A bucket untouched for a whole window is full again: its row can go.
const PRUNE_SHARED: &str =
    "DELETE FROM galley.rate_limits WHERE updated_at < now() - make_interval(secs => $1)";

/// Shared takes between two prunes.
const PRUNE_EVERY: u32 = 1_000;

impl RateLimiter {
    /// The same limits, with storage's upload rates (per minute: by one user, by all).
    pub(crate) fn with_uploads(&self, per_user: u32, all: u32) -> Self {
        let mut limiter = Self::new(self.config.clone());
        limiter.uploads = (per_user, all);
        limiter
    }

    pub(crate) fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            uploads: (u32::MAX / 5, u32::MAX / 5),
            buckets: Mutex::new(HashMap::new()),
            shared_takes: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Takes one request from a bucket every instance shares (in `galley.rate_limits`);
    /// `Ok(Err(wait))` when it is empty. The key is stored as a SHA-256 digest, so the
    /// table holds no email address.
    pub(crate) async fn take_shared(
        &self,
        pool: &galley_db::Pool,
        bucket: Bucket,
        key: &str,
    ) -> Result<Result<(), Duration>, galley_db::DbError> {
        let (allowed, tokens, rate) = self.take_row(pool, TAKE_SHARED, bucket, key).await?;
        if allowed {
            Ok(Ok(()))
        } else {
            Ok(Err(Duration::from_secs_f64(
                ((1.0 - tokens) / rate).max(1.0),
            )))
        }
    }

    /// Takes one request from a shared bucket that lends rather than refuses: how long
    /// this request should wait (zero while the bucket has tokens, at most
    /// [`MAX_SLOWDOWN`]).
    pub(crate) async fn take_shared_slowing(
        &self,
        pool: &galley_db::Pool,
        bucket: Bucket,
        key: &str,
    ) -> Result<Duration, galley_db::DbError> {
        let (_, tokens, rate) = self
            .take_row(pool, TAKE_SHARED_SLOWING, bucket, key)
            .await?;
        if tokens >= 0.0 {
            return Ok(Duration::ZERO);
        }
        Ok(Duration::from_secs_f64(-tokens / rate).min(MAX_SLOWDOWN))
    }

    /// One sign-in attempt at `account` from `client`: `Ok(Err(wait))` when this
    /// client's bucket for the account is empty (a guesser is stopped); otherwise how long
    /// the attempt should wait because every client together is over the account's
    /// ceiling (many guessers are held back, and the owner, from their own address, still
    /// gets in).
    pub(crate) async fn take_account(
        &self,
        pool: &galley_db::Pool,
        account: &str,
        client: &str,
    ) -> Result<Result<Duration, Duration>, galley_db::DbError> {
        if let Err(wait) = self
            .take_shared(pool, Bucket::Account, &format!("{account}\u{0}{client}"))
            .await?
        {
            return Ok(Err(wait));
        }
        Ok(Ok(self
            .take_shared_slowing(pool, Bucket::AccountAllClients, account)
            .await?))
    }

    /// One take through `statement`: whether it found a token, the tokens left, and the
    /// bucket's refill rate per second.
    async fn take_row(
        &self,
        pool: &galley_db::Pool,
        statement: &str,
        bucket: Bucket,
        key: &str,
    ) -> Result<(bool, f64, f64), galley_db::DbError> {
        use sha2::Digest;
        let capacity = f64::from(self.capacity(bucket).max(1));
        let rate = capacity / WINDOW.as_secs_f64();
        let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        let client = pool.get().await?;
        let row = client
            .query_one(statement, &[&bucket.name(), &digest, &capacity, &rate])
            .await?;
        let taken = self
            .shared_takes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if taken % PRUNE_EVERY == PRUNE_EVERY - 1 {
            client
                .execute(PRUNE_SHARED, &[&WINDOW.as_secs_f64()])
                .await?;
        }
        Ok((row.get(0), row.get(1), rate))
    }

    fn capacity(&self, bucket: Bucket) -> u32 {
        match bucket {
            Bucket::Token => self.config.token_per_ip,
            Bucket::Email => self.config.email_per_ip,
            Bucket::Verify => self.config.verify_per_ip,
            Bucket::Account => self.config.per_account,
            Bucket::AccountAllClients => self.config.per_account_all_clients,
            // A rate per minute: the window holds five minutes' worth.
            Bucket::Upload => self.uploads.0.saturating_mul(5),
            Bucket::UploadAll => self.uploads.1.saturating_mul(5),
        }
    }

    /// Takes one request from the bucket; `Err` holds how long until one is free.
    pub(crate) fn take(&self, bucket: Bucket, key: &str) -> Result<(), Duration> {
        let capacity = f64::from(self.capacity(bucket).max(1));
        let rate = capacity / WINDOW.as_secs_f64();
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > PRUNE_AT {
            buckets.retain(|_, state| {
                state.tokens + now.duration_since(state.updated).as_secs_f64() * rate < capacity
            });
        }
        let state = buckets.entry((bucket, key.to_owned())).or_insert(State {
            tokens: capacity,
            updated: now,
        });
        let refilled =
            (state.tokens + now.duration_since(state.updated).as_secs_f64() * rate).min(capacity);
        state.updated = now;
        if refilled >= 1.0 {
            state.tokens = refilled - 1.0;
            Ok(())
        } else {
            state.tokens = refilled;
            Err(Duration::from_secs_f64(((1.0 - refilled) / rate).max(1.0)))
        }
    }

    /// The client's address: the peer, unless it is a trusted proxy, in which case the
    /// nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub(crate) fn client_ip(&self, req: &HttpRequest) -> String {
        let peer = req.peer_addr().map(|addr| addr.ip());
        let Some(peer) = peer else {
            return "unknown".to_owned();
        };
        if !self.config.trusted_proxies.contains(&peer) {
            return peer.to_string();
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        forwarded
            .iter()
            .rev()
            .find(|ip| !self.config.trusted_proxies.contains(ip))
            .unwrap_or(&peer)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(RateLimitConfig {
            token_per_ip: 3,
            ..RateLimitConfig::default()
        });
        for _ in 0..3 {
            assert!(limiter.take(Bucket::Token, "1.2.3.4").is_ok());
        }
        let wait = limiter.take(Bucket::Token, "1.2.3.4").expect_err("limited");
        assert!(wait >= Duration::from_secs(1) && wait <= WINDOW, "{wait:?}");
        assert!(limiter.take(Bucket::Token, "5.6.7.8").is_ok(), "another IP");
        assert!(
            limiter.take(Bucket::Email, "1.2.3.4").is_ok(),
            "another bucket"
        );
    }
}
