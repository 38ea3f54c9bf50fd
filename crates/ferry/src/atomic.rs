//! Key and metadata files written so that a crash, a full disk or a pulled USB stick never
//! leaves a half-written one ([`ferry_fs::write_file`]), with the CLI's errors.

use std::path::Path;

pub use ferry_fs::Access;

use crate::exit::{exists, LocalFileError};

/// Whether an existing file at the destination may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it.
    Replace,
    /// Fail with [`exists`] and leave it untouched.
    Keep,
}

/// Writes `bytes` to `path` atomically: afterwards the file holds either its old content or all
/// of `bytes`, never a part. A private key is never readable by others, not even for a moment.
pub fn write_file(path: &Path, bytes: &[u8], access: Access, existing: Existing) -> anyhow::Result<()> {
    let written = match existing {
        Existing::Replace => ferry_fs::write_file(path, bytes, access),
        // Atomic too: the rename refuses to replace a file that appeared since any earlier check.
        Existing::Keep => ferry_fs::write_new_file(path, bytes, access),
    };
    written.map_err(|e| {
        if e.source.kind() == std::io::ErrorKind::AlreadyExists && e.path == path {
            exists(path)
        } else {
            LocalFileError { action: "write", path: path.to_owned(), source: e.source }.into()
        }
    })
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
