//! The device's verifying TUF client: the specification's client workflow (sections 5.1–5.7)
//! with the IO that `ferry_tuf` leaves out, as the agent and the `ferry-tuf-conformance` binary
//! use it. See `docs/trust.md`.
//!
//! # Where trust comes from
//!
//! From one file: the repository's `root.json`, installed on the device out of band (at
//! manufacture or enrolment) with [`init`]. Everything else is believed only because a chain
//! of signatures leads back to it: each new root is signed by a threshold of the previous root's
//! keys and of its own; timestamp, snapshot and top-level targets by the keys the root names;
//! a delegated role by the keys its delegator names, for the paths it delegates; a target by
//! the length and digests in the targets metadata that lists it. The network, the server and
//! the TLS connection are not trusted: an attacker who controls them can make updates fail, but
//! cannot make the device accept an unsigned, modified, older or other device's image. (TLS and
//! the device credential sent in [`UpdaterConfig::headers`] protect privacy and the server's
//! authorisation, not integrity.)
//!
//! All verification is [`ferry_tuf::TrustedSet`]'s, a pure state machine; this crate fetches
//! bytes, feeds them to it in order and persists what it accepts.
//!
//! # Workflow
//!
//! 1. [`init`] copies a trusted root into the metadata directory (once; a root already there
//!    is kept, since it may be newer than the factory one).
//! 2. [`Updater::new`] starts from `metadata_dir/root.json`, which must verify with its own keys.
//! 3. [`Updater::refresh`] reads the clock once (the fixed start time, 5.1), then:
//!    - root chain (5.3): fetches `N.root.json` for N = trusted + 1, … at most
//!      [`UpdaterConfig::max_root_rotations`] times, until "not found"; each body capped at
//!      [`UpdaterConfig::root_max_length`] (bodies are streamed and cut at the cap, whatever the
//!      server's `Content-Length`), verified by the old and the new root's thresholds, and
//!      persisted. The final root must be unexpired. If it changed the timestamp or snapshot
//!      keys, the persisted timestamp and snapshot are deleted (fast-forward attack recovery).
//!    - timestamp (5.4): the persisted `timestamp.json` (if it still verifies) is the rollback
//!      reference for the fetched one. An equal version means nothing new: the refresh goes on
//!      with the persisted files and fetches nothing more (unless they no longer verify).
//!    - snapshot (5.5): the persisted one if it is still the final one, else
//!      `VERSION.snapshot.json` (consistent snapshots) or `snapshot.json`, checked against the
//!      timestamp's length, hashes and version, with no role removed or rolled back. The body is
//!      capped at the length the timestamp gives, but never above
//!      [`UpdaterConfig::snapshot_max_length`].
//!    - top-level targets (5.6): the persisted `targets.json` if it is the version the snapshot
//!      lists, else fetched as `VERSION.targets.json`, capped likewise at the snapshot's length
//!      and [`UpdaterConfig::targets_max_length`].
//!
//!    Every accepted file is written atomically (temporary file, fsync, rename, fsync of the
//!    directory) under its non-versioned name — `root.json`, `timestamp.json`, `snapshot.json`,
//!    `targets.json`, `ROLE.json` — holding the original bytes. A refused file is never written.
//! 4. [`Updater::get_targetinfo`] searches the delegations lazily (5.7), loading a delegated
//!    role's `VERSION.ROLE.json` only when the search reaches it (role names are percent-escaped
//!    in URLs and file names, see [`persist::escape`]). Its expiry is checked against the
//!    refresh's start time, the fixed reference time of 5.1, not the clock at the lookup.
//! 5. [`Updater::download_target`] streams the target to `DEST/.partial+/NAME.part`, resuming with a
//!    `Range` request after an interruption, never past the signed length, and renames it to
//!    `DEST/NAME` only after its length and digests matched ([`download`]). A target already
//!    there with the right digests is not fetched again. A complete file is not fsynced: a
//!    caller using it after a restart hashes it again first ([`download::is_verified`]).
//!
//! For Uptane's two repositories, [`Director`] runs one updater per repository and returns only
//! director assignments that agree with the image repository ([`ferry_tuf::uptane`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), ferry_updater::Error> {
//! use std::path::Path;
//! use ferry_updater::{Updater, UpdaterConfig};
//!
//! // The Ferry server serves the image repository under /tuf/image/.
//! let url = "https://ferry.example/tuf/image/".parse().expect("a URL");
//! let mut config = UpdaterConfig::new("/var/lib/ferry/tuf/image", url);
//! config.target_base_url = Some("https://ferry.example/tuf/image/targets/".parse().expect("a URL"));
//! config.headers.insert("authorization", "Bearer ferry_dev_…".parse().expect("a header"));
//! let factory_root = std::fs::read("/usr/share/ferry/image-root.json").expect("the factory root");
//! ferry_updater::init(&config.metadata_dir, &factory_root).await?;
//!
//! let mut updater = Updater::new(config)?;
//! updater.refresh().await?;
//! let path = "gateway/1.4.0/firmware.bin";
//! if let Some((_role, target)) = updater.get_targetinfo(path).await? {
//!     let file = updater.download_target(path, &target, Path::new("/var/lib/ferry/downloads")).await?;
//!     println!("verified image at {}", file.display());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Devices without a real-time clock
//!
//! Expiry is what stops a freeze attack (an attacker replaying old, validly signed metadata to
//! hide new releases), and it is only as good as the device's clock. This client follows the
//! specification: it refuses expired metadata, using the system clock read at the start of each
//! refresh (`SystemTime`, so that test harnesses can shift it with a preloaded fake clock).
//!
//! A device without a battery-backed clock boots believing it is 1970 (or its build date),
//! which would make it trust metadata that expired long ago. So a refresh refuses to run at all
//! while the clock reads before [`UpdaterConfig::earliest_plausible_time`] (by default
//! [`config::DEFAULT_EARLIEST_PLAUSIBLE_TIME`], 2025-01-01): it fails with
//! [`Error::ClockNotSet`] instead. The agent must not check for updates before the time is set
//! (NTP, GNSS or an RTC) and should raise the floor with each release it ships (its own build
//! time is a good value). The remaining hazards, documented rather than solved here:
//!
//! - A clock set too far ahead makes every metadata file look expired: updates fail safe
//!   (nothing is installed) until the clock is corrected.
//! - An attacker who controls the time source (unauthenticated NTP) can set the clock back to
//!   just after the floor and replay metadata that expired since, extending a freeze attack. It
//!   cannot roll versions back: every version is checked against the persisted metadata, which
//!   does not depend on the clock. Authenticated time (NTS) closes this.

pub mod config;
pub mod director;
pub mod download;
pub mod error;
mod fetch;
pub mod persist;
pub mod updater;

use std::path::Path;

pub use config::UpdaterConfig;
pub use director::{Director, VerifiedTarget};
pub use error::{Error, Result};
pub use updater::{RefreshSummary, Updater};

/// Installs `trusted_root` (the bytes of a `root.json` obtained out of band) as
/// `metadata_dir/root.json`, creating the directory. The root must parse and verify with its own
/// keys; its expiry is not checked (a refresh may lead to a newer one). Reads no network.
///
/// Returns `false`, leaving the directory as it is, when a root is installed already: it may be
/// a newer root the device rotated to, which the factory root must not replace.
pub async fn init(metadata_dir: &Path, trusted_root: &[u8]) -> Result<bool> {
    ferry_tuf::TrustedSet::new(trusted_root, 0).map_err(Error::tuf("the trusted root"))?;
    tokio::fs::create_dir_all(metadata_dir).await.map_err(Error::io(metadata_dir))?;
    if tokio::fs::try_exists(metadata_dir.join("root.json")).await.map_err(Error::io(metadata_dir))? {
        return Ok(false);
    }
    persist::write_atomically(metadata_dir, "root.json", trusted_root).await?;
    Ok(true)
}
