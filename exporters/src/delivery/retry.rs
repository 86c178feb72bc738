//! Exponential backoff with full jitter.

use rand::Rng;
use std::time::Duration;

/// Backoff delays: attempt `n` waits a random time in `[0, min(max, initial × 2ⁿ)]`, or what the
/// SIEM asked for (Retry-After), capped at `max`… unless the SIEM asked for more, which wins.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), honouring a requested delay.
    pub fn delay(&self, attempt: u32, requested: Option<Duration>) -> Duration {
        if let Some(requested) = requested {
            return requested;
        }
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        // Full jitter, but never a zero delay: a busy SIEM should not get an instant retry storm.
        let low = nanos / 10;
        Duration::from_nanos(rand::rng().random_range(low..=nanos.max(low)))
    }
}

/// Parses an HTTP `Retry-After` value in seconds (HTTP-dates are treated as absent).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..30 {
            let d = backoff.delay(attempt, None);
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(20))
                .min(Duration::from_secs(1));
            assert!(
                d <= ceiling && d >= ceiling / 10,
                "attempt {attempt}: {d:?}"
            );
        }
        assert_eq!(
            backoff.delay(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
