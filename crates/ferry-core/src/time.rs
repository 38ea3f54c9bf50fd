//! The clock and calendar arithmetic on Unix seconds (proleptic Gregorian, UTC), shared by the
//! CLI's human-facing times, the server, the agent and TUF's `expires` fields.

/// The current time in Unix seconds (0 for a clock before 1970).
pub fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`: RFC 3339 in UTC, and exactly TUF's
/// `expires` form.
pub fn format_unix(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 of a date (H. Hinnant's algorithm). Out-of-range months or days are
/// not rejected here; compare with [`civil_from_days`] to validate a date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses exactly the form [`format_unix`] writes, `YYYY-MM-DDTHH:MM:SSZ` (TUF's `expires`):
/// whole seconds, UTC, no leap second. `None` for anything else.
pub fn parse_unix(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let secs = clock(&text[11..19]).filter(|_| &text[17..19] < "60")?;
    Some(date(&text[..10])? * 86_400 + secs)
}

/// Parses an RFC 3339 timestamp (`2025-01-31T12:00:00Z`, `2025-01-31T14:00:00+02:00`,
/// fractions of a second ignored) or a plain date (`2025-01-31`, midnight UTC) into Unix
/// seconds: the lenient form for times people type.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an RFC 3339 time such as 2025-01-31T12:00:00Z");
    let s = s.trim();
    let (day, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let days = match date(day) {
        Some(days) => days,
        None if date_shaped(day) => return Err(format!("{s:?} is not a valid date")),
        None => return Err(bad()),
    };
    let Some(rest) = rest else { return Ok(days * 86_400) };
    let (hms, offset) = split_offset(rest).ok_or_else(bad)?;
    let hms = hms.split('.').next().unwrap_or(hms);
    Ok(days * 86_400 + clock(hms).ok_or_else(bad)? - offset)
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD`.
fn date(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (num(parts.next(), 4)?, num(parts.next(), 2)?, num(parts.next(), 2)?);
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// Whether `s` has the digits of `YYYY-MM-DD` (so a failed [`date`] is an invalid date).
fn date_shaped(s: &str) -> bool {
    let mut parts = s.splitn(3, '-');
    num(parts.next(), 4).is_some() && num(parts.next(), 2).is_some() && num(parts.next(), 2).is_some()
}

/// Seconds into the day of `HH:MM:SS` (a leap second `:60` allowed).
fn clock(s: &str) -> Option<i64> {
    let mut hms = s.splitn(3, ':');
    let (h, mi, sec) = (num(hms.next(), 2)?, num(hms.next(), 2)?, num(hms.next(), 2)?);
    (h <= 23 && mi <= 59 && sec <= 60).then_some(h * 3600 + mi * 60 + sec)
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

/// A number of exactly `digits` ASCII digits.
fn num(part: Option<&str>, digits: usize) -> Option<i64> {
    let part = part?;
    (part.len() == digits && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(days_from_civil(2026, 11, 23), 20_780);
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

    #[test]
    fn the_strict_form_is_exactly_what_format_unix_writes() {
        assert_eq!(parse_unix("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_unix("2000-02-29T12:34:56Z"), Some(951_827_696));
        for bad in [
            "2026-11-23T00:00:00",
            "2026-11-23T00:00:00.5Z",
            "2026-11-23 00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T23:59:60Z",
            "+026-11-23T00:00:00Z",
            "2026-11-23T00:00:00+00:00",
        ] {
            assert_eq!(parse_unix(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -1_000_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn both_parsers_read_what_format_unix_writes(secs in 0i64..253_402_300_799) {
            prop_assert_eq!(parse_unix(&format_unix(secs)), Some(secs));
            prop_assert_eq!(parse_rfc3339(&format_unix(secs)), Ok(secs));
        }
    }
}
