//! Event time: nanoseconds since the Unix epoch, written as RFC 3339 in JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt;

/// A point in time with nanosecond precision (nanoseconds since 1970-01-01T00:00:00Z, UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 text (`2026-11-20T09:00:00.123456Z`, offsets allowed).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let parsed = DateTime::parse_from_rfc3339(text.trim()).ok()?;
        parsed.timestamp_nanos_opt().map(Timestamp)
    }

    /// Interprets a number as epoch time, guessing the unit from its size:
    /// seconds (with fraction) below 1e11, milliseconds below 1e14, microseconds below 1e17,
    /// nanoseconds above.
    pub fn from_epoch_number(value: f64) -> Option<Timestamp> {
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        let nanos = if value < 1e11 {
            value * 1e9
        } else if value < 1e14 {
            value * 1e6
        } else if value < 1e17 {
            value * 1e3
        } else {
            value
        };
        if nanos >= i64::MAX as f64 {
            return None;
        }
        Some(Timestamp(nanos as i64))
    }

    /// Like [`Timestamp::from_epoch_number`] but exact for integers.
    pub fn from_epoch_integer(value: i64) -> Option<Timestamp> {
        if value < 0 {
            return None;
        }
        let nanos = if value < 100_000_000_000 {
            value.checked_mul(1_000_000_000)
        } else if value < 100_000_000_000_000 {
            value.checked_mul(1_000_000)
        } else if value < 100_000_000_000_000_000 {
            value.checked_mul(1_000)
        } else {
            Some(value)
        };
        nanos.map(Timestamp)
    }

    /// This time as a chrono `DateTime<Utc>`.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0)
    }

    /// RFC 3339 in UTC with `Z`, with 0, 3, 6 or 9 fraction digits as needed.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Epoch seconds as a float (Splunk HEC `time`).
    pub fn as_epoch_seconds_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Epoch milliseconds (Datadog, CloudWatch).
    pub fn as_epoch_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_nanoseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-20T09:00:00.123456789Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-20T09:00:00.123456789Z");
        let micro = Timestamp::parse_rfc3339("2026-11-20T10:00:00.123456+01:00").unwrap();
        assert_eq!(micro.to_rfc3339(), "2026-11-20T09:00:00.123456Z");
    }

    #[test]
    fn epoch_numbers_guess_units() {
        let s = Timestamp::from_epoch_integer(1_718_000_000).unwrap();
        let ms = Timestamp::from_epoch_integer(1_718_000_000_000).unwrap();
        let ns = Timestamp::from_epoch_integer(1_718_000_000_000_000_000).unwrap();
        assert_eq!(s, ms);
        assert_eq!(s, ns);
        assert_eq!(
            Timestamp::from_epoch_number(1_718_000_000.5).unwrap().0,
            1_718_000_000_500_000_000
        );
    }
}
