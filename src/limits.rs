//! Rate limits: fixed windows counted per key (user or IP, plus route), and the
//! failed-login blocker. In memory, per instance, like Rocket.Chat's own limiter.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const SHARDS: usize = 16;

/// The outcome of one counted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Time left until the window resets.
    pub reset_in: Duration,
}

struct Window {
    started: Instant,
    count: u64,
}

/// Counts calls per key in fixed windows.
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<String, Window>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl RateLimiter {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Window>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Counts one call for `key`; allowed while at most `limit` calls fall in the window.
    pub fn hit(&self, key: &str, limit: u64, window: Duration, now: Instant) -> Decision {
        let mut map = self.shard(key).lock();
        let w = map.entry(key.to_string()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= window {
            w.started = now;
            w.count = 0;
        }
        let reset_in = window.saturating_sub(now.duration_since(w.started));
        if w.count >= limit {
            return Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_in,
            };
        }
        w.count += 1;
        Decision {
            allowed: true,
            limit,
            remaining: limit - w.count,
            reset_in,
        }
    }

    /// Forgets windows that ended long ago, so memory does not grow with every key seen.
    pub fn sweep(&self, older_than: Duration, now: Instant) {
        for shard in &self.shards {
            shard
                .lock()
                .retain(|_, w| now.duration_since(w.started) < older_than);
        }
    }
}

/// Counts failed logins per username and per IP; blocks further attempts for a while
/// once the count is reached (Rocket.Chat's Block_Multiple_Failed_Logins_*).
#[derive(Default)]
pub struct LoginGuard {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginGuard {
    /// Is `key` blocked: `attempts` failures within the last `window`?
    pub fn blocked(&self, key: &str, attempts: usize, window: Duration, now: Instant) -> bool {
        let mut map = self.failures.lock();
        let Some(list) = map.get_mut(key) else {
            return false;
        };
        list.retain(|t| now.duration_since(*t) < window);
        attempts > 0 && list.len() >= attempts
    }

    pub fn fail(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock();
        let list = map.entry(key.to_string()).or_default();
        list.push(now);
        // Keep the list short: only the recent failures can ever matter.
        if list.len() > 1024 {
            list.drain(..512);
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().remove(key);
    }

    pub fn sweep(&self, window: Duration, now: Instant) {
        self.failures.lock().retain(|_, list| {
            list.retain(|t| now.duration_since(*t) < window);
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_and_resets() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        for i in 0..3 {
            let d = rl.hit("k", 3, w, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let d = rl.hit("k", 3, w, t0 + Duration::from_secs(10));
        assert!(!d.allowed);
        assert_eq!(d.reset_in, Duration::from_secs(50));
        assert!(rl.hit("other", 3, w, t0).allowed);
        assert!(rl.hit("k", 3, w, t0 + Duration::from_secs(61)).allowed);
    }

    #[test]
    fn login_guard_blocks_after_attempts_and_forgets() {
        let g = LoginGuard::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(300);
        for _ in 0..3 {
            assert!(!g.blocked("u:alice", 3, w, t0));
            g.fail("u:alice", t0);
        }
        assert!(g.blocked("u:alice", 3, w, t0));
        assert!(!g.blocked("u:alice", 3, w, t0 + Duration::from_secs(301)));
        g.fail("u:bob", t0);
        g.clear("u:bob");
        assert!(!g.blocked("u:bob", 1, w, t0));
    }
}
