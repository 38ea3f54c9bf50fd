//! One agent per state directory: an exclusive `flock` on `STATE_DIR/lock`, held while a
//! command works on the state. The kernel releases it when the process dies, however it dies,
//! so a killed agent never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::exit::{Exit, Failure};

/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// The directories the agent keeps inside the state directory: none may be a symlink, or the
/// files written inside it would land wherever the link points.
pub const SUBDIRECTORIES: [&str; 4] = ["downloads", "logs", "tuf", "work"];

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock on `state_dir` without waiting: [`Exit::Busy`] when another process holds
    /// it. The directory is created with mode 0700 if missing, and refused ([`Exit::State`])
    /// when another user could write to it ([`crate::atomic::check_private_dir`]).
    pub fn try_acquire(state_dir: &Path) -> Result<Self, Failure> {
        crate::atomic::ensure_private_dir(state_dir)
            .map_err(|e| Failure::new(Exit::State, format!("the state directory: {e}")))?;
        refuse_linked_subdirectories(state_dir)?;
        let path = state_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(crate::atomic::NOFOLLOW)
            .open(&path)
            .map_err(|e| Failure::new(Exit::State, format!("cannot open {}: {e}", path.display())))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Failure::new(
                Exit::Busy,
                format!(
                    "another ferry-agent is working on {} (it holds {}); try again when it is done",
                    state_dir.display(),
                    path.display()
                ),
            )),
            Err(e) => Err(Failure::new(Exit::State, format!("cannot lock {}: {e}", path.display()))),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// For the commands that only read the state directory (`status`, `notify`): the same checks
/// as [`StateLock::try_acquire`] for a directory that exists (one that does not is simply empty).
pub fn check_state_dir(state_dir: &Path) -> Result<(), Failure> {
    if !state_dir.exists() {
        return Ok(());
    }
    crate::atomic::check_private_dir(state_dir)
        .map_err(|e| Failure::new(Exit::State, format!("the state directory: {e}")))?;
    refuse_linked_subdirectories(state_dir)
}

fn refuse_linked_subdirectories(state_dir: &Path) -> Result<(), Failure> {
    for name in SUBDIRECTORIES {
        let path = state_dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Failure::new(
                Exit::State,
                format!(
                    "{} is a symlink, and the agent never follows links in its state directory; remove it",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_subdirectories_and_lock_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("logs")).unwrap();
        let err = StateLock::try_acquire(dir.path()).unwrap_err();
        assert_eq!(err.exit, Exit::State);
        assert!(err.message.contains("logs is a symlink"), "{err}");
        std::fs::remove_file(dir.path().join("logs")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("x"), dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(StateLock::try_acquire(dir.path()).unwrap_err().exit, Exit::State);
        assert!(!elsewhere.path().join("x").exists(), "the lock was created through the link");
    }

    #[test]
    fn a_second_holder_is_busy_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::try_acquire(dir.path()).unwrap();
        assert_eq!(StateLock::try_acquire(dir.path()).unwrap_err().exit, Exit::Busy);
        drop(first);
        StateLock::try_acquire(dir.path()).unwrap();
    }
}
