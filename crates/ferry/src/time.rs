//! Times and durations as people type and read them: RFC 3339 timestamps to and from unix
//! seconds, and durations such as `1h30m`.

pub use ferry_core::time::{format_unix, now, parse_rfc3339};

/// The TUF `expires` value `days` from now.
pub fn expires_in_days(days: u32) -> String {
    ferry_tuf::time::format_expires(now() + i64::from(days) * 86_400)
}

/// Formats optional unix seconds; `-` when absent.
pub fn format_opt(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".to_owned(), format_unix)
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
}
