//! Ferry's domain core.
//!
//! Plain data and pure functions: validated names, the version ordering, the
//! catalogue (products, platforms, releases, artifacts described as TUF targets), groups and
//! approvals, devices and their status events, admin tokens, the applicability rules and
//! check-in scheduling. These records are what the server stores and the API returns; what
//! only persistence needs (credential hashes, query shapes) stays with the store.
//!
//! Architecture invariant: this crate performs no IO and depends on no async runtime, web
//! framework, database driver or HTTP client. CI checks this with `cargo tree`.

pub mod applicability;
pub mod catalogue;
pub mod device;
pub mod events;
pub mod filter;
pub mod groups;
pub mod names;
pub mod rollout;
pub mod schedule;
pub mod time;
pub mod version;
#[cfg(feature = "windows")]
pub mod window;

pub use catalogue::{
    Artifact, BadMark, Classification, Dependency, Platform, Product, RebootBehaviour, Release, ReleaseChange,
    ReleaseId, ReleaseIdError, ReleaseKind, Sha256, VersionRange,
};
pub use device::{AdminToken, Device, DeviceState, DeviceStatus, Role};
pub use events::{AppendOutcome, Event, NewEvent, ReleaseState};
pub use filter::{Filter, FilterError};
pub use groups::{Approval, ApprovalAction, Group, MaintenanceWindow, ParentError};
pub use names::{ArtifactName, DeviceId, GroupName, NameError, PlatformName, ProductName};
pub use version::{Version, VersionError};
