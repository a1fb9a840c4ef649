//! A short, bounded memory of accepted tokens, keyed by the SHA-256 of the
//! token (the token itself is never stored), so that a burst of requests
//! with the same token costs one verification (a TokenReview round trip, or
//! an RSA/ECDSA signature check).
//!
//! Only acceptances are remembered, each for at most the configured TTL and
//! never past the expiry the authenticator gives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::digest::{SHA256, digest};

use super::Caller;

/// How long and how many accepted tokens are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long an acceptance is reused. Zero disables the cache.
    pub ttl: Duration,
    /// The most tokens remembered at once.
    pub max_entries: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            max_entries: 4096,
        }
    }
}

impl CacheSettings {
    /// No caching: every request is verified.
    pub const DISABLED: CacheSettings = CacheSettings {
        ttl: Duration::ZERO,
        max_entries: 0,
    };
}

/// The SHA-256 of a token: what the cache keys on.
pub type TokenHash = [u8; 32];

/// Hashes a token for [`TokenCache`].
pub fn token_hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// Accepted tokens (by hash) and who they named.
#[derive(Debug)]
pub struct TokenCache {
    settings: CacheSettings,
    entries: Mutex<HashMap<TokenHash, (Caller, Instant)>>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new(settings: CacheSettings) -> Self {
        Self {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, (Caller, Instant)>> {
        match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The caller remembered for this token, if still fresh at `now`.
    pub fn get(&self, key: &TokenHash, now: Instant) -> Option<Caller> {
        if self.settings.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        match entries.get(key) {
            Some((caller, expires)) if *expires > now => Some(caller.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers an acceptance from `now` for the TTL, but not past
    /// `not_after` (the token's own expiry) when given.
    pub fn put(&self, key: TokenHash, caller: Caller, now: Instant, not_after: Option<Instant>) {
        if self.settings.ttl.is_zero() || self.settings.max_entries == 0 {
            return;
        }
        let mut expires = now + self.settings.ttl;
        if let Some(not_after) = not_after {
            expires = expires.min(not_after);
        }
        if expires <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.settings.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, (_, e)| *e > now);
        }
        if entries.len() >= self.settings.max_entries && !entries.contains_key(&key) {
            // Still full of live entries: drop the one closest to expiry.
            if let Some(oldest) = entries.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| *k) {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (caller, expires));
    }

    /// Forgets everything (the trusted keys changed).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_expiring_and_capped_by_the_token_expiry() {
        let cache = TokenCache::new(CacheSettings {
            ttl: Duration::from_secs(30),
            max_entries: 2,
        });
        let now = Instant::now();
        let s = Duration::from_secs;
        cache.put([1; 32], Caller::new("a", "1"), now, None);
        cache.put([2; 32], Caller::new("a", "2"), now + s(1), None);
        cache.put([3; 32], Caller::new("a", "3"), now + s(2), None);
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.get(&[1; 32], now),
            None,
            "the oldest entry was evicted"
        );
        assert_eq!(cache.get(&[3; 32], now), Some(Caller::new("a", "3")));
        assert_eq!(cache.get(&[3; 32], now + s(60)), None, "expired");

        // A token expiring in 5 s is not remembered for 30 s.
        cache.put([4; 32], Caller::new("a", "4"), now, Some(now + s(5)));
        assert!(cache.get(&[4; 32], now + s(4)).is_some());
        assert!(cache.get(&[4; 32], now + s(6)).is_none());
        // An already expired token is not remembered at all.
        cache.put([5; 32], Caller::new("a", "5"), now, Some(now));
        assert!(cache.get(&[5; 32], now).is_none());

        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn disabled_remembers_nothing_and_hashes_are_sha256() {
        let cache = TokenCache::new(CacheSettings::DISABLED);
        let now = Instant::now();
        cache.put(token_hash("t"), Caller::new("a", "b"), now, None);
        assert!(cache.get(&token_hash("t"), now).is_none());
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            token_hash("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "the key is the token's SHA-256"
        );
    }
}
