//! [`Backoff`]: how long a failed job waits before its next attempt.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential backoff with jitter between the attempts of a failing job.
///
/// After failed attempt `n` (1-based) the job waits
/// `min(max_delay, initial × multiplierⁿ⁻¹)`, shortened by a random
/// fraction of up to `jitter` of it, so that many jobs failing together
/// (a dependency down) do not all retry in the same instant.
///
/// ```
/// use std::time::Duration;
/// use workyard::persist::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100))
///     .multiplier(2.0)
///     .max_delay(Duration::from_secs(1))
///     .jitter(0.0);
/// assert_eq!(backoff.delay(1, 0.5), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(400));
/// assert_eq!(backoff.delay(10, 0.5), Duration::from_secs(1)); // capped
///
/// // With jitter 0.5 the delay lands in [delay/2, delay].
/// let jittered = Backoff::new(Duration::from_millis(100)).jitter(0.5);
/// assert_eq!(jittered.delay(1, 0.0), Duration::from_millis(100));
/// assert_eq!(jittered.delay(1, 1.0), Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: f64,
}

impl Default for Backoff {
    /// 1 s, doubling, at most 5 minutes, jitter 0.5.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// A backoff starting at `initial`, otherwise the defaults: doubling,
    /// at most 5 minutes, jitter 0.5.
    pub fn new(initial: Duration) -> Backoff {
        Backoff {
            initial,
            ..Backoff::default()
        }
    }

    /// No wait at all between attempts.
    ///
    /// ```
    /// use workyard::persist::Backoff;
    /// assert_eq!(Backoff::none().delay(7, 0.3), std::time::Duration::ZERO);
    /// ```
    pub fn none() -> Backoff {
        Backoff {
            initial: Duration::ZERO,
            multiplier: 1.0,
            max_delay: Duration::ZERO,
            jitter: 0.0,
        }
    }

    /// The factor each further failure multiplies the delay by (at least
    /// 1.0; smaller values and NaN are taken as 1.0).
    pub fn multiplier(mut self, factor: f64) -> Backoff {
        self.multiplier = if factor >= 1.0 { factor } else { 1.0 };
        self
    }

    /// The longest delay.
    pub fn max_delay(mut self, max: Duration) -> Backoff {
        self.max_delay = max;
        self
    }

    /// The largest fraction of a delay taken off at random, from 0.0 (none)
    /// to 1.0 ("full jitter": anywhere between 0 and the delay); clamped
    /// into that range.
    pub fn jitter(mut self, fraction: f64) -> Backoff {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The wait after failed attempt `attempt` (1-based), given a random
    /// number `random` in `[0, 1]` that picks the jitter.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let max = self.max_delay.as_secs_f64();
        let full = (self.initial.as_secs_f64() * self.multiplier.powi(exponent)).min(max);
        let cut = full * self.jitter * random.clamp(0.0, 1.0);
        // `full` is finite and at most `max_delay`, so this cannot overflow.
        Duration::try_from_secs_f64((full - cut).max(0.0)).unwrap_or(self.max_delay)
    }
}

/// A small, fast random number generator for jitter (SplitMix64), seeded
/// from the standard library's per-process random hasher keys. Jitter only
/// needs to spread retries out, not to be unpredictable.
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(crate::persist::record::now_ms());
        Jitter(hasher.finish())
    }

    /// A number in `[0, 1)`.
    pub(crate) fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits, as a fraction: exactly representable in an f64.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let b = Backoff::new(Duration::from_millis(10)).jitter(0.0);
        let delays: Vec<_> = (1..=5).map(|n| b.delay(n, 0.0).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160]);
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_in_range_and_spreads() {
        let b = Backoff::new(Duration::from_secs(1)).jitter(0.5);
        let mut rng = Jitter::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let r = rng.next();
            assert!((0.0..1.0).contains(&r));
            let d = b.delay(1, r);
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
            seen.insert(d.as_millis());
        }
        assert!(seen.len() > 100, "jitter should spread delays out");
    }
}
