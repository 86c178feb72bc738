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
        let mut buf = Rfc3339Buf::default();
        self.format_rfc3339(&mut buf).to_string()
    }

    /// Writes RFC 3339 (as [`Timestamp::to_rfc3339`]) into `buf` without allocating; returns the
    /// text. Years outside 0000–9999 fall back to chrono's formatting.
    pub fn format_rfc3339(self, buf: &mut Rfc3339Buf) -> &str {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            let text = self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let len = text.len().min(buf.bytes.len());
            buf.bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
            buf.len = len;
            return buf.as_str();
        }
        let b = &mut buf.bytes;
        let put2 = |b: &mut [u8; 40], at: usize, v: u32| {
            b[at] = b'0' + (v / 10) as u8;
            b[at + 1] = b'0' + (v % 10) as u8;
        };
        let y = year as u32;
        put2(b, 0, y / 100);
        put2(b, 2, y % 100);
        b[4] = b'-';
        put2(b, 5, month);
        b[7] = b'-';
        put2(b, 8, day);
        b[10] = b'T';
        put2(b, 11, of_day / 3600);
        b[13] = b':';
        put2(b, 14, of_day / 60 % 60);
        b[16] = b':';
        put2(b, 17, of_day % 60);
        let mut len = 19;
        let (digits, value) = if nanos == 0 {
            (0, 0)
        } else if nanos.is_multiple_of(1_000_000) {
            (3, nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            (6, nanos / 1_000)
        } else {
            (9, nanos)
        };
        if digits > 0 {
            b[len] = b'.';
            let mut v = value;
            for i in (0..digits).rev() {
                b[len + 1 + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            len += 1 + digits;
        }
        b[len] = b'Z';
        buf.len = len + 1;
        buf.as_str()
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

/// A stack buffer for [`Timestamp::format_rfc3339`].
#[derive(Clone, Copy)]
pub struct Rfc3339Buf {
    bytes: [u8; 40],
    len: usize,
}

impl Default for Rfc3339Buf {
    fn default() -> Self {
        Rfc3339Buf {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl Rfc3339Buf {
    /// The formatted text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    fn fast_formatting_matches_chrono_everywhere() {
        let mut buf = Rfc3339Buf::default();
        // Seconds from about 1685 to 2255, in irregular steps, plus the epoch and leap days.
        let mut seconds: Vec<i64> = vec![0, -1, 951_782_400, 951_868_799, 4_107_542_400];
        let mut s: i64 = -9_000_000_000;
        while s < 9_000_000_000 {
            seconds.push(s);
            s += 7_777_777 + (s.rem_euclid(86_400));
        }
        for secs in seconds {
            for nanos in [0, 123_000_000, 123_456_000, 123_456_789, 999_999_999] {
                let ts = Timestamp(secs * 1_000_000_000 + nanos);
                let expected = ts
                    .to_datetime()
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true);
                assert_eq!(ts.format_rfc3339(&mut buf), expected, "{}", ts.0);
            }
        }
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
