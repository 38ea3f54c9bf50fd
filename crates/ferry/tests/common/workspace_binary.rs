//! A binary of another workspace package, for tests that run it (the agent's end-to-end tests
//! run `ferry serve`, the CLI's quick start runs `ferry-agent`). Cargo builds only the tested
//! package's own binaries before its tests, so a binary of another package may be missing or
//! older than its sources; running it would test old code. It is therefore built through Cargo
//! first, which does nothing when it is up to date.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary of `package` (named like it), built now if its sources changed, from the same
/// profile as `beside`, a binary of the package under test (`env!("CARGO_BIN_EXE_…")`).
pub fn workspace_binary(package: &str, beside: &Path) -> PathBuf {
    let dir = beside.parent().expect("a binary lives in a directory");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--quiet", "-p", package, "--bin", package]);
    // target/debug holds the `dev` profile's binaries; every other profile has its own name.
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build {package}: {e}"));
    assert!(status.success(), "building {package} failed ({status}); the tests would otherwise run a stale binary");
    let bin = dir.join(package);
    assert!(bin.exists(), "cargo built {package}, but it is not at {}", bin.display());
    bin
}
