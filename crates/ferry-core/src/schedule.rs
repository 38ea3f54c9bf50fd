//! When a device should check in next.

/// The delay before the next check-in: `interval` scaled by a factor drawn uniformly from
/// `[1 - jitter, 1 + jitter]`, so that a fleet spreads its load instead of arriving together.
///
/// `unit` is a random number in `[0, 1)` supplied by the caller (the core does no IO, so it
/// draws no randomness itself); `jitter` is clamped to `[0, 1]`. The result is at least one
/// second.
pub fn next_checkin_delay(interval_secs: u64, jitter: f64, unit: f64) -> u64 {
    let jitter = jitter.clamp(0.0, 1.0);
    let unit = unit.clamp(0.0, 1.0);
    let factor = 1.0 - jitter + 2.0 * jitter * unit;
    ((interval_secs as f64) * factor).round().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_the_jitter_band() {
        for i in 0..=100 {
            let d = next_checkin_delay(3600, 0.1, i as f64 / 100.0);
            assert!((3240..=3960).contains(&d), "{d}");
        }
        assert_eq!(next_checkin_delay(3600, 0.1, 0.0), 3240);
        assert_eq!(next_checkin_delay(3600, 0.0, 0.7), 3600);
    }

    #[test]
    fn never_zero() {
        assert_eq!(next_checkin_delay(0, 0.5, 0.5), 1);
        assert_eq!(next_checkin_delay(1, 1.0, 0.0), 1);
    }
}
