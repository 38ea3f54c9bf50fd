//! Signed metadata: the server's online keys and the TUF image repository (docs/trust.md).

pub mod director;
mod error;
pub mod image;
pub mod keys;

pub use error::TrustError;
pub use keys::OnlineKeys;

/// The version of online-signed metadata issued at `now` (Unix seconds) after `previous` (the
/// stored version, if any): `max(previous + 1, now × 1000)`.
///
/// Devices refuse a version below one they have seen (TUF rollback protection), so the
/// versions the server signs with its online keys (image snapshot and timestamp, each device's
/// director chain) must never go down, also after a database restored from a backup holds
/// older ones. Every version is at least its issue time in milliseconds, so a version issued
/// after a restore is above anything issued before it (while fewer than a thousand versions
/// are issued a second). Offline-signed roles (root, targets) keep their own numbering.
pub fn next_version(previous: Option<u64>, now: i64) -> u64 {
    let floor = u64::try_from(now).unwrap_or(0).saturating_mul(1000);
    previous.map_or(floor, |p| p.saturating_add(1).max(floor))
}

#[cfg(test)]
mod tests {
    use super::next_version;

    #[test]
    fn versions_rise_and_stay_above_the_issue_time() {
        let now = 1_800_000_000;
        assert_eq!(next_version(None, now), 1_800_000_000_000, "the first issue starts at the time in ms");
        assert_eq!(next_version(Some(7), now), 1_800_000_000_000, "a restored, old version is jumped over");
        let issued = next_version(None, now);
        assert_eq!(next_version(Some(issued), now), issued + 1, "same second: one more");
        assert_eq!(next_version(Some(issued + 40), now + 1), issued + 1000, "a later second: its floor");
        assert_eq!(next_version(Some(u64::MAX), now), u64::MAX, "saturates instead of wrapping");
        assert_eq!(next_version(None, -5), 0, "a clock before 1970 is no floor");
    }
}
