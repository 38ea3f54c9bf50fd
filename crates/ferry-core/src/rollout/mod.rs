//! Staged rollouts as pure functions: which wave of a rollout a device belongs to (here), the
//! rollout's records (`model`) and its rules (`policy`).
//!
//! Every device has a *place* in each rollout: a number in `[0, 10 000)` (basis points) taken
//! from a SHA-256 of the rollout's id and the device id. The waves are cumulative shares of the
//! target, `1,10,50,100` percent say; a device is in the first wave whose share exceeds its
//! place. Three properties follow, and the tests below hold them:
//!
//! - **stable**: a device's place depends on nothing but the rollout and its own id, so devices
//!   that join the target later fall into the waves too, and nobody moves when the fleet grows;
//! - **monotonic**: a device admitted at 10 % is still admitted at 50 %;
//! - **independent per rollout**: a different rollout shuffles the fleet anew, so the same
//!   devices are not always the first to take a risk.

use sha2::{Digest as _, Sha256};

use crate::DeviceId;

pub mod model;
pub mod policy;

pub use model::{Cause, Grant, GrantState, Limits, Rate, Rollout, RolloutId, RolloutState, TimelineEntry, Wave};
pub use policy::{Action, ActionError, Load, Outcome, PlanError, Refusal, Tally, Transition};

/// The whole target, in basis points.
pub const ALL: u32 = 10_000;
/// Most waves a rollout may have.
pub const MAX_WAVES: usize = 20;

/// A device's place in a rollout, in `[0, ALL)`.
pub fn place(rollout: u64, device: &DeviceId) -> u32 {
    let mut hash = Sha256::new();
    hash.update(b"ferry rollout place\0");
    hash.update(rollout.to_be_bytes());
    hash.update(device.as_str().as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(ALL)) as u32
}

/// A rollout's waves: cumulative shares of its target in basis points, strictly increasing,
/// the last one the whole target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waves(Vec<u32>);

/// Why a list of waves was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaveError {
    /// Not a percentage with at most two decimals.
    #[error("wave {index}: {text:?} is not a percentage (0.01 to 100, at most two decimals)")]
    NotAPercentage { index: usize, text: String },
    /// Shares must grow from one wave to the next.
    #[error("wave {index}: {text}% is not more than the wave before it; waves are cumulative shares that grow")]
    NotIncreasing { index: usize, text: String },
    /// The last wave must reach the whole target.
    #[error("the last wave must be 100 (the whole target), not {text}%")]
    Incomplete { text: String },
    /// No waves, or too many.
    #[error("give between 1 and {MAX_WAVES} waves, e.g. 1,10,50,100")]
    Count,
}

impl Waves {
    /// Parses comma-separated cumulative percentages, e.g. `1,10,50,100` or `0.5,5,100`.
    pub fn parse(text: &str) -> Result<Self, WaveError> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.is_empty() || parts.len() > MAX_WAVES || parts.iter().all(|p| p.is_empty()) {
            return Err(WaveError::Count);
        }
        let mut shares = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let index = i + 1;
            let share =
                basis_points(part).ok_or_else(|| WaveError::NotAPercentage { index, text: part.to_string() })?;
            if shares.last().is_some_and(|&before| share <= before) {
                return Err(WaveError::NotIncreasing { index, text: part.to_string() });
            }
            shares.push(share);
        }
        if shares.last() != Some(&ALL) {
            return Err(WaveError::Incomplete { text: parts[parts.len() - 1].to_string() });
        }
        Ok(Self(shares))
    }

    /// The cumulative shares, in basis points.
    pub fn shares(&self) -> &[u32] {
        &self.0
    }

    /// The wave (0-based) a device at `place` belongs to.
    pub fn wave_of(&self, place: u32) -> usize {
        self.0.iter().position(|&share| place < share).unwrap_or(self.0.len() - 1)
    }

    /// Whether a device at `place` may be granted the release while wave `current` (0-based)
    /// is open: it belongs to that wave or an earlier one.
    pub fn admits(&self, current: usize, place: u32) -> bool {
        self.wave_of(place) <= current
    }
}

/// A threshold as people type it, `"95"` or `"2.5"` percent, in basis points: 0 to 100 with at
/// most two decimals.
pub fn parse_percent(text: &str) -> Option<u32> {
    let text = text.trim().trim_end_matches('%');
    if text == "0" {
        return Some(0);
    }
    basis_points(text)
}

/// Basis points as a percentage: 950 as `9.5`.
pub fn format_percent(points: u32) -> String {
    let (whole, fraction) = (points / 100, points % 100);
    match fraction {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// `"12.5"` as 1250 basis points; `None` unless it is 0.01 to 100 with at most two decimals.
fn basis_points(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || (fraction.len() <= 2 && fraction.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
    let points = whole * 100 + fraction;
    (1..=ALL).contains(&points).then_some(points)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn device(i: u32) -> DeviceId {
        DeviceId::new(format!("pc-{i:05}")).unwrap()
    }

    #[test]
    fn waves_parse_and_refuse_with_a_reason() {
        assert_eq!(Waves::parse("1,10,50,100").unwrap().shares(), &[100, 1000, 5000, 10_000]);
        assert_eq!(Waves::parse(" 0.5, 12.25 ,100").unwrap().shares(), &[50, 1225, 10_000]);
        assert_eq!(Waves::parse("100").unwrap().shares(), &[10_000]);
        assert!(matches!(Waves::parse("10,5,100"), Err(WaveError::NotIncreasing { index: 2, .. })));
        assert!(matches!(Waves::parse("10,10,100"), Err(WaveError::NotIncreasing { index: 2, .. })));
        assert!(matches!(Waves::parse("1,10,50"), Err(WaveError::Incomplete { .. })));
        for bad in ["0", "101", "1.234", "-1", "ten", "1e2", "", "1,,100", ".5", "5."] {
            assert!(Waves::parse(bad).is_err(), "{bad:?} is refused");
        }
        let too_many: Vec<String> = (1..=21).map(|i| (i * 4).min(100).to_string()).collect();
        assert_eq!(Waves::parse(&too_many.join(",")), Err(WaveError::Count));
        let message = Waves::parse("1,ten,100").unwrap_err().to_string();
        assert!(message.contains("wave 2") && message.contains("ten"), "{message}");
    }

    #[test]
    fn percentages_read_and_print_alike() {
        for (text, points) in [("0", 0), ("95", 9500), ("2.5", 250), ("0.05", 5), ("100", 10_000), ("5%", 500)] {
            assert_eq!(parse_percent(text), Some(points), "{text}");
        }
        for points in [0, 5, 250, 9500, 10_000, 1234] {
            assert_eq!(parse_percent(&format_percent(points)), Some(points));
        }
        for bad in ["101", "-1", "1.234", "x", ""] {
            assert_eq!(parse_percent(bad), None, "{bad:?}");
        }
    }

    /// Over a fleet of 10,000 the shares come out close to what was asked, and two rollouts
    /// pick different first waves (their 10 % waves overlap by about 1 %, not 10 %).
    #[test]
    fn places_spread_evenly_and_differ_per_rollout() {
        let waves = Waves::parse("1,10,50,100").unwrap();
        let fleet: Vec<DeviceId> = (0..10_000).map(device).collect();
        let mut per_wave = [0usize; 4];
        for d in &fleet {
            per_wave[waves.wave_of(place(7, d))] += 1;
        }
        for (got, want) in per_wave.iter().zip([100, 900, 4000, 5000]) {
            let off = (*got as f64 - want as f64).abs();
            assert!(off <= want as f64 * 0.2 + 30.0, "wave sizes {per_wave:?}, wanted about {want}");
        }
        let first = |rollout| fleet.iter().filter(|d| place(rollout, d) < 1000).cloned().collect::<Vec<_>>();
        let (a, b) = (first(7), first(8));
        let both = a.iter().filter(|d| b.contains(d)).count();
        assert!(both < 200, "two rollouts share {both} of their first 10 %");
    }

    proptest! {
        /// A device admitted in one wave is admitted in every later one.
        #[test]
        fn admission_is_monotonic(rollout: u64, id in 0u32..100_000, cuts in proptest::collection::btree_set(1u32..10_000, 0..6)) {
            let mut text: Vec<String> = cuts.iter().map(|c| format!("{}.{:02}", c / 100, c % 100)).collect();
            text.push("100".into());
            let waves = Waves::parse(&text.join(",")).unwrap();
            let p = place(rollout, &device(id));
            prop_assert!(p < ALL);
            let admitted: Vec<bool> = (0..waves.shares().len()).map(|w| waves.admits(w, p)).collect();
            prop_assert!(admitted.windows(2).all(|w| !w[0] || w[1]), "{admitted:?}");
            prop_assert!(admitted[admitted.len() - 1], "the last wave admits everyone");
        }

        /// A device's wave does not change when other devices join the target: it is a function
        /// of the rollout and the device alone, computed the same for any fleet it is part of.
        #[test]
        fn membership_is_stable_as_the_fleet_grows(rollout: u64, small in 1u32..50, more in 1u32..50) {
            let waves = Waves::parse("5,25,100").unwrap();
            let before: Vec<usize> = (0..small).map(|i| waves.wave_of(place(rollout, &device(i)))).collect();
            let after: Vec<usize> = (0..small + more).map(|i| waves.wave_of(place(rollout, &device(i)))).collect();
            prop_assert_eq!(&before[..], &after[..small as usize]);
        }
    }
}
