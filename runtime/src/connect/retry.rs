//! Retry timing: exponential backoff with full jitter, honouring a remote's retry-after, bounded by attempts
//! and elapsed time.

use std::time::Duration;

/// The retry policy of a connector (`errors.retry.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay's upper bound.
    pub initial: Duration,
    /// The largest delay.
    pub max_delay: Duration,
    /// Most delivery attempts per record (0: unlimited).
    pub max_attempts: u32,
    /// Most time spent retrying one record (zero: unlimited).
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempt` (1 = the first retry): uniformly random in [0, min(max, initial·2^(n-1))]
    /// (full jitter: `random` is a uniform draw over `u64`), but at least what the remote asked for.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let cap = self.initial.saturating_mul(1u32 << exp).min(self.max_delay);
        // `random` is a uniform fraction of the cap (0 → none of it, u64::MAX → all of it).
        let nanos = cap.as_nanos();
        let jittered = Duration::from_nanos(
            u64::try_from(nanos * u128::from(random) / u128::from(u64::MAX)).unwrap_or(u64::MAX),
        );
        match retry_after {
            Some(r) => jittered.max(r),
            None => jittered,
        }
    }

    /// Whether another attempt is allowed after `attempts` attempts over `elapsed`.
    pub fn allows(&self, attempts: u32, elapsed: Duration) -> bool {
        let by_count = self.max_attempts == 0 || attempts < self.max_attempts;
        let by_time = self.max_elapsed.is_zero() || elapsed < self.max_elapsed;
        by_count && by_time
    }
}

/// A fast non-cryptographic random number for jitter.
pub fn random() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        max_attempts: 5,
        max_elapsed: Duration::from_secs(60),
    };

    #[test]
    fn full_jitter_within_the_exponential_cap() {
        for attempt in 1..10 {
            let cap = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(2));
            for r in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
                assert!(P.delay(attempt, None, r) <= cap, "{attempt} {r}");
            }
        }
        assert_eq!(P.delay(1, None, 0), Duration::ZERO);
        // The whole cap at the top of the range: 100 ms doubling up to 2 s.
        let full: Vec<u128> = (1..7)
            .map(|a| P.delay(a, None, u64::MAX).as_millis())
            .collect();
        assert_eq!(full, vec![100, 200, 400, 800, 1600, 2000]);
        assert_eq!(
            P.delay(3, None, u64::MAX / 2).as_millis(),
            199,
            "half the range, about half the cap"
        );
        assert_eq!(
            P.delay(1, Some(Duration::from_secs(7)), 5),
            Duration::from_secs(7),
            "retry-after wins"
        );
    }

    #[test]
    fn bounded_by_attempts_and_time() {
        assert!(P.allows(4, Duration::from_secs(1)));
        assert!(!P.allows(5, Duration::from_secs(1)));
        assert!(!P.allows(1, Duration::from_secs(61)));
        let unlimited = RetryPolicy {
            max_attempts: 0,
            max_elapsed: Duration::ZERO,
            ..P
        };
        assert!(unlimited.allows(1_000_000, Duration::from_secs(1_000_000)));
    }
}
