//! Ferry's domain core.
//!
//! Plain data and pure functions: validated names, the version ordering, the
//! catalogue (products, platforms, releases, artifacts described as TUF targets), the
//! applicability rules, device status states and check-in scheduling.
//!
//! Architecture invariant: this crate performs no IO and depends on no async runtime, web
//! framework, database driver or HTTP client. CI checks this with `cargo tree`.

pub mod applicability;
pub mod catalogue;
pub mod device;
pub mod names;
pub mod schedule;
pub mod time;
pub mod version;

pub use catalogue::{
    Artifact, Classification, Dependency, RebootBehaviour, Release, ReleaseId, ReleaseIdError, ReleaseKind, Sha256,
    VersionRange,
};
pub use device::{DeviceState, DeviceStatus, Role};
pub use names::{ArtifactName, DeviceId, GroupName, NameError, PlatformName, ProductName};
pub use version::{Version, VersionError};
