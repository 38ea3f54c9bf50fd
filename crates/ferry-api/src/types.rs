//! Request and response bodies.

use std::collections::BTreeMap;

use ferry_core::applicability::Decision;
use ferry_core::{
    AdminToken, ApprovalAction, Artifact, Classification, Dependency, Device, DeviceId, DeviceState, DeviceStatus,
    Event, GroupName, NewEvent, PlatformName, ProductName, RebootBehaviour, Release, ReleaseId, ReleaseKind,
    ReleaseState, Role, Sha256, Version, VersionRange,
};
use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Liveness and readiness answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
}

/// Creates a product.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// Unique name.
    pub name: ProductName,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// Creates a platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    /// Unique name.
    pub name: PlatformName,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// Stored content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ContentInfo {
    /// Hex SHA-256.
    pub sha256: Sha256,
    /// Size in bytes.
    pub length: u64,
    /// False when identical content was already stored (deduplicated).
    pub created: bool,
}

/// Publishes a release whose artifacts were uploaded as content beforehand.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// Product.
    pub product: ProductName,
    /// Version.
    pub version: Version,
    /// Full (default), patch or config.
    #[serde(default = "default_kind")]
    pub kind: ReleaseKind,
    /// Platforms it installs on.
    pub platforms: Vec<PlatformName>,
    /// Files, each already uploaded.
    pub artifacts: Vec<Artifact>,
    /// Install without consent.
    #[serde(default)]
    pub required: bool,
    /// Reboot behaviour.
    #[serde(default)]
    pub reboot: RebootBehaviour,
    /// Classification.
    #[serde(default)]
    pub classification: Classification,
    /// Release notes.
    #[serde(default)]
    pub notes: String,
    /// Releases needed first.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Versions this one replaces.
    #[serde(default)]
    pub supersedes: Vec<Version>,
    /// Installed versions that need no update.
    #[serde(default)]
    pub no_update_versions: Vec<Version>,
    /// For patches: installed versions it applies to.
    #[serde(default)]
    pub applies_to: Option<VersionRange>,
}

impl ReleaseSpec {
    /// The release this spec describes, before the server assigns `id`, `counter` and
    /// `created_at` (zero here). Call [`Release::check`] on it to validate the spec.
    pub fn into_release(self) -> Release {
        Release {
            id: ReleaseId(0),
            product: self.product,
            version: self.version,
            kind: self.kind,
            platforms: self.platforms,
            artifacts: self.artifacts,
            required: self.required,
            reboot: self.reboot,
            classification: self.classification,
            notes: self.notes,
            dependencies: self.dependencies,
            supersedes: self.supersedes,
            no_update_versions: self.no_update_versions,
            applies_to: self.applies_to,
            counter: 0,
            created_at: 0,
            archived: false,
            bad: None,
        }
    }
}

fn default_kind() -> ReleaseKind {
    ReleaseKind::Full
}

/// Marks a release bad (`POST /releases/{id}/mark-bad`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MarkBadSpec {
    /// What is wrong with the release: shown with it, 1 to 1024 bytes. Required (a missing
    /// reason is refused with a message saying so).
    #[serde(default)]
    pub reason: String,
}

/// Approves or declines a release for a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// Install or decline.
    pub action: ApprovalAction,
    /// For installs: unix seconds after which devices install without consent.
    #[serde(default)]
    pub deadline: Option<i64>,
}

/// Creates a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Unique name.
    pub name: GroupName,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Base check-in interval in seconds (default from the server configuration).
    #[serde(default)]
    pub checkin_interval_secs: Option<u64>,
    /// Relative jitter in `[0, 1]` (default from the server configuration).
    #[serde(default)]
    pub checkin_jitter: Option<f64>,
    /// Makes the group dynamic: its members are the devices this filter matches. A dynamic
    /// group has no enrollment key and no static members.
    #[serde(default)]
    pub filter: Option<String>,
    /// The group whose approvals also apply to this group's devices.
    #[serde(default)]
    pub parent: Option<GroupName>,
    /// When staged rollouts may grant its devices updates (emergencies aside).
    #[serde(default)]
    pub window: Option<ferry_core::MaintenanceWindow>,
}

/// Changes a group's settings; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Base check-in interval in seconds.
    #[serde(default)]
    pub checkin_interval_secs: Option<u64>,
    /// Relative jitter in `[0, 1]`.
    #[serde(default)]
    pub checkin_jitter: Option<f64>,
    /// Makes every member a test device, or stops doing so.
    #[serde(default)]
    pub test: Option<bool>,
    /// A new filter, which makes the group dynamic (and removes its enrollment key); the
    /// empty string makes it static again.
    #[serde(default)]
    pub filter: Option<String>,
    /// A new parent group; the empty string removes the parent.
    #[serde(default)]
    pub parent: Option<String>,
    /// A new maintenance window.
    #[serde(default)]
    pub window: Option<ferry_core::MaintenanceWindow>,
    /// Removes the maintenance window.
    #[serde(default)]
    pub clear_window: bool,
}

/// A group as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupView {
    /// Unique name.
    pub name: GroupName,
    /// Free text.
    pub description: String,
    /// Base check-in interval in seconds.
    pub checkin_interval_secs: u64,
    /// Relative jitter.
    pub checkin_jitter: f64,
    /// Whether devices can enroll into it with a key.
    pub has_enrollment_key: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Whether every member is a test device (offered signed releases no one approved yet).
    #[serde(default)]
    pub test: bool,
    /// For a dynamic group, the filter that selects its devices.
    #[serde(default)]
    pub filter: Option<String>,
    /// The group whose approvals also apply to this group's devices.
    #[serde(default)]
    pub parent: Option<GroupName>,
    /// When staged rollouts may grant its devices updates (emergencies aside).
    #[serde(default)]
    pub window: Option<ferry_core::MaintenanceWindow>,
}

/// Asks which devices a filter matches now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FilterPreviewSpec {
    /// The filter text.
    pub filter: String,
}

/// The devices a filter matches now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FilterPreview {
    /// How many devices match.
    pub count: u64,
    /// The first matching device ids (at most 100), in id order.
    pub devices: Vec<DeviceId>,
}

/// A group's new enrollment key, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrollmentKey {
    /// The group.
    pub group: GroupName,
    /// The key to give to devices. The server keeps only its hash.
    pub enrollment_key: String,
}

/// A pre-authorised device and the enrollment key only it may hold, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PreauthorizedDevice {
    /// The device, waiting for its first enrollment.
    pub device: Device,
    /// The key the device enrolls with (its `enrollment_key`), bound to this id alone. The
    /// server keeps only its hash; pre-authorising the id again issues a new one.
    pub enrollment_key: String,
}

/// Lists a device id in advance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PreauthorizeSpec {
    /// The id the device will claim.
    pub id: DeviceId,
    /// Groups it joins.
    #[serde(default)]
    pub groups: Vec<GroupName>,
}

/// Replaces a device's groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceGroups {
    /// Group names.
    pub groups: Vec<GroupName>,
}

/// Everything the admin API knows about one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeviceDetail {
    /// The device.
    pub device: Device,
    /// Latest state per release.
    pub releases: Vec<ReleaseState>,
    /// Most recent status events, oldest first.
    pub events: Vec<Event>,
    /// The groups whose approvals apply to it now: its static groups, the dynamic groups
    /// whose filter it matches and the ancestors of both, sorted.
    #[serde(default)]
    pub effective_groups: Vec<GroupName>,
}

/// Why each release is or is not offered to a device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApplicabilityReport {
    /// The device.
    pub device: DeviceId,
    /// The device's effective groups (static, dynamic and inherited): a release is
    /// `not_approved` when none of them approves it.
    #[serde(default)]
    pub groups: Vec<GroupName>,
    /// One decision per release of the device's products: those it reports installed and
    /// those with a release approved or declined for its groups.
    pub decisions: Vec<Decision>,
    /// Releases approved for install in its groups that no signed targets metadata lists yet
    /// (with `trust.require_signed_releases` on): they are offered once a publisher signs them.
    #[serde(default)]
    pub awaiting_signature: Vec<ReleaseId>,
    /// Whether the device is a test device (marked itself, or a member of a test group).
    #[serde(default)]
    pub test: bool,
    /// Releases decided as if approved for install only because the device is a test device:
    /// no group of its approves or declines them.
    #[serde(default)]
    pub pilot: Vec<ReleaseId>,
}

/// Marks a device as a test device, or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceTest {
    /// Whether the device is a test device.
    pub test: bool,
}

/// How a release went on the test devices that reported on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TestResults {
    /// The release.
    pub release: ReleaseId,
    /// How many test devices are in each state, for the states at least one is in, in
    /// lifecycle order.
    pub counts: Vec<StateCount>,
    /// Each test device's latest state of the release, by device id.
    pub devices: Vec<TestDeviceResult>,
}

/// The number of devices in one state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StateCount {
    /// The state.
    pub state: DeviceState,
    /// How many devices are in it.
    pub devices: u64,
}

/// A test device's latest state of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TestDeviceResult {
    /// The device.
    pub device: DeviceId,
    /// Its latest state of the release.
    pub state: DeviceState,
    /// The error code it reported with that state, if any.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Unix seconds when the state was reported.
    pub updated_at: i64,
}

/// The answer to `POST /devices/{id}/check-now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CheckNow {
    /// The device.
    pub device: DeviceId,
    /// Unix seconds when the wake-up was requested.
    pub requested_at: i64,
    /// Whether the device was waiting on this server and was woken at once. Otherwise it is
    /// woken through another server sharing the database within about a second, or at its
    /// next wait if that starts within the next ten minutes.
    pub woken: bool,
}

/// The answer to the device's long poll, `GET /device/v1/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WakeAnswer {
    /// Check in now: an administrator asked for it. `false` when the wait timed out.
    pub wake: bool,
    /// Set when the server answered at once without waiting (too many devices waiting, or it
    /// is shutting down): do not wait again for this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// Creates an admin token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Human name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A new admin token, with its secret shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenCreated {
    /// The stored token.
    pub token: AdminToken,
    /// The secret to use as bearer token. The server keeps only its hash.
    pub secret: String,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Whoami {
    /// Token name.
    pub name: String,
    /// Token role.
    pub role: Role,
}

/// A device asks to enroll.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The identity it claims.
    pub device_id: DeviceId,
    /// A group's enrollment key, or the key issued when this id was pre-authorised; without
    /// one the device waits for an administrator (if the server allows keyless enrollment).
    #[serde(default)]
    pub enrollment_key: Option<String>,
}

/// The enrollment answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrollResponse {
    /// The device's id.
    pub device_id: DeviceId,
    /// The device's own credential, shown once. The server keeps only its hash.
    pub credential: String,
    /// `accepted` or `pending`.
    pub status: DeviceStatus,
}

/// What a device reports at check-in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// Its platform.
    #[serde(default)]
    pub platform: Option<PlatformName>,
    /// Installed software version per product (each product once).
    #[serde(default, deserialize_with = "crate::unique::unique_keys")]
    pub installed: BTreeMap<ProductName, Version>,
    /// Installed configuration-bundle version per product (each product once).
    #[serde(default, deserialize_with = "crate::unique::unique_keys")]
    pub configs: BTreeMap<ProductName, Version>,
    /// Inventory attributes (at most 64, keys up to 64 and values up to 1024 characters, each
    /// key once).
    #[serde(default, deserialize_with = "crate::unique::unique_keys")]
    pub attributes: BTreeMap<String, String>,
    /// Agent version.
    #[serde(default)]
    pub agent_version: Option<String>,
    /// Current boot id (e.g. `/proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Version of the director timestamp the device trusts. After a database restore the
    /// server issues above it, so a device never sees its director metadata go back.
    #[serde(default)]
    pub director_version: Option<u64>,
}

/// The check-in answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CheckinResponse {
    /// The device's id.
    pub device_id: DeviceId,
    /// Its enrollment status; a pending device gets no offers.
    pub status: DeviceStatus,
    /// Seconds until the next check-in, chosen by the server with jitter.
    pub next_checkin_secs: u64,
    /// Unix seconds of the next check-in.
    pub next_checkin_at: i64,
    /// What to install now, in install order.
    pub offers: Vec<Offer>,
    /// Where the device's signed instructions are (accepted devices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub director: Option<DirectorPointer>,
}

/// Where a device finds its director metadata (docs/trust.md) and the image repository it is
/// checked against. URLs are paths relative to the server's base URL (a device's `server_url`):
/// a leading `/` is the base URL's path, so a server behind a reverse proxy under a prefix
/// works. Every request needs the device's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DirectorPointer {
    /// The director repository's metadata base (`root.json`, `timestamp.json`, …).
    pub metadata_url: String,
    /// The version of the director timestamp, snapshot and targets issued for this device now;
    /// a device that already trusts this version has nothing new to fetch.
    pub version: u64,
    /// The image repository's metadata base.
    pub image_metadata_url: String,
    /// The image repository's targets base (`DIR/HASH.NAME`).
    pub image_targets_url: String,
}

/// A release offered to a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Offer {
    /// Release id, used in status events.
    pub release: ReleaseId,
    /// Product.
    pub product: ProductName,
    /// Version.
    pub version: Version,
    /// Full, patch or config.
    pub kind: ReleaseKind,
    /// Install without consent.
    pub required: bool,
    /// Unix seconds after which it installs without consent.
    #[serde(default)]
    pub deadline: Option<i64>,
    /// Reboot behaviour.
    pub reboot: RebootBehaviour,
    /// Classification.
    pub classification: Classification,
    /// Release notes.
    pub notes: String,
    /// Files to download.
    pub artifacts: Vec<OfferedArtifact>,
}

/// An artifact with the URL to download it from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OfferedArtifact {
    /// Name, length, sha256, media type and custom data.
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Download URL path, relative to the server (supports Range).
    pub url: String,
}

/// Status events sent by a device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// Events in `seq` order (at most 256).
    pub events: Vec<NewEvent>,
}

/// A new group with its enrollment key, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupCreated {
    /// The group.
    pub group: GroupView,
    /// The key to give to devices. The server keeps only its hash. A dynamic group has none.
    #[serde(default)]
    pub enrollment_key: Option<String>,
}

/// Creates a staged rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// The release to roll out.
    pub release: ReleaseId,
    /// The groups whose devices it targets (1 to 64).
    pub targets: Vec<GroupName>,
    /// The waves, in order: cumulative shares of the target in basis points (10,000 = all),
    /// strictly increasing, the last 10,000; each with its soak time, thresholds and gate.
    pub waves: Vec<ferry_core::rollout::Wave>,
    /// Grant limits.
    #[serde(default)]
    pub limits: ferry_core::rollout::Limits,
    /// Seconds after a grant (or the device's last progress report) after which an update that
    /// has not committed counts as failed (60 s to 30 days).
    pub commit_timeout_secs: u64,
    /// Ignore the rate limits and shorten check-in intervals.
    #[serde(default)]
    pub emergency: bool,
}

/// An administrator's action on a rollout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RolloutActionRequest {
    /// Free text recorded in the timeline (at most 1 KiB).
    #[serde(default)]
    pub note: String,
}

/// A rollout with its progress per wave and its timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RolloutDetail {
    /// The rollout.
    pub rollout: ferry_core::rollout::Rollout,
    /// The release's product.
    pub product: ProductName,
    /// The release's version.
    pub version: Version,
    /// One tally per wave: the wave's own devices (not cumulative).
    pub waves: Vec<ferry_core::rollout::Tally>,
    /// Every state change, oldest first.
    pub timeline: Vec<ferry_core::rollout::TimelineEntry>,
}
