//! Throttling of failed credentials (dashboard logins and API keys) per client
//! address, so a key cannot be guessed at speed. Each address may fail `BURST` times,
//! then once per `REFILL` (governor's GCRA decides); once over, every request from it
//! that carries credentials answers 429 with `Retry-After`, a right key included,
//! until the wait is over. Successes cost nothing.
//!
//! The address is the TCP peer: behind a reverse proxy every client shares the
//! proxy's address (headers such as `X-Forwarded-For` are not trusted: anyone can
//! write them).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failures an address may make at once.
pub const BURST: u32 = 10;
/// After the burst, one more failure is allowed per this long.
pub const REFILL: Duration = Duration::from_secs(6);

pub struct FailedAuthThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over their quota, and until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for FailedAuthThrottle {
    fn default() -> Self {
        Self::new(BURST, REFILL)
    }
}

impl FailedAuthThrottle {
    pub fn new(burst: u32, refill: Duration) -> Self {
        let quota = Quota::with_period(refill)
            .expect("a refill period above zero")
            .allow_burst(NonZeroU32::new(burst).expect("a burst above zero"));
        Self {
            limiter: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// How long `address` must still wait, if it is throttled now.
    pub fn wait(&self, address: IpAddr) -> Option<Duration> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&address)?;
        let now = Instant::now();
        if until > now {
            return Some(until - now);
        }
        blocked.remove(&address);
        None
    }

    /// Counts a failure of `address`; returns how long it must now wait when this
    /// failure was one too many.
    pub fn failed(&self, address: IpAddr) -> Option<Duration> {
        let not_until = self.limiter.check_key(&address).err()?;
        let wait = not_until
            .wait_time_from(DefaultClock::default().now())
            .max(Duration::from_secs(1));
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        blocked.retain(|_, until| *until > now);
        blocked.insert(address, now + wait);
        self.limiter.retain_recent();
        Some(wait)
    }
}

/// `Retry-After` in whole seconds, rounded up.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_failures_waits_and_others_do_not() {
        let throttle = FailedAuthThrottle::new(3, Duration::from_secs(60));
        let (one, two): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(throttle.failed(one), None);
            assert_eq!(throttle.wait(one), None);
        }
        let wait = throttle
            .failed(one)
            .expect("the fourth failure is one too many");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(throttle.wait(one).is_some());
        assert_eq!(throttle.wait(two), None);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
    }
}
