//! Limits shared by every partition of a sink: a rate (requests per second with a burst) and a concurrency
//! bound for the whole sink, and the same per key (per recipient, per provider). Rates are GCRA
//! ([`governor`]) on tokio's clock, so they follow a paused test clock; waiting never blocks a thread.
//!
//! Cancel-safety: dropping [`Limiter::acquire`] before it returns takes nothing (a rate cell is consumed
//! only when the call returns); dropping a [`Permit`] returns its concurrency slots.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Key, Kind, Parsed};

/// An instant of tokio's clock, for governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, other: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

/// Tokio's clock (pausable in tests), for governor.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

/// Key names are `&'static str`: each distinct generated name is leaked once, however often keys are listed.
fn intern(name: String) -> &'static str {
    static NAMES: std::sync::OnceLock<Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let Ok(mut names) = names.lock() else {
        return Box::leak(name.into_boxed_str());
    };
    if let Some(n) = names.get(name.as_str()) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

type Direct = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;
type Keyed =
    RateLimiter<String, HashMapStateStore<String>, TokioClock, NoOpMiddleware<TokioInstant>>;

/// A rate: `per_second` cells a second, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained cells per second.
    pub per_second: NonZeroU32,
    /// Cells allowed at once.
    pub burst: NonZeroU32,
}

impl Rate {
    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

/// What a [`Limiter`] bounds; `None` is no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitConfig {
    /// The rate of the whole sink.
    pub rate: Option<Rate>,
    /// Calls in flight across the whole sink.
    pub concurrency: Option<usize>,
    /// The rate of each key.
    pub per_key_rate: Option<Rate>,
    /// Calls in flight per key.
    pub per_key_concurrency: Option<usize>,
}

impl LimitConfig {
    /// The config keys of a limiter under `prefix` (e.g. `notify.limit`): `<prefix>.rate`,
    /// `<prefix>.burst`, `<prefix>.concurrency`, `<prefix>.per.key.rate`, `<prefix>.per.key.burst`,
    /// `<prefix>.per.key.concurrency` (0: no bound). `prefix` must be `'static` as key names are.
    pub fn keys(prefix: &'static str) -> Vec<Key> {
        let name = |suffix: &str| intern(format!("{prefix}.{suffix}"));
        vec![
            Key::optional(
                name("rate"),
                Kind::Int,
                "0",
                "limits",
                "Most calls per second across partitions (0: no limit).",
            ),
            Key::optional(
                name("burst"),
                Kind::Int,
                "0",
                "limits",
                "Calls allowed at once above the rate (0: the rate).",
            ),
            Key::optional(
                name("concurrency"),
                Kind::Int,
                "0",
                "limits",
                "Most calls in flight across partitions (0: no limit).",
            ),
            Key::optional(
                name("per.key.rate"),
                Kind::Int,
                "0",
                "limits",
                "Most calls per second per key, e.g. per recipient (0: no limit).",
            ),
            Key::optional(
                name("per.key.burst"),
                Kind::Int,
                "0",
                "limits",
                "Calls allowed at once per key above its rate (0: the rate).",
            ),
            Key::optional(
                name("per.key.concurrency"),
                Kind::Int,
                "0",
                "limits",
                "Most calls in flight per key (0: no limit).",
            ),
        ]
    }

    /// Reads the keys of [`LimitConfig::keys`].
    pub fn from_parsed(parsed: &Parsed, prefix: &str) -> LimitConfig {
        let int = |suffix: &str| parsed.int(&format!("{prefix}.{suffix}")).unwrap_or(0);
        let rate = |r: i64, b: i64| {
            let per_second = NonZeroU32::new(u32::try_from(r).ok()?)?;
            let burst = NonZeroU32::new(u32::try_from(b).unwrap_or(0)).unwrap_or(per_second);
            Some(Rate { per_second, burst })
        };
        let bound = |n: i64| usize::try_from(n).ok().filter(|n| *n > 0);
        LimitConfig {
            rate: rate(int("rate"), int("burst")),
            concurrency: bound(int("concurrency")),
            per_key_rate: rate(int("per.key.rate"), int("per.key.burst")),
            per_key_concurrency: bound(int("per.key.concurrency")),
        }
    }
}

/// A rate and concurrency limiter shared by the partitions of a sink. Cheap to share (`Arc`).
pub struct Limiter {
    rate: Option<Direct>,
    concurrency: Option<Arc<Semaphore>>,
    per_key_rate: Option<Keyed>,
    per_key_concurrency: Option<usize>,
    per_key_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

/// Held while a call is in flight; dropping it frees its concurrency slots.
#[derive(Debug)]
pub struct Permit {
    _global: Option<OwnedSemaphorePermit>,
    _key: Option<OwnedSemaphorePermit>,
}

impl Limiter {
    /// A limiter with these bounds.
    pub fn new(config: LimitConfig) -> Limiter {
        Limiter {
            rate: config
                .rate
                .map(|r| RateLimiter::direct_with_clock(r.quota(), TokioClock)),
            concurrency: config.concurrency.map(|n| Arc::new(Semaphore::new(n))),
            per_key_rate: config
                .per_key_rate
                .map(|r| RateLimiter::hashmap_with_clock(r.quota(), TokioClock)),
            per_key_concurrency: config.per_key_concurrency,
            per_key_slots: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until one call may go (for `key`, when given): a concurrency slot of the sink and of the key,
    /// then a rate cell of the sink and of the key.
    pub async fn acquire(&self, key: Option<&str>) -> Permit {
        let global = match &self.concurrency {
            Some(s) => Arc::clone(s).acquire_owned().await.ok(),
            None => None,
        };
        let key_slot = match (key, self.per_key_concurrency) {
            (Some(k), Some(n)) => {
                let sem = self.slots_of(k, n);
                sem.acquire_owned().await.ok()
            }
            _ => None,
        };
        if let Some(r) = &self.rate {
            while let Err(not_until) = r.check() {
                tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
            }
        }
        if let (Some(k), Some(r)) = (key, &self.per_key_rate) {
            let k = k.to_owned();
            while let Err(not_until) = r.check_key(&k) {
                tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
            }
        }
        Permit {
            _global: global,
            _key: key_slot,
        }
    }

    fn slots_of(&self, key: &str, n: usize) -> Arc<Semaphore> {
        let Ok(mut slots) = self.per_key_slots.lock() else {
            return Arc::new(Semaphore::new(n));
        };
        // Forget idle keys (no permit out) so that the map stays as small as the keys in flight.
        if slots.len() > 1024 {
            slots.retain(|_, s| Arc::strong_count(s) > 1);
            if let Some(r) = &self.per_key_rate {
                r.retain_recent();
            }
        }
        Arc::clone(
            slots
                .entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(n))),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use tokio::time::Instant;

    fn rate(per_second: u32, burst: u32) -> Option<Rate> {
        Some(Rate {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_shared_and_follows_the_paused_clock() {
        let l = Limiter::new(LimitConfig {
            rate: rate(10, 1),
            ..LimitConfig::default()
        });
        let start = Instant::now();
        for _ in 0..21 {
            let _p = l.acquire(None).await;
        }
        // One at once, then one every 100 ms: 20 waits.
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn per_key_limits_hold_back_only_that_key() {
        let l = Arc::new(Limiter::new(LimitConfig {
            per_key_rate: rate(1, 1),
            per_key_concurrency: Some(1),
            ..LimitConfig::default()
        }));
        let start = Instant::now();
        let _a = l.acquire(Some("alice")).await;
        // Another key goes at once; alice's second call waits for her slot, then for her rate.
        let _b = l.acquire(Some("bob")).await;
        assert_eq!(Instant::now(), start);
        let l2 = Arc::clone(&l);
        let second = tokio::spawn(async move {
            let _p = l2.acquire(Some("alice")).await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "alice's slot is taken");
        drop(_a);
        let at = second.await.unwrap();
        assert_eq!(at - start, Duration::from_secs(1), "then her rate");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded_across_partitions() {
        let l = Arc::new(Limiter::new(LimitConfig {
            concurrency: Some(2),
            ..LimitConfig::default()
        }));
        let p1 = l.acquire(None).await;
        let _p2 = l.acquire(None).await;
        let l2 = Arc::clone(&l);
        let third = tokio::spawn(async move { l2.acquire(None).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!third.is_finished());
        drop(p1);
        third.await.unwrap();
    }
}
