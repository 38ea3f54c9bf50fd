//! Parsers of command-line values that are not plain names or numbers.

use ferry_core::{Dependency, ProductName, ReleaseId, Version};
use serde::de::DeserializeOwned;

/// Parses an enum by its wire name (`full`, `security`, `operator`), so that the names on the
/// command line are exactly those of the API and defined once, in the core.
pub fn wire_enum<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|e| {
        // serde says "unknown variant `x`, expected one of `a`, `b`"; drop its position suffix.
        let text = e.to_string();
        text.split(" at line").next().unwrap_or(&text).to_owned()
    })
}

/// Parses `PRODUCT>=VERSION`.
pub fn dependency(s: &str) -> Result<Dependency, String> {
    let (product, version) =
        s.split_once(">=").ok_or_else(|| format!("{s:?} is not PRODUCT>=VERSION, e.g. vpn-client>=5.0"))?;
    Ok(Dependency {
        product: ProductName::new(product.trim()).map_err(|e| e.to_string())?,
        min_version: Version::new(version.trim()).map_err(|e| e.to_string())?,
    })
}

/// Parses a release id (a positive integer).
pub fn release_id(s: &str) -> Result<ReleaseId, String> {
    ReleaseId::parse(s).map_err(|e| format!("{e}; `ferry release list` shows them"))
}

/// The longest validity of signed metadata, in days (ten years; the server's limit too).
pub const MAX_EXPIRES_DAYS: u32 = 3660;

/// Parses a number of days until signed metadata expires, 1 to [`MAX_EXPIRES_DAYS`].
pub fn expires_days(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(days) if (1..=MAX_EXPIRES_DAYS).contains(&days) => Ok(days),
        _ => Err(format!("{s:?} is not a number of days from 1 to {MAX_EXPIRES_DAYS}")),
    }
}

/// Parses a deadline: RFC 3339 (`2025-01-31T12:00:00Z`), a date, or unix seconds.
pub fn deadline(s: &str) -> Result<i64, String> {
    match s.trim().parse::<i64>() {
        Ok(secs) => Ok(secs),
        Err(_) => crate::time::parse_rfc3339(s),
    }
}

#[cfg(test)]
mod tests {
    use ferry_core::{ReleaseKind, Role};

    use super::*;

    #[test]
    fn wire_enums_use_api_names() {
        assert_eq!(wire_enum::<ReleaseKind>("patch"), Ok(ReleaseKind::Patch));
        assert_eq!(wire_enum::<Role>("operator"), Ok(Role::Operator));
        let err = wire_enum::<Role>("root").unwrap_err();
        assert_eq!(err, "unknown variant `root`, expected one of `viewer`, `operator`, `admin`");
    }

    #[test]
    fn dependencies_parse() {
        let d = dependency("vpn-client>=5.0.04").unwrap();
        assert_eq!((d.product.as_str(), d.min_version.as_str()), ("vpn-client", "5.0.04"));
        assert!(dependency("vpn-client=5").is_err());
        assert!(dependency("../x>=1").is_err());
        assert!(dependency("x>=banana").is_err());
    }

    #[test]
    fn deadlines_and_ids_parse() {
        assert_eq!(deadline("1738324800"), Ok(1_738_324_800));
        assert_eq!(deadline("2025-01-31T12:00:00Z"), Ok(1_738_324_800));
        assert!(deadline("next week").is_err());
        assert_eq!(release_id("7"), Ok(ReleaseId(7)));
        assert!(release_id("0").is_err() && release_id("x").is_err());
        assert_eq!(expires_days("365"), Ok(365));
        assert!(expires_days("0").is_err() && expires_days("3661").is_err() && expires_days("-1").is_err());
    }
}
