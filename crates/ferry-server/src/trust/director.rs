//! The director repository (docs/trust.md): for each device, on demand, a targets / snapshot /
//! timestamp chain signed with the online director key, listing exactly the signed releases
//! the device should install now.
//!
//! - **It always names the device**: targets carries `"custom": {"device": ID}` at the top
//!   level and in every entry, even when it lists nothing, so one device's metadata replayed to
//!   another is refused by the device's cross-check.
//! - **Entries mirror the image repository**: same path, length, sha256 and `custom.ferry`
//!   (product, version, platforms, release counter, …) as the signed image entry, and only
//!   releases the image repository lists are named; a device installs only when both agree.
//! - **Versions never go down, per device**: a new version is `max(stored + 1, issued_at ×
//!   1000)` ([`next_version`], as for the image repository's snapshot and timestamp). The
//!   stored row is compare-and-set ([`ferry_store::Store::advance_director_state`]), so
//!   concurrent requests and restarts cannot reissue a number; and because every version is at
//!   least its issue time in milliseconds, a version issued after a database restore is still
//!   above anything issued before the restore. Devices also report the version they trust at
//!   check-in, and a stored version below it is reissued at once.
//! - **It carries the device's rollback instructions**: for each release marked bad that the
//!   device reports running, the top-level `custom.rollback` names it
//!   ([`crate::marked_bad::rollback_instructions`], typed by `ferry_tuf::DirectorInstructions`),
//!   so the instruction is signed with the chain and bound to the device, and a change in the
//!   instructions changes the chain's digest (a new chain is signed at the next check-in).
//! - **Issued files are kept**: the three signed files of the current version are stored with
//!   it, so `N.snapshot.json` and `N.targets.json` are exactly the files timestamp N named, on
//!   any replica.
//!
//! The director's root is signed with its own online key, created on first start, and re-signed
//! (a new version, same keys) at half its lifetime.
//!
//! Signing with the director keys holds [`AppState::rotation`] for reading (check-ins sign side
//! by side), and a rotation holds it for writing, so no chain is signed with a key being
//! replaced.

use std::collections::BTreeMap;

use ferry_core::{Device, DeviceId, Release};
use ferry_store::{DirectorFiles, DirectorStamp, DirectorState, MetadataFile, Repo, StoreError};
use ferry_tuf::metadata::sign;
use ferry_tuf::time::{format_expires, parse_expires};
use ferry_tuf::{
    DirectorInstructions, MetaFile, RollbackInstruction, Root, Snapshot, TargetFile, Targets, Timestamp, TufError,
    Verifiable,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::offers;
use crate::state::AppState;
use crate::trust::image::{is_signed, target_for};
use crate::trust::keys::{self, OnlineKeys};
use crate::trust::next_version;
use crate::trust::TrustError;

/// How long a director root is valid; it is re-signed at half of this.
pub const ROOT_EXPIRY_SECS: i64 = 365 * 86_400;

/// The director root in force, creating version 1, or re-signing it past half its lifetime.
/// Returns its version.
pub async fn ensure_root(st: &AppState, now: i64) -> ApiResult<u64> {
    // Read side: a rotation cannot interleave; two re-signings of the same version (on this or
    // another replica) are settled by the store.
    let _rotation = st.rotation.read().await;
    let keys = st.keys();
    let latest = st.store.latest_metadata(Repo::Director, "root").await?;
    let (version, previous) = match &latest {
        None => (1, None),
        Some(file) => {
            let root = Verifiable::<Root>::parse("director root", &file.bytes)
                .map_err(|e| ApiError::internal(format!("stored director root no longer parses: {e}")))?;
            let lists_keys = root.signed.roles.get("targets").is_some_and(|r| r.keyids == [keys.director.key_id()])
                && root.signed.roles.get("root").is_some_and(|r| r.keyids == [keys.director_root.key_id()]);
            if !lists_keys {
                return Err(ApiError::internal(format!(
                    "the director root (version {}) does not list this server's director keys; the keys in \
                     the keys directory were replaced without a rotation — restore them, or rotate with \
                     `POST /api/v1/trust/director/rotate` from the old keys",
                    root.signed.version
                )));
            }
            let remaining = parse_expires(&root.signed.expires).map(|at| at - now).unwrap_or(0);
            if remaining >= ROOT_EXPIRY_SECS / 2 {
                return Ok(root.signed.version);
            }
            (root.signed.version + 1, Some(root.signed.version))
        }
    };
    let root = director_root(version, now, &keys.director_root, &keys.director);
    let bytes = sign(&root, &[&keys.director_root]).map_err(ApiError::internal)?;
    let file = MetadataFile { repo: Repo::Director, role: "root".into(), version, bytes, created_at: now };
    match st.store.put_metadata(&[file]).await {
        Ok(()) => {
            tracing::info!(version, previous, "director root signed");
            Ok(version)
        }
        // Another replica signed this version first: theirs is as good.
        Err(StoreError::Conflict(_)) => Ok(version),
        Err(e) => Err(e.into()),
    }
}

/// Rotates the director's online keys: new root and director keys, a root version N+1 that
/// lists them, signed by the old and the new root key (so devices follow the chain), then the
/// new keys take over and every device's chain is reissued on its next request. Returns the
/// new root version.
pub async fn rotate(st: &AppState, now: i64) -> ApiResult<u64> {
    let _rotation = st.rotation.write().await;
    let keys = st.keys();
    let dir = st.config.keys_dir();
    let latest = st
        .store
        .latest_metadata(Repo::Director, "root")
        .await?
        .ok_or_else(|| ApiError::internal("the director root is missing; restart the server to create it"))?;
    let root_key = keys::next_key_or_create(&dir, keys::DIRECTOR_ROOT).map_err(ApiError::internal)?;
    let key = keys::next_key_or_create(&dir, keys::DIRECTOR).map_err(ApiError::internal)?;
    let version = latest.version + 1;
    let root = director_root(version, now, &root_key, &key);
    let bytes = sign(&root, &[&keys.director_root, &root_key]).map_err(ApiError::internal)?;
    let file = MetadataFile { repo: Repo::Director, role: "root".into(), version, bytes, created_at: now };
    st.store.put_metadata(&[file]).await.map_err(|e| match e {
        StoreError::Conflict(detail) => ApiError::from(TrustError::RotationRaced { detail }),
        other => other.into(),
    })?;
    st.take_over_keys(&[(keys::DIRECTOR_ROOT, &root_key), (keys::DIRECTOR, &key)])
        .map_err(|e| crate::trust::image::unfinished_rotation("director", version, e))?;
    tracing::info!(version, keyid = key.key_id(), "director keys rotated");
    Ok(version)
}

fn director_root(version: u64, now: i64, root_key: &ferry_tuf::SigningKey, key: &ferry_tuf::SigningKey) -> Root {
    let online = || vec![key.public().clone()];
    Root::new(
        version,
        format_expires(now + ROOT_EXPIRY_SECS),
        &[
            ("root", vec![root_key.public().clone()], 1),
            ("targets", online(), 1),
            ("snapshot", online(), 1),
            ("timestamp", online(), 1),
        ],
    )
}

/// The releases `device`'s director targets list now: the offered releases (`eval`) the
/// image repository has signed.
async fn desired<'e>(st: &AppState, device: &Device, eval: &'e offers::Evaluation) -> ApiResult<Vec<&'e Release>> {
    if device.status != ferry_core::DeviceStatus::Accepted {
        return Ok(Vec::new());
    }
    let index = st.catalogue.signed(st.store.as_ref()).await?;
    Ok(eval.offered().into_iter().map(|(r, _)| r).filter(|r| is_signed(r, &index)).collect())
}

/// Director entries for `releases`: the image repository's entry for each artifact, with
/// `custom` = `{"device": ID, "ferry": <the image entry's custom.ferry>}`.
pub fn entries<'a>(device: &DeviceId, releases: impl IntoIterator<Item = &'a Release>) -> BTreeMap<String, TargetFile> {
    let mut targets = BTreeMap::new();
    for release in releases {
        for artifact in &release.artifacts {
            let mut entry = target_for(release, artifact);
            let ferry = entry.custom.as_ref().and_then(|c| c.get("ferry")).cloned().unwrap_or(Value::Null);
            entry.custom = Some(json!({ "device": device, "ferry": ferry }));
            targets.insert(release.target_path(&artifact.name), entry);
        }
    }
    targets
}

/// What identifies a chain's content: the device, the signing key, the releases listed and the
/// rollback instructions. Releases are immutable, so their ids and counters stand for their
/// entries and instructions, and the check-in path hashes a few bytes instead of building the
/// entries. Without instructions the digest is what it was before they existed, so chains
/// issued then stay current.
fn digest(device: &DeviceId, key_id: &str, releases: &[&Release], rollback: &[RollbackInstruction]) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("ferry-director-v1\n{device}\n{key_id}\n"));
    for release in releases {
        hash.update(format!("{}:{}\n", release.id.0, release.counter));
    }
    for instruction in rollback {
        hash.update(format!("rollback {}:{}\n", instruction.release.0, instruction.counter));
    }
    hex::encode(hash.finalize())
}

/// Signs one version of a device's director chain with `keys.director`: targets naming the
/// device and carrying its `rollback` instructions, a snapshot of it and a timestamp of that,
/// all expiring `lifetime` seconds after `now`.
pub fn sign_chain(
    keys: &OnlineKeys,
    device: &DeviceId,
    version: u64,
    now: i64,
    lifetime: i64,
    targets: BTreeMap<String, TargetFile>,
    rollback: Vec<RollbackInstruction>,
) -> Result<DirectorFiles, TufError> {
    let expires = format_expires(now + lifetime);
    let mut signed = Targets::new(version, expires.clone());
    signed.targets = targets;
    let custom = DirectorInstructions { device: device.to_string(), rollback };
    signed.unrecognized.insert(DirectorInstructions::KEY.into(), custom.to_value());
    let targets = sign(&signed, &[&keys.director])?;
    let meta = [("targets.json".to_owned(), MetaFile::of_bytes(version, &targets))].into();
    let snapshot = sign(&Snapshot::new(version, expires.clone(), meta), &[&keys.director])?;
    let timestamp = sign(&Timestamp::new(version, expires, MetaFile::of_bytes(version, &snapshot)), &[&keys.director])?;
    Ok(DirectorFiles { targets, snapshot, timestamp })
}

/// The device's current director chain: the stored one while it lists what the device should
/// install, is past no more than half its lifetime and is not below `seen` (the version the
/// device reports trusting); otherwise a newly signed one.
pub async fn current(
    st: &AppState,
    device: &Device,
    eval: &offers::Evaluation,
    seen: Option<u64>,
    now: i64,
) -> ApiResult<DirectorState> {
    let wanted = wanted(st, device, eval).await?;
    issue_unless_current(st, device, wanted, seen, now).await
}

/// The version of the device's current director chain, for the check-in answer: when the
/// stamp loaded with the device's credential is still current, no further query is made.
pub async fn current_version(
    st: &AppState,
    device: &Device,
    stamp: Option<&DirectorStamp>,
    eval: &offers::Evaluation,
    seen: Option<u64>,
    now: i64,
) -> ApiResult<u64> {
    let wanted = wanted(st, device, eval).await?;
    if let Some(stamp) = stamp {
        if still_current(st, stamp.version, &stamp.digest, stamp.issued_at, &wanted.digest, seen, now) {
            return Ok(stamp.version);
        }
    }
    Ok(issue_unless_current(st, device, wanted, seen, now).await?.version)
}

/// What the device's director targets should list, with its digest, and the keys to sign it
/// with: the ones in force, which [`Wanted::_rotation`] keeps in force until it is dropped.
struct Wanted<'s, 'e> {
    releases: Vec<&'e Release>,
    rollback: Vec<RollbackInstruction>,
    digest: String,
    keys: std::sync::Arc<OnlineKeys>,
    /// The read side of [`AppState::rotation`], held from choosing the keys until the chain
    /// signed with them is stored (or found current).
    _rotation: tokio::sync::RwLockReadGuard<'s, ()>,
}

async fn wanted<'s, 'e>(st: &'s AppState, device: &Device, eval: &'e offers::Evaluation) -> ApiResult<Wanted<'s, 'e>> {
    let releases = desired(st, device, eval).await?;
    let rollback = if device.status == ferry_core::DeviceStatus::Accepted {
        crate::marked_bad::rollback_instructions(device, &st.catalogue.bad(st.store.as_ref()).await?)
    } else {
        Vec::new()
    };
    let rotation = st.rotation.read().await;
    let keys = st.keys();
    let digest = digest(&device.id, keys.director.key_id(), &releases, &rollback);
    Ok(Wanted { releases, rollback, digest, keys, _rotation: rotation })
}

/// A device claiming a version from the future (or a corrupt claim) does not move the floor.
fn plausible_claim(seen: Option<u64>, now: i64) -> Option<u64> {
    seen.filter(|&v| v <= next_version(None, now + 86_400))
}

/// Whether a stored version still serves: same content, not past half its lifetime, and not
/// below the version the device says it trusts.
fn still_current(
    st: &AppState,
    version: u64,
    digest: &str,
    issued_at: i64,
    wanted: &str,
    seen: Option<u64>,
    now: i64,
) -> bool {
    let lifetime = st.config.trust.director_expiry_secs as i64;
    let fresh = now < issued_at + lifetime / 2 && now >= issued_at;
    digest == wanted && fresh && plausible_claim(seen, now).is_none_or(|v| v <= version)
}

async fn issue_unless_current(
    st: &AppState,
    device: &Device,
    wanted: Wanted<'_, '_>,
    seen: Option<u64>,
    now: i64,
) -> ApiResult<DirectorState> {
    let stored = st.store.director_state(&device.id).await?;
    if let Some(s) = &stored {
        if !s.files.timestamp.is_empty()
            && still_current(st, s.version, &s.digest, s.issued_at, &wanted.digest, seen, now)
        {
            return Ok(s.clone());
        }
    }
    let lifetime = st.config.trust.director_expiry_secs as i64;
    let previous = stored.as_ref().map(|s| s.version);
    let version = next_version(previous.max(plausible_claim(seen, now)), now);
    let targets = entries(&device.id, wanted.releases.iter().copied());
    let files = sign_chain(&wanted.keys, &device.id, version, now, lifetime, targets, wanted.rollback)
        .map_err(ApiError::internal)?;
    let next = DirectorState { version, digest: wanted.digest, issued_at: now, files };
    if st.store.advance_director_state(&device.id, previous, &next).await? {
        tracing::debug!(device = %device.id, version, "director metadata issued");
        return Ok(next);
    }
    // Another request issued a version meanwhile; that one is current.
    st.store
        .director_state(&device.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {} no longer exists", device.id)))
}
