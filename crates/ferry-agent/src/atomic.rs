//! Writes that survive a crash or a power cut: the bytes go to a temporary file in the same
//! directory, are flushed to disk, then renamed over the destination, and the directory is
//! flushed so that the rename itself is durable. Afterwards the destination holds either its
//! old content or all of the new, never a part.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// An IO failure on a named path, for error messages that say where.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", .path.display())]
pub struct IoError {
    /// "read", "write", "rename", ...
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

impl IoError {
    /// A closure wrapping an [`std::io::Error`] on `path`, for `map_err`.
    pub fn on(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
        let path = path.to_owned();
        move |source| IoError { action, path, source }
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically and durably. The temporary file is
/// `.NAME.tmp` beside it; a leftover from an interrupted write is simply overwritten.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = parent_of(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&tmp).map_err(IoError::on("create", &tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(IoError::on("write", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(IoError::on("rename into place", path))?;
    sync_dir(dir)
}

/// Flushes a directory, so that entries created, renamed or removed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(IoError::on("sync directory", dir))
}

/// Removes a file that may be missing.
pub fn remove_file_if_exists(path: &Path) -> Result<(), IoError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(IoError::on("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes a directory tree that may be missing.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<(), IoError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(IoError::on("remove", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_file(&path, b"one").unwrap();
        write_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_leftover_temporary_file_does_not_block_writes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".state.json.tmp"), b"torn").unwrap();
        write_file(&dir.path().join("state.json"), b"whole").unwrap();
        assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), b"whole");
    }

    #[test]
    fn errors_name_the_path() {
        let err = write_file(Path::new("/nonexistent-dir/x.json"), b"x").unwrap_err();
        assert!(err.to_string().starts_with("cannot create /nonexistent-dir/.x.json.tmp"), "{err}");
    }
}
