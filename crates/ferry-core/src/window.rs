//! Maintenance windows: weekly wall-clock periods in an IANA time zone during which devices
//! may be granted and install updates, and when a device outside them should come back.
//!
//! A schedule is written as `Mon-Fri 22:00-06:00; Sat,Sun 00:00-24:00` with a time zone such
//! as `Asia/Tokyo`. A period whose end is not after its start runs past midnight into the next
//! day. Wall-clock times are converted to instants per day in the zone, so a window keeps its
//! local hours across daylight-saving changes (a start inside a skipped hour begins at the
//! first instant after it). The time-zone database is compiled in: nothing here reads files.

use std::fmt;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Most periods in one schedule.
pub const MAX_PERIODS: usize = 32;
/// Longest schedule text accepted.
pub const MAX_SPEC_BYTES: usize = 1024;

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// One weekly period: on each of `days`, from `start` to `end` minutes after local midnight
/// (an end not after the start runs into the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Period {
    /// Bit 0 is Monday.
    days: u8,
    start: u16,
    end: u16,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Not an IANA time zone name.
    #[error("{0:?} is not a time zone; give an IANA name such as Asia/Tokyo, Europe/Berlin or UTC")]
    TimeZone(String),
    /// The schedule text does not parse.
    #[error("period {index} ({text:?}): {reason}; write periods as DAYS HH:MM-HH:MM separated by ';', e.g. Mon-Fri 22:00-06:00; Sat,Sun 00:00-24:00")]
    Period { index: usize, text: String, reason: String },
    /// Too long or too many periods.
    #[error("a schedule has 1 to {MAX_PERIODS} periods and at most {MAX_SPEC_BYTES} bytes")]
    Size,
}

/// A weekly schedule of maintenance windows in one time zone.
#[derive(Debug, Clone)]
pub struct Windows {
    zone: String,
    tz: TimeZone,
    periods: Vec<Period>,
}

impl PartialEq for Windows {
    fn eq(&self, other: &Self) -> bool {
        self.zone == other.zone && self.periods == other.periods
    }
}

fn day_bit(day: Weekday) -> u8 {
    1 << (day.to_monday_zero_offset() as u8)
}

fn parse_day(s: &str) -> Option<u8> {
    let s = s.trim().to_ascii_lowercase();
    let key = s.get(..3)?;
    let (i, _) = DAYS.iter().enumerate().find(|(_, (name, _))| *name == key)?;
    let full = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][i];
    (s == key || s == full).then_some(i as u8)
}

fn parse_days(s: &str) -> Result<u8, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("daily") || s == "*" {
        return Ok(0x7f);
    }
    let mut bits = 0u8;
    for part in s.split(',') {
        let bad = || format!("{:?} is not a day or a range of days (Mon, Mon-Fri, daily)", part.trim());
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a).ok_or_else(bad)?, parse_day(b).ok_or_else(bad)?);
                // A range may wrap round the week: Sat-Mon.
                let mut d = a;
                loop {
                    bits |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => bits |= 1 << parse_day(part).ok_or_else(bad)?,
        }
    }
    Ok(bits)
}

fn parse_clock(s: &str, end: bool) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time of day (HH:MM, 00:00 to {})", if end { "24:00" } else { "23:59" });
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let minutes = h * 60 + m;
    if m >= 60 || minutes > 24 * 60 || (minutes == 24 * 60 && !end) {
        return Err(bad());
    }
    Ok(minutes)
}

fn parse_period(text: &str) -> Result<Period, String> {
    let text = text.trim();
    let (days, times) = text.rsplit_once(' ').ok_or("expected days, a space, then HH:MM-HH:MM")?;
    let (start, end) = times.split_once('-').ok_or("expected HH:MM-HH:MM after the days")?;
    let (start, end) = (parse_clock(start, false)?, parse_clock(end, true)?);
    if start == end {
        return Err("the period is empty; 00:00-24:00 is the whole day".to_owned());
    }
    Ok(Period { days: parse_days(days)?, start, end })
}

impl Windows {
    /// Parses `spec` (periods separated by `;`) in the IANA time zone `zone`.
    pub fn parse(zone: &str, spec: &str) -> Result<Self, WindowError> {
        let tz = TimeZone::get(zone).map_err(|_| WindowError::TimeZone(zone.chars().take(80).collect()))?;
        if spec.len() > MAX_SPEC_BYTES {
            return Err(WindowError::Size);
        }
        let texts: Vec<&str> = spec.split(';').filter(|p| !p.trim().is_empty()).collect();
        if texts.is_empty() || texts.len() > MAX_PERIODS {
            return Err(WindowError::Size);
        }
        let periods = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                parse_period(t).map_err(|reason| WindowError::Period {
                    index: i + 1,
                    text: t.trim().to_owned(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { zone: zone.to_owned(), tz, periods })
    }

    /// The time zone's name.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The intervals `[start, end)` (unix seconds) of every period starting on a local day
    /// from `first` to `last`.
    fn intervals(&self, first: Date, last: Date) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut day = first;
        while day <= last {
            for p in &self.periods {
                if p.days & day_bit(day.weekday()) == 0 {
                    continue;
                }
                let at = |date: Date, minutes: u16| {
                    let (date, minutes) = if minutes == 24 * 60 { (date.tomorrow().ok()?, 0) } else { (date, minutes) };
                    let local = date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
                    local.to_zoned(self.tz.clone()).ok().map(|z| z.timestamp().as_second())
                };
                let end_day = if p.end <= p.start { day.tomorrow().ok() } else { Some(day) };
                if let (Some(s), Some(e)) = (at(day, p.start), end_day.and_then(|d| at(d, p.end))) {
                    if e > s {
                        out.push((s, e));
                    }
                }
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        out.sort_unstable();
        out
    }

    fn around(&self, now: i64) -> Vec<(i64, i64)> {
        let Ok(ts) = Timestamp::from_second(now) else { return Vec::new() };
        let today = ts.to_zoned(self.tz.clone()).date();
        let first = today.yesterday().unwrap_or(today);
        let last = today.checked_add(jiff::Span::new().days(8)).unwrap_or(today);
        self.intervals(first, last)
    }

    /// Whether a window is open at `now` (unix seconds).
    pub fn is_open(&self, now: i64) -> bool {
        self.around(now).iter().any(|&(s, e)| s <= now && now < e)
    }

    /// When the next window opens: `now` while one is open, else the earliest start after
    /// `now` within the next week (None only if no period falls on any day, which parsing
    /// rules out).
    pub fn next_open(&self, now: i64) -> Option<i64> {
        let intervals = self.around(now);
        if intervals.iter().any(|&(s, e)| s <= now && now < e) {
            return Some(now);
        }
        intervals.iter().map(|&(s, _)| s).filter(|&s| s > now).min()
    }
}

impl fmt::Display for Windows {
    /// The canonical text: days as `Mon,Tue` lists, times as `HH:MM-HH:MM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.periods.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if p.days == 0x7f {
                f.write_str("daily")?;
            } else {
                let names: Vec<&str> = (0..7)
                    .filter(|d| p.days & (1 << d) != 0)
                    .map(|d| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d])
                    .collect();
                f.write_str(&names.join(","))?;
            }
            write!(f, " {:02}:{:02}-{:02}:{:02}", p.start / 60, p.start % 60, p.end / 60, p.end % 60)?;
        }
        Ok(())
    }
}

/// The delay before a device's next check-in when the next window opens `until_open` seconds
/// from now: the usual `delay` if the window opens later than that, else just after the
/// opening, spread over its first `spread` seconds by `unit` (a random number in `[0, 1)`
/// the caller draws) so that a fleet does not arrive in the same second.
pub fn delay_towards_window(delay: u64, until_open: u64, spread: u64, unit: f64) -> u64 {
    if until_open >= delay {
        return delay;
    }
    let extra = (spread as f64 * unit.clamp(0.0, 1.0)) as u64;
    (until_open + extra).clamp(1, delay.max(1))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn unix(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn schedules_parse_print_and_refuse_with_a_reason() {
        let w = Windows::parse("Asia/Tokyo", "mon-fri 22:00-06:00; Sat,Sunday 00:00-24:00").unwrap();
        assert_eq!(w.to_string(), "Mon,Tue,Wed,Thu,Fri 22:00-06:00; Sat,Sun 00:00-24:00");
        assert_eq!(Windows::parse("UTC", &w.to_string()).unwrap().to_string(), w.to_string());
        assert_eq!(Windows::parse("UTC", "daily 01:00-02:00").unwrap().to_string(), "daily 01:00-02:00");
        assert_eq!(Windows::parse("UTC", "Sat-Mon 01:00-02:00").unwrap().to_string(), "Mon,Sat,Sun 01:00-02:00");
        assert!(matches!(Windows::parse("Mars/Olympus", "daily 01:00-02:00"), Err(WindowError::TimeZone(_))));
        for (bad, needle) in [
            ("Mon 25:00-26:00", "not a time of day"),
            ("Mon 10:00-10:00", "empty"),
            ("Someday 10:00-11:00", "not a day"),
            ("Mon 10:00", "HH:MM-HH:MM"),
            ("Mon 24:00-01:00", "not a time of day"),
            ("Mon 1:5-2:00", "not a time of day"),
        ] {
            let message = Windows::parse("UTC", bad).unwrap_err().to_string();
            assert!(message.contains(needle) && message.contains("period 1"), "{bad}: {message}");
        }
        assert_eq!(Windows::parse("UTC", " ; "), Err(WindowError::Size));
    }

    #[test]
    fn windows_open_in_their_own_time_zone() {
        // 22:00-06:00 in Tokyo (UTC+9) on weekdays: 13:00-21:00 UTC.
        let w = Windows::parse("Asia/Tokyo", "Mon-Fri 22:00-06:00").unwrap();
        let wednesday_noon_utc = unix("2026-12-02T12:00:00Z");
        assert!(!w.is_open(wednesday_noon_utc));
        assert_eq!(w.next_open(wednesday_noon_utc), Some(unix("2026-12-02T13:00:00Z")));
        assert!(w.is_open(unix("2026-12-02T13:00:00Z")));
        assert!(w.is_open(unix("2026-12-02T20:59:59Z")));
        assert!(!w.is_open(unix("2026-12-02T21:00:00Z")));
        // Friday night's window runs into Saturday morning; then nothing until Monday 22:00.
        assert!(w.is_open(unix("2026-12-04T20:00:00Z")), "Saturday 05:00 in Tokyo");
        assert_eq!(w.next_open(unix("2026-12-04T21:00:00Z")), Some(unix("2026-12-07T13:00:00Z")));
    }

    #[test]
    fn windows_keep_local_hours_across_daylight_saving() {
        // Berlin: 02:00-04:00 local. Winter is UTC+1, summer UTC+2; 29 March 2026 skips 02:00-03:00.
        let w = Windows::parse("Europe/Berlin", "daily 02:00-04:00").unwrap();
        assert_eq!(w.next_open(unix("2026-01-10T12:00:00Z")), Some(unix("2026-01-11T01:00:00Z")));
        assert_eq!(w.next_open(unix("2026-07-10T12:00:00Z")), Some(unix("2026-07-11T00:00:00Z")));
        let spring = w.next_open(unix("2026-03-28T12:00:00Z")).unwrap();
        assert!(w.is_open(spring) && spring >= unix("2026-03-29T00:59:00Z") && spring <= unix("2026-03-29T01:00:00Z"));
        assert!(!w.is_open(unix("2026-03-29T02:00:00Z")), "04:00 summer time: closed");
    }

    #[test]
    fn check_ins_move_towards_an_opening_window() {
        assert_eq!(delay_towards_window(3600, 7200, 300, 0.5), 3600, "opens after the next check-in anyway");
        assert_eq!(delay_towards_window(3600, 600, 300, 0.0), 600);
        assert_eq!(delay_towards_window(3600, 600, 300, 0.99), 897);
        assert_eq!(delay_towards_window(3600, 0, 300, 0.0), 1);
        assert_eq!(delay_towards_window(60, 30, 300, 0.99), 60, "never later than the usual delay");
    }

    proptest! {
        /// `next_open` is the first open instant: open there, and closed at every sampled
        /// instant between `now` and it.
        #[test]
        fn next_open_is_the_first_open_instant(
            now in 1_700_000_000i64..1_900_000_000,
            start in 0u16..1440, len in 1u16..1440, days in 1u8..128,
            zone in prop_oneof![Just("UTC"), Just("Asia/Tokyo"), Just("Europe/Berlin"), Just("America/New_York")],
        ) {
            let end = (start + len) % 1440;
            let end = if end == 0 { 1440 } else { end };
            let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let day_list: Vec<&str> = (0..7).filter(|d| days & (1 << d) != 0).map(|d| names[d]).collect();
            let spec = format!("{} {:02}:{:02}-{:02}:{:02}", day_list.join(","), start / 60, start % 60, end / 60, end % 60);
            let w = Windows::parse(zone, &spec).unwrap();
            let next = w.next_open(now).expect("a weekly window opens within a week");
            prop_assert!(next >= now && next - now <= 8 * 86_400);
            prop_assert!(w.is_open(next), "{spec} in {zone}: not open at {next}");
            let step = ((next - now) / 50).max(60);
            let mut t = now;
            while t < next {
                prop_assert!(!w.is_open(t), "{spec} in {zone}: open at {t}, before {next}");
                t += step;
            }
        }
    }
}
