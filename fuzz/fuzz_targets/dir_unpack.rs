//! The `dir` handler's unpacking of tar, tar.gz and tar.zst archives (and single files): any
//! archive is unpacked or refused, and nothing is ever written outside the handler's root.
#![no_main]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ferry_agent::handler::dir::{DirHandler, Package};
use ferry_core::{ArtifactName, ProductName, Sha256, Version};
use libfuzzer_sys::fuzz_target;

const MEDIA_TYPES: [&str; 4] =
    ["application/x-tar", "application/gzip", "application/zstd", "application/octet-stream"];

/// Makes every directory writable again (an archive may set mode 000) so it can be removed.
fn unlock(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                unlock(&entry.path());
            }
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, archive)) = data.split_first() else { return };
    // tmpfs when there is one: the handler syncs what it writes.
    let base = if Path::new("/dev/shm").is_dir() { Path::new("/dev/shm") } else { Path::new("/tmp") };
    let tmp = tempfile::Builder::new().prefix("ferry-fuzz-dir").tempdir_in(base).unwrap();
    let work = tmp.path().join("work");
    let outside = work.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let file = work.join("package");
    std::fs::write(&file, archive).unwrap();

    let (product, version) = (ProductName::new("fuzz").unwrap(), Version::new("1.0").unwrap());
    let artifact = ArtifactName::new("payload.bin").unwrap();
    let sha256 = Sha256::from_bytes([0; 32]);
    let package = Package {
        file: &file,
        product: &product,
        version: &version,
        artifact: &artifact,
        media_type: MEDIA_TYPES[usize::from(selector) % MEDIA_TYPES.len()],
        sha256: &sha256,
    };
    let handler = DirHandler::new(work.join("root"));
    let _ = handler.prepare(&package);

    assert_eq!(names(&work), ["outside", "package", "root"], "something was written beside the root");
    assert!(names(&outside).is_empty(), "something was written outside the root");
    assert_eq!(std::fs::read(&file).unwrap(), archive, "the package was changed");
    unlock(tmp.path());
});
