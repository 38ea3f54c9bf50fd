//! The client's trusted metadata: the TUF 1.0 client workflow (specification sections 5.1–5.7)
//! as a pure state machine, in the manner of python-tuf's `TrustedMetadataSet`.
//!
//! No IO: the updater fetches bytes, feeds them here in the workflow's order, and persists the
//! original bytes of whatever was accepted under non-versioned names (`root.json`,
//! `timestamp.json`, `snapshot.json`, `targets.json`, `ROLE.json`). The clock is read once by the
//! caller and passed as `now` (Unix seconds): the specification's fixed start time (5.1).
//!
//! Every `update_*`/`load_*` call either accepts the metadata or returns an error and leaves the
//! set exactly as it was. Order of calls for one refresh:
//!
//! 1. [`TrustedSet::new`] with the persisted `root.json` (5.2: self-signed; expiry not checked).
//! 2. For N = trusted version + 1, … (at most [`MAX_ROOT_ROTATIONS`] times, each file at most
//!    [`DEFAULT_ROOT_MAX`] bytes): fetch `N.root.json`; stop at "not found"; otherwise
//!    [`TrustedSet::update_root`] and persist `root.json` (5.3.1–5.3.9).
//! 3. 5.3.10, the final root unexpired, is checked by [`TrustedSet::check_final_root`], which
//!    the timestamp calls run first, so it cannot be skipped; call it directly to fail early.
//! 4. 5.3.11: if [`TrustedSet::online_keys_rotated`], delete the persisted `timestamp.json` and
//!    `snapshot.json` (the `load_local_*` calls refuse them anyway). Otherwise load the persisted
//!    timestamp with [`TrustedSet::load_local_timestamp`] (it may be expired: it only serves as
//!    the reference for rollback checks; ignore an error and carry on without it).
//! 5. Fetch `timestamp.json` (at most [`DEFAULT_TIMESTAMP_MAX`] bytes) and call
//!    [`TrustedSet::update_timestamp`] (5.4). [`TimestampUpdate::Unchanged`] means the
//!    repository has nothing newer: the trusted timestamp stays and the refresh goes on with it.
//! 6. Load the persisted snapshot with [`TrustedSet::load_local_snapshot`] (again a rollback
//!    reference that may be expired; its hashes are not checked against the timestamp). When it
//!    returns `Ok(true)` it is also valid as the final snapshot and need not be fetched.
//!    Otherwise fetch `VERSION.snapshot.json` (version and length from
//!    [`Timestamp::snapshot_meta`], else at most [`DEFAULT_SNAPSHOT_MAX`] bytes) and call
//!    [`TrustedSet::update_snapshot`] (5.5).
//! 7. Targets (5.6) and delegated targets are loaded on demand by the target search, below. A
//!    persisted copy of a targets role may be offered to [`TrustedSet::update_delegated_targets`]
//!    first: the checks are the same as for fetched bytes, and on an error nothing changed, so
//!    the caller then fetches it.
//!
//! # Target search protocol (5.6.7, 5.7)
//!
//! [`TrustedSet::find_target`] walks the delegation graph pre-order depth-first from the
//! top-level `targets`, as the specification and python-tuf do: a role's own targets first, then
//! the roles it delegates to whose paths match, in listed order; a visited set skips roles seen
//! before (cycles end), at most [`MAX_DELEGATIONS`] delegated roles are visited and no deeper
//! than [`MAX_DELEGATIONS`] levels, and a matching `terminating` delegation is the last one
//! explored: the later delegations of its delegator and everything still pending are dropped.
//!
//! The walk needs metadata that may not be loaded yet. Rather than fetching, it returns
//! [`TargetSearch::NeedRole`] naming the role and the delegator that vouches for it. The caller
//! then fetches `VERSION.ROLE.json` (version and length from [`TrustedSet::snapshot_meta`],
//! else at most [`DEFAULT_TARGETS_MAX`] bytes), calls
//! [`TrustedSet::update_delegated_targets`]`(bytes, role, parent)` (or
//! [`TrustedSet::update_targets`] for `targets`), and calls `find_target` again, which replays
//! the walk from the start (cheap: at most 33 roles) and goes further. Any error, fetching or
//! verifying, ends the search: a role is never silently skipped. The loop ends with
//! [`TargetSearch::Found`] or [`TargetSearch::NotFound`] after at most
//! `MAX_DELEGATIONS + 1` fetches.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Result, TufError};
use crate::keys::PublicKey;
use crate::metadata::{MetaFile, Role, Root, Snapshot, TargetFile, Targets, Timestamp, Verifiable};
use crate::time::parse_expires;

/// How many new root versions one refresh follows at most (5.3.2); the updater enforces it.
pub const MAX_ROOT_ROTATIONS: u32 = 32;
/// Default size cap for a `root.json`, in bytes.
pub const DEFAULT_ROOT_MAX: u64 = 512_000;
/// Default size cap for `timestamp.json`, in bytes.
pub const DEFAULT_TIMESTAMP_MAX: u64 = 16_384;
/// Default size cap for a snapshot whose length the timestamp does not give, in bytes.
pub const DEFAULT_SNAPSHOT_MAX: u64 = 2_000_000;
/// Default size cap for a targets role whose length the snapshot does not give, in bytes.
pub const DEFAULT_TARGETS_MAX: u64 = 5_000_000;
/// How many delegated roles one target search visits at most, and how deep it goes.
pub const MAX_DELEGATIONS: usize = 32;

/// The names of the top-level roles, which no delegation may use.
const TOP_LEVEL: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// What [`TrustedSet::update_timestamp`] did with a valid timestamp.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// The new timestamp is trusted now; persist it.
    Updated,
    /// It has the trusted timestamp's version (5.4.3): it was discarded, the trusted (and
    /// unexpired) timestamp stays, and there is nothing new to persist.
    Unchanged,
}

/// One step of [`TrustedSet::find_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSearch {
    /// The first role in the search order that lists the path, and its entry.
    Found {
        /// The targets role that lists it (`targets` or a delegated role).
        role: String,
        /// The entry: length, hashes, custom.
        target: TargetFile,
    },
    /// No role trusted for the path lists it.
    NotFound,
    /// The search needs `role`'s metadata: fetch `VERSION.ROLE.json` (see
    /// [`TrustedSet::snapshot_meta`]), pass it to [`TrustedSet::update_delegated_targets`] with
    /// `parent`, then search again.
    NeedRole {
        /// The role to load (`targets` first of all).
        role: String,
        /// The role that delegates to it (`root` for `targets`).
        parent: String,
    },
}

/// A verified metadata file and the bytes it was read from.
#[derive(Debug, Clone)]
struct Loaded<T> {
    file: Verifiable<T>,
    bytes: Vec<u8>,
}

/// A targets role and the delegator whose keys verified it.
#[derive(Debug, Clone)]
struct LoadedTargets {
    loaded: Loaded<Targets>,
    parent: String,
}

/// The keys and threshold a role must be signed with, as its delegator lists them.
struct Authority<'a> {
    keys: &'a BTreeMap<String, PublicKey>,
    keyids: &'a [String],
    threshold: u32,
}

/// The metadata a client trusts during one refresh, checked as the TUF client workflow
/// requires. See the module documentation for the order of calls.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    now: i64,
    /// The timestamp and snapshot key ids of the root the refresh started from (5.3.11).
    initial_online_keys: [BTreeSet<String>; 2],
    root: Loaded<Root>,
    timestamp: Option<Loaded<Timestamp>>,
    snapshot: Option<Loaded<Snapshot>>,
    /// `targets` and the delegated roles, by role name.
    targets: BTreeMap<String, LoadedTargets>,
}

impl TrustedSet {
    /// Starts from the persisted trusted root (5.2): it must verify with its own root keys and
    /// threshold. Its expiry is not checked here (a newer root may follow); `now` is the fixed
    /// time, in Unix seconds, every later expiry check uses.
    pub fn new(root_bytes: &[u8], now: i64) -> Result<Self> {
        let root = Verifiable::<Root>::parse("root", root_bytes)?;
        check_root_shape(&root.signed)?;
        let own = role_keys(&root.signed, "root")?;
        root.verify(
            "root",
            &format!("trusted root v{}", root.signed.version),
            &root.signed.keys,
            own.keyids,
            own.threshold,
        )?;
        let initial_online_keys = online_keys(&root.signed);
        Ok(Self {
            now,
            initial_online_keys,
            root: Loaded { file: root, bytes: root_bytes.to_vec() },
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    /// Accepts root version N+1 over trusted version N (5.3.4–5.3.7): it must be signed by the
    /// trusted root's root threshold and by its own, and carry exactly version N+1. Its expiry
    /// is not checked (an intermediate root may have expired); only before any timestamp is
    /// loaded. Persist `root.json` after each success.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<()> {
        if self.timestamp.is_some() {
            return Err(TufError::Order(
                "root cannot be updated once a timestamp is loaded (5.3 comes before 5.4)".into(),
            ));
        }
        let old = &self.root.file.signed;
        let new = Verifiable::<Root>::parse("root", bytes)?;
        let old_keys = role_keys(old, "root")?;
        new.verify("root", &format!("trusted root v{}", old.version), &old.keys, old_keys.keyids, old_keys.threshold)?;
        let expected = old.version.checked_add(1).ok_or_else(|| TufError::malformed("root", "version overflows"))?;
        if new.signed.version < old.version {
            return Err(TufError::RolledBack { role: "root".into(), trusted: old.version, new: new.signed.version });
        }
        if new.signed.version != expected {
            return Err(TufError::mismatch(
                "root",
                format!(
                    "version {} does not follow the trusted version {}; expected {expected}",
                    new.signed.version, old.version
                ),
            ));
        }
        check_root_shape(&new.signed)?;
        let own = role_keys(&new.signed, "root")?;
        new.verify("root", &format!("new root v{expected}"), &new.signed.keys, own.keyids, own.threshold)?;
        self.root = Loaded { file: new, bytes: bytes.to_vec() };
        Ok(())
    }

    /// 5.3.10: the final root must not have expired. The timestamp calls check this first.
    pub fn check_final_root(&self) -> Result<()> {
        check_expiry("root", &self.root.file.signed, self.now)
    }

    /// Whether the root now trusted gives `timestamp` or `snapshot` other keys than the root this
    /// refresh started from (5.3.11). If so, the persisted `timestamp.json` and `snapshot.json`
    /// must be deleted (fast-forward attack recovery) and the `load_local_*` calls refuse them.
    pub fn online_keys_rotated(&self) -> bool {
        online_keys(&self.root.file.signed) != self.initial_online_keys
    }

    /// Loads the persisted `timestamp.json` as the reference for the next timestamp's rollback
    /// checks (python-tuf's local timestamp). It must verify with the final root's timestamp
    /// keys but may be expired; only as the first timestamp, and not after online keys rotated.
    pub fn load_local_timestamp(&mut self, bytes: &[u8]) -> Result<()> {
        if self.timestamp.is_some() {
            return Err(TufError::Order("a local timestamp is only loaded before any other".into()));
        }
        self.load_timestamp(bytes, true).map(drop)
    }

    /// Checks and accepts a fetched timestamp (5.4): the final root must be unexpired; signed
    /// with root's timestamp keys and threshold; its version not below the trusted timestamp's
    /// ([`TufError::RolledBack`]), and when equal the new one is discarded
    /// ([`TimestampUpdate::Unchanged`], or [`TufError::Expired`] if the trusted one has
    /// expired); the snapshot version it names not below the one the trusted timestamp names;
    /// unexpired. Only before a snapshot is loaded.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate> {
        self.load_timestamp(bytes, false)
    }

    fn load_timestamp(&mut self, bytes: &[u8], local: bool) -> Result<TimestampUpdate> {
        if self.snapshot.is_some() {
            return Err(TufError::Order(
                "timestamp cannot be updated once a snapshot is loaded (5.4 comes before 5.5)".into(),
            ));
        }
        self.check_final_root()?;
        if local && self.online_keys_rotated() {
            return Err(TufError::Order(
                "timestamp or snapshot keys were rotated: the persisted timestamp must be deleted (5.3.11)".into(),
            ));
        }
        let new = Verifiable::<Timestamp>::parse("timestamp", bytes)?;
        new.verify_with_root("timestamp", &self.root.file.signed)?;
        let new_snapshot = new.signed.snapshot_meta()?;
        if let Some(old) = &self.timestamp {
            let (trusted, version) = (old.file.signed.version, new.signed.version);
            if version < trusted {
                return Err(TufError::RolledBack { role: "timestamp".into(), trusted, new: version });
            }
            if version == trusted {
                check_expiry("timestamp", &old.file.signed, self.now)?;
                return Ok(TimestampUpdate::Unchanged);
            }
            let old_snapshot = old.file.signed.snapshot_meta()?;
            if new_snapshot.version < old_snapshot.version {
                return Err(TufError::RolledBack {
                    role: "snapshot (as named by timestamp)".into(),
                    trusted: old_snapshot.version,
                    new: new_snapshot.version,
                });
            }
        }
        if !local {
            check_expiry("timestamp", &new.signed, self.now)?;
        }
        self.timestamp = Some(Loaded { file: new, bytes: bytes.to_vec() });
        Ok(TimestampUpdate::Updated)
    }

    /// Fails unless a timestamp is loaded and unexpired: it may only have been a local one.
    pub fn check_final_timestamp(&self) -> Result<()> {
        let ts = self.timestamp.as_ref().ok_or_else(|| TufError::Order("no timestamp is loaded yet".into()))?;
        check_expiry("timestamp", &ts.file.signed, self.now)
    }

    /// Loads the persisted `snapshot.json` as the reference for the next snapshot's rollback
    /// checks (python-tuf's local snapshot). The timestamp must be final (unexpired); the file
    /// must verify with root's snapshot keys, but its length and hashes are not checked against
    /// the timestamp (it was checked when first accepted) and it may be expired or older. Returns
    /// whether it is also valid as the final snapshot (the timestamp's version, unexpired), in
    /// which case it need not be fetched. Only as the first snapshot, not after online keys
    /// rotated.
    pub fn load_local_snapshot(&mut self, bytes: &[u8]) -> Result<bool> {
        if self.snapshot.is_some() {
            return Err(TufError::Order("a local snapshot is only loaded before any other".into()));
        }
        self.load_snapshot(bytes, true)?;
        Ok(self.check_final_snapshot().is_ok())
    }

    /// Checks and accepts a fetched snapshot (5.5): the trusted timestamp must be unexpired;
    /// length and hashes as the timestamp gives them ([`TufError::Mismatch`]); signed with root's
    /// snapshot keys and threshold; exactly the version the timestamp names (`Mismatch`); every
    /// file the trusted snapshot lists still listed (`Mismatch`) at no lower version
    /// ([`TufError::RolledBack`]); unexpired. Only before targets are loaded.
    pub fn update_snapshot(&mut self, bytes: &[u8]) -> Result<()> {
        self.load_snapshot(bytes, false)
    }

    fn load_snapshot(&mut self, bytes: &[u8], local: bool) -> Result<()> {
        let Some(ts) = &self.timestamp else {
            return Err(TufError::Order("snapshot cannot be loaded before timestamp (5.5 comes after 5.4)".into()));
        };
        if !self.targets.is_empty() {
            return Err(TufError::Order(
                "snapshot cannot be updated once targets are loaded (5.5 comes before 5.6)".into(),
            ));
        }
        self.check_final_timestamp()?;
        if local && self.online_keys_rotated() {
            return Err(TufError::Order(
                "timestamp or snapshot keys were rotated: the persisted snapshot must be deleted (5.3.11)".into(),
            ));
        }
        let expected = ts.file.signed.snapshot_meta()?;
        if !local {
            expected.check("snapshot.json", bytes)?;
        }
        let new = Verifiable::<Snapshot>::parse("snapshot", bytes)?;
        new.verify_with_root("snapshot", &self.root.file.signed)?;
        if !local && new.signed.version != expected.version {
            return Err(TufError::mismatch(
                "snapshot",
                format!("version {} but the timestamp names version {}", new.signed.version, expected.version),
            ));
        }
        if let Some(old) = &self.snapshot {
            for (name, old_meta) in &old.file.signed.meta {
                let Some(new_meta) = new.signed.meta.get(name) else {
                    return Err(TufError::mismatch(
                        format!("snapshot v{}", new.signed.version),
                        format!("{name} is no longer listed (trusted snapshot v{} lists it)", old.file.signed.version),
                    ));
                };
                if new_meta.version < old_meta.version {
                    return Err(TufError::RolledBack {
                        role: name.strip_suffix(".json").unwrap_or(name).to_owned(),
                        trusted: old_meta.version,
                        new: new_meta.version,
                    });
                }
            }
        }
        if !local {
            check_expiry("snapshot", &new.signed, self.now)?;
        }
        self.snapshot = Some(Loaded { file: new, bytes: bytes.to_vec() });
        Ok(())
    }

    /// Fails unless the snapshot loaded is valid as the final one: unexpired and exactly the
    /// version the trusted timestamp names. Targets are only loaded then.
    pub fn check_final_snapshot(&self) -> Result<()> {
        let snap = self.snapshot.as_ref().ok_or_else(|| TufError::Order("no snapshot is loaded yet".into()))?;
        let ts = self.timestamp.as_ref().ok_or_else(|| TufError::Order("no timestamp is loaded yet".into()))?;
        check_expiry("snapshot", &snap.file.signed, self.now)?;
        let expected = ts.file.signed.snapshot_meta()?.version;
        if snap.file.signed.version != expected {
            return Err(TufError::mismatch(
                "snapshot",
                format!("version {} but the timestamp names version {expected}", snap.file.signed.version),
            ));
        }
        Ok(())
    }

    /// Checks and accepts the top-level targets (5.6):
    /// `update_delegated_targets(bytes, "targets", "root")`.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<()> {
        self.update_delegated_targets(bytes, "targets", "root")
    }

    /// Checks and accepts the metadata of targets role `role`, delegated by `parent` (`root`
    /// for `targets`; the parent must be loaded already) (5.6, 5.6.7.2): the snapshot must be
    /// final; it must list `ROLE.json` ([`TufError::Mismatch`]), and length and hashes must be
    /// as given there (`Mismatch`); signed by the keys and threshold `parent` gives the role
    /// ([`TufError::Threshold`]); exactly the version the snapshot lists (`Mismatch`);
    /// unexpired; well-formed delegations.
    pub fn update_delegated_targets(&mut self, bytes: &[u8], role: &str, parent: &str) -> Result<()> {
        self.load_targets(bytes, role, parent, true)
    }

    /// Checks and accepts the published metadata of targets role `role` as
    /// [`TrustedSet::update_delegated_targets`] does, except that it may have expired: for a
    /// publisher about to draft the role's next version, where renewing an expired version is
    /// a reason to draft. A client installing targets never calls this.
    pub fn update_published_targets(&mut self, bytes: &[u8], role: &str, parent: &str) -> Result<()> {
        self.load_targets(bytes, role, parent, false)
    }

    fn load_targets(&mut self, bytes: &[u8], role: &str, parent: &str, check_expires: bool) -> Result<()> {
        if self.snapshot.is_none() {
            return Err(TufError::Order(format!("{role} cannot be loaded before snapshot (5.6 comes after 5.5)")));
        }
        self.check_final_snapshot()?;
        let authority = self.authority(role, parent)?;
        let meta = self.snapshot_meta(role)?;
        meta.check(&format!("{role}.json"), bytes)?;
        let new = Verifiable::<Targets>::parse(role, bytes)?;
        new.verify(role, parent, authority.keys, authority.keyids, authority.threshold)?;
        if new.signed.version != meta.version {
            return Err(TufError::mismatch(
                role,
                format!("version {} but the snapshot lists version {}", new.signed.version, meta.version),
            ));
        }
        if check_expires {
            check_expiry(role, &new.signed, self.now)?;
        }
        check_delegations(role, &new.signed)?;
        let loaded = LoadedTargets { loaded: Loaded { file: new, bytes: bytes.to_vec() }, parent: parent.to_owned() };
        self.targets.insert(role.to_owned(), loaded);
        Ok(())
    }

    /// The entry the trusted snapshot has for targets role `role` (`ROLE.json`): the version to
    /// fetch (`VERSION.ROLE.json`) and, when given, the length to cap the download at.
    pub fn snapshot_meta(&self, role: &str) -> Result<&MetaFile> {
        let snap = self.snapshot.as_ref().ok_or_else(|| TufError::Order("no snapshot is loaded yet".into()))?;
        let file = format!("{role}.json");
        snap.file.signed.meta.get(&file).ok_or_else(|| {
            TufError::mismatch(format!("snapshot v{}", snap.file.signed.version), format!("{file} is not listed"))
        })
    }

    /// One step of the search for `path` (5.7): see the module documentation for the protocol.
    /// Needs a snapshot. Errors when a loaded role reached through another delegator than the
    /// one it was loaded for does not verify with that delegator's keys for it.
    pub fn find_target(&self, path: &str) -> Result<TargetSearch> {
        if self.snapshot.is_none() {
            return Err(TufError::Order("targets cannot be searched before a snapshot is loaded".into()));
        }
        // (role, parent, depth); the top of the stack is the next role to visit.
        let mut pending: Vec<(String, String, usize)> = vec![("targets".into(), "root".into(), 0)];
        let mut visited: BTreeSet<String> = BTreeSet::new();
        // The top-level targets plus at most MAX_DELEGATIONS delegated roles, as python-tuf.
        while visited.len() <= MAX_DELEGATIONS {
            let Some((role, parent, depth)) = pending.pop() else { break };
            if visited.contains(&role) {
                continue;
            }
            let Some(entry) = self.targets.get(&role) else {
                return Ok(TargetSearch::NeedRole { role, parent });
            };
            if entry.parent != parent {
                let a = self.authority(&role, &parent)?;
                entry.loaded.file.verify(&role, &parent, a.keys, a.keyids, a.threshold)?;
            }
            let targets = &entry.loaded.file.signed;
            if let Some(target) = targets.targets.get(path) {
                return Ok(TargetSearch::Found { role, target: target.clone() });
            }
            visited.insert(role.clone());
            let Some(delegations) = targets.delegations.as_ref().filter(|_| depth < MAX_DELEGATIONS) else {
                continue;
            };
            let mut children = Vec::new();
            for child in &delegations.roles {
                if !child.is_delegated_path(path) {
                    continue;
                }
                children.push((child.name.clone(), role.clone(), depth + 1));
                if child.terminating {
                    pending.clear();
                    break;
                }
            }
            pending.extend(children.into_iter().rev());
        }
        Ok(TargetSearch::NotFound)
    }

    /// The fixed time of this refresh, Unix seconds.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root.file.signed
    }

    /// The trusted root's original bytes, to persist as `root.json`.
    pub fn root_bytes(&self) -> &[u8] {
        &self.root.bytes
    }

    /// The trusted timestamp, if loaded (perhaps only a local, expired one: see
    /// [`TrustedSet::check_final_timestamp`]).
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref().map(|l| &l.file.signed)
    }

    /// The trusted snapshot, if loaded (perhaps only a local rollback reference: see
    /// [`TrustedSet::check_final_snapshot`]).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(|l| &l.file.signed)
    }

    /// The top-level targets, if loaded.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets_role("targets")
    }

    /// A loaded targets role by name: `targets` or a delegated role.
    pub fn targets_role(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role).map(|t| &t.loaded.file.signed)
    }

    /// The original bytes of a loaded role (`root`, `timestamp`, `snapshot`, `targets` or a
    /// delegated role), to persist under its non-versioned name `ROLE.json`.
    pub fn bytes(&self, role: &str) -> Option<&[u8]> {
        match role {
            "root" => Some(&self.root.bytes),
            "timestamp" => self.timestamp.as_ref().map(|l| l.bytes.as_slice()),
            "snapshot" => self.snapshot.as_ref().map(|l| l.bytes.as_slice()),
            _ => self.targets.get(role).map(|t| t.loaded.bytes.as_slice()),
        }
    }

    /// The keys and threshold `parent` gives `role`.
    fn authority(&self, role: &str, parent: &str) -> Result<Authority<'_>> {
        if role == "targets" || parent == "root" {
            if role != "targets" || parent != "root" {
                return Err(TufError::Order(format!(
                    "root delegates only to targets, and targets only from root (asked for {role} from {parent})"
                )));
            }
            let root = &self.root.file.signed;
            let keys = role_keys(root, "targets")?;
            return Ok(Authority { keys: &root.keys, keyids: keys.keyids, threshold: keys.threshold });
        }
        if TOP_LEVEL.contains(&role) {
            return Err(TufError::malformed(role, "a delegated role cannot have a top-level role's name"));
        }
        let delegator = self
            .targets
            .get(parent)
            .ok_or_else(|| TufError::Order(format!("{parent} must be loaded before the {role} it delegates to")))?;
        let delegations = delegator.loaded.file.signed.delegations.as_ref();
        let delegated = delegations.and_then(|d| Some((d, d.roles.iter().find(|r| r.name == role)?)));
        let (delegations, delegated) =
            delegated.ok_or_else(|| TufError::mismatch(parent, format!("does not delegate to {role}")))?;
        Ok(Authority { keys: &delegations.keys, keyids: &delegated.keyids, threshold: delegated.threshold })
    }
}

/// A role's key ids and threshold as root lists them.
struct RootRole<'a> {
    keyids: &'a [String],
    threshold: u32,
}

fn role_keys<'a>(root: &'a Root, role: &str) -> Result<RootRole<'a>> {
    let keys = root.roles.get(role).ok_or_else(|| TufError::malformed("root", format!("no {role} role")))?;
    Ok(RootRole { keyids: &keys.keyids, threshold: keys.threshold })
}

/// The four top-level roles must be there, each with a threshold of at least one.
fn check_root_shape(root: &Root) -> Result<()> {
    for role in TOP_LEVEL {
        if role_keys(root, role)?.threshold == 0 {
            return Err(TufError::malformed("root", format!("{role} has threshold 0")));
        }
    }
    Ok(())
}

/// The timestamp and snapshot key ids of `root`.
fn online_keys(root: &Root) -> [BTreeSet<String>; 2] {
    ["timestamp", "snapshot"]
        .map(|role| root.roles.get(role).map(|r| r.keyids.iter().cloned().collect()).unwrap_or_default())
}

/// Expired when `now` has reached `expires`, as python-tuf counts it.
fn check_expiry<T: Role>(role: &str, signed: &T, now: i64) -> Result<()> {
    if now >= parse_expires(signed.expires())? {
        return Err(TufError::Expired { role: role.to_owned(), expires: signed.expires().to_owned() });
    }
    Ok(())
}

/// Delegations Ferry does not follow are refused when their delegator loads: names that are
/// empty, repeated or top-level; both `paths` and `path_hash_prefixes`; `succinct_roles`.
fn check_delegations(role: &str, targets: &Targets) -> Result<()> {
    let Some(delegations) = &targets.delegations else { return Ok(()) };
    if delegations.unrecognized.contains_key("succinct_roles") {
        return Err(TufError::malformed(role, "succinct_roles delegations are not supported"));
    }
    let mut names = BTreeSet::new();
    for d in &delegations.roles {
        if d.name.is_empty() || TOP_LEVEL.contains(&d.name.as_str()) {
            return Err(TufError::malformed(role, format!("cannot delegate to a role named {:?}", d.name)));
        }
        if !names.insert(d.name.as_str()) {
            return Err(TufError::malformed(role, format!("delegates to {} twice", d.name)));
        }
        if d.paths.is_some() && d.path_hash_prefixes.is_some() {
            return Err(TufError::malformed(role, format!("{} has both paths and path_hash_prefixes", d.name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use crate::keys::{KeyKind, SigningKey};
    use crate::metadata::{sign, DelegatedRole, Delegations};
    use crate::time::format_expires;

    const NOW: i64 = 1_800_000_000;

    fn later() -> String {
        format_expires(NOW + 86_400)
    }

    fn past() -> String {
        format_expires(NOW - 60)
    }

    fn key() -> SigningKey {
        SigningKey::generate(KeyKind::Ed25519).unwrap()
    }

    fn sha256(bytes: &[u8]) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
    }

    /// Rewrites a signed file's `signed` part, keeping its signatures.
    fn tamper(bytes: &[u8], change: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut file: Value = serde_json::from_slice(bytes).unwrap();
        change(&mut file["signed"]);
        serde_json::to_vec(&file).unwrap()
    }

    /// A repository's keys, producing signed metadata with chosen versions and expiries.
    struct Fixture {
        root: Vec<SigningKey>,
        targets: SigningKey,
        snapshot: SigningKey,
        timestamp: Vec<SigningKey>,
        timestamp_threshold: u32,
        /// Keys of delegated roles, by role name.
        delegated: BTreeMap<String, SigningKey>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                root: vec![key()],
                targets: key(),
                snapshot: key(),
                timestamp: vec![key()],
                timestamp_threshold: 1,
                delegated: BTreeMap::new(),
            }
        }

        fn with_roles(mut self, names: &[&str]) -> Self {
            for name in names {
                self.delegated.insert((*name).to_owned(), key());
            }
            self
        }

        fn root_meta(&self, version: u64, expires: &str) -> Root {
            let publics = |keys: &[SigningKey]| keys.iter().map(|k| k.public().clone()).collect::<Vec<_>>();
            Root::new(
                version,
                expires.to_owned(),
                &[
                    ("root", publics(&self.root), 1),
                    ("targets", vec![self.targets.public().clone()], 1),
                    ("snapshot", vec![self.snapshot.public().clone()], 1),
                    ("timestamp", publics(&self.timestamp), self.timestamp_threshold),
                ],
            )
        }

        /// Root `version`, unexpired, signed by the current root keys.
        fn root(&self, version: u64) -> Vec<u8> {
            sign(&self.root_meta(version, &later()), &self.root.iter().collect::<Vec<_>>()).unwrap()
        }

        fn timestamp_with(&self, version: u64, snapshot: MetaFile, expires: &str) -> Vec<u8> {
            let keys: Vec<&SigningKey> = self.timestamp.iter().collect();
            sign(&Timestamp::new(version, expires.to_owned(), snapshot), &keys).unwrap()
        }

        /// Timestamp `version` naming snapshot `snapshot_bytes` as version `snapshot_version`.
        fn timestamp(&self, version: u64, snapshot_version: u64, snapshot_bytes: &[u8]) -> Vec<u8> {
            self.timestamp_with(version, MetaFile::of_bytes(snapshot_version, snapshot_bytes), &later())
        }

        /// Snapshot `version` listing `ROLE.json` at the given versions.
        fn snapshot_with(&self, version: u64, roles: &[(&str, u64)], expires: &str) -> Vec<u8> {
            let meta = roles.iter().map(|(r, v)| (format!("{r}.json"), MetaFile::version_only(*v))).collect();
            sign(&Snapshot::new(version, expires.to_owned(), meta), &[&self.snapshot]).unwrap()
        }

        fn snapshot(&self, version: u64, roles: &[(&str, u64)]) -> Vec<u8> {
            self.snapshot_with(version, roles, &later())
        }

        /// Delegations to `(name, paths, terminating)`, with the fixture's key for each name.
        fn delegations(&self, roles: &[(&str, &[&str], bool)]) -> Delegations {
            let mut keys = BTreeMap::new();
            let roles = roles
                .iter()
                .map(|(name, paths, terminating)| {
                    let key = self.delegated[*name].public();
                    keys.insert(key.key_id(), key.clone());
                    DelegatedRole {
                        name: (*name).to_owned(),
                        keyids: vec![key.key_id()],
                        threshold: 1,
                        terminating: *terminating,
                        paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
                        path_hash_prefixes: None,
                    }
                })
                .collect();
            Delegations { keys, roles, unrecognized: Map::new() }
        }

        fn targets_meta(version: u64, files: &[&str], delegations: Option<Delegations>) -> Targets {
            let mut targets = Targets::new(version, later());
            for path in files {
                targets
                    .targets
                    .insert((*path).to_owned(), TargetFile::new(path.len() as u64, &sha256(path.as_bytes()), None));
            }
            targets.delegations = delegations;
            targets
        }

        /// Top-level targets signed with the targets key.
        fn targets(&self, version: u64, files: &[&str], delegations: Option<Delegations>) -> Vec<u8> {
            sign(&Self::targets_meta(version, files, delegations), &[&self.targets]).unwrap()
        }

        /// Delegated role `role`'s metadata signed with its key.
        fn delegated(&self, role: &str, version: u64, files: &[&str], delegations: Option<Delegations>) -> Vec<u8> {
            sign(&Self::targets_meta(version, files, delegations), &[&self.delegated[role]]).unwrap()
        }
    }

    /// Root v1, timestamp v1 and snapshot v1 listing `roles`, all loaded.
    fn loaded(fx: &Fixture, roles: &[(&str, u64)]) -> TrustedSet {
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let snapshot = fx.snapshot(1, roles);
        assert_eq!(set.update_timestamp(&fx.timestamp(1, 1, &snapshot)).unwrap(), TimestampUpdate::Updated);
        set.update_snapshot(&snapshot).unwrap();
        set
    }

    /// Drives the search as the updater does, loading roles from `repo`; returns the result and
    /// the roles loaded, in order.
    fn search(set: &mut TrustedSet, repo: &BTreeMap<&str, Vec<u8>>, path: &str) -> Result<(TargetSearch, Vec<String>)> {
        let mut loaded = Vec::new();
        loop {
            match set.find_target(path)? {
                TargetSearch::NeedRole { role, parent } => {
                    let meta = set.snapshot_meta(&role)?.clone();
                    let bytes = repo.get(role.as_str()).unwrap_or_else(|| panic!("no {role} in the test repository"));
                    assert_eq!(Verifiable::<Targets>::parse(&role, bytes).unwrap().signed.version, meta.version);
                    set.update_delegated_targets(bytes, &role, &parent)?;
                    loaded.push(role);
                    assert!(loaded.len() <= MAX_DELEGATIONS + 1, "the search does not end");
                }
                done => return Ok((done, loaded)),
            }
        }
    }

    fn found(result: &(TargetSearch, Vec<String>)) -> Option<&str> {
        match &result.0 {
            TargetSearch::Found { role, .. } => Some(role),
            _ => None,
        }
    }

    #[test]
    fn happy_path_with_nested_and_terminating_delegations() {
        let fx = Fixture::new().with_roles(&["prod", "deep", "locked", "late"]);
        // targets → prod (prod/*) → deep (prod/*, terminating)
        //         → locked (locked/*, terminating)
        //         → late (*/*): lists what the terminating roles before it hide.
        let repo: BTreeMap<&str, Vec<u8>> = [
            (
                "targets",
                fx.targets(
                    1,
                    &["top.bin"],
                    Some(fx.delegations(&[
                        ("prod", &["prod/*"], false),
                        ("locked", &["locked/*"], true),
                        ("late", &["*/*"], false),
                    ])),
                ),
            ),
            ("prod", fx.delegated("prod", 1, &[], Some(fx.delegations(&[("deep", &["prod/*"], true)])))),
            ("deep", fx.delegated("deep", 1, &["prod/fw.bin"], None)),
            ("locked", fx.delegated("locked", 1, &["locked/a.bin"], None)),
            ("late", fx.delegated("late", 1, &["locked/b.bin", "prod/x.bin", "other/c.bin"], None)),
        ]
        .into();
        let mut set = loaded(&fx, &[("targets", 1), ("prod", 1), ("deep", 1), ("locked", 1), ("late", 1)]);
        set.check_final_root().unwrap();
        set.check_final_timestamp().unwrap();
        set.check_final_snapshot().unwrap();
        assert_eq!(
            set.find_target("top.bin").unwrap(),
            TargetSearch::NeedRole { role: "targets".into(), parent: "root".into() }
        );

        let top = search(&mut set, &repo, "top.bin").unwrap();
        assert_eq!(found(&top), Some("targets"));
        assert_eq!(top.1, ["targets"]);
        let TargetSearch::Found { target, .. } = &top.0 else { unreachable!() };
        assert_eq!(target.length, 7);
        assert_eq!(target.sha256(), Some(sha256(b"top.bin").as_str()));

        // Two levels deep.
        let deep = search(&mut set, &repo, "prod/fw.bin").unwrap();
        assert_eq!((found(&deep), deep.1.as_slice()), (Some("deep"), &["prod".to_owned(), "deep".to_owned()][..]));
        // deep is terminating: late, pending behind prod, is never asked although it lists the path.
        assert_eq!(search(&mut set, &repo, "prod/x.bin").unwrap(), (TargetSearch::NotFound, vec![]));
        // locked is terminating at the first level: it hides late's locked/b.bin.
        let a = search(&mut set, &repo, "locked/a.bin").unwrap();
        assert_eq!((found(&a), a.1.as_slice()), (Some("locked"), &["locked".to_owned()][..]));
        assert_eq!(search(&mut set, &repo, "locked/b.bin").unwrap(), (TargetSearch::NotFound, vec![]));
        assert!(set.targets_role("late").is_none(), "late was never needed");
        // Paths no terminating role matches reach late.
        let c = search(&mut set, &repo, "other/c.bin").unwrap();
        assert_eq!((found(&c), c.1.as_slice()), (Some("late"), &["late".to_owned()][..]));
        assert_eq!(search(&mut set, &repo, "other/none.bin").unwrap(), (TargetSearch::NotFound, vec![]));
        assert_eq!(search(&mut set, &repo, "nowhere.bin").unwrap(), (TargetSearch::NotFound, vec![]));

        // The original bytes, to persist.
        assert_eq!(set.root_bytes(), fx.root(1).as_slice());
        assert_eq!(set.bytes("targets"), Some(repo["targets"].as_slice()));
        assert_eq!(set.bytes("deep"), Some(repo["deep"].as_slice()));
        assert!(set.bytes("snapshot").is_some() && set.bytes("timestamp").is_some());
        assert_eq!(set.targets().unwrap().version, 1);
        assert_eq!(set.snapshot().unwrap().version, 1);
        assert_eq!(set.timestamp().unwrap().version, 1);
        assert_eq!(set.now(), NOW);
    }

    #[test]
    fn root_rotation_needs_both_old_and_new_thresholds() {
        let mut fx = Fixture::new();
        let v1 = fx.root(1);
        let old = fx.root.remove(0);
        fx.root.push(key());
        let v2 = fx.root_meta(2, &later());
        let new = &fx.root[0];

        let mut set = TrustedSet::new(&v1, NOW).unwrap();
        let only_new = sign(&v2, &[new]).unwrap();
        assert!(matches!(set.update_root(&only_new), Err(TufError::Threshold { valid: 0, .. })));
        let only_old = sign(&v2, &[&old]).unwrap();
        assert!(matches!(set.update_root(&only_old), Err(TufError::Threshold { valid: 0, .. })));
        assert_eq!(set.root().version, 1, "refused roots leave the trusted one");

        let both = sign(&v2, &[&old, new]).unwrap();
        set.update_root(&both).unwrap();
        assert_eq!(set.root().version, 2);
        assert_eq!(set.root_bytes(), both.as_slice());
        // v3 needs v2's root key now: the old one alone no longer counts.
        let v3 = fx.root_meta(3, &later());
        assert!(matches!(set.update_root(&sign(&v3, &[&old]).unwrap()), Err(TufError::Threshold { .. })));
        set.update_root(&sign(&v3, &[new]).unwrap()).unwrap();

        // A root that does not verify with itself is refused from the start as well.
        assert!(matches!(TrustedSet::new(&only_old, NOW), Err(TufError::Threshold { .. })));
    }

    #[test]
    fn root_version_must_rise_by_exactly_one() {
        let fx = Fixture::new();
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert!(matches!(set.update_root(&fx.root(3)), Err(TufError::Mismatch { .. })));
        assert!(matches!(set.update_root(&fx.root(1)), Err(TufError::Mismatch { .. })));
        set.update_root(&fx.root(2)).unwrap();
        assert!(matches!(set.update_root(&fx.root(1)), Err(TufError::RolledBack { trusted: 2, new: 1, .. })));
        assert!(matches!(set.update_root(&fx.root(2)), Err(TufError::Mismatch { .. })));
        set.update_root(&fx.root(3)).unwrap();
        // A root of another type or missing a role is refused.
        let snapshot = fx.snapshot(4, &[]);
        assert!(matches!(set.update_root(&snapshot), Err(TufError::WrongType { .. })));
        let mut no_timestamp = fx.root_meta(4, &later());
        no_timestamp.roles.remove("timestamp");
        let no_timestamp = sign(&no_timestamp, &fx.root.iter().collect::<Vec<_>>()).unwrap();
        assert!(matches!(set.update_root(&no_timestamp), Err(TufError::Malformed { .. })));
    }

    #[test]
    fn root_rotation_refused_after_timestamp() {
        let fx = Fixture::new();
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let snapshot = fx.snapshot(1, &[("targets", 1)]);
        assert_eq!(set.update_timestamp(&fx.timestamp(1, 1, &snapshot)).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(set.update_root(&fx.root(2)), Err(TufError::Order(_))));
    }

    #[test]
    fn final_root_must_be_unexpired_but_intermediate_may_be_expired() {
        let fx = Fixture::new();
        let keys: Vec<&SigningKey> = fx.root.iter().collect();
        let expired_v1 = sign(&fx.root_meta(1, &past()), &keys).unwrap();
        let expired_v2 = sign(&fx.root_meta(2, &past()), &keys).unwrap();
        let snapshot = fx.snapshot(1, &[("targets", 1)]);
        let timestamp = fx.timestamp(1, 1, &snapshot);

        // Expired v1 and v2 on the way to an unexpired v3.
        let mut set = TrustedSet::new(&expired_v1, NOW).unwrap();
        set.update_root(&expired_v2).unwrap();
        set.update_root(&fx.root(3)).unwrap();
        set.check_final_root().unwrap();
        assert_eq!(set.update_timestamp(&timestamp).unwrap(), TimestampUpdate::Updated);

        // The chain ends at an expired root.
        let mut set = TrustedSet::new(&expired_v1, NOW).unwrap();
        set.update_root(&expired_v2).unwrap();
        assert!(matches!(set.check_final_root(), Err(TufError::Expired { .. })));
        assert!(matches!(set.update_timestamp(&timestamp), Err(TufError::Expired { .. })));
        assert!(matches!(set.load_local_timestamp(&timestamp), Err(TufError::Expired { .. })));
        assert!(set.timestamp().is_none());
    }

    #[test]
    fn timestamp_signatures_must_meet_the_threshold() {
        let mut fx = Fixture::new();
        let snapshot = fx.snapshot(1, &[("targets", 1)]);
        let good = fx.timestamp(2, 1, &snapshot);
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();

        let forged = tamper(&good, |s| s["version"] = 3.into());
        assert!(matches!(set.update_timestamp(&forged), Err(TufError::Threshold { valid: 0, .. })));
        let stranger = sign(&Timestamp::new(2, later(), MetaFile::of_bytes(1, &snapshot)), &[&key()]).unwrap();
        assert!(matches!(set.update_timestamp(&stranger), Err(TufError::Threshold { valid: 0, .. })));
        // Signed by the snapshot key: a key root knows, but not for timestamp.
        let other_role = sign(&Timestamp::new(2, later(), MetaFile::of_bytes(1, &snapshot)), &[&fx.snapshot]).unwrap();
        assert!(matches!(set.update_timestamp(&other_role), Err(TufError::Threshold { valid: 0, .. })));
        assert!(set.timestamp().is_none());

        // Threshold 2: one of the two keys is not enough.
        fx.timestamp.push(key());
        fx.timestamp_threshold = 2;
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let one = sign(&Timestamp::new(2, later(), MetaFile::of_bytes(1, &snapshot)), &[&fx.timestamp[1]]).unwrap();
        assert!(matches!(set.update_timestamp(&one), Err(TufError::Threshold { valid: 1, threshold: 2, .. })));
        assert_eq!(set.update_timestamp(&fx.timestamp(2, 1, &snapshot)).unwrap(), TimestampUpdate::Updated);
    }

    #[test]
    fn timestamp_rollback_and_equal_version() {
        let fx = Fixture::new();
        let snapshot = fx.snapshot(3, &[("targets", 1)]);
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let v5 = fx.timestamp(5, 3, &snapshot);
        assert_eq!(set.update_timestamp(&v5).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(
            set.update_timestamp(&fx.timestamp(4, 3, &snapshot)),
            Err(TufError::RolledBack { trusted: 5, new: 4, .. })
        ));

        // Equal version: the new one is discarded, even when it says something else.
        let v5_again = fx.timestamp_with(5, MetaFile::version_only(9), &later());
        assert_eq!(set.update_timestamp(&v5_again).unwrap(), TimestampUpdate::Unchanged);
        assert_eq!(set.bytes("timestamp"), Some(v5.as_slice()));
        assert_eq!(set.timestamp().unwrap().snapshot_meta().unwrap().version, 3);

        // The snapshot version the timestamp names must not go down either.
        assert!(matches!(
            set.update_timestamp(&fx.timestamp(6, 2, &snapshot)),
            Err(TufError::RolledBack { trusted: 3, new: 2, .. })
        ));
        assert_eq!(set.update_timestamp(&fx.timestamp(6, 3, &snapshot)).unwrap(), TimestampUpdate::Updated);
        set.update_snapshot(&snapshot).unwrap();
        assert!(matches!(set.update_timestamp(&fx.timestamp(7, 3, &snapshot)), Err(TufError::Order(_))));
    }

    #[test]
    fn expired_timestamp_is_refused() {
        let fx = Fixture::new();
        let snapshot = fx.snapshot(1, &[("targets", 1)]);
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let expired = fx.timestamp_with(1, MetaFile::of_bytes(1, &snapshot), &past());
        assert!(matches!(set.update_timestamp(&expired), Err(TufError::Expired { .. })));
        assert!(set.timestamp().is_none());
        // Expiring exactly now counts as expired.
        let now = fx.timestamp_with(1, MetaFile::of_bytes(1, &snapshot), &format_expires(NOW));
        assert!(matches!(set.update_timestamp(&now), Err(TufError::Expired { .. })));
    }

    #[test]
    fn local_timestamp_is_a_rollback_reference_even_when_expired() {
        let fx = Fixture::new();
        let snapshot = fx.snapshot(4, &[("targets", 1)]);
        let local = fx.timestamp_with(5, MetaFile::of_bytes(4, &snapshot), &past());
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        set.load_local_timestamp(&local).unwrap();
        assert!(matches!(set.check_final_timestamp(), Err(TufError::Expired { .. })));
        assert!(matches!(set.load_local_timestamp(&local), Err(TufError::Order(_))));
        // Not final: no snapshot on top of it.
        assert!(matches!(set.update_snapshot(&snapshot), Err(TufError::Expired { .. })));
        assert!(matches!(set.update_timestamp(&fx.timestamp(4, 4, &snapshot)), Err(TufError::RolledBack { .. })));
        assert!(matches!(set.update_timestamp(&fx.timestamp(6, 3, &snapshot)), Err(TufError::RolledBack { .. })));
        // The same version as an expired trusted timestamp: nothing fresh, so expired.
        assert!(matches!(set.update_timestamp(&fx.timestamp(5, 4, &snapshot)), Err(TufError::Expired { .. })));
        assert_eq!(set.update_timestamp(&fx.timestamp(6, 4, &snapshot)).unwrap(), TimestampUpdate::Updated);
        set.update_snapshot(&snapshot).unwrap();

        // An unexpired local timestamp and an equal remote one: keep going with the local one.
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let local = fx.timestamp(6, 4, &snapshot);
        set.load_local_timestamp(&local).unwrap();
        assert_eq!(set.update_timestamp(&local).unwrap(), TimestampUpdate::Unchanged);
        set.update_snapshot(&snapshot).unwrap();
    }

    #[test]
    fn rotated_online_keys_discard_the_persisted_timestamp_and_snapshot() {
        let mut fx = Fixture::new();
        let v1 = fx.root(1);
        let snapshot = fx.snapshot(9, &[("targets", 9)]);
        let old_local = fx.timestamp(9, 9, &snapshot);
        fx.timestamp = vec![key()];
        let mut set = TrustedSet::new(&v1, NOW).unwrap();
        assert!(!set.online_keys_rotated());
        set.update_root(&fx.root(2)).unwrap();
        assert!(set.online_keys_rotated());
        assert!(matches!(set.load_local_timestamp(&old_local), Err(TufError::Order(_))));
        // Recovery from a fast-forwarded timestamp: version 1 again.
        let snapshot = fx.snapshot(1, &[("targets", 1)]);
        assert_eq!(set.update_timestamp(&fx.timestamp(1, 1, &snapshot)).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(set.load_local_snapshot(&fx.snapshot(9, &[("targets", 9)])), Err(TufError::Order(_))));
        set.update_snapshot(&snapshot).unwrap();
    }

    #[test]
    fn snapshot_must_match_the_timestamp() {
        let fx = Fixture::new();
        let snapshot = fx.snapshot(2, &[("targets", 1)]);
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert!(matches!(set.update_snapshot(&snapshot), Err(TufError::Order(_))));

        // Hashes of other bytes.
        let other = fx.snapshot(2, &[("targets", 2)]);
        assert_eq!(set.update_timestamp(&fx.timestamp(1, 2, &other)).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(set.update_snapshot(&snapshot), Err(TufError::Mismatch { .. })));

        // Another length.
        let length = MetaFile { version: 2, length: Some(snapshot.len() as u64 + 1), hashes: None };
        assert_eq!(set.update_timestamp(&fx.timestamp_with(2, length, &later())).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(set.update_snapshot(&snapshot), Err(TufError::Mismatch { .. })));

        // Another version than the timestamp names.
        let v3 = MetaFile::version_only(3);
        assert_eq!(set.update_timestamp(&fx.timestamp_with(3, v3, &later())).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(set.update_snapshot(&snapshot), Err(TufError::Mismatch { .. })));
        assert!(set.snapshot().is_none());

        // Signed with the wrong key.
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let wrong = sign(&Snapshot::new(2, later(), BTreeMap::new()), &[&fx.targets]).unwrap();
        assert_eq!(set.update_timestamp(&fx.timestamp(1, 2, &wrong)).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(set.update_snapshot(&wrong), Err(TufError::Threshold { .. })));
    }

    #[test]
    fn snapshot_must_not_remove_or_roll_back_roles() {
        let fx = Fixture::new();
        let local = fx.snapshot(1, &[("targets", 3), ("a", 2)]);
        let removed = fx.snapshot(2, &[("targets", 3)]);
        let rolled_back = fx.snapshot(2, &[("targets", 3), ("a", 1)]);
        let good = fx.snapshot(2, &[("targets", 3), ("a", 2), ("b", 1)]);
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        set.load_local_timestamp(&fx.timestamp(1, 1, &local)).unwrap();
        assert_eq!(
            set.update_timestamp(&fx.timestamp_with(2, MetaFile::version_only(2), &later())).unwrap(),
            TimestampUpdate::Updated
        );
        assert!(!set.load_local_snapshot(&local).unwrap(), "v1 is not the final snapshot v2");
        assert!(matches!(set.check_final_snapshot(), Err(TufError::Mismatch { .. })));
        assert!(matches!(set.update_targets(&fx.targets(3, &[], None)), Err(TufError::Mismatch { .. })));

        assert!(matches!(set.update_snapshot(&removed), Err(TufError::Mismatch { .. })));
        assert!(matches!(set.update_snapshot(&rolled_back), Err(TufError::RolledBack { trusted: 2, new: 1, .. })));
        set.update_snapshot(&good).unwrap();
        set.check_final_snapshot().unwrap();
        set.update_targets(&fx.targets(3, &[], None)).unwrap();
        assert!(matches!(set.update_snapshot(&good), Err(TufError::Order(_))));
    }

    #[test]
    fn expired_targets_are_refused_to_a_client_but_accepted_for_drafting_their_renewal() {
        let fx = Fixture::new();
        let mut meta = Fixture::targets_meta(1, &["a/1/a.bin"], None);
        meta.expires = past();
        let expired = sign(&meta, &[&fx.targets]).unwrap();
        let mut set = loaded(&fx, &[("targets", 1)]);
        assert!(matches!(set.update_targets(&expired), Err(TufError::Expired { .. })));
        assert!(set.targets().is_none());
        set.update_published_targets(&expired, "targets", "root").unwrap();
        assert_eq!(set.targets().map(|t| t.version), Some(1));
        // Every other check still holds: a file the targets keys did not sign is refused.
        let forged = sign(&meta, &[&fx.snapshot]).unwrap();
        let mut set = loaded(&fx, &[("targets", 1)]);
        assert!(matches!(set.update_published_targets(&forged, "targets", "root"), Err(TufError::Threshold { .. })));
    }

    #[test]
    fn expired_snapshot_is_refused() {
        let fx = Fixture::new();
        let expired = fx.snapshot_with(1, &[("targets", 1)], &past());
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert_eq!(set.update_timestamp(&fx.timestamp(1, 1, &expired)).unwrap(), TimestampUpdate::Updated);
        assert!(matches!(set.update_snapshot(&expired), Err(TufError::Expired { .. })));
        assert!(set.snapshot().is_none());
        assert!(matches!(set.update_targets(&fx.targets(1, &[], None)), Err(TufError::Order(_))));
    }

    #[test]
    fn expired_local_snapshot_serves_as_rollback_reference() {
        let fx = Fixture::new();
        let local = fx.snapshot_with(1, &[("targets", 4)], &past());
        let rolled_back = fx.snapshot(2, &[("targets", 3)]);
        let good = fx.snapshot(2, &[("targets", 4)]);
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert_eq!(set.update_timestamp(&fx.timestamp(2, 2, &good)).unwrap(), TimestampUpdate::Updated);
        assert!(!set.load_local_snapshot(&local).unwrap(), "expired: a reference only");
        assert!(matches!(set.check_final_snapshot(), Err(TufError::Expired { .. })));
        assert!(matches!(set.load_local_snapshot(&local), Err(TufError::Order(_))));
        assert!(
            matches!(set.update_snapshot(&rolled_back), Err(TufError::Mismatch { .. })),
            "not the bytes the timestamp names"
        );
        let mut set2 = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert_eq!(set2.update_timestamp(&fx.timestamp(2, 2, &rolled_back)).unwrap(), TimestampUpdate::Updated);
        set2.load_local_snapshot(&local).unwrap();
        assert!(matches!(set2.update_snapshot(&rolled_back), Err(TufError::RolledBack { trusted: 4, new: 3, .. })));
        set.update_snapshot(&good).unwrap();
        set.check_final_snapshot().unwrap();

        // A persisted snapshot that is still final is used without fetching; its bytes are not
        // checked against the timestamp's hashes (they were when it was first accepted).
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        let other_bytes = fx.snapshot(2, &[("targets", 5)]);
        assert_eq!(set.update_timestamp(&fx.timestamp(2, 2, &other_bytes)).unwrap(), TimestampUpdate::Updated);
        assert!(set.load_local_snapshot(&good).unwrap());
        set.update_targets(&fx.targets(4, &["a"], None)).unwrap();
        // But its signature is.
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert_eq!(set.update_timestamp(&fx.timestamp(2, 2, &good)).unwrap(), TimestampUpdate::Updated);
        let forged = tamper(&good, |s| s["meta"]["targets.json"]["version"] = 9.into());
        assert!(matches!(set.load_local_snapshot(&forged), Err(TufError::Threshold { .. })));
    }

    #[test]
    fn targets_version_and_keys_must_match() {
        let fx = Fixture::new();
        let mut set = loaded(&fx, &[("targets", 2)]);
        assert!(matches!(set.update_targets(&fx.targets(1, &[], None)), Err(TufError::Mismatch { .. })));
        assert!(matches!(set.update_targets(&fx.targets(3, &[], None)), Err(TufError::Mismatch { .. })));
        let stranger = sign(&Fixture::targets_meta(2, &[], None), &[&key()]).unwrap();
        assert!(matches!(set.update_targets(&stranger), Err(TufError::Threshold { valid: 0, .. })));
        let by_snapshot_key = sign(&Fixture::targets_meta(2, &[], None), &[&fx.snapshot]).unwrap();
        assert!(matches!(set.update_targets(&by_snapshot_key), Err(TufError::Threshold { valid: 0, .. })));
        let expired = sign(&Targets::new(2, past()), &[&fx.targets]).unwrap();
        assert!(matches!(set.update_targets(&expired), Err(TufError::Expired { .. })));
        assert!(set.targets().is_none());
        assert!(matches!(
            set.update_delegated_targets(&fx.targets(2, &[], None), "targets", "snapshot"),
            Err(TufError::Order(_))
        ));
        set.update_targets(&fx.targets(2, &[], None)).unwrap();
    }

    #[test]
    fn mix_and_match_targets_is_refused() {
        let fx = Fixture::new();
        // Correctly signed targets v1, from an older snapshot; the snapshot now names v2.
        let old = fx.targets(1, &["old.bin"], None);
        let current = fx.targets(2, &["new.bin"], None);
        let mut set = loaded(&fx, &[("targets", 2)]);
        assert!(matches!(set.update_targets(&old), Err(TufError::Mismatch { .. })));
        // And with hashes in the snapshot.
        let meta = [("targets.json".to_owned(), MetaFile::of_bytes(2, &current))].into();
        let snapshot = sign(&Snapshot::new(1, later(), meta), &[&fx.snapshot]).unwrap();
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert_eq!(set.update_timestamp(&fx.timestamp(1, 1, &snapshot)).unwrap(), TimestampUpdate::Updated);
        set.update_snapshot(&snapshot).unwrap();
        assert!(matches!(set.update_targets(&old), Err(TufError::Mismatch { .. })));
        let other_v2 = fx.targets(2, &["evil.bin"], None);
        assert!(matches!(set.update_targets(&other_v2), Err(TufError::Mismatch { .. })));
        set.update_targets(&current).unwrap();
    }

    #[test]
    fn delegated_roles_need_their_delegators_keys_and_a_snapshot_entry() {
        let fx = Fixture::new().with_roles(&["a", "b", "unlisted"]);
        let repo: BTreeMap<&str, Vec<u8>> = [
            (
                "targets",
                fx.targets(
                    1,
                    &[],
                    Some(fx.delegations(&[
                        ("a", &["a/*"], false),
                        ("unlisted", &["u/*"], false),
                        ("b", &["b/*"], false),
                    ])),
                ),
            ),
            ("a", fx.delegated("a", 1, &["a/x"], None)),
            // b's metadata signed with a's key.
            ("b", sign(&Fixture::targets_meta(1, &["b/x"], None), &[&fx.delegated["a"]]).unwrap()),
            ("unlisted", fx.delegated("unlisted", 1, &["u/x"], None)),
        ]
        .into();
        let mut set = loaded(&fx, &[("targets", 1), ("a", 1), ("b", 1)]);
        assert!(matches!(search(&mut set, &repo, "b/x"), Err(TufError::Threshold { valid: 0, .. })));
        assert!(set.targets_role("b").is_none());
        assert!(matches!(search(&mut set, &repo, "u/x"), Err(TufError::Mismatch { .. })));
        assert!(matches!(set.snapshot_meta("unlisted"), Err(TufError::Mismatch { .. })));
        assert_eq!(found(&search(&mut set, &repo, "a/x").unwrap()), Some("a"));
        // Only from the role that delegates, once it is loaded.
        assert!(matches!(set.update_delegated_targets(&repo["a"], "a", "b"), Err(TufError::Order(_))));
        assert!(matches!(set.update_delegated_targets(&repo["a"], "a", "a"), Err(TufError::Mismatch { .. })));
        assert!(matches!(set.update_delegated_targets(&repo["a"], "a", "root"), Err(TufError::Order(_))));
        assert!(matches!(
            set.update_delegated_targets(&repo["a"], "snapshot", "targets"),
            Err(TufError::Malformed { .. })
        ));
        // Expired delegated metadata.
        let mut set = loaded(&fx, &[("targets", 1), ("a", 1)]);
        set.update_targets(&repo["targets"]).unwrap();
        let expired = sign(&Targets::new(1, past()), &[&fx.delegated["a"]]).unwrap();
        assert!(matches!(set.update_delegated_targets(&expired, "a", "targets"), Err(TufError::Expired { .. })));
    }

    #[test]
    fn a_role_reached_through_another_delegator_must_verify_with_its_keys() {
        let fx = Fixture::new().with_roles(&["a", "b", "stranger"]);
        // b delegates to a, but names another key for it.
        let mut b_delegates = fx.delegations(&[("stranger", &["b/*"], false)]);
        b_delegates.roles[0].name = "a".into();
        let repo: BTreeMap<&str, Vec<u8>> = [
            ("targets", fx.targets(1, &[], Some(fx.delegations(&[("a", &["a/*"], false), ("b", &["b/*"], false)])))),
            ("a", fx.delegated("a", 1, &["a/x", "b/y"], None)),
            ("b", fx.delegated("b", 1, &[], Some(b_delegates))),
        ]
        .into();
        let mut set = loaded(&fx, &[("targets", 1), ("a", 1), ("b", 1)]);
        assert_eq!(found(&search(&mut set, &repo, "a/x").unwrap()), Some("a"));
        assert!(matches!(search(&mut set, &repo, "b/y"), Err(TufError::Threshold { .. })));
    }

    #[test]
    fn delegation_cycles_and_fan_out_end() {
        let fx = Fixture::new().with_roles(&["a", "b"]);
        let repo: BTreeMap<&str, Vec<u8>> = [
            ("targets", fx.targets(1, &[], Some(fx.delegations(&[("a", &["*"], false)])))),
            ("a", fx.delegated("a", 1, &[], Some(fx.delegations(&[("b", &["*"], false), ("a", &["*"], false)])))),
            ("b", fx.delegated("b", 1, &[], Some(fx.delegations(&[("a", &["*"], false)])))),
        ]
        .into();
        let mut set = loaded(&fx, &[("targets", 1), ("a", 1), ("b", 1)]);
        let result = search(&mut set, &repo, "x").unwrap();
        assert_eq!(result, (TargetSearch::NotFound, vec!["targets".to_owned(), "a".to_owned(), "b".to_owned()]));
        assert_eq!(set.find_target("x").unwrap(), TargetSearch::NotFound);

        // Forty roles all trusted for the path: the search gives up after MAX_DELEGATIONS.
        let names: Vec<String> = (0..40).map(|i| format!("r{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let fx = Fixture::new().with_roles(&refs);
        let roles: Vec<(&str, &[&str], bool)> = refs.iter().map(|n| (*n, &["*"][..], false)).collect();
        let mut repo: BTreeMap<&str, Vec<u8>> = [("targets", fx.targets(1, &[], Some(fx.delegations(&roles))))].into();
        for name in &refs {
            let files: &[&str] = if *name == "r39" { &["x"] } else { &[] };
            repo.insert(name, fx.delegated(name, 1, files, None));
        }
        let mut meta: Vec<(&str, u64)> = refs.iter().map(|n| (*n, 1)).collect();
        meta.push(("targets", 1));
        let mut set = loaded(&fx, &meta);
        let (result, fetched) = search(&mut set, &repo, "x").unwrap();
        assert_eq!(result, TargetSearch::NotFound);
        assert_eq!(fetched.len(), 1 + MAX_DELEGATIONS);
        assert_eq!(fetched.last().map(String::as_str), Some("r31"));

        // A chain deeper than MAX_DELEGATIONS ends too.
        let fx = Fixture::new().with_roles(&refs);
        let mut repo: BTreeMap<&str, Vec<u8>> =
            [("targets", fx.targets(1, &[], Some(fx.delegations(&[("r00", &["*"], false)]))))].into();
        for (i, name) in refs.iter().enumerate() {
            let next = refs.get(i + 1).map(|n| fx.delegations(&[(*n, &["*"][..], false)]));
            repo.insert(name, fx.delegated(name, 1, &[], next));
        }
        let mut set = loaded(&fx, &meta);
        let (result, fetched) = search(&mut set, &repo, "x").unwrap();
        assert_eq!(result, TargetSearch::NotFound);
        assert_eq!(fetched.len(), 1 + MAX_DELEGATIONS);
    }

    #[test]
    fn malformed_delegations_are_refused() {
        let fx = Fixture::new().with_roles(&["a"]);
        let mut set = loaded(&fx, &[("targets", 1)]);
        let mut twice = fx.delegations(&[("a", &["a/*"], false)]);
        twice.roles.push(twice.roles[0].clone());
        assert!(matches!(set.update_targets(&fx.targets(1, &[], Some(twice))), Err(TufError::Malformed { .. })));
        let mut top_level = fx.delegations(&[("a", &["a/*"], false)]);
        top_level.roles[0].name = "root".into();
        assert!(matches!(set.update_targets(&fx.targets(1, &[], Some(top_level))), Err(TufError::Malformed { .. })));
        let mut both = fx.delegations(&[("a", &["a/*"], false)]);
        both.roles[0].path_hash_prefixes = Some(vec!["ab".into()]);
        assert!(matches!(set.update_targets(&fx.targets(1, &[], Some(both))), Err(TufError::Malformed { .. })));
        assert!(set.targets().is_none());
    }

    #[test]
    fn out_of_order_calls_are_refused() {
        let fx = Fixture::new();
        let mut set = TrustedSet::new(&fx.root(1), NOW).unwrap();
        assert!(matches!(set.find_target("x"), Err(TufError::Order(_))));
        assert!(matches!(set.update_targets(&fx.targets(1, &[], None)), Err(TufError::Order(_))));
        assert!(matches!(set.check_final_timestamp(), Err(TufError::Order(_))));
        assert!(matches!(set.check_final_snapshot(), Err(TufError::Order(_))));
        assert!(matches!(set.load_local_snapshot(&fx.snapshot(1, &[])), Err(TufError::Order(_))));
        assert!(matches!(TrustedSet::new(&fx.targets(1, &[], None), NOW), Err(TufError::WrongType { .. })));
    }
}
