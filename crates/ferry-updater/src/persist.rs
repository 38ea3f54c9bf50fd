//! Files on the device: names derived from role names and target paths, and writes that survive
//! a crash (temporary file, fsync, rename, fsync of the directory).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `name` percent-encoded as python's `urllib.parse.quote(name, safe="")` does: every byte but
/// ASCII letters, digits and `_.-~` becomes `%XX`. The result never contains `/`, so it is one
/// path component, and distinct names stay distinct. TUF clients use it for role names in URLs
/// and file names, and the conformance suite for downloaded targets' file names.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file name a downloaded target gets in the destination directory: its whole target path,
/// [`escape`]d (so `gw/1.4.0/fw.bin` is `gw%2F1.4.0%2Ffw.bin`: targets of the same base name in
/// different directories do not collide, and a path cannot leave the directory).
pub fn target_file_name(path: &str) -> Result<String> {
    let name = escape(path);
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::Config(format!("target path {path:?} cannot be stored as a file")));
    }
    Ok(name)
}

/// The subdirectory of a download directory that holds partial downloads, as `NAME.part` for
/// the target stored as `NAME` ([`target_file_name`]). No target file name can be it: [`escape`]
/// never emits `+` (it becomes `%2B`), so a target's partial download and another target's file
/// cannot collide (a partial `NAME.part` next to the targets would be the file of the target
/// named `NAME.part`). Its leading dot hides it from listings that skip hidden files.
pub const PARTIAL_DIR: &str = ".partial+";

/// Where the partial download of the target stored as `name` ([`target_file_name`]) in
/// `dest_dir` is kept: `dest_dir/.partial+/name.part`.
pub fn partial_file(dest_dir: &Path, name: &str) -> PathBuf {
    dest_dir.join(PARTIAL_DIR).join(format!("{name}.part"))
}

/// The non-versioned file name of a role's metadata: `ROLE.json`, the role [`escape`]d.
pub fn role_file(role: &str) -> String {
    format!("{}.json", escape(role))
}

/// Reads a file that may be missing.
pub(crate) async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path)(e)),
    }
}

/// Deletes a file that may be missing.
pub(crate) async fn remove_optional(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path)(e)),
        _ => Ok(()),
    }
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new content
/// ([`ferry_fs::write_file`]: a symlink at `name` is replaced, never written through). Metadata
/// is public, so the file is readable by all.
pub(crate) async fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let (target, bytes) = (dir.join(name), bytes.to_vec());
    let write = {
        let target = target.clone();
        move || ferry_fs::write_file(&target, &bytes, ferry_fs::Access::Public).map_err(fs_error)
    };
    tokio::task::spawn_blocking(write).await.map_err(|e| Error::io(target)(std::io::Error::other(e)))?
}

/// Renames `from` to `to` and syncs the directory, so the new name survives a crash.
pub(crate) async fn promote(from: &Path, to: &Path) -> Result<()> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    let rename = {
        let (from, to) = (from.clone(), to.clone());
        move || ferry_fs::rename(&from, &to).map_err(fs_error)
    };
    tokio::task::spawn_blocking(rename).await.map_err(|e| Error::io(from)(std::io::Error::other(e)))?
}

fn fs_error(e: ferry_fs::IoError) -> Error {
    Error::io(e.path)(e.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_python_quote_with_nothing_safe() {
        assert_eq!(escape("targets"), "targets");
        assert_eq!(escape("gw/1.4.0/fw.bin"), "gw%2F1.4.0%2Ffw.bin");
        assert_eq!(escape("../delegatedrole"), "..%2Fdelegatedrole");
        assert_eq!(escape("?"), "%3F");
        assert_eq!(escape("#"), "%23");
        assert_eq!(escape("a b+c~_-"), "a%20b%2Bc~_-");
        assert_eq!(escape("é"), "%C3%A9");
        assert_eq!(escape("%3F"), "%253F", "escaping is injective");
        assert_eq!(role_file("/delegatedrole"), "%2Fdelegatedrole.json");
    }

    #[test]
    fn target_names_stay_inside_the_directory() {
        assert_eq!(target_file_name("dir/a.bin").unwrap(), "dir%2Fa.bin");
        assert_eq!(target_file_name("../../etc/passwd").unwrap(), "..%2F..%2Fetc%2Fpasswd");
        for bad in ["", ".", ".."] {
            assert!(target_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_target_is_stored_where_partial_downloads_are() {
        for path in [PARTIAL_DIR, ".partial", ".partial+/a", "a+", "+", ".partial%2B"] {
            let name = target_file_name(path).unwrap();
            assert!(!name.contains('+'), "{path:?} is stored as {name:?}");
            assert_ne!(name, PARTIAL_DIR, "{path:?}");
        }
        let dir = Path::new("/downloads");
        assert_eq!(partial_file(dir, "a"), Path::new("/downloads/.partial+/a.part"));
        assert_eq!(partial_file(dir, "a.part"), Path::new("/downloads/.partial+/a.part.part"));
    }

    #[tokio::test]
    #[cfg(unix)]
    async fn atomic_writes_replace_planted_links_instead_of_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".root.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("root.json")).unwrap();
        write_atomically(dir.path(), "root.json", b"one").await.unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(dir.path().join("root.json")).unwrap(), b"one");
    }

    #[tokio::test]
    async fn atomic_writes_replace_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "root.json", b"one").await.unwrap();
        write_atomically(dir.path(), "root.json", b"two").await.unwrap();
        assert_eq!(read_optional(&dir.path().join("root.json")).await.unwrap().as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["root.json"]);
        assert_eq!(read_optional(&dir.path().join("missing.json")).await.unwrap(), None);
        remove_optional(&dir.path().join("root.json")).await.unwrap();
        remove_optional(&dir.path().join("root.json")).await.unwrap();
        assert_eq!(read_optional(&dir.path().join("root.json")).await.unwrap(), None);
    }
}
