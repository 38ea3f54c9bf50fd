//! What only persistence needs: the inputs of writes that carry credential hashes, query
//! shapes, and the stored TUF metadata. The domain records themselves (products, devices,
//! events, …) are `ferry-core`'s.

use std::collections::BTreeMap;

use ferry_core::{Device, DeviceId, DeviceStatus, GroupName, PlatformName, ProductName, Role, Version};
use serde::{Deserialize, Serialize};

/// A device found by its credential, with what the check-in path reads along with it.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialMatch {
    /// The device.
    pub device: Device,
    /// Its current director version, so that a check-in can tell without another query whether
    /// its director metadata is current; `None` when none was issued yet.
    pub director: Option<DirectorStamp>,
}

/// A director version without its files: what a check-in compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorStamp {
    /// The version.
    pub version: u64,
    /// Digest of what its targets list.
    pub digest: String,
    /// Unix seconds when it was issued.
    pub issued_at: i64,
}

/// Which devices to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only devices in this status.
    pub status: Option<DeviceStatus>,
    /// Only members of this group.
    pub group: Option<GroupName>,
    /// Only devices with at least one identity conflict.
    pub conflicts_only: bool,
    /// Only devices whose id sorts after this one (pagination).
    pub after: Option<DeviceId>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
}

/// A device enrolling. Applied atomically:
/// - unknown id: a new device is created with `status` and `groups`; a `secret_hash` is
///   Refused (no pre-authorisation issued it);
/// - pre-authorised id: with the `secret_hash` it was pre-authorised with, it takes the
///   credential, becomes `accepted`, and `groups` are added to the groups it was
///   pre-authorised into; without it, Refused;
/// - any other known id: a claim proven by its pre-authorisation secret, or by a group's
///   enrollment key (`status` `Accepted` and no `secret_hash`), is refused with Conflict and
///   recorded on the existing device as an identity conflict (another machine holding the
///   device's proof claims its identity); an unproven claim is Refused.
///
/// Refused changes nothing, so that a stranger who guesses an id can neither take it nor
/// tell it from an unknown one, nor raise its conflict count.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Claimed identity.
    pub id: DeviceId,
    /// SHA-256 (hex) of the credential issued to it.
    pub credential_hash: String,
    /// `Accepted` when a valid enrollment key was given, `Pending` otherwise.
    pub status: DeviceStatus,
    /// Groups to join (the enrollment key's group).
    pub groups: Vec<GroupName>,
    /// Description of the attempt, recorded if it is a conflict (e.g. remote address).
    pub origin: String,
    /// SHA-256 (hex) of the pre-authorisation secret the device presented, if any.
    pub secret_hash: Option<String>,
    /// Unix seconds.
    pub now: i64,
}

/// What a check-in changes on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinRecord {
    /// Reported platform.
    pub platform: Option<PlatformName>,
    /// Reported installed software versions.
    pub installed: BTreeMap<ProductName, Version>,
    /// Reported configuration-bundle versions.
    pub configs: BTreeMap<ProductName, Version>,
    /// Reported inventory attributes.
    pub attributes: BTreeMap<String, String>,
    /// Reported agent version.
    pub agent_version: Option<String>,
    /// New boot id.
    pub boot_id: Option<String>,
    /// New previous boot id.
    pub prev_boot_id: Option<String>,
    /// Unix seconds.
    pub last_contact: i64,
    /// Set when this check-in revealed an identity conflict: its description.
    pub conflict: Option<String>,
}

/// An admin token to store.
#[derive(Debug, Clone)]
pub struct NewAdminToken {
    /// Human name ("ci", "alice").
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 (hex) of the token.
    pub hash: String,
}

/// Which TUF repository a metadata file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Repo {
    /// The image repository: publishers' signed releases.
    Image,
    /// The director repository: its root (per-device metadata is built on demand).
    Director,
}

impl Repo {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Director => "director",
        }
    }
}

/// One stored TUF metadata file: the exact bytes served, by repository, role and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataFile {
    /// The repository.
    pub repo: Repo,
    /// `root`, `targets`, `snapshot`, `timestamp` or a delegated role's name.
    pub role: String,
    /// The version inside the file.
    pub version: u64,
    /// The file as signed.
    pub bytes: Vec<u8>,
    /// Unix seconds when stored.
    pub created_at: i64,
}

/// What a device's director metadata was last issued as. Versions only rise: see
/// [`TrustStore::advance_director_state`](crate::TrustStore::advance_director_state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorState {
    /// Version of the device's director targets, snapshot and timestamp (one number for all three).
    pub version: u64,
    /// Digest of what the targets list, to tell whether a new version is needed.
    pub digest: String,
    /// Unix seconds when this version was issued (its expiries derive from it).
    pub issued_at: i64,
    /// The signed files of this version, served byte for byte.
    pub files: DirectorFiles,
}

/// One director version's signed files.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DirectorFiles {
    /// `targets.json`: what the device should install, naming the device.
    pub targets: Vec<u8>,
    /// `snapshot.json`: the targets version.
    pub snapshot: Vec<u8>,
    /// `timestamp.json`: the snapshot version.
    pub timestamp: Vec<u8>,
}

impl std::fmt::Debug for DirectorFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorFiles")
            .field("targets", &self.targets.len())
            .field("snapshot", &self.snapshot.len())
            .field("timestamp", &self.timestamp.len())
            .finish()
    }
}

/// What [`crate::RolloutStore::grant`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantOutcome {
    /// A new grant.
    Granted(ferry_core::rollout::Grant),
    /// The device had been granted before.
    Existing(ferry_core::rollout::Grant),
    /// Not now, and why.
    Refused(ferry_core::rollout::Refusal),
}
