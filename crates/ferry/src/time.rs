//! Times and durations as people type and read them: RFC 3339 timestamps to and from unix
//! seconds, and durations such as `1h30m`.

pub use ferry_core::time::format_unix;
use ferry_core::time::{civil_from_days, days_from_civil};

/// The current time in unix seconds.
pub fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The TUF `expires` value `days` from now.
pub fn expires_in_days(days: u32) -> String {
    ferry_tuf::time::format_expires(now() + i64::from(days) * 86_400)
}

/// Formats optional unix seconds; `-` when absent.
pub fn format_opt(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".to_owned(), format_unix)
}

/// Parses an RFC 3339 timestamp (`2025-01-31T12:00:00Z`, `2025-01-31T14:00:00+02:00`,
/// fractions of a second ignored) or a plain date (`2025-01-31`, midnight UTC) into unix
/// seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an RFC 3339 time such as 2025-01-31T12:00:00Z");
    let s = s.trim();
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (
        num(parts.next(), 4).ok_or_else(bad)?,
        num(parts.next(), 2).ok_or_else(bad)?,
        num(parts.next(), 2).ok_or_else(bad)?,
    );
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return Err(format!("{s:?} is not a valid date"));
    }
    let Some(rest) = rest else { return Ok(days * 86_400) };
    let (clock, offset) = split_offset(rest).ok_or_else(bad)?;
    let clock = clock.split('.').next().unwrap_or(clock);
    let mut hms = clock.splitn(3, ':');
    let (h, mi, sec) =
        (num(hms.next(), 2).ok_or_else(bad)?, num(hms.next(), 2).ok_or_else(bad)?, num(hms.next(), 2).ok_or_else(bad)?);
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    Ok(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Splits `HH:MM:SS[.f]` from its zone, returning the zone's offset east of UTC in seconds.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(clock) = s.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let i = s.rfind(['+', '-'])?;
    let (clock, zone) = (&s[..i], &s[i + 1..]);
    let (h, m) = zone.split_once(':')?;
    let secs = num(Some(h), 2)? * 3600 + num(Some(m), 2)? * 60;
    Some((clock, if s.as_bytes()[i] == b'-' { -secs } else { secs }))
}

fn num(part: Option<&str>, digits: usize) -> Option<i64> {
    let part = part?;
    (part.len() == digits && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse().ok())?
}

/// Parses a duration: plain seconds (`3600`) or numbers with units `d`, `h`, `m`, `s`
/// (`1h`, `30m`, `1h30m`, `2d`). Returns seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration; use e.g. 3600, 90s, 30m, 1h, 1h30m or 2d");
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|x| total.checked_add(x)).ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Formats seconds compactly: `1h30m`, `45s`, `2d`.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration(" 1H "), Ok(3600));
        for bad in ["", "h", "1x", "1h30", "-5", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn durations_format() {
        assert_eq!(format_duration(3600), "1h");
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(90_061), "1d1h1m1s");
        assert_eq!(format_duration(0), "0s");
        for secs in [1, 59, 60, 61, 3599, 86_400, 1_000_000] {
            assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(1_738_324_800), "2025-01-31T12:00:00Z");
        assert_eq!(format_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_unix(-1), "1969-12-31T23:59:59Z");
        for secs in [0, 1, 951_782_399, 1_738_324_800, 4_102_444_800, -86_401] {
            assert_eq!(parse_rfc3339(&format_unix(secs)), Ok(secs));
        }
    }

    #[test]
    fn timestamps_parse_offsets_fractions_and_dates() {
        assert_eq!(parse_rfc3339("2025-01-31T14:00:00+02:00"), Ok(1_738_324_800));
        assert_eq!(parse_rfc3339("2025-01-31T07:00:00-05:00"), Ok(1_738_324_800));
        assert_eq!(parse_rfc3339("2025-01-31t12:00:00.123z"), Ok(1_738_324_800));
        assert_eq!(parse_rfc3339("2025-01-31 12:00:00Z"), Ok(1_738_324_800));
        assert_eq!(parse_rfc3339("2025-01-31"), Ok(1_738_281_600));
        for bad in ["2025-02-30", "2025-13-01", "2025-01-31T25:00:00Z", "2025-01-31T12:00:00", "31.01.2025", "tomorrow"]
        {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
