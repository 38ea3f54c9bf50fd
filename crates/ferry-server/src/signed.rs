//! Which releases the image repository's signed targets list.
//!
//! Below both the check-in cache (`cache.rs`) and the image repository (`trust::image`), which
//! both need it: it reads the store and nothing of the server's state, so the cache does not
//! depend on the trust modules above it.

use std::collections::HashMap;

use ferry_core::Release;
use ferry_store::{Repo, Store, StoreError};
use ferry_tuf::{FerryTarget, TargetFile, Targets, Verifiable};

/// Whether every artifact of `release` is listed, with the same length, digest and release
/// counter, in the signed targets.
pub fn is_signed(release: &Release, index: &HashMap<String, TargetFile>) -> bool {
    release.artifacts.iter().all(|a| {
        index.get(&release.target_path(&a.name)).is_some_and(|t| {
            t.length == a.length
                && t.sha256() == Some(a.sha256.as_str())
                && FerryTarget::of(t).is_ok_and(|ferry| ferry.release_counter == release.counter)
        })
    })
}

/// Every target the image repository's latest metadata lists, by path: top-level targets
/// first, then delegated roles in delegation order (an earlier listing wins, as in a client's
/// search). Each file was verified when it was pushed.
pub async fn signed_index(store: &dyn Store) -> ferry_store::Result<HashMap<String, TargetFile>> {
    let mut index = HashMap::new();
    let parse = |role: &str, bytes: &[u8]| {
        Verifiable::<Targets>::parse(role, bytes)
            .map_err(|e| StoreError::Corrupt(format!("image {role} metadata: {e}")))
    };
    let Some(file) = store.latest_metadata(Repo::Image, "targets").await? else { return Ok(index) };
    let top = parse("targets", &file.bytes)?;
    for (path, target) in &top.signed.targets {
        index.insert(path.clone(), target.clone());
    }
    for role in top.signed.delegations.iter().flat_map(|d| &d.roles) {
        if let Some(file) = store.latest_metadata(Repo::Image, &role.name).await? {
            for (path, target) in parse(&role.name, &file.bytes)?.signed.targets {
                if role.is_delegated_path(&path) {
                    index.entry(path).or_insert(target);
                }
            }
        }
    }
    Ok(index)
}
