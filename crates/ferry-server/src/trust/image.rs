//! The image repository (docs/trust.md): publishers push root and targets metadata signed offline;
//! the server verifies it, then signs a new snapshot and timestamp with its online keys and
//! stores the three files in one transaction. Releases reach devices only once a verified
//! targets file lists them (see [`signed_index`]).
//!
//! Snapshot and timestamp versions are `max(stored + 1, now in ms)` ([`next_version`], as for
//! the director): after a database restore from a backup, the stored versions are older than
//! the ones devices have seen, and the next ones signed are still above them. Root and targets
//! versions are the publisher's (signed offline).

use std::collections::BTreeMap;

use ferry_api::trust::{Published, TargetsDraft};
use ferry_core::Release;
use ferry_store::{MetadataFile, Repo, Store, StoreError};
use ferry_tuf::metadata::sign;
use ferry_tuf::time::{format_expires, parse_expires};
use ferry_tuf::{
    FerryTarget, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp, TrustedSet, TufError, Verifiable,
};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::trust::{keys, next_version, TrustError};

// Here for the routes and the director, which read them as part of the image repository.
pub use crate::signed::{is_signed, signed_index};

/// How often the server checks whether snapshot or timestamp needs re-signing.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Top-level roles; every other role name is a delegated targets role.
pub const TOP_LEVEL: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// A refusal of `what` with the verifier's explanation.
fn invalid(what: &str, err: impl std::fmt::Display) -> ApiError {
    TrustError::refused(what, err).into()
}

fn corrupt(err: TufError) -> ApiError {
    ApiError::internal(format!("stored metadata no longer parses: {err}"))
}

async fn latest<T: ferry_tuf::Role>(store: &dyn Store, role: &str) -> ApiResult<Option<(Verifiable<T>, MetadataFile)>> {
    match store.latest_metadata(Repo::Image, role).await? {
        Some(file) => Ok(Some((Verifiable::<T>::parse(role, &file.bytes).map_err(corrupt)?, file))),
        None => Ok(None),
    }
}

fn check_unexpired(what: &str, expires: &str, now: i64) -> ApiResult<()> {
    let at = parse_expires(expires).map_err(|e| invalid(what, e))?;
    if at <= now {
        return Err(invalid(what, format!("it expired at {expires}; set a later expiry and sign it again")));
    }
    Ok(())
}

/// Verifies and stores a new root as a TUF client would follow it ([`TrustedSet`]): version 1
/// signed by its own root threshold, or the next version signed by both the trusted root's and
/// its own root thresholds; unexpired. Its snapshot and timestamp roles must be this server's
/// online keys.
pub async fn push_root(st: &AppState, bytes: &[u8], now: i64) -> ApiResult<Published> {
    let new = Verifiable::<Root>::parse("root", bytes).map_err(|e| invalid("root", e))?;
    let root = &new.signed;
    root.check().map_err(|e| invalid("root", e))?;
    if !root.consistent_snapshot {
        return Err(invalid("root", "consistent_snapshot must be true: Ferry serves consistent snapshots only"));
    }
    let set = match latest::<Root>(st.store.as_ref(), "root").await? {
        None if root.version != 1 => {
            return Err(invalid("root", format!("the first root must be version 1, not {}", root.version)))
        }
        None => {
            TrustedSet::new(bytes, now).map_err(|e| invalid("root", format!("not signed by its own root keys: {e}")))
        }
        Some((_, trusted)) => {
            let mut set = TrustedSet::new(&trusted.bytes, now).map_err(corrupt)?;
            set.update_root(bytes).map(|()| set).map_err(|e| invalid("root", e))
        }
    }?;
    set.check_final_root().map_err(|e| invalid("root", format!("{e}; set a later expiry and sign it again")))?;
    let _rotation = st.rotation.write().await;
    let keys = st.keys();
    let dir = st.config.keys_dir();
    // Each online role lists the key in force, or the one a rotation has waiting.
    let next_snapshot = keys::next_key(&dir, keys::SNAPSHOT).map_err(ApiError::internal)?;
    let next_timestamp = keys::next_key(&dir, keys::TIMESTAMP).map_err(ApiError::internal)?;
    let choose = |role: &str, current: &'_ ferry_tuf::SigningKey, next: Option<&'_ ferry_tuf::SigningKey>| {
        let listed = &root.roles[role];
        let lists = |k: &ferry_tuf::SigningKey| listed.keyids == [k.key_id()] && listed.threshold == 1;
        match next {
            Some(next) if lists(next) => Ok(true),
            _ if lists(current) => Ok(false),
            _ => Err(invalid(
                "root",
                format!(
                    "the {role} role must be exactly this server's online {role} key {} with threshold 1 \
                     (`ferry trust online-keys` prints it; during a rotation, the waiting key)",
                    current.key_id()
                ),
            )),
        }
    };
    let rotate_snapshot = choose("snapshot", &keys.snapshot, next_snapshot.as_ref())?;
    let rotate_timestamp = choose("timestamp", &keys.timestamp, next_timestamp.as_ref())?;
    let file = MetadataFile {
        repo: Repo::Image,
        role: "root".to_owned(),
        version: root.version,
        bytes: bytes.to_vec(),
        created_at: now,
    };
    let rotating: Vec<(&str, &ferry_tuf::SigningKey)> = [
        (keys::SNAPSHOT, next_snapshot.as_ref().filter(|_| rotate_snapshot)),
        (keys::TIMESTAMP, next_timestamp.as_ref().filter(|_| rotate_timestamp)),
    ]
    .into_iter()
    .filter_map(|(name, key)| Some((name, key?)))
    .collect();
    if rotating.is_empty() {
        st.store.put_metadata(&[file]).await.map_err(raced)?;
        tracing::info!(version = root.version, "image root published");
        return Ok(Published {
            role: "root".into(),
            version: root.version,
            snapshot_version: None,
            timestamp_version: None,
        });
    }
    // Online keys rotate: the root, and a snapshot and timestamp signed with the new keys, are
    // stored together; then the waiting keys take over (on disk and in memory, which follows
    // the root even when the disk cannot). A crash or a failure in between is finished at the
    // next start ([`adopt_rotated_keys`]).
    let published = st.store.latest_metadata(Repo::Image, "timestamp").await?.is_some();
    let versions = if published {
        let snapshot_key = next_snapshot.as_ref().filter(|_| rotate_snapshot).unwrap_or(&keys.snapshot);
        let timestamp_key = next_timestamp.as_ref().filter(|_| rotate_timestamp).unwrap_or(&keys.timestamp);
        Some(publish_signed(st, vec![file], now, snapshot_key, timestamp_key).await?)
    } else {
        st.store.put_metadata(&[file]).await.map_err(raced)?;
        None
    };
    let names: Vec<&str> = rotating.iter().map(|(name, _)| *name).collect();
    st.take_over_keys(&rotating).map_err(|e| unfinished_rotation("image", root.version, e))?;
    tracing::info!(version = root.version, rotated = ?names, "image root published; online keys rotated");
    Ok(Published {
        role: "root".into(),
        version: root.version,
        snapshot_version: versions.map(|v| v.0),
        timestamp_version: versions.map(|v| v.1),
    })
}

/// Finishes rotations a crash or a failure interrupted: a waiting online key that the latest
/// image or director root already lists takes over ([`AppState::take_over_keys`]; a key
/// whose promotion already happened is not waiting any more and is loaded as it is). Called
/// at start.
pub async fn adopt_rotated_keys(st: &AppState) -> ApiResult<()> {
    let dir = st.config.keys_dir();
    let mut adopted = Vec::new();
    for (repo, pairs) in [
        (Repo::Image, [(keys::SNAPSHOT, "snapshot"), (keys::TIMESTAMP, "timestamp")]),
        (Repo::Director, [(keys::DIRECTOR_ROOT, "root"), (keys::DIRECTOR, "targets")]),
    ] {
        let Some(file) = st.store.latest_metadata(repo, "root").await? else { continue };
        let root = Verifiable::<Root>::parse("root", &file.bytes).map_err(corrupt)?.signed;
        for (name, role) in pairs {
            if let Some(next) = keys::next_key(&dir, name).map_err(ApiError::internal)? {
                if root.roles.get(role).is_some_and(|r| r.keyids == [next.key_id()]) {
                    adopted.push((name, next));
                }
            }
        }
    }
    if !adopted.is_empty() {
        let _rotation = st.rotation.write().await;
        let rotated: Vec<(&str, &ferry_tuf::SigningKey)> = adopted.iter().map(|(name, key)| (*name, key)).collect();
        st.take_over_keys(&rotated).map_err(ApiError::internal)?;
        let names: Vec<&str> = adopted.iter().map(|(name, _)| *name).collect();
        tracing::info!(keys = ?names, "an interrupted online-key rotation was finished");
    }
    Ok(())
}

/// 500 after a root listing rotated keys was stored but the keys directory did not follow.
pub(crate) fn unfinished_rotation(repo: &str, version: u64, e: keys::KeyError) -> ApiError {
    ApiError::internal(format!(
        "{repo} root version {version} is published and the server signs with the keys it lists, but they could not \
         be put in place in the keys directory: {e}. Fix that and restart the server: the start finishes the rotation"
    ))
}

fn raced(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(detail) => TrustError::PublishRaced { detail }.into(),
        other => other.into(),
    }
}

/// Verifies and stores targets metadata for `role` (`targets` or a role the top-level targets
/// delegates to), then signs and stores a new snapshot and timestamp with it.
pub async fn push_targets(st: &AppState, role: &str, bytes: &[u8], now: i64) -> ApiResult<Published> {
    let what = format!("{role} metadata");
    let new = Verifiable::<Targets>::parse(role, bytes).map_err(|e| invalid(&what, e))?;
    let Some((root, _)) = latest::<Root>(st.store.as_ref(), "root").await? else {
        return Err(TrustError::NoRoot.into());
    };
    if role == "targets" {
        new.verify_with_root("targets", &root.signed).map_err(|e| invalid(&what, e))?;
    } else {
        let Some((top, _)) = latest::<Targets>(st.store.as_ref(), "targets").await? else {
            return Err(TrustError::NoTopLevelTargets { role: role.to_owned() }.into());
        };
        let delegations = top.signed.delegations.as_ref();
        let delegated = delegations.and_then(|d| d.roles.iter().find(|r| r.name == role)).ok_or_else(|| {
            invalid(&what, format!("the top-level targets metadata does not delegate to a role named {role:?}"))
        })?;
        let keys = &delegations.map(|d| d.keys.clone()).unwrap_or_default();
        new.verify(role, "targets", keys, &delegated.keyids, delegated.threshold).map_err(|e| invalid(&what, e))?;
        if let Some(path) = new.signed.targets.keys().find(|p| !delegated.is_delegated_path(p)) {
            return Err(invalid(&what, format!("target {path:?} is outside the paths delegated to {role}")));
        }
    }
    let expected = match latest::<Targets>(st.store.as_ref(), role).await? {
        Some((current, _)) => current.signed.version + 1,
        None => 1,
    };
    if new.signed.version != expected {
        return Err(invalid(&what, format!("version is {} but the next version is {expected}", new.signed.version)));
    }
    check_unexpired(&what, &new.signed.expires, now)?;
    for (path, target) in &new.signed.targets {
        let sha = target.sha256().ok_or_else(|| invalid(&what, format!("target {path:?} has no sha256")))?;
        let digest = ferry_core::Sha256::parse(sha).map_err(|e| invalid(&what, format!("target {path:?}: {e}")))?;
        match st.content.len(&digest).await? {
            Some(len) if len == target.length => {}
            Some(len) => {
                return Err(invalid(
                    &what,
                    format!("target {path:?} says {} bytes; the content is {len}", target.length),
                ))
            }
            None => {
                return Err(invalid(
                    &what,
                    format!("target {path:?}: no content with sha256 {sha} on this server; upload it first"),
                ))
            }
        }
    }
    let file = MetadataFile {
        repo: Repo::Image,
        role: role.to_owned(),
        version: new.signed.version,
        bytes: bytes.to_vec(),
        created_at: now,
    };
    let (snapshot_version, timestamp_version) = {
        let _rotation = st.rotation.write().await;
        publish(st, vec![file], now).await?
    };
    tracing::info!(role, version = new.signed.version, snapshot_version, "targets metadata published");
    Ok(Published {
        role: role.to_owned(),
        version: new.signed.version,
        snapshot_version: Some(snapshot_version),
        timestamp_version: Some(timestamp_version),
    })
}

/// Signs a snapshot of every targets role (with `files` applied) and a timestamp for it, and
/// stores them with `files` in one transaction. Returns the snapshot and timestamp versions
/// ([`next_version`] of the stored ones). Called with [`AppState::rotation`] held for writing.
async fn publish(st: &AppState, files: Vec<MetadataFile>, now: i64) -> ApiResult<(u64, u64)> {
    let keys = st.keys();
    publish_signed(st, files, now, &keys.snapshot, &keys.timestamp).await
}

async fn publish_signed(
    st: &AppState,
    mut files: Vec<MetadataFile>,
    now: i64,
    snapshot_key: &ferry_tuf::SigningKey,
    timestamp_key: &ferry_tuf::SigningKey,
) -> ApiResult<(u64, u64)> {
    let mut meta: BTreeMap<String, MetaFile> = BTreeMap::new();
    let (mut stored_snapshot, mut stored_timestamp) = (None, None);
    for (role, version) in st.store.metadata_roles(Repo::Image).await? {
        match role.as_str() {
            "snapshot" => stored_snapshot = Some(version),
            "timestamp" => stored_timestamp = Some(version),
            "root" => {}
            _ => {
                meta.insert(format!("{role}.json"), MetaFile::version_only(version));
            }
        }
    }
    for file in &files {
        meta.insert(format!("{}.json", file.role), MetaFile::version_only(file.version));
    }
    let snapshot_version = next_version(stored_snapshot, now);
    let timestamp_version = next_version(stored_timestamp, now);
    let snapshot =
        Snapshot::new(snapshot_version, format_expires(now + st.config.trust.snapshot_expiry_secs as i64), meta);
    let snapshot_bytes = sign(&snapshot, &[snapshot_key]).map_err(ApiError::internal)?;
    let timestamp = Timestamp::new(
        timestamp_version,
        format_expires(now + st.config.trust.timestamp_expiry_secs as i64),
        MetaFile::of_bytes(snapshot_version, &snapshot_bytes),
    );
    let timestamp_bytes = sign(&timestamp, &[timestamp_key]).map_err(ApiError::internal)?;
    for (role, version, bytes) in
        [("snapshot", snapshot_version, snapshot_bytes), ("timestamp", timestamp_version, timestamp_bytes)]
    {
        files.push(MetadataFile { repo: Repo::Image, role: role.to_owned(), version, bytes, created_at: now });
    }
    st.store.put_metadata(&files).await.map_err(raced)?;
    st.catalogue.invalidate();
    Ok((snapshot_version, timestamp_version))
}

/// What [`refresh`] has to re-sign.
enum Due {
    Nothing,
    /// A new snapshot and timestamp.
    Snapshot,
    /// A new timestamp (after the stored version `previous`) for the same `snapshot`.
    Timestamp {
        previous: u64,
        snapshot: MetaFile,
    },
}

async fn due(st: &AppState, now: i64) -> ApiResult<Due> {
    let store = st.store.as_ref();
    let (Some((snapshot, snapshot_file)), Some((timestamp, _))) =
        (latest::<Snapshot>(store, "snapshot").await?, latest::<Timestamp>(store, "timestamp").await?)
    else {
        return Ok(Due::Nothing);
    };
    let trust = &st.config.trust;
    let remaining = |expires: &str| parse_expires(expires).map(|at| at - now).unwrap_or(0);
    Ok(if remaining(&snapshot.signed.expires) < trust.snapshot_expiry_secs as i64 / 2 {
        Due::Snapshot
    } else if remaining(&timestamp.signed.expires) < trust.timestamp_expiry_secs as i64 / 2 {
        let snapshot = MetaFile::of_bytes(snapshot.signed.version, &snapshot_file.bytes);
        Due::Timestamp { previous: timestamp.signed.version, snapshot }
    } else {
        Due::Nothing
    })
}

/// Re-signs what is about to expire: a new snapshot (and timestamp) once the snapshot is past
/// half its lifetime, else a new timestamp once the timestamp is. Returns whether it signed.
pub async fn refresh(st: &AppState, now: i64) -> ApiResult<bool> {
    // Most calls find nothing to do: that is found out without the lock, which check-ins
    // signing director chains would otherwise wait for, and checked again under it.
    if matches!(due(st, now).await?, Due::Nothing) {
        return Ok(false);
    }
    let _rotation = st.rotation.write().await;
    match due(st, now).await? {
        Due::Nothing => Ok(false),
        Due::Snapshot => {
            publish(st, Vec::new(), now).await?;
            Ok(true)
        }
        Due::Timestamp { previous, snapshot } => {
            let version = next_version(Some(previous), now);
            let signed =
                Timestamp::new(version, format_expires(now + st.config.trust.timestamp_expiry_secs as i64), snapshot);
            let bytes = sign(&signed, &[&st.keys().timestamp]).map_err(ApiError::internal)?;
            let file = MetadataFile { repo: Repo::Image, role: "timestamp".into(), version, bytes, created_at: now };
            st.store.put_metadata(&[file]).await.map_err(raced)?;
            Ok(true)
        }
    }
}

/// The target entry a release's artifact should have in targets metadata.
pub fn target_for(release: &Release, artifact: &ferry_core::Artifact) -> TargetFile {
    let ferry = FerryTarget {
        product: release.product.clone(),
        version: release.version.clone(),
        kind: Some(release.kind),
        platforms: release.platforms.clone(),
        required: Some(release.required),
        reboot: Some(release.reboot),
        release_counter: release.counter,
        media_type: Some(artifact.media_type.clone()),
    };
    TargetFile::new(artifact.length, artifact.sha256.as_str(), Some(ferry.into_custom(artifact.custom.clone())))
}

/// The next version of `role`'s targets metadata, unsigned: what it lists now plus the
/// entries for `releases`, expiring `expires_secs` from `now`. A publisher signs it offline
/// and pushes it back.
/// For a delegated role, only releases inside the role's delegated paths are added: with
/// `explicit` (the caller named them) one outside is an error, otherwise it is left out.
pub async fn draft(
    st: &AppState,
    role: &str,
    releases: &[Release],
    explicit: bool,
    expires_secs: i64,
    now: i64,
) -> ApiResult<TargetsDraft> {
    let delegation = if role == "targets" {
        None
    } else {
        let top = latest::<Targets>(st.store.as_ref(), "targets").await?;
        let found =
            top.and_then(|(t, _)| t.signed.delegations.and_then(|d| d.roles.into_iter().find(|r| r.name == role)));
        Some(found.ok_or_else(|| TrustError::NotDelegated { role: role.to_owned() })?)
    };
    let inside = |release: &Release| {
        delegation
            .as_ref()
            .is_none_or(|d| release.artifacts.iter().all(|a| d.is_delegated_path(&release.target_path(&a.name))))
    };
    if explicit {
        if let Some(outside) = releases.iter().find(|r| !inside(r)) {
            return Err(TrustError::OutsideDelegation {
                release: outside.id.0,
                product: outside.product.to_string(),
                version: outside.version.to_string(),
                role: role.to_owned(),
                paths: delegation.as_ref().and_then(|d| d.paths.clone()).unwrap_or_default(),
            }
            .into());
        }
    }
    let releases: Vec<&Release> = releases.iter().filter(|r| inside(r)).collect();
    let mut targets = match latest::<Targets>(st.store.as_ref(), role).await? {
        Some((current, _)) => {
            let mut next = current.signed;
            next.version += 1;
            next
        }
        None => Targets::new(1, String::new()),
    };
    targets.expires = format_expires(now + expires_secs);
    for release in releases {
        for artifact in &release.artifacts {
            targets.targets.insert(release.target_path(&artifact.name), target_for(release, artifact));
        }
    }
    Ok(TargetsDraft { signed: serde_json::to_value(&targets).map_err(ApiError::internal)?, signatures: Vec::new() })
}
