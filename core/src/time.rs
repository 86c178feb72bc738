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
        let text = text.trim();
        if let Some(time) = parse_common_utc(text.as_bytes()) {
            return Some(time);
        }
        let parsed = DateTime::parse_from_rfc3339(text).ok()?;
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
        self.format_rfc3339_bytes(buf);
        buf.as_str()
    }

    /// [`Timestamp::format_rfc3339`] as bytes, without the UTF-8 check of the text (which is
    /// ASCII, and holds nothing JSON escapes): for writers that copy it into JSON as it is.
    pub fn format_rfc3339_bytes(self, buf: &mut Rfc3339Buf) -> &[u8] {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        let Some(seconds_text) = seconds_text(secs) else {
            let text = self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let len = text.len().min(buf.bytes.len());
            buf.bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
            buf.len = len;
            return &buf.bytes[..len];
        };
        let b = &mut buf.bytes;
        b[..19].copy_from_slice(&seconds_text);
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
        &buf.bytes[..buf.len]
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

/// The common shape of received timestamps, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, read without
/// chrono (a fifth of its cost; this runs once per received event). `None` for anything else —
/// other separators, offsets, a leap second, more than nine fraction digits — which
/// [`Timestamp::parse_rfc3339`] leaves to chrono, so what is accepted and its value are chrono's
/// (a test compares both on generated texts).
fn parse_common_utc(text: &[u8]) -> Option<Timestamp> {
    let (head, fraction) = match text {
        [head @ .., b'Z'] if head.len() == 19 => (head, &[][..]),
        [head @ .., b'Z'] if head.len() > 20 && head[19] == b'.' => (&head[..19], &head[20..]),
        _ => return None,
    };
    // Two digits at `at`.
    let digits2 = |at: usize| -> Option<u32> {
        let (tens, ones) = (head[at].wrapping_sub(b'0'), head[at + 1].wrapping_sub(b'0'));
        (tens < 10 && ones < 10).then(|| u32::from(tens) * 10 + u32::from(ones))
    };
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let year = digits2(0)? * 100 + digits2(2)?;
    let (month, day) = (digits2(5)?, digits2(8)?);
    let (hour, minute, second) = (digits2(11)?, digits2(14)?, digits2(17)?);
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if fraction.len() > 9 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // The fraction's digits as an integer, scaled to nanoseconds.
    const SCALE: [u32; 10] = [
        1_000_000_000,
        100_000_000,
        10_000_000,
        1_000_000,
        100_000,
        10_000,
        1_000,
        100,
        10,
        1,
    ];
    let digits_value = fraction
        .iter()
        .fold(0u32, |value, byte| value * 10 + u32::from(byte - b'0'));
    let nanos = digits_value * SCALE[fraction.len()];
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))
        .map(Timestamp)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The last two seconds [`seconds_text`] wrote on a thread (an event's own time and the time it
/// was received, which the events of a batch mostly share, so most calls copy) and their texts.
#[derive(Clone, Copy)]
struct RecentSeconds {
    seconds: [i64; 2],
    texts: [[u8; 19]; 2],
    /// Which of the two the next new second replaces.
    next: usize,
}

thread_local! {
    static RECENT_SECONDS: std::cell::Cell<RecentSeconds> = const {
        std::cell::Cell::new(RecentSeconds { seconds: [i64::MIN; 2], texts: [[0; 19]; 2], next: 0 })
    };
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch; `None` for years outside 0000–9999.
fn seconds_text(secs: i64) -> Option<[u8; 19]> {
    let mut recent = RECENT_SECONDS.with(std::cell::Cell::get);
    if let Some(slot) = recent.seconds.iter().position(|cached| *cached == secs) {
        return Some(recent.texts[slot]);
    }
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut b = [0u8; 19];
    let mut put2 = |at: usize, v: u32| {
        b[at] = b'0' + (v / 10) as u8;
        b[at + 1] = b'0' + (v % 10) as u8;
    };
    let y = year as u32;
    put2(0, y / 100);
    put2(2, y % 100);
    put2(5, month);
    put2(8, day);
    put2(11, of_day / 3600);
    put2(14, of_day / 60 % 60);
    put2(17, of_day % 60);
    b[4] = b'-';
    b[7] = b'-';
    b[10] = b'T';
    b[13] = b':';
    b[16] = b':';
    let slot = recent.next;
    recent.seconds[slot] = secs;
    recent.texts[slot] = b;
    recent.next = 1 - slot;
    RECENT_SECONDS.with(|cache| cache.set(recent));
    Some(b)
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
    use proptest::prelude::*;

    /// chrono's reading, which `parse_rfc3339` must give for every text.
    fn chronos(text: &str) -> Option<Timestamp> {
        let parsed = DateTime::parse_from_rfc3339(text.trim()).ok()?;
        parsed.timestamp_nanos_opt().map(Timestamp)
    }

    proptest! {
        #[test]
        fn the_common_shape_reads_as_chrono_reads_it(
            year in prop_oneof![3 => 1678u32..2263, 1 => 0u32..10_000], month in 0u32..14, day in 0u32..33,
            hour in 0u32..26, minute in 0u32..62, second in 0u32..62,
            fraction in "[0-9]{0,11}", tail in prop::sample::select(vec!["Z", "Z", "Z", "z", "+00:00", "+01:30", ""]),
            separator in prop::sample::select(vec!["T", "T", "T", "t", " "]),
        ) {
            let dot = if fraction.is_empty() { "" } else { "." };
            let text = format!("{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{dot}{fraction}{tail}");
            prop_assert_eq!(Timestamp::parse_rfc3339(&text), chronos(&text), "{}", text);
        }

        #[test]
        fn any_text_reads_as_chrono_reads_it(text in "[0-9T:.Z+ -]{0,32}") {
            prop_assert_eq!(Timestamp::parse_rfc3339(&text), chronos(&text), "{}", text);
        }
    }

    #[test]
    fn the_common_shape_is_read_without_chrono() {
        for text in [
            "2026-11-20T09:00:00.123456Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999999999Z",
            "1900-01-01T00:00:00.5Z",
        ] {
            assert!(parse_common_utc(text.as_bytes()).is_some(), "{text}");
            assert_eq!(Timestamp::parse_rfc3339(text), chronos(text), "{text}");
        }
        assert_eq!(parse_common_utc(b"1900-02-29T00:00:00Z"), None);
        assert_eq!(parse_common_utc(b"2026-11-20T09:00:60Z"), None);
    }

    #[test]
    fn rfc3339_round_trip_keeps_nanoseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-20T09:00:00.123456789Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-20T09:00:00.123456789Z");
        let micro = Timestamp::parse_rfc3339("2026-11-20T10:00:00.123456+01:00").unwrap();
        assert_eq!(micro.to_rfc3339(), "2026-11-20T09:00:00.123456Z");
    }

    #[test]
    fn recent_seconds_are_reused_without_mixing_them_up() {
        let mut buf = Rfc3339Buf::default();
        let seconds = [
            1_700_000_000,
            1_800_000_000,
            1_700_000_000,
            1_700_000_001,
            1_800_000_000,
        ];
        for secs in seconds.iter().cycle().take(40) {
            let ts = Timestamp(secs * 1_000_000_000 + 5_000);
            let expected = ts
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true);
            assert_eq!(ts.format_rfc3339(&mut buf), expected);
        }
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
