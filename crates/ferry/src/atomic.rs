//! Writing files so that a crash, a full disk or a pulled USB stick never leaves a half-written
//! key or metadata file: the bytes go to a temporary file in the same directory, are flushed to
//! disk, then renamed over the destination, and the directory is flushed so that the rename
//! survives a power cut.

use std::io::Write as _;
use std::path::Path;

use crate::exit::{exists, LocalFileError};

/// Who may read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only the owner (mode 0600): private keys.
    Private,
    /// Everyone (mode 0644): public keys and metadata, which are meant to be carried around.
    Public,
}

/// Whether an existing file at the destination may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it.
    Replace,
    /// Fail with [`exists`] and leave it untouched.
    Keep,
}

/// Writes `bytes` to `path` atomically: afterwards the file holds either its old content or all
/// of `bytes`, never a part.
pub fn write_file(path: &Path, bytes: &[u8], access: Access, existing: Existing) -> anyhow::Result<()> {
    let fail = |source| anyhow::Error::from(LocalFileError { action: "write", path: path.to_owned(), source });
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600, so a private key is never readable by others,
    // not even for a moment.
    let mut tmp = tempfile::Builder::new().prefix(".ferry-").suffix(".tmp").tempfile_in(dir).map_err(fail)?;
    #[cfg(unix)]
    if access == Access::Public {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644)).map_err(fail)?;
    }
    tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all()).map_err(fail)?;
    let persisted = match existing {
        Existing::Replace => tmp.persist(path),
        // Atomic too: the rename refuses to replace a file that appeared since any earlier check.
        Existing::Keep => tmp.persist_noclobber(path),
    };
    if let Err(e) = persisted {
        return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists { exists(path) } else { fail(e.error) });
    }
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_or_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_file(&path, b"one", Access::Public, Existing::Keep).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let err = write_file(&path, b"two", Access::Public, Existing::Keep).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one", "kept");
        write_file(&path, b"three", Access::Public, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")], "no temporary file left behind");
    }

    #[test]
    #[cfg(unix)]
    fn modes_follow_access() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        write_file(&dir.path().join("k"), b"secret", Access::Private, Existing::Keep).unwrap();
        write_file(&dir.path().join("k.pub"), b"public", Access::Public, Existing::Keep).unwrap();
        assert_eq!((mode("k"), mode("k.pub")), (0o600, 0o644));
    }

    #[test]
    fn a_missing_directory_is_a_local_file_error() {
        let err = write_file(Path::new("/nonexistent/dir/x"), b"x", Access::Public, Existing::Replace).unwrap_err();
        assert_eq!(crate::exit::classify(&err).exit_code, crate::exit::LOCAL_FILE);
        assert!(err.to_string().contains("/nonexistent/dir/x"), "{err}");
    }
}
