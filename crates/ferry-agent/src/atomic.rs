//! Files of the state directory, which are never reached through a symlink: the agent often
//! runs as root, and a link planted there (`events.jsonl -> /etc/shadow`) would otherwise make it
//! read or append to whatever the link names. Opens use `O_NOFOLLOW`; writes go through
//! [`write_file`], which never writes through a link either.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

pub use ferry_fs::{parent_of, remove_dir_all_if_exists, remove_file_if_exists, sync_dir, IoError};

/// `O_NOFOLLOW` for [`OpenOptionsExt::custom_flags`]: opening a symlink fails (`ELOOP`).
pub const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Replaces `path` with `bytes` atomically and durably ([`ferry_fs::write_file`]), readable
/// only by the agent's user.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    ferry_fs::write_file(path, bytes, ferry_fs::Access::Private)
}

/// Opens a file of the state directory for appending, creating it if missing; a symlink is
/// refused (see the module documentation).
pub fn open_append(path: &Path) -> Result<File, IoError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(NOFOLLOW)
        .open(path)
        .map_err(|e| IoError::on("open", path)(explain_link(e)))
}

/// Reads a file of the state directory; a symlink is refused (see the module documentation).
pub fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = OpenOptions::new().read(true).custom_flags(NOFOLLOW).open(path).map_err(explain_link)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a file of at most `max` bytes (following symlinks: for files the configuration
/// names, such as the pinned roots or a secret). A longer file is an error that says so,
/// without reading it into memory.
pub fn read_limited(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {max} bytes, far more than such a file holds; check the path"),
        ));
    }
    Ok(bytes)
}

/// `ELOOP` from an `O_NOFOLLOW` open, said plainly.
fn explain_link(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        std::io::Error::new(
            e.kind(),
            "it is a symlink, and the agent never follows links in its state directory; remove it",
        )
    } else {
        e
    }
}

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist, then checks it with
/// [`check_private_dir`].
pub fn ensure_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    check_private_dir(dir)
}

/// Checks that no other user can change what is in `dir`: it is a directory, owned by the user
/// running the agent or by root, and neither its group nor others may write to it. Otherwise
/// another local user could plant files or links in it that the agent (often root) acts on.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "{} is owned by uid {}, not by this user (uid {me}) or root, so its owner could change what the agent acts on; run `chown {me} {}`",
            dir.display(),
            meta.uid(),
            dir.display()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by {} (mode {mode:04o}), so another user could plant files or links in it; run `chmod go-w {}`",
            dir.display(),
            if mode & 0o002 != 0 { "every user" } else { "its group" },
            dir.display()
        ));
    }
    Ok(())
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
    fn writes_replace_planted_links_instead_of_following_them() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".state.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("state.json")).unwrap();
        write_file(&dir.path().join("state.json"), b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), b"new");
        assert_eq!(std::fs::metadata(dir.path().join("state.json")).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!std::fs::symlink_metadata(dir.path().join("state.json")).unwrap().is_symlink());
    }

    #[test]
    fn reads_and_appends_refuse_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("events.jsonl");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(read_private(&link).unwrap_err().to_string().contains("symlink"));
        assert!(open_append(&link).unwrap_err().to_string().contains("symlink"));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn limited_reads_refuse_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, vec![b'a'; 11]).unwrap();
        assert_eq!(read_limited(&path, 11).unwrap().len(), 11);
        assert!(read_limited(&path, 10).unwrap_err().to_string().contains("larger than 10 bytes"));
    }

    #[test]
    fn private_dirs_are_created_0700_and_shared_ones_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a").join("state");
        ensure_private_dir(&state).unwrap();
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        for (mode, who) in [(0o777, "every user"), (0o1777, "every user"), (0o775, "its group")] {
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = ensure_private_dir(&state).unwrap_err();
            assert!(err.contains(&format!("writable by {who}")) && err.contains("chmod go-w"), "{err}");
        }
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_private_dir(&state).unwrap();
    }

    #[test]
    fn errors_name_the_path() {
        let err = write_file(Path::new("/nonexistent-dir/x.json"), b"x").unwrap_err();
        assert!(err.to_string().starts_with("cannot create /nonexistent-dir/.x.json."), "{err}");
    }
}
