//! The server's online signing keys: image snapshot and timestamp, director root and director
//! metadata. Created on first start in the keys directory (mode 0700, files 0600, PKCS#8), so
//! that a publisher can put their public halves into root metadata. Offline keys (root,
//! targets) never reach the server.

use std::path::{Path, PathBuf};

use ferry_tuf::{KeyKind, SigningKey};

/// The online keys.
#[derive(Debug)]
pub struct OnlineKeys {
    /// Signs the image repository's snapshot.
    pub snapshot: SigningKey,
    /// Signs the image repository's timestamp.
    pub timestamp: SigningKey,
    /// Signs the director repository's root.
    pub director_root: SigningKey,
    /// Signs each device's director targets, snapshot and timestamp.
    pub director: SigningKey,
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("online key {path}: {reason}")]
pub struct KeyError {
    /// The key file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The online key names: files `NAME.pk8` in the keys directory, and `NAME.next.pk8` for a
/// rotation under way.
pub const SNAPSHOT: &str = "snapshot";
/// See [`SNAPSHOT`].
pub const TIMESTAMP: &str = "timestamp";
/// See [`SNAPSHOT`].
pub const DIRECTOR_ROOT: &str = "director-root";
/// See [`SNAPSHOT`].
pub const DIRECTOR: &str = "director";

fn key_error(path: &Path, reason: String) -> KeyError {
    KeyError { path: path.to_owned(), reason }
}

fn read_key(path: &Path) -> Result<Option<SigningKey>, KeyError> {
    match std::fs::read(path) {
        Ok(der) => SigningKey::from_pkcs8(&der).map(Some).map_err(|e| key_error(path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(key_error(path, format!("cannot read: {e}"))),
    }
}

fn create_key(path: &Path, name: &str) -> Result<SigningKey, KeyError> {
    let key = SigningKey::generate(KeyKind::Ed25519).map_err(|e| key_error(path, e.to_string()))?;
    write_private(path, key.pkcs8()).map_err(|e| key_error(path, format!("cannot write: {e}")))?;
    tracing::info!(key = name, keyid = key.key_id(), path = %path.display(), "created online key");
    Ok(key)
}

impl OnlineKeys {
    /// Loads the keys from `dir`, creating any that are missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        std::fs::create_dir_all(dir).map_err(|e| key_error(dir, format!("cannot create: {e}")))?;
        restrict(dir, 0o700).map_err(|e| key_error(dir, format!("cannot restrict permissions: {e}")))?;
        let load = |name: &str| -> Result<SigningKey, KeyError> {
            let path = dir.join(format!("{name}.pk8"));
            match read_key(&path)? {
                Some(key) => Ok(key),
                None => create_key(&path, name),
            }
        };
        Ok(Self {
            snapshot: load(SNAPSHOT)?,
            timestamp: load(TIMESTAMP)?,
            director_root: load(DIRECTOR_ROOT)?,
            director: load(DIRECTOR)?,
        })
    }

    /// A copy of these keys with `replaced` (key name, key) in place of the keys of those names.
    pub fn replaced(&self, replaced: &[(&str, &SigningKey)]) -> Result<Self, KeyError> {
        let copy = |name: &str, current: &SigningKey| {
            let key = replaced.iter().find(|(n, _)| *n == name).map_or(current, |(_, k)| *k);
            SigningKey::from_pkcs8(key.pkcs8()).map_err(|e| key_error(Path::new(name), e.to_string()))
        };
        Ok(Self {
            snapshot: copy(SNAPSHOT, &self.snapshot)?,
            timestamp: copy(TIMESTAMP, &self.timestamp)?,
            director_root: copy(DIRECTOR_ROOT, &self.director_root)?,
            director: copy(DIRECTOR, &self.director)?,
        })
    }

    /// The key in force named `name` (one of [`SNAPSHOT`], [`TIMESTAMP`], [`DIRECTOR_ROOT`],
    /// [`DIRECTOR`]).
    pub fn get(&self, name: &str) -> Option<&SigningKey> {
        match name {
            SNAPSHOT => Some(&self.snapshot),
            TIMESTAMP => Some(&self.timestamp),
            DIRECTOR_ROOT => Some(&self.director_root),
            DIRECTOR => Some(&self.director),
            _ => None,
        }
    }
}

/// The key made for a rotation of `name`, if one is under way.
pub fn next_key(dir: &Path, name: &str) -> Result<Option<SigningKey>, KeyError> {
    read_key(&dir.join(format!("{name}.next.pk8")))
}

/// The key to rotate `name` to: the one already waiting, or a new one.
pub fn next_key_or_create(dir: &Path, name: &str) -> Result<SigningKey, KeyError> {
    let path = dir.join(format!("{name}.next.pk8"));
    match read_key(&path)? {
        Some(key) => Ok(key),
        None => create_key(&path, &format!("{name} (next)")),
    }
}

/// Makes the waiting key of `name` the one in force: `NAME.next.pk8`, which must be the key
/// `expected` (the key id a stored root lists), is renamed over `NAME.pk8` (atomic; the old key
/// is gone) and the directory synced.
///
/// Idempotent, so that an interrupted rotation can be finished by running it again: when no
/// key is waiting and the key in force already is `expected`, the promotion happened before
/// and this only syncs the directory again. A waiting key other than `expected`, or neither
/// file holding it, is an error.
pub fn promote(dir: &Path, name: &str, expected: &str) -> Result<(), KeyError> {
    let from = dir.join(format!("{name}.next.pk8"));
    let to = dir.join(format!("{name}.pk8"));
    let renamed = match read_key(&from)? {
        Some(next) if next.key_id() == expected => {
            std::fs::rename(&from, &to).map_err(|e| key_error(&from, format!("cannot promote: {e}")))?;
            true
        }
        Some(next) => {
            return Err(key_error(
                &from,
                format!(
                    "cannot promote: the waiting key is {}, not {expected} (the key the root lists)",
                    next.key_id()
                ),
            ))
        }
        None => match read_key(&to)? {
            Some(current) if current.key_id() == expected => false,
            _ => {
                return Err(key_error(
                    &from,
                    format!("cannot promote: no key is waiting, and the key in force is not {expected}"),
                ))
            }
        },
    };
    ferry_fs::sync_dir(dir).map_err(|e| key_error(dir, format!("cannot sync: {}", e.source)))?;
    if renamed {
        tracing::info!(key = name, keyid = expected, "online key rotated");
    }
    Ok(())
}

/// Writes a private key atomically and durably, readable only by the owner.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    Ok(ferry_fs::write_file(path, bytes, ferry_fs::Access::Private)?)
}

fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = OnlineKeys::load_or_create(&keys).unwrap();
        let again = OnlineKeys::load_or_create(&keys).unwrap();
        assert_eq!(first.snapshot.key_id(), again.snapshot.key_id());
        assert_eq!(first.director.key_id(), again.director.key_id());
        assert_ne!(first.snapshot.key_id(), first.timestamp.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(keys.join("timestamp.pk8")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o700);
        }
        std::fs::write(keys.join("snapshot.pk8"), b"garbage").unwrap();
        let e = OnlineKeys::load_or_create(&keys).unwrap_err();
        assert!(e.to_string().contains("snapshot.pk8"), "{e}");
    }

    #[test]
    fn a_rotation_waits_in_a_next_key_until_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let before = OnlineKeys::load_or_create(dir.path()).unwrap();
        assert!(next_key(dir.path(), TIMESTAMP).unwrap().is_none());
        let next = next_key_or_create(dir.path(), TIMESTAMP).unwrap();
        assert_eq!(next_key_or_create(dir.path(), TIMESTAMP).unwrap().key_id(), next.key_id(), "made once");
        assert_ne!(next.key_id(), before.timestamp.key_id());
        let unchanged = OnlineKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(unchanged.timestamp.key_id(), before.timestamp.key_id(), "not in force before promotion");
        promote(dir.path(), TIMESTAMP, next.key_id()).unwrap();
        let after = OnlineKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(after.timestamp.key_id(), next.key_id());
        assert_eq!(after.snapshot.key_id(), before.snapshot.key_id(), "other keys stay");
        assert!(next_key(dir.path(), TIMESTAMP).unwrap().is_none());
    }

    #[test]
    fn promotion_is_idempotent_and_only_of_the_listed_key() {
        let dir = tempfile::tempdir().unwrap();
        let before = OnlineKeys::load_or_create(dir.path()).unwrap();
        let next = next_key_or_create(dir.path(), SNAPSHOT).unwrap();
        // A waiting key other than the one the root lists is not promoted.
        let e = promote(dir.path(), SNAPSHOT, before.timestamp.key_id()).unwrap_err();
        assert!(e.to_string().contains(next.key_id()), "{e}");
        assert!(next_key(dir.path(), SNAPSHOT).unwrap().is_some(), "still waiting");
        promote(dir.path(), SNAPSHOT, next.key_id()).unwrap();
        // Again, as a retry after an interrupted rotation does: already done, nothing changes.
        promote(dir.path(), SNAPSHOT, next.key_id()).unwrap();
        let after = OnlineKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(after.snapshot.key_id(), next.key_id());
        assert!(next_key(dir.path(), SNAPSHOT).unwrap().is_none());
        // Nothing waiting and the key in force is not the expected one: an error, no change.
        let e = promote(dir.path(), SNAPSHOT, before.snapshot.key_id()).unwrap_err();
        assert!(e.to_string().contains("no key is waiting"), "{e}");
        let e = promote(dir.path(), TIMESTAMP, next.key_id()).unwrap_err();
        assert!(e.to_string().contains("no key is waiting"), "{e}");
        let unchanged = OnlineKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(unchanged.snapshot.key_id(), next.key_id());
        assert_eq!(unchanged.timestamp.key_id(), before.timestamp.key_id());
    }

    #[test]
    fn replaced_keys_are_copies_with_the_named_ones_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let keys = OnlineKeys::load_or_create(dir.path()).unwrap();
        let next = next_key_or_create(dir.path(), DIRECTOR).unwrap();
        let swapped = keys.replaced(&[(DIRECTOR, &next)]).unwrap();
        assert_eq!(swapped.director.key_id(), next.key_id());
        for name in [SNAPSHOT, TIMESTAMP, DIRECTOR_ROOT] {
            assert_eq!(swapped.get(name).unwrap().key_id(), keys.get(name).unwrap().key_id(), "{name}");
        }
        assert!(keys.get("targets").is_none());
    }
}
