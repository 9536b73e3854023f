//! When and where a notification goes: quiet hours in the guardian's time zone (they hold `high` and `normal`
//! until they end; `immediate` goes through), digest windows (a local time of day, or every N), and which
//! channel each escalation step uses (the next one in the rule's order after the first fan-out, then around
//! again, one round further).

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _, Zoned};

use crate::rules::{ChannelKind, DigestWindow, Priority, Rule};

/// The guardian's time zone (UTC when unknown).
pub fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// The instant of `secs` after local midnight on `day` (the earlier one in a fold, shifted past a gap).
fn at_local(day: &Zoned, secs: u32) -> Option<Timestamp> {
    let (h, m) = ((secs / 3600) as i8, ((secs % 3600) / 60) as i8);
    let dt = day.date().at(h, m, 0, 0);
    dt.to_zoned(day.time_zone().clone())
        .ok()
        .map(|z| z.timestamp())
}

/// When quiet hours `(start, end)` (seconds after local midnight) end, if `now` is inside them.
pub fn quiet_until(now: Timestamp, tz: &TimeZone, quiet: (u32, u32)) -> Option<Timestamp> {
    let (start, end) = quiet;
    if start == end {
        return None;
    }
    let local = now.to_zoned(tz.clone());
    let t = local.hour() as u32 * 3600 + local.minute() as u32 * 60 + local.second() as u32;
    let today_end = || at_local(&local, end);
    let tomorrow_end = || {
        let next = local.checked_add(1.day()).ok()?;
        at_local(&next, end)
    };
    if start < end {
        (start <= t && t < end).then(today_end).flatten()
    } else if t >= start {
        tomorrow_end()
    } else if t < end {
        today_end()
    } else {
        None
    }
}

/// Whether a notification of `priority` is held by quiet hours (and until when).
pub fn held_until(
    priority: Priority,
    now: Timestamp,
    tz: &TimeZone,
    quiet: Option<(u32, u32)>,
) -> Option<Timestamp> {
    match priority {
        Priority::High | Priority::Normal => quiet.and_then(|q| quiet_until(now, tz, q)),
        Priority::Immediate | Priority::Digest => None,
    }
}

/// The end of the digest window `now` falls in: the digest of that window goes out then. Every-N windows are
/// aligned to the epoch; a daily window ends at the next local `at`.
pub fn digest_window_end(window: DigestWindow, now: Timestamp, tz: &TimeZone) -> Timestamp {
    match window {
        DigestWindow::Every(d) => {
            let every = i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1);
            let now_ms = now.as_millisecond();
            let end = (now_ms.div_euclid(every) + 1).saturating_mul(every);
            Timestamp::from_millisecond(end).unwrap_or(now)
        }
        DigestWindow::At(secs) => {
            let local = now.to_zoned(tz.clone());
            match at_local(&local, secs) {
                Some(t) if t > now => t,
                _ => local
                    .checked_add(1.day())
                    .ok()
                    .and_then(|n| at_local(&n, secs))
                    .unwrap_or(now),
            }
        }
    }
}

/// The channel and round of escalation step `step` (1-based): after the first `fanout` channels, the next in
/// order, going around with a higher round.
pub fn escalation_channel(rule: &Rule, step: u32) -> Option<(ChannelKind, i32)> {
    let n = rule.channels.len();
    if n == 0 {
        return None;
    }
    let index = rule.fanout + step as usize - 1;
    Some((rule.channels[index % n], (index / n) as i32))
}

/// The back-off before retry `attempt` (1-based): 2s, 4s, … capped at `max`, and never before `after` (a
/// provider's Retry-After).
pub fn backoff(attempt: u32, after: Option<Duration>, max: Duration) -> Duration {
    let base = Duration::from_secs(2u64.saturating_pow(attempt.min(16))).min(max);
    after.unwrap_or(base)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn quiet_hours_follow_the_guardian_s_zone() {
        let paris = zone("Europe/Paris");
        // 21:00–07:00 in Paris; 22:30 UTC in winter is 23:30 there: quiet until 07:00 Paris = 06:00 UTC.
        let night = (21 * 3600, 7 * 3600);
        let q = Some(night);
        assert_eq!(
            quiet_until(ts("2026-01-10T22:30:00Z"), &paris, night),
            Some(ts("2026-01-11T06:00:00Z"))
        );
        // 05:00 UTC is 06:00 in Paris: quiet until 07:00 the same day.
        assert_eq!(
            quiet_until(ts("2026-01-11T05:00:00Z"), &paris, night),
            Some(ts("2026-01-11T06:00:00Z"))
        );
        // Noon: not quiet.
        assert_eq!(quiet_until(ts("2026-01-11T11:00:00Z"), &paris, night), None);
        // Immediate goes through; normal and high are held.
        assert_eq!(
            held_until(Priority::Immediate, ts("2026-01-10T22:30:00Z"), &paris, q),
            None
        );
        assert!(held_until(Priority::Normal, ts("2026-01-10T22:30:00Z"), &paris, q).is_some());
        // A daytime window (13:00–14:00 UTC).
        assert_eq!(
            quiet_until(
                ts("2026-01-11T13:30:00Z"),
                &TimeZone::UTC,
                (13 * 3600, 14 * 3600)
            ),
            Some(ts("2026-01-11T14:00:00Z"))
        );
    }

    #[test]
    fn digest_windows() {
        let w = DigestWindow::Every(Duration::from_secs(3600));
        assert_eq!(
            digest_window_end(w, ts("2026-01-11T13:30:00Z"), &TimeZone::UTC),
            ts("2026-01-11T14:00:00Z")
        );
        let ny = zone("America/New_York");
        let at = DigestWindow::At(18 * 3600);
        assert_eq!(
            digest_window_end(at, ts("2026-01-11T12:00:00Z"), &ny),
            ts("2026-01-11T23:00:00Z")
        );
        assert_eq!(
            digest_window_end(at, ts("2026-01-11T23:30:00Z"), &ny),
            ts("2026-01-12T23:00:00Z")
        );
    }
}
