//! Records the store keeps.

use std::collections::BTreeMap;

use ferry_core::{DeviceId, DeviceState, DeviceStatus, GroupName, PlatformName, ProductName, ReleaseId, Role, Version};
use serde::{Deserialize, Serialize};

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Platform {
    /// Unique name.
    pub name: PlatformName,
    /// Free text.
    pub description: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A static group of devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    /// Unique name.
    pub name: GroupName,
    /// Free text.
    pub description: String,
    /// Base interval between check-ins, in seconds.
    pub checkin_interval_secs: u64,
    /// Relative jitter applied to the interval, in `[0, 1]`.
    pub checkin_jitter: f64,
    /// SHA-256 (hex) of the group's enrollment key, if it has one.
    pub enrollment_key_hash: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// What an approval tells the group's devices to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ApprovalAction {
    /// Install, optionally by a deadline.
    Install,
    /// Never offer it to this group.
    Decline,
}

impl ApprovalAction {
    /// The lower-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Decline => "decline",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "install" => Some(Self::Install),
            "decline" => Some(Self::Decline),
            _ => None,
        }
    }
}

/// A change to a release: its notes and whether it is archived. Everything else about a
/// release is immutable once published (devices and signed metadata rely on it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseChange {
    /// New release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Archive (true) or unarchive (false): an archived release is kept, with its content, and
    /// listed, but offered to no device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

/// The approval of one release for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// The release.
    pub release: ReleaseId,
    /// The group.
    pub group: GroupName,
    /// Install or decline.
    pub action: ApprovalAction,
    /// For installs: unix seconds after which devices install without consent.
    pub deadline: Option<i64>,
    /// Name of the admin token that set it.
    pub approved_by: String,
    /// Unix seconds.
    pub approved_at: i64,
}

/// A device as the server knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// The identity the device claims.
    pub id: DeviceId,
    /// Enrollment status.
    pub status: DeviceStatus,
    /// Static group memberships, by name.
    pub groups: Vec<GroupName>,
    /// Reported platform.
    pub platform: Option<PlatformName>,
    /// Reported installed software versions.
    pub installed: BTreeMap<ProductName, Version>,
    /// Reported installed configuration-bundle versions.
    pub configs: BTreeMap<ProductName, Version>,
    /// Reported inventory attributes.
    pub attributes: BTreeMap<String, String>,
    /// Reported agent version.
    pub agent_version: Option<String>,
    /// Boot id of the latest check-in.
    pub boot_id: Option<String>,
    /// Boot id before that.
    pub prev_boot_id: Option<String>,
    /// Unix seconds of the latest check-in.
    pub last_contact: Option<i64>,
    /// Unix seconds when the device was enrolled or pre-authorised.
    pub enrolled_at: i64,
    /// How often another machine was seen using this identity.
    pub identity_conflicts: i64,
    /// What the latest identity conflict was.
    pub last_conflict: Option<String>,
    /// Unix seconds of the latest identity conflict.
    pub last_conflict_at: Option<i64>,
    /// The device's current director version, as loaded with its credential
    /// ([`Store::devices_by_credentials`](crate::Store::devices_by_credentials)), so a check-in
    /// can tell without another query whether its director metadata is current. Not part of
    /// the API; `None` from other reads.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
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

/// A status event as the agent sends it. Unknown fields are refused, as in every request body:
/// a misspelt field must not be dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Per-device sequence number chosen by the agent, strictly increasing; the idempotency key.
    pub seq: i64,
    /// The release it concerns.
    pub release: ReleaseId,
    /// The new state.
    pub state: DeviceState,
    /// Bytes downloaded, or percent, depending on the state.
    pub progress: Option<i64>,
    /// Machine-readable error code for failures.
    pub error_code: Option<String>,
    /// Human message or log excerpt.
    pub message: Option<String>,
    /// Unix seconds on the device's clock.
    pub at: i64,
}

/// A stored status event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// What the agent sent.
    #[serde(flatten)]
    pub event: NewEvent,
    /// Unix seconds on the server's clock.
    pub received_at: i64,
}

/// How many events of a batch were new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendOutcome {
    /// Newly stored.
    pub stored: u32,
    /// Already stored earlier (retries).
    pub duplicates: u32,
}

/// The latest known state of one release on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseState {
    /// The release.
    pub release: ReleaseId,
    /// Its state.
    pub state: DeviceState,
    /// Progress of the latest event.
    pub progress: Option<i64>,
    /// Error code of the latest event.
    pub error_code: Option<String>,
    /// Message of the latest event.
    pub message: Option<String>,
    /// Unix seconds (server clock) of the latest event.
    pub updated_at: i64,
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

/// A stored admin token (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminToken {
    /// Store-assigned id.
    pub id: i64,
    /// Human name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
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
/// [`Store::advance_director_state`](crate::Store::advance_director_state).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_refuse_unknown_fields_and_stored_events_still_parse() {
        let sent =
            r#"{"seq":1,"release":2,"state":"downloading","progress":null,"error_code":null,"message":null,"at":3}"#;
        let event: NewEvent = serde_json::from_str(sent).unwrap();
        let stored = serde_json::to_string(&Event { event, received_at: 4 }).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&stored).unwrap().received_at, 4);
        let typo = sent.replace("\"at\":3", "\"at\":3,\"mesage\":\"x\"");
        let e = serde_json::from_str::<NewEvent>(&typo).unwrap_err();
        assert!(e.to_string().contains("mesage"), "{e}");
    }
}
