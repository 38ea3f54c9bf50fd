//! TUF's `expires` timestamps: `YYYY-MM-DDTHH:MM:SSZ`, whole seconds, UTC.

use crate::error::{Result, TufError};

/// Unix seconds for a TUF `expires` string.
pub fn parse_expires(text: &str) -> Result<i64> {
    let bad = || TufError::malformed("expires", format!("{text:?} is not YYYY-MM-DDTHH:MM:SSZ"));
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<i64> {
        let s = &text[from..to];
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return Err(bad());
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// The TUF `expires` string for Unix seconds.
pub fn format_expires(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithm (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_expires("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_expires("2000-02-29T12:34:56Z").unwrap(), 951_827_696);
        assert_eq!(format_expires(1_795_392_000), "2026-11-23T00:00:00Z");
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "2026-11-23T00:00:00",
            "2026-11-23T00:00:00.5Z",
            "2026-11-23 00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "+026-11-23T00:00:00Z",
            "2026-11-23T00:00:00+00:00",
        ] {
            assert!(parse_expires(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(unix in 0i64..253_402_300_799) {
            prop_assert_eq!(parse_expires(&format_expires(unix)).unwrap(), unix);
        }
    }
}
