//! The catalogue: releases and their artifacts.
//!
//! An artifact is described the way a TUF target is: `length`, `sha256` and a free `custom`
//! object, so that the Trust work can publish releases as signed targets without reshaping them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{ArtifactName, PlatformName, ProductName};
use crate::version::Version;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A release's server-assigned identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseId(pub i64);

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Text that is not a release id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a release id: release ids are positive whole numbers, such as 42")]
pub struct ReleaseIdError(pub String);

impl ReleaseId {
    /// Parses a release id as people type it: a positive whole number (surrounding spaces
    /// ignored).
    pub fn parse(s: &str) -> Result<Self, ReleaseIdError> {
        match s.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(Self(id)),
            _ => Err(ReleaseIdError(s.chars().take(80).collect())),
        }
    }
}

/// A lower-case hex SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Sha256(String);

/// A SHA-256 string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sha256 digest; expected 64 hexadecimal digits")]
pub struct Sha256Error(pub String);

impl Sha256 {
    /// Parses 64 hex digits (either case; stored lower-case).
    pub fn parse(s: &str) -> Result<Self, Sha256Error> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(Sha256Error(s.chars().take(80).collect()))
        }
    }

    /// Wraps a raw 32-byte digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        use fmt::Write;
        let mut s = String::with_capacity(64);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    /// The digest as lower-case hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Sha256 {
    type Err = Sha256Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum ReleaseKind {
    /// Installs over any installed version.
    Full,
    /// Applies only to installed versions inside [`Release::applies_to`].
    Patch,
    /// A configuration or profile bundle, with a version line of its own.
    Config,
}

impl ReleaseKind {
    /// Whether this kind follows the configuration version line rather than the software one.
    pub fn is_config(self) -> bool {
        self == Self::Config
    }

    /// The lower-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Patch => "patch",
            Self::Config => "config",
        }
    }
}

/// Whether installing needs a reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum RebootBehaviour {
    /// Never.
    #[default]
    None,
    /// Always.
    Required,
    /// The installer decides.
    Possible,
}

/// Why a release exists, used by approval rules and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Classification {
    /// Fixes a vulnerability.
    Security,
    /// Fixes a critical, non-security defect.
    Critical,
    /// Ordinary bug fixes.
    Bugfix,
    /// New functionality.
    #[default]
    Feature,
    /// Tooling, drivers, definitions and other maintenance.
    Maintenance,
}

/// One file of a release, described as a TUF target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Artifact {
    /// File name, unique within the release.
    pub name: ArtifactName,
    /// Exact size in bytes.
    pub length: u64,
    /// SHA-256 of the content.
    pub sha256: Sha256,
    /// Media type, e.g. `application/gzip`.
    #[serde(default = "default_media_type")]
    pub media_type: String,
    /// Free-form data carried into the TUF target's `custom` object.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom: serde_json::Map<String, serde_json::Value>,
}

fn default_media_type() -> String {
    "application/octet-stream".to_owned()
}

/// An inclusive range of installed versions; an open end is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VersionRange {
    /// Lowest installed version the patch applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Version>,
    /// Highest installed version the patch applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Version>,
}

impl VersionRange {
    /// Whether `v` ranks inside the range.
    pub fn contains(&self, v: &Version) -> bool {
        use std::cmp::Ordering::*;
        self.min.as_ref().is_none_or(|m| v.cmp_rank(m) != Less)
            && self.max.as_ref().is_none_or(|m| v.cmp_rank(m) != Greater)
    }
}

/// A release another release needs installed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Dependency {
    /// The product needed.
    pub product: ProductName,
    /// The lowest version of it that satisfies the dependency.
    pub min_version: Version,
}

/// A release as stored in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Release {
    /// Server-assigned id.
    pub id: ReleaseId,
    /// Product the release belongs to.
    pub product: ProductName,
    /// Version of the product (or of its configuration line for `config` releases).
    pub version: Version,
    /// Full, patch or config.
    pub kind: ReleaseKind,
    /// Platforms it installs on; at least one.
    pub platforms: Vec<PlatformName>,
    /// Files; at least one.
    pub artifacts: Vec<Artifact>,
    /// Whether devices install it without consent.
    pub required: bool,
    /// Whether installing needs a reboot.
    pub reboot: RebootBehaviour,
    /// Why it exists.
    pub classification: Classification,
    /// Release notes shown to users and administrators.
    pub notes: String,
    /// Releases it needs first.
    pub dependencies: Vec<Dependency>,
    /// Older versions of the same product (and line) that this release replaces.
    pub supersedes: Vec<Version>,
    /// Installed versions that need no update ("revisions" in seed 000).
    pub no_update_versions: Vec<Version>,
    /// For `patch` releases: the installed versions it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<VersionRange>,
    /// Monotonic per product; carried into TUF `custom` so devices refuse older releases.
    pub counter: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Archived: kept with its content and shown in lists, but offered to no device.
    #[serde(default)]
    pub archived: bool,
    /// Marked bad by an administrator: withdrawn from every offer, and devices running it are
    /// told to go back to the version they kept. There is no undo; a fixed release replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad: Option<BadMark>,
}

/// Why and when an administrator marked a release bad ([`Release::bad`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BadMark {
    /// Unix seconds of the first mark.
    pub at: i64,
    /// What is wrong with the release, as the administrator wrote it.
    pub reason: String,
    /// The name of the admin token that marked it.
    pub by: String,
}

/// Limit on the reason given when marking a release bad, in bytes.
pub const MAX_BAD_REASON: usize = 1024;

/// Why a release definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// No platform listed.
    #[error("a release needs at least one platform")]
    NoPlatform,
    /// No artifact listed.
    #[error("a release needs at least one artifact")]
    NoArtifact,
    /// The same artifact name twice.
    #[error("artifact name {0} appears twice; names must be unique within a release")]
    DuplicateArtifact(ArtifactName),
    /// A patch without a range.
    #[error("a patch release needs applies_to: the range of installed versions it patches")]
    PatchWithoutRange,
    /// A range on a non-patch release.
    #[error("applies_to is only meaningful for patch releases")]
    RangeWithoutPatch,
    /// A release superseding itself.
    #[error("a release cannot supersede its own version")]
    SupersedesItself,
    /// Too many list entries.
    #[error("{what} has {len} entries; the limit is {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Release notes too long.
    #[error("release notes are {0} bytes; the limit is 65536")]
    NotesTooLong(usize),
}

/// Limits on list fields of a release.
pub const MAX_LIST: usize = 256;
/// Limit on release notes, in bytes.
pub const MAX_NOTES: usize = 64 * 1024;

impl Release {
    /// Checks the rules a release must satisfy beyond field validity.
    pub fn check(&self) -> Result<(), ReleaseError> {
        if self.platforms.is_empty() {
            return Err(ReleaseError::NoPlatform);
        }
        if self.artifacts.is_empty() {
            return Err(ReleaseError::NoArtifact);
        }
        for (what, len) in [
            ("platforms", self.platforms.len()),
            ("artifacts", self.artifacts.len()),
            ("dependencies", self.dependencies.len()),
            ("supersedes", self.supersedes.len()),
            ("no_update_versions", self.no_update_versions.len()),
        ] {
            if len > MAX_LIST {
                return Err(ReleaseError::TooMany { what, len, max: MAX_LIST });
            }
        }
        if self.notes.len() > MAX_NOTES {
            return Err(ReleaseError::NotesTooLong(self.notes.len()));
        }
        let mut names: Vec<&ArtifactName> = self.artifacts.iter().map(|a| &a.name).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ReleaseError::DuplicateArtifact(w[0].clone()));
        }
        match (self.kind, &self.applies_to) {
            (ReleaseKind::Patch, None) => return Err(ReleaseError::PatchWithoutRange),
            (ReleaseKind::Full | ReleaseKind::Config, Some(_)) => return Err(ReleaseError::RangeWithoutPatch),
            _ => {}
        }
        if self.supersedes.contains(&self.version) {
            return Err(ReleaseError::SupersedesItself);
        }
        Ok(())
    }

    /// The TUF target path of one of its artifacts: `product/version/artifact`.
    pub fn target_path(&self, artifact: &ArtifactName) -> String {
        format!("{}/{}/{}", self.product, self.version, artifact)
    }
}

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Product {
    /// Unique name.
    pub name: ProductName,
    /// Free text.
    pub description: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A platform: a client type (OS family and architecture) or a device model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Platform {
    /// Unique name.
    pub name: PlatformName,
    /// Free text.
    pub description: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A change to a release: its notes and whether it is archived. Everything else about a
/// release is immutable once published (devices and signed metadata rely on it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseChange {
    /// New release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Archive (true) or unarchive (false): an archived release is kept, with its content, and
    /// listed, but offered to no device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}
