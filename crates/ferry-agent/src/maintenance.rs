//! Maintenance windows: when required updates may be installed and devices rebooted.
//!
//! A window is written `DAYS HH:MM-HH:MM`:
//! - `DAYS` is `*` (every day), one day (`sat`), a range (`mon-fri`, which may wrap: `fri-mon`)
//!   or a comma list of those (`mon,wed,sat-sun`). Days are the English three-letter names.
//! - The times are 24-hour `HH:MM`; `24:00` is the end of the day. A window whose end is not
//!   after its start runs past midnight: `fri 22:00-05:00` is Friday 22:00 to Saturday 05:00
//!   (the days name the day a window *starts*). Start and end may not be equal; a whole day is
//!   `00:00-24:00`.
//!
//! Times are read in the configured [`Timezone`]. Evaluation is a pure function of the Unix time
//! and the UTC offset in force, so the agent passes the offset it reads from the system
//! ([`local_offset`]).

use std::fmt;
use std::str::FromStr;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// One maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Days the window starts on, Monday first.
    days: [bool; 7],
    /// Start, minutes after midnight.
    start: u16,
    /// End, minutes after midnight (`1440` = 24:00); not after `start` means the next day.
    end: u16,
}

impl Window {
    /// Whether the window is open at `minute` (after midnight) of `weekday` (0 = Monday).
    pub fn contains(&self, weekday: u8, minute: u16) -> bool {
        let day = usize::from(weekday % 7);
        let yesterday = (day + 6) % 7;
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            (self.days[day] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }
}

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "write it as \"DAYS HH:MM-HH:MM\", e.g. \"mon-fri 22:00-05:00\" or \"* 02:00-04:00\"";
        let mut parts = s.split_whitespace();
        let (Some(days), Some(times), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{s:?} is not a window; {usage}"));
        };
        let days = parse_days(days)?;
        let Some((start, end)) = times.split_once('-') else {
            return Err(format!("{times:?} is not a time range; {usage}"));
        };
        let (start, end) = (parse_time(start)?, parse_time(end)?);
        if start == MINUTES_PER_DAY {
            return Err(format!("{times:?} starts at 24:00; start at 00:00 of the next day instead"));
        }
        if start == end {
            return Err(format!("{times:?} starts and ends at the same time; for a whole day write 00:00-24:00"));
        }
        Ok(Self { days, start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days.iter().all(|d| *d) {
            f.write_str("*")?;
        } else {
            let names: Vec<&str> = DAY_NAMES.iter().zip(self.days).filter(|(_, on)| *on).map(|(n, _)| *n).collect();
            f.write_str(&names.join(","))?;
        }
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, " {}-{}", hm(self.start), hm(self.end))
    }
}

fn parse_days(s: &str) -> Result<[bool; 7], String> {
    if s == "*" {
        return Ok([true; 7]);
    }
    let day = |name: &str| {
        DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(name)).ok_or_else(|| {
            format!("{name:?} is not a day; use mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, or *")
        })
    };
    let mut days = [false; 7];
    for item in s.split(',') {
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(item)?] = true,
        }
    }
    Ok(days)
}

fn parse_time(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time; use 24-hour HH:MM, from 00:00 to 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// How window times are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timezone {
    /// The device's configured time zone (daylight saving included).
    Local,
    /// Coordinated Universal Time.
    Utc,
    /// A fixed offset from UTC, in seconds east.
    Fixed(i32),
}

impl Timezone {
    /// The offset from UTC in seconds, when it does not depend on the device's settings.
    pub fn fixed_offset(self) -> Option<i32> {
        match self {
            Self::Local => None,
            Self::Utc => Some(0),
            Self::Fixed(secs) => Some(secs),
        }
    }
}

impl FromStr for Timezone {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a time zone; use \"local\", \"UTC\" or an offset such as \"+01:00\"");
        if s.eq_ignore_ascii_case("local") {
            return Ok(Self::Local);
        }
        if s.eq_ignore_ascii_case("utc") {
            return Ok(Self::Utc);
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let minutes = parse_time(rest).map_err(|_| bad())?;
        if minutes > 14 * 60 {
            return Err(bad());
        }
        Ok(Self::Fixed(sign * i32::from(minutes) * 60))
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Utc => f.write_str("UTC"),
            Self::Fixed(secs) => {
                let sign = if *secs < 0 { '-' } else { '+' };
                let m = secs.unsigned_abs() / 60;
                write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
            }
        }
    }
}

/// The maintenance windows of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// The windows; open when any of them is.
    pub windows: Vec<Window>,
    /// How their times are read.
    pub timezone: Timezone,
}

/// The device's UTC offset in seconds at `unix_secs`, found as the C library's `localtime`
/// finds it: from `TZ` when it is set (a zone name, a zone file, or a POSIX rule such as
/// `EST5EDT,M3.2.0,M11.1.0`; empty means UTC), else from `/etc/localtime`. 0 (UTC) when neither
/// can be read. Read at each call, so a zone changed while the daemon runs is seen.
pub fn local_offset(unix_secs: i64) -> i32 {
    offset_in(std::env::var("TZ").ok().as_deref(), unix_secs)
}

/// The offset at `unix_secs` in the zone `tz` names (`None`: the system's).
fn offset_in(tz: Option<&str>, unix_secs: i64) -> i32 {
    let zone = match tz {
        Some("") => return 0,
        Some(tz) => tz::TimeZone::from_posix_tz(tz),
        None => tz::TimeZone::local(),
    };
    zone.ok().and_then(|z| z.find_local_time_type(unix_secs).map(|t| t.ut_offset()).ok()).unwrap_or(0)
}

impl Maintenance {
    /// Whether a window is open at `unix_secs`, with `offset_secs` the UTC offset in force
    /// (for [`Timezone::Local`], the device's; otherwise ignored in favour of the fixed one).
    pub fn is_open(&self, unix_secs: i64, offset_secs: i32) -> bool {
        let offset = self.timezone.fixed_offset().unwrap_or(offset_secs);
        let local = unix_secs + i64::from(offset);
        let days = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (3 days after Monday).
        let weekday = (days + 3).rem_euclid(7) as u8;
        let minute = (local.rem_euclid(86_400) / 60) as u16;
        self.windows.iter().any(|w| w.contains(weekday, minute))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MON: u8 = 0;
    const FRI: u8 = 4;
    const SAT: u8 = 5;
    const SUN: u8 = 6;

    fn w(s: &str) -> Window {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_window_within_a_day() {
        let win = w("mon-fri 09:00-17:30");
        assert!(win.contains(MON, 9 * 60));
        assert!(win.contains(FRI, 17 * 60 + 29));
        assert!(!win.contains(FRI, 17 * 60 + 30), "the end is excluded");
        assert!(!win.contains(MON, 8 * 60 + 59));
        assert!(!win.contains(SAT, 12 * 60));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let win = w("fri 22:00-05:00");
        assert!(win.contains(FRI, 23 * 60));
        assert!(win.contains(SAT, 4 * 60 + 59), "Saturday morning is Friday night's window");
        assert!(!win.contains(SAT, 23 * 60));
        assert!(!win.contains(FRI, 4 * 60), "Friday morning belongs to Thursday's window, which is not set");
        assert!(w("sun 23:00-01:00").contains(MON, 30), "Sunday wraps into Monday");
    }

    #[test]
    fn whole_days_lists_and_wrapping_ranges() {
        let win = w("sat,sun 00:00-24:00");
        assert!(win.contains(SAT, 0) && win.contains(SUN, 1439));
        assert!(!win.contains(MON, 0));
        let wrap = w("fri-mon 12:00-13:00");
        assert!([FRI, SAT, SUN, MON].iter().all(|d| wrap.contains(*d, 12 * 60)));
        assert!(!wrap.contains(2, 12 * 60));
        assert_eq!(w("* 02:00-04:00").to_string(), "* 02:00-04:00");
        assert_eq!(w("Mon,wed-thu 22:00-05:00").to_string(), "mon,wed,thu 22:00-05:00");
    }

    #[test]
    fn malformed_windows_say_what_to_write() {
        for (bad, says) in [
            ("mon-fri", "not a window"),
            ("monday 01:00-02:00", "\"monday\" is not a day"),
            ("mon 1:00-02:00", "\"1:00\" is not a time"),
            ("mon 01:00-24:30", "\"24:30\" is not a time"),
            ("mon 24:00-02:00", "starts at 24:00"),
            ("mon 02:00-02:00", "for a whole day write 00:00-24:00"),
            ("mon 02:00", "not a time range"),
        ] {
            let err = bad.parse::<Window>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn time_zones() {
        assert_eq!("UTC".parse::<Timezone>().unwrap(), Timezone::Utc);
        assert_eq!("local".parse::<Timezone>().unwrap(), Timezone::Local);
        assert_eq!("+01:00".parse::<Timezone>().unwrap(), Timezone::Fixed(3600));
        assert_eq!("-05:30".parse::<Timezone>().unwrap(), Timezone::Fixed(-19_800));
        assert_eq!(Timezone::Fixed(-19_800).to_string(), "-05:30");
        for bad in ["CET", "+1", "+15:00", ""] {
            assert!(bad.parse::<Timezone>().is_err(), "{bad}");
        }
    }

    #[test]
    fn is_open_reads_the_clock_in_the_configured_zone() {
        // 2026-01-02 (a Friday) 22:30 UTC.
        let t = 1_767_393_000;
        let m = |tz| Maintenance { windows: vec![w("fri 22:00-23:00")], timezone: tz };
        assert!(m(Timezone::Utc).is_open(t, 7200), "UTC ignores the local offset");
        assert!(!m(Timezone::Fixed(3600)).is_open(t, 0), "23:30 at +01:00 is past the window");
        assert!(m(Timezone::Local).is_open(t, 0));
        assert!(!m(Timezone::Local).is_open(t, -3 * 3600), "19:30 local");
        let none = Maintenance { windows: vec![], timezone: Timezone::Utc };
        assert!(!none.is_open(t, 0));
    }

    /// 2026-07-01 12:00 UTC and 2026-01-02 22:30 UTC: summer and winter in the north.
    const JULY: i64 = 1_782_907_200;
    const JANUARY: i64 = 1_767_393_000;

    #[test]
    fn the_offset_follows_the_zone_and_its_daylight_saving_time() {
        let rule = "EST5EDT,M3.2.0,M11.1.0";
        assert_eq!((offset_in(Some(rule), JULY), offset_in(Some(rule), JANUARY)), (-4 * 3600, -5 * 3600));
        assert_eq!(offset_in(Some("<+0530>-5:30"), JULY), 19_800);
        assert_eq!(offset_in(Some(""), JULY), 0, "an empty TZ is UTC");
        assert_eq!(offset_in(Some("no such zone / 99"), JULY), 0, "unreadable: UTC");
    }

    #[test]
    fn the_offset_is_read_from_a_zone_file() {
        // A TZif file: what /etc/localtime is, or what TZ=/path or TZ=:Name names.
        let Ok(paris) = std::fs::read("/usr/share/zoneinfo/Europe/Paris") else {
            eprintln!("skipped: no /usr/share/zoneinfo/Europe/Paris on this machine");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("localtime");
        std::fs::write(&file, &paris).unwrap();
        let path = file.to_str().unwrap();
        assert_eq!((offset_in(Some(path), JULY), offset_in(Some(path), JANUARY)), (7200, 3600));
        assert_eq!(offset_in(Some(&format!(":{path}")), JULY), 7200);
        assert_eq!(offset_in(Some("Europe/Paris"), JANUARY), 3600, "a name under /usr/share/zoneinfo");
    }

    /// `local_offset` reads the process's own `TZ`: this test runs itself again in child
    /// processes, each with another `TZ`, and the child half checks the offset it reads.
    #[test]
    fn the_local_offset_is_the_one_tz_sets_for_the_process() {
        const EXPECT: &str = "FERRY_AGENT_TEST_EXPECT_OFFSET";
        if let Ok(expected) = std::env::var(EXPECT) {
            assert_eq!(local_offset(JULY).to_string(), expected, "TZ={:?}", std::env::var("TZ"));
            return;
        }
        let name = "maintenance::tests::the_local_offset_is_the_one_tz_sets_for_the_process";
        for (tz, expected) in [("EST5EDT,M3.2.0,M11.1.0", -4 * 3600), ("<+0530>-5:30", 19_800), ("", 0)] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env("TZ", tz)
                .env(EXPECT, expected.to_string())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "TZ={tz:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
