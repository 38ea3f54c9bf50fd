//! The storage trait of the Ferry server.
//!
//! [`Store`] is the one interface the server uses for persistent state; `ferry-store-sql` has a
//! backend per database (SQLite, PostgreSQL), each owning its migrations. Every backend passes
//! the same [`conformance`] suite. Operations that change several rows are atomic: a failure
//! leaves nothing half-written.
//!
//! Times are unix seconds (`i64`). Secrets are never stored: tokens and credentials arrive
//! here already hashed (lower-case hex SHA-256 of a high-entropy random token).

mod model;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use model::*;

// The domain records the trait reads and writes, for backends and their tests.
pub use ferry_core::{
    AdminToken, AppendOutcome, Approval, ApprovalAction, Device, Event, Group, NewEvent, Platform, Product,
    ReleaseChange, ReleaseState,
};

use async_trait::async_trait;
use ferry_core::rollout::{Grant, Rollout, RolloutId, TimelineEntry};
use ferry_core::{DeviceId, DeviceStatus, GroupName, PlatformName, ProductName, Release, ReleaseId, Sha256};

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing addressed does not exist.
    #[error("{what} {key} does not exist")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// The change clashes with existing state.
    #[error("{0}")]
    Conflict(String),
    /// An enrollment proved a claim on an id another machine already holds (see
    /// [`Enrollment`]); the attempt was recorded on the existing device as an identity conflict.
    #[error("device {0} is already enrolled; the attempt was recorded as an identity conflict")]
    IdentityConflict(DeviceId),
    /// A batch of status events clashes with the device's stored ones: a `seq` reused with other
    /// content, below the highest stored, or out of order in the batch. Nothing was stored.
    #[error("{0}")]
    OutOfOrder(String),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Backend(String),
    /// Stored data could not be decoded (a bug or a hand-edited database).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// An enrollment's claim on an id is not proven (see [`Enrollment`]); nothing was changed.
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    /// Shorthand for [`StoreError::NotFound`].
    pub fn not_found(what: &'static str, key: impl ToString) -> Self {
        Self::NotFound { what, key: key.to_string() }
    }
}

/// Result of a storage operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Persistent state of a Ferry server: the sum of one trait per area, so that each area's
/// operations (and a backend's implementation of them) read on their own. Code holding a
/// `dyn Store` imports the area traits whose methods it calls.
#[async_trait]
pub trait Store:
    CatalogueStore + GroupStore + DeviceStore + EventStore + TokenStore + TrustStore + RolloutStore + Send + Sync + 'static
{
    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<()>;
}

/// Products, platforms, recorded content and releases.
#[async_trait]
pub trait CatalogueStore: Send + Sync {
    /// Creates a product. Conflict if the name is taken.
    async fn create_product(&self, product: &Product) -> Result<()>;
    /// One product.
    async fn get_product(&self, name: &ProductName) -> Result<Option<Product>>;
    /// All products, by name.
    async fn list_products(&self) -> Result<Vec<Product>>;

    /// Creates a platform. Conflict if the name is taken.
    async fn create_platform(&self, platform: &Platform) -> Result<()>;
    /// One platform.
    async fn get_platform(&self, name: &PlatformName) -> Result<Option<Platform>>;
    /// All platforms, by name.
    async fn list_platforms(&self) -> Result<Vec<Platform>>;

    /// Records that content with this digest and length is in the content store (idempotent).
    async fn record_content(&self, sha256: &Sha256, length: u64, now: i64) -> Result<()>;
    /// The length of stored content, if it is recorded.
    async fn content_length(&self, sha256: &Sha256) -> Result<Option<u64>>;

    /// Creates a release with its artifacts in one transaction. The store assigns `id`,
    /// `counter` (one more than the product's highest) and `created_at = now`, ignoring the
    /// values passed. NotFound if the product, a platform or an artifact's content is missing
    /// (or content is recorded with another length); Conflict if the product already has this
    /// version on the same line (software or config), comparing versions by rank: `5.0`
    /// conflicts with `5` (see `Version::rank_key`), also between concurrent requests. A new
    /// release is not archived.
    async fn create_release(&self, release: &Release, now: i64) -> Result<Release>;
    /// Deletes a release with its platforms, artifacts and approvals (not its content) in one
    /// transaction. Only a release no device can have been offered may go: Conflict if it was
    /// ever approved for install (even if that approval was removed since) or any device
    /// reported an event about it. NotFound if it does not exist.
    async fn delete_release(&self, id: ReleaseId) -> Result<()>;
    /// Changes a release's notes and/or archive flag and returns it. NotFound if it does not
    /// exist.
    async fn update_release(&self, id: ReleaseId, change: &ReleaseChange) -> Result<Release>;
    /// Marks a release bad ([`Release::bad`]) with `reason`, by the admin token named `by`, at
    /// `now`, and returns it. Idempotent: a release already marked keeps its first mark, and
    /// is returned as it is. Nothing clears a mark. NotFound if it does not exist.
    async fn mark_release_bad(&self, id: ReleaseId, reason: &str, by: &str, now: i64) -> Result<Release>;
    /// Every release marked bad, newest id first.
    async fn bad_releases(&self) -> Result<Vec<Release>>;
    /// One release.
    async fn get_release(&self, id: ReleaseId) -> Result<Option<Release>>;
    /// Releases, optionally of one product, newest id first.
    async fn list_releases(&self, product: Option<&ProductName>) -> Result<Vec<Release>>;
}

/// Device groups and the approvals of releases for them.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates a group. Conflict if the name is taken.
    async fn create_group(&self, group: &Group) -> Result<()>;
    /// One group.
    async fn get_group(&self, name: &GroupName) -> Result<Option<Group>>;
    /// All groups, by name.
    async fn list_groups(&self) -> Result<Vec<Group>>;
    /// Replaces a group's settings (not its name). NotFound if it does not exist.
    async fn update_group(&self, group: &Group) -> Result<()>;
    /// The group whose enrollment key has this hash.
    async fn group_by_enrollment_key(&self, key_hash: &str) -> Result<Option<Group>>;

    /// Sets the approval of a release for a group, replacing any earlier one; an install
    /// approval also marks the release as possibly offered, for good (see `delete_release`).
    /// NotFound if the release or group is missing.
    async fn set_approval(&self, approval: &Approval) -> Result<()>;
    /// Removes an approval; returns whether one existed.
    async fn delete_approval(&self, release: ReleaseId, group: &GroupName) -> Result<bool>;
    /// Approvals, optionally filtered by release and/or group.
    async fn list_approvals(&self, release: Option<ReleaseId>, group: Option<&GroupName>) -> Result<Vec<Approval>>;
    /// Every release with an approval (of any action) for one of `groups`, together with those
    /// approvals. The input of the applicability decision at check-in.
    async fn approved_releases(&self, groups: &[GroupName]) -> Result<Vec<(Release, Vec<Approval>)>>;
}

/// Devices: pre-authorisation, enrollment, credentials, check-ins and memberships.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Lists a device id in advance, bound to the SHA-256 (hex) of a secret only the device
    /// will hold. Pre-authorising an id that is still waiting for its device replaces its
    /// secret and groups (a lost secret is re-issued this way); Conflict once it has enrolled.
    async fn preauthorize_device(
        &self,
        id: &DeviceId,
        groups: &[GroupName],
        secret_hash: &str,
        now: i64,
    ) -> Result<Device>;
    /// Enrolls a device atomically; see [`Enrollment`] for the rules.
    async fn enroll_device(&self, enrollment: &Enrollment) -> Result<Device>;
    /// One device.
    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>>;
    /// The devices holding these credential hashes, each with the hash it holds and its
    /// current director version; hashes no device holds are left out, and so are repeats. One
    /// query for many lookups: the server batches the credential checks of concurrent requests
    /// through this.
    async fn devices_by_credentials(&self, credential_hashes: &[String]) -> Result<Vec<(String, CredentialMatch)>>;
    /// The device holding this credential hash.
    async fn device_by_credential(&self, credential_hash: &str) -> Result<Option<Device>> {
        let mut found = self.devices_by_credentials(&[credential_hash.to_owned()]).await?;
        Ok(found.pop().map(|(_, found)| found.device))
    }
    /// Devices matching a filter, ordered by id.
    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<Device>>;
    /// Changes a device's enrollment status. NotFound if unknown.
    async fn set_device_status(&self, id: &DeviceId, status: DeviceStatus) -> Result<()>;
    /// Replaces a device's group memberships. NotFound if the device or a group is missing.
    async fn set_device_groups(&self, id: &DeviceId, groups: &[GroupName]) -> Result<()>;
    /// Stores what a check-in reported. NotFound if unknown.
    async fn record_checkin(&self, id: &DeviceId, checkin: &CheckinRecord) -> Result<()>;
    /// Updates last contact for many devices at once (write-behind of check-ins that changed
    /// nothing else). Unknown ids are ignored.
    async fn touch_devices(&self, contacts: &[(DeviceId, i64)]) -> Result<()>;
}

/// The status events devices report, and the release states derived from them.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends status events of one device in one transaction, in `seq` order. An event whose
    /// `seq` is already stored with the same content is skipped (a retry); with other content
    /// it is refused with Conflict, and nothing of the batch is stored. An event whose `seq` is below the
    /// device's highest stored `seq` and not stored is refused with Conflict, and nothing of
    /// the batch is stored. NotFound if the device or a release is missing.
    async fn append_events(&self, device: &DeviceId, events: &[NewEvent], received_at: i64) -> Result<AppendOutcome>;
    /// A device's latest `limit` events, optionally of one release, oldest first.
    async fn list_events(&self, device: &DeviceId, release: Option<ReleaseId>, limit: u32) -> Result<Vec<Event>>;
    /// The latest state of each release on a device.
    async fn device_release_states(&self, device: &DeviceId) -> Result<Vec<ReleaseState>>;
}

/// Admin tokens (hashes only).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new admin token (hash only); assigns its id.
    async fn create_admin_token(&self, token: &NewAdminToken, now: i64) -> Result<AdminToken>;
    /// The unrevoked token with this hash.
    async fn admin_token_by_hash(&self, hash: &str) -> Result<Option<AdminToken>>;
    /// All tokens, revoked ones included.
    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>>;
    /// Revokes a token; NotFound if unknown. Conflict if it is the last unrevoked admin token,
    /// decided in one transaction, so concurrent revocations can never leave no admin.
    async fn revoke_admin_token(&self, id: i64, now: i64) -> Result<()>;
}

/// TUF metadata: the repositories' signed files and each device's director versions.
#[async_trait]
pub trait TrustStore: Send + Sync {
    /// Stores metadata files, all or none. Conflict (naming it) if a file of the same
    /// repository, role and version exists: metadata is immutable once published, and two
    /// publishers racing for one version cannot both win.
    async fn put_metadata(&self, files: &[MetadataFile]) -> Result<()>;
    /// One metadata file's bytes.
    async fn get_metadata(&self, repo: Repo, role: &str, version: u64) -> Result<Option<Vec<u8>>>;
    /// The highest version of a role's metadata.
    async fn latest_metadata(&self, repo: Repo, role: &str) -> Result<Option<MetadataFile>>;
    /// The roles that have metadata in a repository, with their highest version.
    async fn metadata_roles(&self, repo: Repo) -> Result<Vec<(String, u64)>>;
    /// What a device's director metadata was last issued as.
    async fn director_state(&self, device: &DeviceId) -> Result<Option<DirectorState>>;
    /// Records a newly issued director version for a device if, and only if, the stored
    /// version is still `previous` (None: nothing stored) and `next.version` is higher.
    /// Returns whether it was recorded; false means another request issued one meanwhile (or,
    /// with a `previous` version, that the device is gone). NotFound if the device does not
    /// exist when nothing was stored for it.
    async fn advance_director_state(
        &self,
        device: &DeviceId,
        previous: Option<u64>,
        next: &DirectorState,
    ) -> Result<bool>;
}

/// Staged rollouts, their grants and their timelines.
#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Creates a rollout (its `id`, `revision` and `wave` are assigned: the first wave, revision
    /// 1) with the timeline entry `created`, and marks the release as ever approved (so it can
    /// no longer be deleted). NotFound if the release or a target group does not exist.
    async fn create_rollout(&self, rollout: &Rollout, created: &TimelineEntry) -> Result<Rollout>;
    /// One rollout.
    async fn get_rollout(&self, id: RolloutId) -> Result<Option<Rollout>>;
    /// Rollouts, newest first: of one release, or all; only active ones (running, at a gate
    /// or paused) if asked.
    async fn list_rollouts(&self, release: Option<ReleaseId>, active_only: bool) -> Result<Vec<Rollout>>;
    /// A rollout's recorded state changes, oldest first.
    async fn rollout_timeline(&self, id: RolloutId) -> Result<Vec<TimelineEntry>>;
    /// Moves a rollout to `entry.state` and `entry.wave` and records `entry`, if and only if
    /// its revision is still `revision` (compare-and-set: two servers deciding the same step,
    /// or an administrator acting meanwhile, change it once). `wave_opened` restarts the wave's
    /// soak time at `entry.at`. Returns the updated rollout, or None if the revision moved on.
    async fn transition_rollout(
        &self,
        id: RolloutId,
        revision: i64,
        entry: &TimelineEntry,
        wave_opened: bool,
    ) -> Result<Option<Rollout>>;
    /// Grants `device` (of wave `wave`) the rollout's release, deciding in the database so that
    /// servers sharing it never exceed the rollout's limits between them: in one transaction
    /// the rollout's row is locked, [`ferry_core::rollout::policy::may_grant`] decides on its
    /// state and counters, and the grant and the counters are written. An existing grant is
    /// returned as it is. NotFound if the rollout or the device does not exist.
    async fn grant(&self, rollout: RolloutId, device: &DeviceId, wave: u32, now: i64) -> Result<GrantOutcome>;
    /// The device's grants in every rollout, each with the state the device last reported on
    /// the rollout's release since the grant.
    async fn device_grants(&self, device: &DeviceId) -> Result<Vec<Grant>>;
    /// A rollout's grants, as [`RolloutStore::device_grants`].
    async fn rollout_grants(&self, id: RolloutId) -> Result<Vec<Grant>>;
    /// Sets the rollout's count of grants under way: `open` among the first `seen` grants
    /// (those the caller tallied) plus every grant made since, so a grant made meanwhile is
    /// never lost from the count.
    async fn recount_open_grants(&self, id: RolloutId, open: u64, seen: u64) -> Result<()>;
}
