//! The server's online signing keys: image snapshot and timestamp, director root and director
//! metadata. Created on first start in the keys directory (mode 0700, files 0600, PKCS#8), so
//! that a publisher can put their public halves into root metadata. Offline keys (root,
//! targets) never reach the server.

use std::io::Write as _;
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

impl OnlineKeys {
    /// Loads the keys from `dir`, creating any that are missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let err = |path: &Path, reason: String| KeyError { path: path.to_owned(), reason };
        std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create: {e}")))?;
        restrict(dir, 0o700).map_err(|e| err(dir, format!("cannot restrict permissions: {e}")))?;
        let load = |name: &str| -> Result<SigningKey, KeyError> {
            let path = dir.join(format!("{name}.pk8"));
            match std::fs::read(&path) {
                Ok(der) => SigningKey::from_pkcs8(&der).map_err(|e| err(&path, e.to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = SigningKey::generate(KeyKind::Ed25519).map_err(|e| err(&path, e.to_string()))?;
                    write_private(&path, key.pkcs8()).map_err(|e| err(&path, format!("cannot write: {e}")))?;
                    tracing::info!(key = name, keyid = key.key_id(), path = %path.display(), "created online key");
                    Ok(key)
                }
                Err(e) => Err(err(&path, format!("cannot read: {e}"))),
            }
        };
        Ok(Self {
            snapshot: load("snapshot")?,
            timestamp: load("timestamp")?,
            director_root: load("director-root")?,
            director: load("director")?,
        })
    }
}

/// Writes a private key atomically: a 0600 temporary file, fsync, rename, directory fsync.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("pk8.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
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
}
