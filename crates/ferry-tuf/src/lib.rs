//! TUF 1.0 metadata as Ferry publishes and verifies it (see `docs/trust.md`).
//!
//! No IO: this crate turns bytes into verified metadata and metadata into signed bytes. The
//! server, the publisher's tools and the agent's updater do the fetching and storing.
//!
//! - [`cjson`]: OLPC canonical JSON, the form signatures cover.
//! - [`custom`]: what Ferry writes about a release in each target entry (`custom.ferry`).
//! - [`keys`]: public keys as metadata lists them, verification, signing keys.
//! - [`metadata`]: the roles, parsing that verifies over the bytes as received, signing.
//! - [`time`]: `expires` timestamps.
//! - [`trusted`]: the TUF client workflow as a state machine; [`uptane`]: the cross-check
//!   between the director and the image repository; [`draft`]: checking a drafted targets
//!   version against the published one before it is signed.
//! - `sealed` (feature `keystore`): passphrase-sealed private keys.

pub mod cjson;
pub mod custom;
pub mod draft;
pub mod error;
pub mod keys;
pub mod metadata;
#[cfg(feature = "keystore")]
pub mod sealed;
pub mod time;
pub mod trusted;
pub mod uptane;

pub use custom::{DirectorInstructions, FerryTarget, RollbackInstruction, VersionLine};
pub use error::{Result, TufError};
pub use keys::{KeyKind, PublicKey, Signature, SigningKey};
pub use metadata::{
    DelegatedRole, Delegations, MetaFile, Role, RoleKeys, Root, Snapshot, TargetFile, Targets, Timestamp, Verifiable,
};
pub use trusted::{TargetSearch, TimestampUpdate, TrustedSet};
