//! Time stamps and durations as the graph stores them: wall-clock ns since the Unix epoch.
//! Formatting is done here (no date crate) because only UTC RFC 3339 is ever needed.

use std::fmt;

pub const NS_PER_MS: u64 = 1_000_000;
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Parses `2s`, `500ms`, `1.5s`, `3m`, `1h`, `250us`, `10ns`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 2s, 500ms, 1m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" | "µs" => 1e3,
        "ns" => 1.0,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86_400e9,
        other => {
            return Err(format!(
                "`{other}` is not a duration unit (ns, us, ms, s, m, h, d)"
            ));
        }
    };
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("`{text}` is not a non-negative duration"));
    }
    Ok((value * scale).round() as u64)
}

/// A wall-clock time stamp printed as `2023-11-14T22:13:20.123Z` (millisecond precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / NS_PER_SEC;
        let millis = (self.0 % NS_PER_SEC) / NS_PER_MS;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

/// A duration printed in the largest unit that keeps it readable: `850ms`, `12.5s`, `3m20s`, `2h05m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub u64);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns < NS_PER_SEC {
            write!(f, "{}ms", ns / NS_PER_MS)
        } else if ns < 60 * NS_PER_SEC {
            write!(f, "{:.1}s", ns as f64 / 1e9)
        } else if ns < 3600 * NS_PER_SEC {
            let s = ns / NS_PER_SEC;
            write!(f, "{}m{:02}s", s / 60, s % 60)
        } else {
            let m = ns / NS_PER_SEC / 60;
            write!(f, "{}h{:02}m", m / 60, m % 60)
        }
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_known_date() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_700_000_000_123_000_000).to_string(),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("2s"), Ok(2 * NS_PER_SEC));
        assert_eq!(parse_duration("500ms"), Ok(500 * NS_PER_MS));
        assert_eq!(parse_duration("1.5"), Ok(1_500 * NS_PER_MS));
        assert_eq!(parse_duration("1m"), Ok(60 * NS_PER_SEC));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }
}
