//! TUF's `expires` timestamps: `YYYY-MM-DDTHH:MM:SSZ`, whole seconds, UTC.

use crate::error::{Result, TufError};

/// Unix seconds for a TUF `expires` string.
pub fn parse_expires(text: &str) -> Result<i64> {
    ferry_core::time::parse_unix(text)
        .ok_or_else(|| TufError::malformed("expires", format!("{text:?} is not YYYY-MM-DDTHH:MM:SSZ")))
}

/// The TUF `expires` string for Unix seconds.
pub fn format_expires(unix: i64) -> String {
    ferry_core::time::format_unix(unix)
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
