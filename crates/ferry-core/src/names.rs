//! Validated names. Anything that ends up in a path, a URL or a TUF target name is one of these
//! newtypes, so traversal (`..`, `/`, `\`, NUL, control characters) is impossible by construction.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// What kind of name it was.
        kind: &'static str,
    },
    /// The name was longer than allowed.
    #[error("{kind} is {len} characters long; the limit is {max}")]
    TooLong {
        /// What kind of name it was.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name contained a character that is not allowed.
    #[error("{kind} {value:?} contains {ch:?}; use letters, digits, '.', '-' and '_'{extra}")]
    BadChar {
        /// What kind of name it was.
        kind: &'static str,
        /// The offending value.
        value: String,
        /// The first offending character.
        ch: char,
        /// Additional characters the kind allows.
        extra: &'static str,
    },
    /// The name did not start with a letter or digit.
    #[error("{kind} {value:?} must start with a letter or a digit")]
    BadStart {
        /// What kind of name it was.
        kind: &'static str,
        /// The offending value.
        value: String,
    },
}

fn validate(kind: &'static str, value: &str, max: usize, extra: &'static str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { kind });
    }
    let len = value.chars().count();
    if len > max {
        return Err(NameError::TooLong { kind, len, max });
    }
    if let Some(ch) =
        value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || extra.contains(*c)))
    {
        let extra = if extra.is_empty() { "" } else { " (and some of: +~@:)" };
        return Err(NameError::BadChar { kind, value: value.to_owned(), ch, extra });
    }
    // A leading letter or digit rules out ".", "..", hidden files and option-like names.
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NameError::BadStart { kind, value: value.to_owned() });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $extra:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                validate($kind, &value, $max, $extra)?;
                Ok(Self(value))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A product, e.g. `vpn-client` or `phone-firmware`.
    ProductName, "product name", 64, ""
);
name_type!(
    /// A platform: a client type such as `windows-x86_64` or a device model such as `ipphone-8841`.
    PlatformName, "platform name", 64, ""
);
name_type!(
    /// A device group.
    GroupName, "group name", 64, ""
);
name_type!(
    /// An artifact's file name inside a release. Never contains a path separator.
    ArtifactName, "artifact name", 128, "+~@"
);
name_type!(
    /// A device's identity as the device claims it (e.g. a serial number or a machine id).
    DeviceId, "device id", 128, ":@"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["vpn-client", "a", "phone_fw.2", "x86_64"] {
            ProductName::new(ok).unwrap();
        }
        ArtifactName::new("setup-5.0.04+x64.msi").unwrap();
        DeviceId::new("SN:00ab-77@site1").unwrap();
    }

    #[test]
    fn refuses_traversal_and_separators() {
        for bad in ["", ".", "..", "../etc", "a/b", "a\\b", ".hidden", "-rf", "a b", "a\0b", "é"] {
            assert!(ArtifactName::new(bad).is_err(), "{bad:?} was accepted");
            assert!(ProductName::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refuses_overlong_names() {
        let err = ProductName::new("a".repeat(65)).unwrap_err();
        assert_eq!(err.to_string(), "product name is 65 characters long; the limit is 64");
    }

    #[test]
    fn deserialising_validates() {
        let err = serde_json::from_str::<ArtifactName>("\"../../x\"").unwrap_err();
        assert!(err.to_string().contains("contains '/'"), "{err}");
    }
}
