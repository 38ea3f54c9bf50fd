//! The bodies of the trust routes: online keys, pushing and drafting signed metadata, the image
//! repository's status.
//!
//! Signed TUF metadata is carried as JSON, never re-serialised through a struct of its own:
//! signatures cover the canonical form of `signed` exactly as the signer wrote it, so the server
//! verifies the bytes it received and a drafted `signed` reaches the signer field for field.

use std::collections::BTreeMap;

use ferry_core::{ProductName, ReleaseId, Version};
use ferry_tuf::{PublicKey, Signature};
use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

/// The server's online public keys, by role, as TUF lists keys. `ferry trust online-keys
/// --out FILE` saves this body for `ferry root create --online-keys FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OnlineKeys {
    /// The image repository's snapshot key.
    pub snapshot: PublicKey,
    /// The image repository's timestamp key.
    pub timestamp: PublicKey,
    /// The director repository's root key.
    pub director_root: PublicKey,
    /// The director repository's targets, snapshot and timestamp key.
    pub director: PublicKey,
    /// The snapshot and timestamp keys an online-key rotation has waiting, until a pushed root
    /// lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextOnlineKeys>,
}

/// The image repository's online keys waiting to take over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NextOnlineKeys {
    /// The waiting snapshot key.
    pub snapshot: PublicKey,
    /// The waiting timestamp key.
    pub timestamp: PublicKey,
}

/// The director's keys after a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DirectorRotated {
    /// The director root's new version, signed by the old and the new root key.
    pub root_version: u64,
    /// The new director root key.
    pub director_root: PublicKey,
    /// The new director key.
    pub director: PublicKey,
}

/// A TUF metadata file as a publisher signed it (`PUT /trust/image/…`). The server reads the
/// body as bytes and verifies the signatures over them; this type describes its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignedMetadata {
    /// The signed content: root or targets metadata in TUF's format (`_type`, `version`,
    /// `expires`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub signed: serde_json::Value,
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
}

/// What a push published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Published {
    /// The role pushed.
    pub role: String,
    /// Its version.
    pub version: u64,
    /// The snapshot version signed for it (absent for root).
    pub snapshot_version: Option<u64>,
    /// The timestamp version signed for it (absent for root).
    pub timestamp_version: Option<u64>,
}

/// Which targets to draft (`GET /trust/image/draft`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
pub struct DraftQuery {
    /// `targets` (default) or a delegated role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Comma-separated release ids to add; default: every release not yet signed that the
    /// role may sign for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases: Option<String>,
    /// Days until the drafted metadata expires (default 365, at most 3660).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_days: Option<u32>,
}

/// The next version of a targets role, unsigned: sign `signed` offline and push the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TargetsDraft {
    /// Targets metadata in TUF's format, exactly as it is to be signed.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub signed: serde_json::Value,
    /// Empty: nobody signed it yet.
    pub signatures: Vec<Signature>,
}

/// The image repository's metadata and the releases no signed targets list yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TrustStatus {
    /// Each role's latest version, by role name.
    pub roles: BTreeMap<String, RoleStatus>,
    /// Releases that no signed targets metadata lists yet.
    pub unsigned_releases: Vec<UnsignedRelease>,
    /// Whether releases are offered only once signed (`trust.require_signed_releases`).
    pub require_signed_releases: bool,
}

/// One role's latest metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoleStatus {
    /// Its version.
    pub version: u64,
    /// When it expires (TUF's `expires`).
    pub expires: Option<String>,
}

/// A release awaiting a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UnsignedRelease {
    /// Its id.
    pub id: ReleaseId,
    /// Its product.
    pub product: ProductName,
    /// Its version.
    pub version: Version,
}
