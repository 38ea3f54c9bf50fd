//! The built-in `dir` handler: unpacks a verified artifact into a versioned
//! directory and switches a `current` link atomically, keeping the previous version.
//!
//! # Layout
//!
//! ```text
//! ROOT/current  -> versions/1.4.0       the active version (a relative symlink)
//! ROOT/previous -> versions/1.3.0       the kept version, for rollback
//! ROOT/versions/1.4.0/                  unpacked versions (at most current and previous)
//! ROOT/versions/.1.4.0.sha256           the artifact digest a version was unpacked from
//! ROOT/versions/.1.5.0.tmp/             an unpack in progress
//! ```
//!
//! Versions are [`Version`]s: they start with a digit or `v` and contain no `/`, so a version is
//! one path segment and never `.`/`..`, and no version can collide with the dot-files.
//!
//! # What goes in
//!
//! The media type decides: `application/x-tar` (or `application/tar`) is a tar archive;
//! `application/gzip`, `application/x-gzip`, `application/x-gtar`, `application/tar+gzip` and
//! `application/x-compressed-tar` a gzip-compressed one; `application/zstd`,
//! `application/x-zstd`, `application/tar+zstd` and `application/x-zstd-compressed-tar` a
//! zstd-compressed one. Anything else is a single file, copied as `versions/VERSION/ARTIFACT`
//! with mode 0644 (ship executables in a tar to carry their mode).
//!
//! Archive entries are refused — and then nothing is switched — when a path is absolute or has
//! a `..` component; when a symlink is absolute, has `..` after a name, or climbs (with leading
//! `..`) above the version directory; when a hard link names anything but a regular file
//! unpacked before it; when an entry would be written through a symlink or over an earlier
//! entry; and for device files and named pipes. Because no symlink can point above the
//! version directory and no entry is written through one, resolving any path inside the tree
//! stays inside it. Modes keep their permission bits only (no set-uid, set-gid or sticky);
//! directories stay writable by their owner. Ownership is not restored: files belong to the
//! agent's user.
//!
//! # Steps, and what re-running after a crash at each does
//!
//! [`DirHandler::install`] is [`prepare`](DirHandler::prepare), [`activate`](DirHandler::activate)
//! and [`prune`](DirHandler::prune); each is idempotent, so after a crash the agent simply runs
//! the interrupted one again:
//! 1. `versions/VERSION` exists and its `.VERSION.sha256` names the same digest → prepared
//!    already, skip to 6.
//! 2. Remove a leftover `.VERSION.tmp`, unpack into a fresh one, fsync every file and
//!    directory. *Crash*: the partial staging directory is removed and unpacked again.
//! 3. A `versions/VERSION` from other content (a re-published version) is removed (refused if
//!    it is the active one). *Crash*: it is gone or not; step 3 again.
//! 4. Write `.VERSION.sha256` atomically. *Crash*: without the directory, step 1 does not
//!    match and the unpack is redone.
//! 5. Rename `.VERSION.tmp` to `VERSION`, fsync `versions/`. From here step 1 matches.
//! 6. (`activate`) Unless `current` already points at VERSION: point `previous` at what
//!    `current` points to, then `current` at VERSION, each by creating `NAME.tmp` and renaming
//!    it over `NAME`, then fsync ROOT. *Crash* between the two: `current` still names the old
//!    version, so step 6 runs again and does the same. After the second: nothing left to do.
//! 7. (`prune`) Remove versions other than `current` and `previous`, their digest files and
//!    stale staging directories. *Crash*: some are left; step 7 again.
//!
//! [`DirHandler::rollback_to`] points `current` at the kept version, removes `previous` and
//! prunes the abandoned version; re-running it after a crash finishes the same way.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use ferry_core::{ArtifactName, ProductName, Sha256, Version};

use crate::atomic::{self, IoError};

/// A verified artifact to install.
#[derive(Debug, Clone, Copy)]
pub struct Package<'a> {
    /// The verified file.
    pub file: &'a Path,
    /// Its product (for messages).
    pub product: &'a ProductName,
    /// The version it installs.
    pub version: &'a Version,
    /// The artifact's name (the file name of a single-file install).
    pub artifact: &'a ArtifactName,
    /// Its media type, which decides how it is unpacked.
    pub media_type: &'a str,
    /// Its verified SHA-256, recorded with the unpacked version.
    pub sha256: &'a Sha256,
}

/// How an artifact is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGzip,
    /// A zstd-compressed tar archive.
    TarZstd,
    /// A single file, copied.
    File,
}

impl Format {
    /// The format for a media type (parameters and case ignored), as in the module documentation.
    pub fn from_media_type(media_type: &str) -> Self {
        let essence = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-tar" | "application/tar" => Self::Tar,
            "application/gzip"
            | "application/x-gzip"
            | "application/x-gtar"
            | "application/tar+gzip"
            | "application/x-compressed-tar" => Self::TarGzip,
            "application/zstd"
            | "application/x-zstd"
            | "application/tar+zstd"
            | "application/x-zstd-compressed-tar" => Self::TarZstd,
            _ => Self::File,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Tar => "tar archive",
            Self::TarGzip => "gzip-compressed tar archive",
            Self::TarZstd => "zstd-compressed tar archive",
            Self::File => "file",
        }
    }
}

/// Why the `dir` handler did not install or roll back.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// An archive entry that could escape the version directory or is not installable.
    #[error("refused archive entry {entry:?}: {reason}; nothing was installed")]
    Refused {
        /// The entry's path as the archive names it.
        entry: String,
        /// Why.
        reason: String,
    },
    /// The file is not what its media type says, or is damaged.
    #[error("{} is not a valid {format}: {reason}; check the release's media type", .file.display())]
    Malformed {
        /// The artifact file.
        file: PathBuf,
        /// What it should have been.
        format: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// A file system operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// `current` or `previous` exists but is not a symlink.
    #[error("{} is not a symlink; move it away so that the agent can manage it", .path.display())]
    NotALink {
        /// The path.
        path: PathBuf,
    },
    /// `current` or `previous` points somewhere the agent never points it.
    #[error("{} points to {target:?}, not to versions/VERSION; repair or remove the link", .path.display())]
    UnexpectedLink {
        /// The link.
        path: PathBuf,
        /// Its target.
        target: String,
    },
    /// The version to switch to is not unpacked.
    #[error("version {version} is not unpacked in {}", .root.display())]
    NotInstalled {
        /// The version.
        version: Version,
        /// The handler's root.
        root: PathBuf,
    },
    /// Nothing to roll back to.
    #[error("no previous version is kept in {}", .root.display())]
    NoKeptVersion {
        /// The handler's root.
        root: PathBuf,
    },
    /// Another user could write to the root, and so swap what the agent installs or links.
    #[error("the handler root: {reason}")]
    SharedRoot {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The active version would be replaced by different content under the same version.
    #[error("version {version} of {product} is active with other content; publish the change as a new version")]
    ActiveDiffers {
        /// The product.
        product: ProductName,
        /// The version.
        version: Version,
    },
}

/// The `dir` handler for one root directory.
#[derive(Debug, Clone)]
pub struct DirHandler {
    root: PathBuf,
}

const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
const VERSIONS: &str = "versions";

impl DirHandler {
    /// The handler for `root` (created on first install).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `version` is (or would be) unpacked.
    pub fn version_dir(&self, version: &Version) -> PathBuf {
        self.versions().join(version.as_str())
    }

    fn versions(&self) -> PathBuf {
        self.root.join(VERSIONS)
    }

    fn staging(&self, version: &Version) -> PathBuf {
        self.versions().join(format!(".{version}.tmp"))
    }

    fn aside(&self, version: &Version) -> PathBuf {
        self.versions().join(format!(".{version}.old"))
    }

    fn digest_file(&self, version: &Version) -> PathBuf {
        self.versions().join(format!(".{version}.sha256"))
    }

    /// Prepares, activates and prunes; returns the version now kept for rollback.
    pub fn install(&self, package: &Package<'_>) -> Result<Option<Version>, DirError> {
        self.prepare(package)?;
        let kept = self.activate(package.version)?;
        self.prune()?;
        Ok(kept)
    }

    /// Refuses a root that another user can write to ([`atomic::check_private_dir`]): they
    /// could replace a version or the `current` link between the agent's steps. A root that
    /// does not exist yet is created by the install.
    fn check_root(&self) -> Result<(), DirError> {
        if self.root.exists() {
            atomic::check_private_dir(&self.root).map_err(|reason| DirError::SharedRoot { reason })?;
        }
        Ok(())
    }

    /// Steps 1–5: unpacks the package into `versions/VERSION` unless it is there already.
    pub fn prepare(&self, package: &Package<'_>) -> Result<PathBuf, DirError> {
        self.check_root()?;
        let version = package.version;
        let versions = self.versions();
        std::fs::create_dir_all(&versions).map_err(IoError::on("create", &versions))?;
        let target = self.version_dir(version);
        let recorded = std::fs::read_to_string(self.digest_file(version)).ok();
        let present = is_real_dir(&target)?;
        if present && recorded.as_deref().map(str::trim) == Some(package.sha256.as_str()) {
            return Ok(target);
        }
        if present && self.current()?.as_ref() == Some(version) {
            return Err(DirError::ActiveDiffers { product: package.product.clone(), version: version.clone() });
        }

        let staging = self.staging(version);
        atomic::remove_dir_all_if_exists(&staging)?;
        std::fs::create_dir(&staging).map_err(IoError::on("create", &staging))?;
        if let Err(e) = unpack(package, &staging) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        if present {
            let aside = self.aside(version);
            atomic::remove_dir_all_if_exists(&aside)?;
            std::fs::rename(&target, &aside).map_err(IoError::on("move aside", &target))?;
            atomic::remove_dir_all_if_exists(&aside)?;
        }
        atomic::write_file(&self.digest_file(version), format!("{}\n", package.sha256).as_bytes())?;
        std::fs::rename(&staging, &target).map_err(IoError::on("rename into place", &target))?;
        atomic::sync_dir(&versions)?;
        let done = if Format::from_media_type(package.media_type) == Format::File { "copied" } else { "unpacked" };
        tracing::info!(product = %package.product, %version, dir = %target.display(), "{done}");
        Ok(target)
    }

    /// Step 6: points `current` at `version` (unpacked before), keeping the version it pointed
    /// to as `previous` (unless that one's directory is gone). Returns the kept version.
    pub fn activate(&self, version: &Version) -> Result<Option<Version>, DirError> {
        if !is_real_dir(&self.version_dir(version))? {
            return Err(DirError::NotInstalled { version: version.clone(), root: self.root.clone() });
        }
        let current = self.current()?;
        if current.as_ref() != Some(version) {
            if let Some(old) = current.filter(|old| is_real_dir(&self.version_dir(old)).unwrap_or(false)) {
                self.set_link(PREVIOUS, &old)?;
            }
            self.set_link(CURRENT, version)?;
        }
        self.kept()
    }

    /// Step 7: removes versions other than `current` and `previous`, their digest files and
    /// stale staging directories. Returns the versions removed. Entries the handler did not
    /// create are left alone.
    pub fn prune(&self) -> Result<Vec<Version>, DirError> {
        let keep: Vec<Version> = [self.current()?, self.kept()?].into_iter().flatten().collect();
        let versions = self.versions();
        let entries = match std::fs::read_dir(&versions) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(IoError::on("list", &versions)(e).into()),
        };
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(IoError::on("list", &versions))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(inner) = name.strip_prefix('.') {
                let (stem, suffix) = inner.rsplit_once('.').unwrap_or((inner, ""));
                let kept_digest = suffix == "sha256" && keep.iter().any(|v| v.as_str() == stem);
                match suffix {
                    "tmp" | "old" => atomic::remove_dir_all_if_exists(&path)?,
                    "sha256" if !kept_digest && Version::new(stem).is_ok() => atomic::remove_file_if_exists(&path)?,
                    _ => {}
                }
            } else if let Ok(version) = Version::new(name.as_str()) {
                if !keep.contains(&version) && is_real_dir(&path)? {
                    atomic::remove_dir_all_if_exists(&path)?;
                    removed.push(version);
                }
            }
        }
        atomic::sync_dir(&versions)?;
        Ok(removed)
    }

    /// Points `current` back at the kept version (`previous`) and prunes the abandoned one.
    /// Returns the version now active.
    pub fn rollback(&self) -> Result<Version, DirError> {
        let kept = self.kept()?.ok_or_else(|| DirError::NoKeptVersion { root: self.root.clone() })?;
        self.rollback_to(&kept)?;
        Ok(kept)
    }

    /// Points `current` at `version`, which must be unpacked (the agent passes the version its
    /// state recorded as kept, so that a re-run after a crash finishes the same rollback).
    pub fn rollback_to(&self, version: &Version) -> Result<(), DirError> {
        self.check_root()?;
        if !is_real_dir(&self.version_dir(version))? {
            return Err(DirError::NotInstalled { version: version.clone(), root: self.root.clone() });
        }
        if self.current()?.as_ref() != Some(version) {
            self.set_link(CURRENT, version)?;
        }
        if self.kept()?.as_ref() == Some(version) {
            let previous = self.root.join(PREVIOUS);
            atomic::remove_file_if_exists(&previous)?;
            atomic::sync_dir(&self.root)?;
        }
        self.prune()?;
        tracing::info!(root = %self.root.display(), %version, "rolled back");
        Ok(())
    }

    /// The active version: what `current` points to.
    pub fn current(&self) -> Result<Option<Version>, DirError> {
        self.read_link(CURRENT)
    }

    /// The kept version: what `previous` points to.
    pub fn kept(&self) -> Result<Option<Version>, DirError> {
        self.read_link(PREVIOUS)
    }

    fn read_link(&self, name: &str) -> Result<Option<Version>, DirError> {
        let path = self.root.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IoError::on("inspect", &path)(e).into()),
            Ok(m) if !m.file_type().is_symlink() => return Err(DirError::NotALink { path }),
            Ok(_) => {}
        }
        let target = std::fs::read_link(&path).map_err(IoError::on("read link", &path))?;
        let text = target.to_string_lossy().into_owned();
        text.strip_prefix("versions/")
            .and_then(|v| Version::new(v).ok())
            .map(Some)
            .ok_or(DirError::UnexpectedLink { path, target: text })
    }

    /// Points `ROOT/NAME` at `versions/VERSION`: a new link `NAME.tmp` renamed over it.
    fn set_link(&self, name: &str, version: &Version) -> Result<(), DirError> {
        let path = self.root.join(name);
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            if !m.file_type().is_symlink() {
                return Err(DirError::NotALink { path });
            }
        }
        let tmp = self.root.join(format!("{name}.tmp"));
        atomic::remove_file_if_exists(&tmp)?;
        std::os::unix::fs::symlink(Path::new(VERSIONS).join(version.as_str()), &tmp)
            .map_err(IoError::on("create link", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(IoError::on("replace link", &path))?;
        atomic::sync_dir(&self.root)?;
        Ok(())
    }
}

/// Whether `path` is a directory itself (not a symlink to one); `false` when missing.
fn is_real_dir(path: &Path) -> Result<bool, IoError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(m.file_type().is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::on("inspect", path)(e)),
    }
}

fn unpack(package: &Package<'_>, dest: &Path) -> Result<(), DirError> {
    let format = Format::from_media_type(package.media_type);
    let file = File::open(package.file).map_err(IoError::on("open", package.file))?;
    let mut reader = BufReader::new(file);
    let malformed =
        |reason: String| DirError::Malformed { file: package.file.to_owned(), format: format.describe(), reason };
    let magic_ok = |reader: &mut BufReader<File>, magic: &[u8]| -> Result<bool, DirError> {
        let head = reader.fill_buf().map_err(IoError::on("read", package.file))?;
        Ok(head.starts_with(magic))
    };
    match format {
        Format::File => copy_single(reader, &dest.join(package.artifact.as_str())),
        Format::Tar => extract(reader, dest, malformed),
        Format::TarGzip => {
            if !magic_ok(&mut reader, &[0x1f, 0x8b])? {
                return Err(malformed("it does not start with the gzip signature".into()));
            }
            extract(flate2::bufread::MultiGzDecoder::new(reader), dest, malformed)
        }
        Format::TarZstd => {
            if !magic_ok(&mut reader, &ZSTD_MAGIC)? {
                return Err(malformed("it does not start with the zstd signature".into()));
            }
            extract(ZstdFrames::new(reader), dest, malformed)
        }
    }
}

fn copy_single(mut reader: impl Read, target: &Path) -> Result<(), DirError> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(target)
        .map_err(IoError::on("create", target))?;
    std::io::copy(&mut reader, &mut out).and_then(|_| out.sync_all()).map_err(IoError::on("write", target))?;
    atomic::sync_dir(atomic::parent_of(target))?;
    Ok(())
}

/// Unpacks a tar stream into `dest` under the rules of the module documentation.
fn extract(reader: impl Read, dest: &Path, malformed: impl Fn(String) -> DirError) -> Result<(), DirError> {
    let mut archive = tar::Archive::new(reader);
    let mut dirs: Vec<(PathBuf, Option<u32>)> = vec![(dest.to_owned(), None)];
    for entry in archive.entries().map_err(|e| malformed(e.to_string()))? {
        let mut entry = entry.map_err(|e| malformed(e.to_string()))?;
        let raw_path = entry.path().map_err(|e| malformed(e.to_string()))?.into_owned();
        let shown = raw_path.display().to_string();
        let refused = |reason: &str| DirError::Refused { entry: shown.clone(), reason: reason.to_owned() };
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            continue;
        }
        let rel = match relative_path(&raw_path) {
            Ok(Some(rel)) => rel,
            Ok(None) if entry_type.is_dir() => continue,
            Ok(None) => return Err(refused("it has no name")),
            Err(reason) => return Err(refused(reason)),
        };
        let target = dest.join(&rel);
        create_parents(dest, &rel, &mut dirs).map_err(|e| match e {
            Walk::Blocked(at) => refused(&format!("{at} is not a directory (a symlink or file cannot hold entries)")),
            Walk::Io(e) => e.into(),
        })?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match entry_type {
            t if t.is_file() || t.is_contiguous() || t.is_gnu_sparse() => {
                let mut out = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&target) {
                    Ok(out) => out,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(refused("the path appears twice in the archive"))
                    }
                    Err(e) => return Err(IoError::on("create", &target)(e).into()),
                };
                std::io::copy(&mut entry, &mut out).map_err(IoError::on("unpack", &target))?;
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = out.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
                }
                out.set_permissions(std::fs::Permissions::from_mode(mode))
                    .and_then(|()| out.sync_all())
                    .map_err(IoError::on("write", &target))?;
            }
            t if t.is_dir() => match std::fs::symlink_metadata(&target) {
                Ok(m) if m.file_type().is_dir() => dirs.push((target, Some(mode))),
                Ok(_) => return Err(refused("a directory would replace an earlier entry")),
                Err(_) => {
                    std::fs::create_dir(&target).map_err(IoError::on("create", &target))?;
                    dirs.push((target, Some(mode)));
                }
            },
            t if t.is_symlink() => {
                let link = entry.link_name().map_err(|e| malformed(e.to_string()))?;
                let link = link.ok_or_else(|| refused("the symlink has no target"))?.into_owned();
                symlink_stays_inside(&rel, &link).map_err(|reason| refused(&reason))?;
                std::os::unix::fs::symlink(&link, &target).map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => refused("the path appears twice in the archive"),
                    _ => IoError::on("create link", &target)(e).into(),
                })?;
            }
            t if t.is_hard_link() => {
                let link = entry.link_name().map_err(|e| malformed(e.to_string()))?;
                let link = link.ok_or_else(|| refused("the hard link has no target"))?.into_owned();
                let source = hard_link_source(dest, &link).map_err(|reason| refused(&reason))?;
                std::fs::hard_link(&source, &target).map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => refused("the path appears twice in the archive"),
                    _ => IoError::on("create hard link", &target)(e).into(),
                })?;
            }
            t if t.is_character_special() || t.is_block_special() => {
                return Err(refused("device files are never installed"))
            }
            t if t.is_fifo() => return Err(refused("named pipes are never installed")),
            other => return Err(refused(&format!("entry type {:?} is not supported", other.as_byte() as char))),
        }
    }
    // Modes last, so that a read-only directory does not block its own entries; deepest
    // first; each directory flushed so that its entries survive a power cut.
    for (dir, mode) in dirs.iter().rev() {
        if let Some(mode) = mode {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(IoError::on("set permissions of", dir))?;
        }
        atomic::sync_dir(dir)?;
    }
    Ok(())
}

/// A relative path made of plain names (`.` dropped); `None` for the archive root itself.
fn relative_path(path: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => rel.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err("its path contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("its path is absolute"),
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

enum Walk {
    /// This ancestor exists and is not a real directory.
    Blocked(String),
    Io(IoError),
}

/// Creates the missing parent directories of `dest/rel`, refusing to pass through anything
/// but real directories (never a symlink).
fn create_parents(dest: &Path, rel: &Path, dirs: &mut Vec<(PathBuf, Option<u32>)>) -> Result<(), Walk> {
    let mut at = dest.to_owned();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for name in parent.components() {
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(Walk::Blocked(at.strip_prefix(dest).unwrap_or(&at).display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(|e| Walk::Io(IoError::on("create", &at)(e)))?;
                dirs.push((at.clone(), None));
            }
            Err(e) => return Err(Walk::Io(IoError::on("inspect", &at)(e))),
        }
    }
    Ok(())
}

/// A symlink at `rel` may point only to a relative target whose `..` components all lead,
/// and climb no higher than the version directory.
fn symlink_stays_inside(rel: &Path, target: &Path) -> Result<(), String> {
    let depth = rel.components().count().saturating_sub(1);
    let mut climbs = 0;
    let mut named = false;
    for component in target.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("the symlink points to the absolute path {}", target.display()))
            }
            Component::ParentDir if named => {
                return Err(format!("the symlink target {} has '..' after a name", target.display()))
            }
            Component::ParentDir => climbs += 1,
            Component::CurDir => {}
            Component::Normal(_) => named = true,
        }
    }
    if target.as_os_str().is_empty() {
        return Err("the symlink has an empty target".into());
    }
    if climbs > depth {
        return Err(format!("the symlink target {} leads outside the version directory", target.display()));
    }
    Ok(())
}

/// The file a hard link names: a regular file unpacked before, reached through real
/// directories only.
fn hard_link_source(dest: &Path, link: &Path) -> Result<PathBuf, String> {
    let shown = link.display();
    let rel = relative_path(link)
        .map_err(|reason| format!("the hard link's target {shown} is refused: {reason}"))?
        .ok_or_else(|| "the hard link has an empty target".to_owned())?;
    let mut at = dest.to_owned();
    let last = rel.components().count();
    for (i, name) in rel.components().enumerate() {
        at.push(name);
        let is_last = i + 1 == last;
        match std::fs::symlink_metadata(&at) {
            Ok(m) if !is_last && m.file_type().is_dir() => {}
            Ok(m) if is_last && m.file_type().is_file() => return Ok(at),
            _ => break,
        }
    }
    Err(format!("the hard link's target {shown} is not a regular file unpacked before it"))
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Decodes a zstd stream of one or more frames (as `zstd` and `pzstd` write), skipping
/// skippable frames.
struct ZstdFrames<R: BufRead> {
    decoder: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    between: Option<(R, ruzstd::decoding::FrameDecoder)>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        Self { decoder: None, between: Some((source, ruzstd::decoding::FrameDecoder::new())) }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(decoder) = &mut self.decoder {
                let n = decoder.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                let decoder = self.decoder.take().expect("checked above");
                self.between = Some(decoder.into_parts());
            }
            let Some((mut source, frame)) = self.between.take() else { return Ok(0) };
            let head = source.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            // Skippable frames: magic 0x184D2A5?, a 4-byte little-endian length, that many bytes.
            if head.len() >= 8 && head[1..4] == [0x2a, 0x4d, 0x18] && head[0] & 0xf0 == 0x50 {
                let length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
                source.consume(8);
                std::io::copy(&mut (&mut source).take(u64::from(length)), &mut std::io::sink())?;
                self.between = Some((source, frame));
                continue;
            }
            let decoder = ruzstd::decoding::StreamingDecoder::new_with_decoder(source, frame)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            self.decoder = Some(decoder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_choose_the_format() {
        assert_eq!(Format::from_media_type("application/x-tar"), Format::Tar);
        assert_eq!(Format::from_media_type("Application/GZIP; charset=binary"), Format::TarGzip);
        assert_eq!(Format::from_media_type("application/zstd"), Format::TarZstd);
        assert_eq!(Format::from_media_type("application/octet-stream"), Format::File);
        assert_eq!(Format::from_media_type(""), Format::File);
    }

    #[test]
    fn entry_paths_must_stay_relative() {
        assert_eq!(relative_path(Path::new("./a/./b")).unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(relative_path(Path::new("./")).unwrap(), None);
        assert!(relative_path(Path::new("/etc/passwd")).is_err());
        assert!(relative_path(Path::new("a/../../b")).is_err());
    }

    #[test]
    fn symlinks_may_climb_only_within_the_version() {
        let ok = |rel: &str, target: &str| symlink_stays_inside(Path::new(rel), Path::new(target));
        assert!(ok("lib/libfoo.so", "libfoo.so.1").is_ok());
        assert!(ok("lib/libfoo.so", "../lib64/libfoo.so").is_ok());
        assert!(ok("a/b/c", "../../x").is_ok());
        assert!(ok("bin/tool", "./tool-1.2").is_ok());
        assert!(ok("a/b/c", "../../../x").unwrap_err().contains("outside the version directory"));
        assert!(ok("link", "../x").unwrap_err().contains("outside"));
        assert!(ok("link", "/etc/shadow").unwrap_err().contains("absolute"));
        assert!(ok("a/link", "b/../../x").unwrap_err().contains("'..' after a name"));
        assert!(ok("link", "").unwrap_err().contains("empty"));
    }
}
