//! File helpers shared by the server, the admin CLI, the device agent and the updater.
//!
//! [`write_file`] and [`write_new_file`] write so that a crash, a full disk or a power cut
//! never leaves a half-written file: the bytes go to a temporary file in the same directory
//! (a fresh name, created exclusively with the final mode), are flushed to disk, then renamed
//! over the destination, and the directory is flushed so that the rename itself survives a
//! power cut. Afterwards the destination holds either its old content or all of the new.
//!
//! A symlink is never written through: the temporary file is created exclusively (`O_EXCL`
//! refuses an existing name, a planted link included), and a rename replaces a link at the
//! destination itself, never the file it names. The agent often runs as root, so a link planted
//! in its state directory (`state.json -> /etc/shadow`) must not redirect its writes.

use std::fs::{File, OpenOptions};
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

impl From<IoError> for std::io::Error {
    /// Keeps the kind (callers match on `NotFound`, `AlreadyExists`...) and says where.
    fn from(e: IoError) -> Self {
        std::io::Error::new(e.source.kind(), e.to_string())
    }
}

/// Who may read a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only the owner (mode 0600): keys, credentials, state.
    Private,
    /// Everyone (mode 0644, whatever the umask): public keys and metadata, which are meant to
    /// be carried around.
    Public,
}

/// Replaces `path` with `bytes` atomically and durably (see the crate documentation).
pub fn write_file(path: &Path, bytes: &[u8], access: Access) -> Result<(), IoError> {
    write(path, bytes, access, false)
}

/// Writes `bytes` to `path` atomically and durably, failing with
/// [`std::io::ErrorKind::AlreadyExists`] when `path` exists (a symlink included). The check is
/// the rename itself, so a file that appears meanwhile is not replaced either.
pub fn write_new_file(path: &Path, bytes: &[u8], access: Access) -> Result<(), IoError> {
    write(path, bytes, access, true)
}

fn write(path: &Path, bytes: &[u8], access: Access, keep_existing: bool) -> Result<(), IoError> {
    let dir = parent_of(path);
    let (tmp, mut file) = create_temporary(path, access)?;
    let written =
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(IoError::on("write", &tmp)).and_then(|()| {
            drop(file);
            if keep_existing {
                rename_no_replace(&tmp, path).map_err(IoError::on("create", path))
            } else {
                std::fs::rename(&tmp, path).map_err(IoError::on("rename into place", path))
            }
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Creates a new, empty file with a fresh name beside `path` (`.NAME.RANDOM.tmp`), readable
/// as `access` says from the start.
fn create_temporary(path: &Path, access: Access) -> Result<(PathBuf, File), IoError> {
    let dir = parent_of(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut attempts = 0;
    loop {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&tmp) {
            Ok(file) => {
                // The umask may only have removed bits; public files get theirs explicitly.
                #[cfg(unix)]
                if access == Access::Public {
                    use std::os::unix::fs::PermissionsExt as _;
                    if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(0o644)) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(IoError::on("create", &tmp)(e));
                    }
                }
                #[cfg(not(unix))]
                let _ = access;
                return Ok((tmp, file));
            }
            // Someone else's name (or a planted link): draw another.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => return Err(IoError::on("create", &tmp)(e)),
        }
    }
}

/// Renames `from` to `to` unless `to` exists. Linux renames with `RENAME_NOREPLACE`; where the
/// file system cannot, a hard link (which refuses an existing name too) and an unlink do it.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Renames `from` to `to` (replacing it) and flushes `to`'s directory, so that the new name
/// survives a power cut.
pub fn rename(from: &Path, to: &Path) -> Result<(), IoError> {
    std::fs::rename(from, to).map_err(IoError::on("rename", from))?;
    sync_dir(parent_of(to))
}

/// Flushes a directory, so that entries created, renamed or removed in it survive a power cut.
/// (A no-op where directories cannot be opened as files.)
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(IoError::on("sync directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
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

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_file(&path, b"one", Access::Private).unwrap();
        write_file(&path, b"two", Access::Private).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[test]
    fn new_files_never_replace_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_new_file(&path, b"one", Access::Public).unwrap();
        let err = write_new_file(&path, b"two", Access::Public).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one", "kept");
        assert_eq!(names(dir.path()), ["a.json"], "no temporary file left behind");
    }

    /// The destination is only ever renamed over, so a reader at any moment sees the whole old
    /// or the whole new file, even while a large file is being written.
    #[test]
    fn readers_never_see_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let (old, new) = (vec![b'o'; 4 << 20], vec![b'n'; 4 << 20]);
        write_file(&path, &old, Access::Private).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, done, old, new) = (path.clone(), done.clone(), old.clone(), new.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                    let seen = std::fs::read(&path).unwrap();
                    assert!(seen == old || seen == new, "a read saw {} bytes of a partial file", seen.len());
                    reads += 1;
                }
            })
        };
        for _ in 0..5 {
            write_file(&path, &new, Access::Private).unwrap();
            write_file(&path, &old, Access::Private).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_file(&path, b"old", Access::Private).unwrap();
        // A directory cannot be renamed over: the write fails after the temporary file is full.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), b"x").unwrap();
        let err = write_file(&blocked, b"new", Access::Private).unwrap_err();
        assert!(err.to_string().starts_with("cannot rename into place"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["blocked", "state.json"]);
    }

    #[test]
    #[cfg(unix)]
    fn writes_replace_planted_links_instead_of_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_file(&path, b"new", Access::Private).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }

    #[test]
    #[cfg(unix)]
    fn new_files_refuse_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("key");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = write_new_file(&path, b"new", Access::Private).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }

    #[test]
    #[cfg(unix)]
    fn modes_follow_access_whatever_the_previous_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        std::fs::write(dir.path().join("k"), b"old").unwrap();
        std::fs::set_permissions(dir.path().join("k"), std::fs::Permissions::from_mode(0o666)).unwrap();
        write_file(&dir.path().join("k"), b"secret", Access::Private).unwrap();
        write_new_file(&dir.path().join("k.pub"), b"public", Access::Public).unwrap();
        assert_eq!((mode("k"), mode("k.pub")), (0o600, 0o644));
    }

    #[test]
    fn errors_name_the_path() {
        let err = write_file(Path::new("/nonexistent-dir/x.json"), b"x", Access::Private).unwrap_err();
        assert!(err.to_string().starts_with("cannot create /nonexistent-dir/.x.json."), "{err}");
        assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn renames_replace_and_removals_tolerate_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.part"), dir.path().join("a"));
        std::fs::write(&from, b"whole").unwrap();
        std::fs::write(&to, b"old").unwrap();
        rename(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"whole");
        assert!(rename(&from, &to).unwrap_err().to_string().contains("a.part"));
        remove_file_if_exists(&to).unwrap();
        remove_file_if_exists(&to).unwrap();
        remove_dir_all_if_exists(&dir.path().join("none")).unwrap();
        assert_eq!(parent_of(Path::new("x")), Path::new("."));
    }
}
