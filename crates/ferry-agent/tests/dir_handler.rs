//! The built-in `dir` handler against real archives built here: tar, tar.gz and tar.zst
//! (several frames and members too), single files, hostile archives that must be refused with
//! nothing switched, and re-runs after a crash at every step.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use ferry_agent::handler::dir::{DirError, DirHandler, Package};
use ferry_core::{ArtifactName, ProductName, Sha256, Version};
use tar::{EntryType, Header};

/// One archive entry; paths and link targets are written raw, so hostile ones can be built.
enum E<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Special(&'a str, EntryType),
}

fn header(path: &str, kind: EntryType, size: u64, mode: u32, link: Option<&str>) -> Header {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    if let Some(link) = link {
        h.set_link_name_literal(link).unwrap();
    }
    h.set_cksum();
    h
}

fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(p, data, mode) => b.append(&header(p, EntryType::Regular, data.len() as u64, *mode, None), *data),
            E::Dir(p) => b.append(&header(p, EntryType::Directory, 0, 0o755, None), &[][..]),
            E::Symlink(p, t) => b.append(&header(p, EntryType::Symlink, 0, 0o777, Some(t)), &[][..]),
            E::HardLink(p, t) => b.append(&header(p, EntryType::Link, 0, 0o644, Some(t)), &[][..]),
            E::Special(p, kind) => b.append(&header(p, *kind, 0, 0o644, None), &[][..]),
        }
        .unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

const GZIP: &str = "application/gzip";
const ZSTD: &str = "application/zstd";
const TAR: &str = "application/x-tar";

struct Fixture {
    dir: tempfile::TempDir,
    handler: DirHandler,
    product: ProductName,
    artifact: ArtifactName,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let handler = DirHandler::new(dir.path().join("root"));
        Self {
            dir,
            handler,
            product: ProductName::new("gateway-app").unwrap(),
            artifact: ArtifactName::new("app.bin").unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.handler.root()
    }

    /// Writes `bytes` as the verified download of `version` and returns its path.
    fn download(&self, version: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(format!("download-{version}"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn install(&self, version: &str, media_type: &str, bytes: &[u8]) -> Result<Option<Version>, DirError> {
        let file = self.download(version, bytes);
        let version = v(version);
        let sha = digest(bytes);
        self.handler.install(&self.package(&file, &version, media_type, &sha))
    }

    fn package<'a>(
        &'a self,
        file: &'a Path,
        version: &'a Version,
        media_type: &'a str,
        sha: &'a Sha256,
    ) -> Package<'a> {
        Package { file, product: &self.product, version, artifact: &self.artifact, media_type, sha256: sha }
    }

    fn current(&self) -> Option<String> {
        self.handler.current().unwrap().map(|v| v.to_string())
    }

    fn kept(&self) -> Option<String> {
        self.handler.kept().unwrap().map(|v| v.to_string())
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join("current").join(rel)).unwrap()
    }

    /// The entries of `versions/`, sorted.
    fn versions(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root().join("versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn v(s: &str) -> Version {
    Version::new(s).unwrap()
}

/// A stand-in digest: the handler records it, the agent computed it (tests need only
/// distinct values for distinct content).
fn digest(bytes: &[u8]) -> Sha256 {
    let mut d = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        d[i % 32] = d[i % 32].wrapping_mul(31).wrapping_add(*b);
    }
    d[0] ^= (bytes.len() % 251) as u8;
    Sha256::from_bytes(d)
}

fn app_v1() -> Vec<u8> {
    tar(&[
        E::Dir("./"),
        E::Dir("bin/"),
        E::File("bin/app", b"#!/bin/sh\necho 1.0\n", 0o4755),
        E::File("lib/libfoo.so.1", b"lib", 0o644),
        E::Symlink("lib/libfoo.so", "libfoo.so.1"),
        E::Symlink("lib/up", "../bin/app"),
        E::HardLink("share/app-copy", "bin/app"),
        E::Dir("conf/"),
        E::File("conf/app.toml", b"level = 1\n", 0o600),
    ])
}

#[test]
fn installs_archives_and_files_keeping_the_previous_version() {
    let f = Fixture::new();
    assert_eq!(f.install("1.0.0", GZIP, &gzip(&app_v1())).unwrap(), None, "nothing to keep yet");
    assert_eq!(f.current().as_deref(), Some("1.0.0"));
    assert_eq!(f.read("bin/app"), "#!/bin/sh\necho 1.0\n");
    assert_eq!(f.read("lib/libfoo.so"), "lib", "relative symlink inside the version");
    assert_eq!(f.read("lib/up"), "#!/bin/sh\necho 1.0\n");
    assert_eq!(f.read("share/app-copy"), "#!/bin/sh\necho 1.0\n", "hard link");
    let mode = |rel: &str| std::fs::metadata(f.root().join("current").join(rel)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bin/app"), 0o755, "set-uid is dropped, permissions kept");
    assert_eq!(mode("conf/app.toml"), 0o600);
    assert_eq!(std::fs::read_link(f.root().join("current")).unwrap(), Path::new("versions/1.0.0"), "relative link");

    let v2 = tar(&[E::File("bin/app", b"echo 2.0\n", 0o755)]);
    assert_eq!(f.install("2.0.0", ZSTD, &zstd(&v2)).unwrap(), Some(v("1.0.0")));
    assert_eq!((f.current().as_deref(), f.kept().as_deref()), (Some("2.0.0"), Some("1.0.0")));
    assert_eq!(f.read("bin/app"), "echo 2.0\n");

    assert_eq!(f.install("3.0.0", "application/octet-stream", b"firmware").unwrap(), Some(v("2.0.0")));
    assert_eq!(f.read("app.bin"), "firmware", "a single file is copied under its artifact name");
    assert_eq!(mode("app.bin"), 0o644);
    assert_eq!(f.versions(), [".2.0.0.sha256", ".3.0.0.sha256", "2.0.0", "3.0.0"], "only current and previous stay");

    assert_eq!(f.handler.rollback().unwrap(), v("2.0.0"));
    assert_eq!((f.current().as_deref(), f.kept()), (Some("2.0.0"), None));
    assert_eq!(f.read("bin/app"), "echo 2.0\n");
    assert_eq!(f.versions(), [".2.0.0.sha256", "2.0.0"], "the abandoned version is removed");
    assert!(matches!(f.handler.rollback(), Err(DirError::NoKeptVersion { .. })));
}

#[test]
fn plain_tar_several_gzip_members_and_several_zstd_frames() {
    let f = Fixture::new();
    f.install("1.0", TAR, &tar(&[E::File("a", b"plain", 0o644)])).unwrap();
    assert_eq!(f.read("a"), "plain");

    // A tar stream split across two gzip members (as `cat a.gz b.gz` makes).
    let whole = tar(&[E::File("a", &[b'x'; 5000], 0o644), E::File("b", b"second", 0o644)]);
    let (one, two) = whole.split_at(3000);
    f.install("2.0", GZIP, &[gzip(one), gzip(two)].concat()).unwrap();
    assert_eq!(f.read("b"), "second");

    // Two zstd frames with a skippable frame between them (as pzstd writes).
    let skippable = [&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0][..], b"abc"].concat();
    f.install("3.0", ZSTD, &[zstd(one), skippable, zstd(two)].concat()).unwrap();
    assert_eq!(f.read("b"), "second");
    assert_eq!(f.read("a").len(), 5000);
}

/// Installs 1.0 cleanly, then tries `hostile` as 2.0: it must be refused with 1.0 still
/// active, no trace of 2.0 and nothing written outside the root.
fn refused(name: &str, hostile: &[E<'_>], says: &str) {
    let f = Fixture::new();
    f.install("1.0", GZIP, &gzip(&tar(&[E::File("ok", b"1", 0o644)]))).unwrap();
    let err = f.install("2.0", GZIP, &gzip(&tar(hostile))).unwrap_err();
    assert!(matches!(err, DirError::Refused { .. }), "{name}: {err}");
    assert!(err.to_string().contains(says), "{name}: {err}");
    assert!(err.to_string().contains("nothing was installed"), "{name}: {err}");
    assert_eq!(f.current().as_deref(), Some("1.0"), "{name}: the active version is untouched");
    assert_eq!(f.versions(), [".1.0.sha256", "1.0"], "{name}: no trace of 2.0");
    let outside: Vec<_> = std::fs::read_dir(f.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside.len(), 3, "{name}: only root and the two downloads beside it: {outside:?}");
}

#[test]
fn escaping_paths_are_refused() {
    refused("parent", &[E::File("fine", b"x", 0o644), E::File("../../../escaped", b"x", 0o644)], "'..'");
    refused("inner parent", &[E::File("a/../../escaped", b"x", 0o644)], "'..'");
    refused("absolute", &[E::File("/tmp/escaped-by-ferry-test", b"x", 0o644)], "absolute");
}

#[test]
fn escaping_links_are_refused() {
    refused("absolute symlink", &[E::Symlink("etc", "/etc")], "absolute path /etc");
    refused("climbing symlink", &[E::Symlink("a/up", "../../escaped")], "outside the version directory");
    refused("name then parent", &[E::Symlink("a/up", "b/../../x")], "'..' after a name");
    refused("hard link out", &[E::HardLink("passwd", "../../../../etc/passwd")], "hard link");
    refused("absolute hard link", &[E::HardLink("passwd", "/etc/passwd")], "hard link");
    refused(
        "hard link to a link",
        &[E::Symlink("l", "f"), E::File("f", b"x", 0o644), E::HardLink("h", "l")],
        "not a regular file",
    );
}

#[test]
fn writing_through_a_symlink_is_refused() {
    // `d` is a harmless link inside the version, but an entry under it would be written
    // wherever it points; only real directories hold entries.
    refused(
        "through symlink",
        &[E::Dir("real/"), E::Symlink("d", "real"), E::File("d/x", b"x", 0o644)],
        "not a directory",
    );
    refused("replace with symlink", &[E::File("f", b"x", 0o644), E::Symlink("f", "g")], "appears twice");
    refused("duplicate", &[E::File("f", b"x", 0o644), E::File("f", b"y", 0o644)], "appears twice");
}

#[test]
fn device_files_and_pipes_are_refused() {
    refused("char device", &[E::Special("null", EntryType::Char)], "device files");
    refused("block device", &[E::Special("sda", EntryType::Block)], "device files");
    refused("fifo", &[E::Special("pipe", EntryType::Fifo)], "named pipes");
}

#[test]
fn a_file_that_is_not_its_media_type_changes_nothing() {
    let f = Fixture::new();
    f.install("1.0", TAR, &tar(&[E::File("ok", b"1", 0o644)])).unwrap();
    for (media_type, bytes) in
        [(GZIP, tar(&[E::File("x", b"x", 0o644)])), (ZSTD, gzip(b"x")), (TAR, b"not a tar".repeat(100))]
    {
        let err = f.install("2.0", media_type, &bytes).unwrap_err();
        assert!(matches!(err, DirError::Malformed { .. }), "{media_type}: {err}");
        assert!(err.to_string().contains("check the release's media type"), "{err}");
        assert_eq!(f.current().as_deref(), Some("1.0"));
        assert_eq!(f.versions(), [".1.0.sha256", "1.0"]);
    }
    // A truncated archive is refused too.
    let whole = gzip(&tar(&[E::File("big", &[7u8; 100_000], 0o644)]));
    assert!(matches!(
        f.install("2.0", GZIP, &whole[..whole.len() / 2]),
        Err(DirError::Malformed { .. } | DirError::Io(_))
    ));
    assert_eq!(f.current().as_deref(), Some("1.0"));
}

#[test]
fn a_dangling_current_is_not_kept() {
    let f = Fixture::new();
    f.install("1.0", TAR, &tar(&[E::File("ok", b"1", 0o644)])).unwrap();
    std::fs::remove_dir_all(f.root().join("versions/1.0")).unwrap();
    assert_eq!(f.install("2.0", TAR, &tar(&[E::File("ok", b"2", 0o644)])).unwrap(), None);
    assert_eq!((f.current().as_deref(), f.kept()), (Some("2.0"), None), "no link to a missing version");
}

#[test]
fn a_current_that_is_not_a_link_is_left_alone() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.root().join("current")).unwrap();
    let err = f.install("1.0", TAR, &tar(&[E::File("ok", b"1", 0o644)])).unwrap_err();
    assert!(matches!(err, DirError::NotALink { .. }), "{err}");
    assert!(err.to_string().contains("move it away"), "{err}");
    assert!(f.root().join("current").is_dir());
}

// --- crash at each step, then the same call again ------------------------------------------

/// 1.0 installed; returns the fixture and the 1.1 archive with its download and digest.
fn upgrade_fixture() -> (Fixture, PathBuf, Sha256) {
    let f = Fixture::new();
    f.install("1.0", GZIP, &gzip(&tar(&[E::File("v", b"1.0", 0o644)]))).unwrap();
    let bytes = gzip(&tar(&[E::File("v", b"1.1", 0o644)]));
    let file = f.download("1.1", &bytes);
    (f, file, digest(&bytes))
}

fn finish_upgrade(f: &Fixture, file: &Path, sha: &Sha256) {
    let version = v("1.1");
    assert_eq!(f.handler.install(&f.package(file, &version, GZIP, sha)).unwrap(), Some(v("1.0")));
    assert_eq!((f.current().as_deref(), f.kept().as_deref()), (Some("1.1"), Some("1.0")));
    assert_eq!(f.read("v"), "1.1");
    assert_eq!(f.versions(), [".1.0.sha256", ".1.1.sha256", "1.0", "1.1"], "no leftovers");
    assert!(!f.root().join("current.tmp").exists() && !f.root().join("previous.tmp").exists());
}

#[test]
fn crash_while_unpacking() {
    let (f, file, sha) = upgrade_fixture();
    let staging = f.root().join("versions/.1.1.tmp");
    std::fs::create_dir_all(staging.join("half")).unwrap();
    std::fs::write(staging.join("v"), "partial").unwrap();
    finish_upgrade(&f, &file, &sha);
    assert!(!f.root().join("current/half").exists(), "the partial unpack was discarded");
}

#[test]
fn crash_after_recording_the_digest_before_the_rename() {
    let (f, file, sha) = upgrade_fixture();
    std::fs::write(f.root().join("versions/.1.1.sha256"), format!("{sha}\n")).unwrap();
    std::fs::create_dir_all(f.root().join("versions/.1.1.tmp")).unwrap();
    finish_upgrade(&f, &file, &sha);
}

#[test]
fn crash_after_unpacking_before_the_switch() {
    let (f, file, sha) = upgrade_fixture();
    let version = v("1.1");
    f.handler.prepare(&f.package(&file, &version, GZIP, &sha)).unwrap();
    assert_eq!(f.current().as_deref(), Some("1.0"), "prepare changes nothing visible");
    // Re-running does not unpack again: a marker inside the prepared version survives.
    std::fs::write(f.root().join("versions/1.1/marker"), "kept").unwrap();
    finish_upgrade(&f, &file, &sha);
    assert_eq!(f.read("marker"), "kept");
}

#[test]
fn crash_between_the_two_link_updates() {
    let (f, file, sha) = upgrade_fixture();
    let version = v("1.1");
    f.handler.prepare(&f.package(&file, &version, GZIP, &sha)).unwrap();
    // `previous` was pointed at the old version, `current` not yet switched; a stale
    // `current.tmp` from the interrupted second update lies around.
    std::os::unix::fs::symlink("versions/1.0", f.root().join("previous")).unwrap();
    std::os::unix::fs::symlink("versions/1.1", f.root().join("current.tmp")).unwrap();
    finish_upgrade(&f, &file, &sha);
}

#[test]
fn crash_before_pruning_and_a_second_complete_run() {
    let (f, file, sha) = upgrade_fixture();
    std::fs::create_dir_all(f.root().join("versions/0.9/bin")).unwrap();
    std::fs::write(f.root().join("versions/.0.9.sha256"), "x").unwrap();
    std::fs::create_dir_all(f.root().join("versions/.0.8.old")).unwrap();
    std::fs::write(f.root().join("versions/README"), "not the handler's").unwrap();
    finish_upgrade_keeping_foreign(&f, &file, &sha);
    // Everything done already: the same call again changes nothing, and keeps 1.0 as the
    // previous version (not 1.1 itself).
    finish_upgrade_keeping_foreign(&f, &file, &sha);
}

fn finish_upgrade_keeping_foreign(f: &Fixture, file: &Path, sha: &Sha256) {
    let version = v("1.1");
    assert_eq!(f.handler.install(&f.package(file, &version, GZIP, sha)).unwrap(), Some(v("1.0")));
    assert_eq!((f.current().as_deref(), f.kept().as_deref()), (Some("1.1"), Some("1.0")));
    assert_eq!(f.versions(), [".1.0.sha256", ".1.1.sha256", "1.0", "1.1", "README"]);
}

#[test]
fn crash_during_a_rollback() {
    let (f, file, sha) = upgrade_fixture();
    finish_upgrade(&f, &file, &sha);
    // The rollback switched `current` back, then stopped before removing `previous`.
    std::fs::remove_file(f.root().join("current")).unwrap();
    std::os::unix::fs::symlink("versions/1.0", f.root().join("current")).unwrap();
    f.handler.rollback_to(&v("1.0")).unwrap();
    assert_eq!((f.current().as_deref(), f.kept()), (Some("1.0"), None));
    assert_eq!(f.versions(), [".1.0.sha256", "1.0"]);
    f.handler.rollback_to(&v("1.0")).unwrap();
    assert_eq!(f.current().as_deref(), Some("1.0"), "a second run is harmless");
}

#[test]
fn a_republished_version_replaces_its_inactive_copy_but_never_the_active_one() {
    let (f, _, _) = upgrade_fixture();
    let first = gzip(&tar(&[E::File("v", b"first", 0o644)]));
    let second = gzip(&tar(&[E::File("v", b"second", 0o644)]));
    let (a, b) = (f.download("a", &first), f.download("b", &second));
    let version = v("1.2");
    f.handler.prepare(&f.package(&a, &version, GZIP, &digest(&first))).unwrap();
    f.handler.install(&f.package(&b, &version, GZIP, &digest(&second))).unwrap();
    assert_eq!(f.read("v"), "second");
    let err = f.handler.install(&f.package(&a, &version, GZIP, &digest(&first))).unwrap_err();
    assert!(matches!(err, DirError::ActiveDiffers { .. }), "{err}");
    assert_eq!(f.read("v"), "second");
}

/// A root other users can write to is refused before anything is unpacked or switched: they
/// could swap a version or the `current` link between the handler's steps.
#[test]
fn a_root_others_can_write_is_refused() {
    let f = Fixture::new();
    f.install("1.0", TAR, &tar(&[E::File("a.txt", b"one", 0o644)])).unwrap();
    std::fs::set_permissions(f.root(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = f.install("2.0", TAR, &tar(&[E::File("a.txt", b"two", 0o644)])).unwrap_err();
    assert!(matches!(err, DirError::SharedRoot { .. }), "{err:?}");
    assert!(err.to_string().contains("is writable by every user"), "{err}");
    let err = f.handler.rollback_to(&v("1.0")).unwrap_err();
    assert!(matches!(err, DirError::SharedRoot { .. }), "{err:?}");
    assert_eq!(f.current().as_deref(), Some("1.0"));
    assert_eq!(f.versions(), [".1.0.sha256", "1.0"], "2.0 was not unpacked");
}
