//! Timer arithmetic for the session FSM: jitter (RFC 4271 §10) from a seeded PRNG, and the
//! IdleHoldTime back-off that damps peer oscillations (RFC 4271 §8.1.1, DampPeerOscillations).
//!
//! Pure: no clock is read here; callers pass durations and get durations back.

use std::time::Duration;

/// A small deterministic PRNG (SplitMix64), seeded by the caller so tests are reproducible.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `base` scaled by a random factor in [0.75, 1.0].
    ///
    /// RFC 4271 §10: "To minimize the likelihood that the distribution of BGP messages by a given
    /// BGP speaker will contain peaks, jitter SHOULD be applied to the timers associated with
    /// MinASOriginationIntervalTimer, KeepaliveTimer, MinRouteAdvertisementIntervalTimer, and
    /// ConnectRetryTimer. ... by multiplying the base value of the appropriate timer by a random
    /// factor, which is uniformly distributed in the range from 0.75 to 1.0."
    pub fn apply(&mut self, base: Duration) -> Duration {
        // 1024 steps between 0.75 and 1.0 are plenty for timers of seconds.
        let step = self.next_u64() % 1025;
        let nanos = base.as_nanos();
        let scaled = nanos * (3 * 1024 + step as u128) / (4 * 1024);
        Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

/// IdleHoldTime with exponential back-off: each session failure that follows a short-lived session
/// doubles the wait before the next automatic start; a session that stayed up for `stable`
/// resets it.
///
/// RFC 4271 §8.1.1: "The IdleHoldTimer ... is used to keep the BGP peer in Idle for a particular
/// duration. ... The method of preventing persistent peer oscillation is outside the scope of this
/// document." This is the usual method (BIRD's `error wait time`, FRR's idle hold back-off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleHoldBackoff {
    base: Duration,
    max: Duration,
    stable: Duration,
    current: Duration,
}

impl IdleHoldBackoff {
    /// A back-off starting at `base`, doubling up to `max`, reset after `stable` Established time.
    pub fn new(base: Duration, max: Duration, stable: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            stable,
            current: base,
        }
    }

    /// The wait to apply now.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Records a session failure; `established_for` is how long the session had been Established
    /// (`None` if it never got there). Returns the IdleHoldTime to use before the next start.
    pub fn on_failure(&mut self, established_for: Option<Duration>) -> Duration {
        let wait = match established_for {
            Some(up) if up >= self.stable => self.base,
            _ => self.current,
        };
        self.current = (wait * 2).min(self.max);
        wait
    }

    /// Forgets past failures (for a manual start).
    pub fn reset(&mut self) {
        self.current = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_three_quarters_and_one() {
        let mut jitter = Jitter::new(7);
        let base = Duration::from_secs(30);
        let samples: Vec<Duration> = (0..1000).map(|_| jitter.apply(base)).collect();
        assert!(samples.iter().all(|d| *d >= base * 3 / 4 && *d <= base));
        let distinct: std::collections::BTreeSet<_> = samples.iter().collect();
        assert!(distinct.len() > 100, "jitter must vary: {}", distinct.len());
    }

    #[test]
    fn jitter_is_reproducible_from_its_seed() {
        let base = Duration::from_secs(10);
        let a: Vec<_> = {
            let mut j = Jitter::new(42);
            (0..5).map(|_| j.apply(base)).collect()
        };
        let b: Vec<_> = {
            let mut j = Jitter::new(42);
            (0..5).map(|_| j.apply(base)).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn oscillating_peer_is_damped_and_stable_session_resets_backoff() {
        let s = Duration::from_secs;
        let mut backoff = IdleHoldBackoff::new(s(1), s(60), s(30));
        assert_eq!(backoff.on_failure(None), s(1));
        assert_eq!(backoff.on_failure(Some(s(2))), s(2));
        assert_eq!(backoff.on_failure(None), s(4));
        for _ in 0..10 {
            backoff.on_failure(None);
        }
        assert_eq!(backoff.current(), s(60));
        assert_eq!(backoff.on_failure(Some(s(31))), s(1));
        assert_eq!(backoff.current(), s(2));
    }
}
