//! The `ferry-tuf-conformance` binary, run as a TUF conformance harness runs it, against the
//! real fixture server.

mod common;

use std::path::Path;

use common::*;
use ferry_tuf::MetaFile;

const BIN: &str = env!("CARGO_BIN_EXE_ferry-tuf-conformance");

/// Runs the binary; returns its exit code and standard error.
async fn run(args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(BIN).args(args).output().await.unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A harness-like layout: a repository without credentials (as tuf-conformance's simulator),
/// a metadata directory and a target directory.
struct Harness {
    server: Server,
    repo: Repo,
    _tmp: tempfile::TempDir,
    metadata: std::path::PathBuf,
    targets: std::path::PathBuf,
    root_file: std::path::PathBuf,
}

impl Harness {
    async fn new() -> Self {
        Self::with_token(None).await
    }

    /// A harness whose repository answers only requests carrying `Authorization: Bearer TOKEN`.
    async fn with_token(token: Option<&str>) -> Self {
        let server = Server::start(token).await;
        let mut repo = Repo::new(&server, "repo");
        repo.add_target("targets", "target_file.txt", b"target file contents", None);
        repo.add_target("targets", "path/to/a/target_file.txt", b"nested contents", None);
        repo.publish();
        let tmp = tempfile::tempdir().unwrap();
        let (metadata, targets) = (tmp.path().join("metadata"), tmp.path().join("targets"));
        std::fs::create_dir_all(&metadata).unwrap();
        std::fs::create_dir_all(&targets).unwrap();
        let root_file = tmp.path().join("initial_root.json");
        std::fs::write(&root_file, &repo.roots[0]).unwrap();
        Self { server, repo, _tmp: tmp, metadata, targets, root_file }
    }

    async fn init(&self) -> (i32, String) {
        run(&["--metadata-dir", text(&self.metadata), "init", text(&self.root_file)]).await
    }

    async fn refresh(&self) -> (i32, String) {
        let url = self.repo.metadata_url().to_string();
        run(&["--metadata-url", &url, "--metadata-dir", text(&self.metadata), "refresh"]).await
    }

    async fn download(&self, names: &[&str]) -> (i32, String) {
        let (url, base) = (self.repo.metadata_url().to_string(), self.repo.target_base_url().to_string());
        let mut args = vec!["--metadata-url", &url, "--metadata-dir", text(&self.metadata)];
        for name in names {
            args.extend(["--target-name", name]);
        }
        args.extend(["--target-dir", text(&self.targets), "--target-base-url", &base, "download"]);
        run(&args).await
    }

    fn target_requests(&self) -> Vec<String> {
        self.server.paths().into_iter().filter(|p| p.starts_with("/repo/targets/")).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refresh_and_download_as_the_harness_runs_them() {
    let h = Harness::new().await;
    assert_eq!(h.init().await, (0, String::new()));
    assert_eq!(files(&h.metadata).keys().collect::<Vec<_>>(), ["root.json"]);
    assert_eq!(files(&h.metadata)["root.json"], h.repo.roots[0]);
    assert!(h.server.log().is_empty(), "init makes no request");

    let (code, stderr) = h.refresh().await;
    assert_eq!(code, 0, "{stderr}");
    let trusted = files(&h.metadata);
    assert_eq!(trusted.keys().collect::<Vec<_>>(), ["root.json", "snapshot.json", "targets.json", "timestamp.json"]);
    assert_eq!(trusted["targets.json"], h.repo.last_targets);
    assert!(files(&h.targets).is_empty(), "refresh downloads nothing");

    let (code, stderr) = h.download(&["path/to/a/target_file.txt", "target_file.txt"]).await;
    assert_eq!(code, 0, "{stderr}");
    let downloaded = files(&h.targets);
    assert_eq!(downloaded.keys().collect::<Vec<_>>(), ["path%2Fto%2Fa%2Ftarget_file.txt", "target_file.txt"]);
    assert_eq!(downloaded["target_file.txt"], b"target file contents");
    assert_eq!(downloaded["path%2Fto%2Fa%2Ftarget_file.txt"], b"nested contents");
    let requests = h.target_requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].starts_with("/repo/targets/path/to/a/") && requests[0].ends_with(".target_file.txt"));

    // Already downloaded with matching hashes: not fetched again.
    h.server.clear_log();
    assert_eq!(h.download(&["target_file.txt"]).await.0, 0);
    assert!(h.target_requests().is_empty(), "{:?}", h.target_requests());
    assert_eq!(files(&h.targets), downloaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_header_reaches_a_repository_that_requires_one() {
    let h = Harness::with_token(Some(TOKEN)).await;
    assert_eq!(h.init().await.0, 0);
    let (code, stderr) = h.refresh().await;
    assert_eq!(code, 1, "without credentials the repository answers 401");
    assert!(stderr.contains("401"), "{stderr}");

    let url = h.repo.metadata_url().to_string();
    let bearer = format!("Bearer {TOKEN}");
    let args = ["--metadata-url", &url, "--metadata-dir", text(&h.metadata), "--authorization", &bearer, "refresh"];
    let (code, stderr) = run(&args).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(files(&h.metadata).contains_key("timestamp.json"));
    assert!(h.server.log().iter().filter(|l| l.status == 200).all(|l| l.authorization.as_deref() == Some(&*bearer)));

    // The same from the environment, which keeps the secret off the command line; the base
    // URL for targets is authenticated too.
    let base = h.repo.target_base_url().to_string();
    let output = tokio::process::Command::new(BIN)
        .env("FERRY_TUF_AUTHORIZATION", &bearer)
        .args(["--metadata-url", &url, "--metadata-dir", text(&h.metadata), "--target-name", "target_file.txt"])
        .args(["--target-dir", text(&h.targets), "--target-base-url", &base, "download"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(files(&h.targets)["target_file.txt"], b"target file contents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_with_1_and_store_nothing() {
    let mut h = Harness::new().await;
    assert_eq!(h.init().await.0, 0);
    assert_eq!(h.refresh().await.0, 0);

    // A target no role lists.
    let (code, stderr) = h.download(&["missing.txt"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("missing.txt is not listed"), "{stderr}");

    // Substituted content; and the first failure stops the list, so the good one after it is
    // not downloaded.
    let target = h.repo.add_target("targets", "another.txt", b"content", None);
    h.repo.publish();
    h.server.put_bytes(&h.repo.target_path("another.txt", &target), b"malicious data");
    let (code, stderr) = h.download(&["another.txt", "target_file.txt"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("another.txt"), "{stderr}");
    assert!(files(&h.targets).is_empty(), "{:?}", files(&h.targets).keys());

    // An expired timestamp: refresh fails and the trusted timestamp stays.
    let before = files(&h.metadata);
    let snapshot = MetaFile::of_bytes(h.repo.snapshot_version, &h.repo.last_snapshot.clone());
    h.repo.publish_timestamp(snapshot, &past(), None);
    let (code, stderr) = h.refresh().await;
    assert_eq!(code, 1);
    assert!(stderr.contains("expired"), "{stderr}");
    assert_eq!(files(&h.metadata), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_what_is_not_a_self_signed_root_and_usage_errors_exit_1() {
    let h = Harness::new().await;
    std::fs::write(&h.root_file, &h.repo.last_timestamp).unwrap();
    let (code, stderr) = h.init().await;
    assert_eq!(code, 1);
    assert!(stderr.contains("expected root metadata"), "{stderr}");
    assert!(files(&h.metadata).is_empty());
    assert_eq!(run(&["--metadata-dir", text(&h.metadata)]).await.0, 1, "no command");
    assert_eq!(run(&["--metadata-dir", text(&h.metadata), "refresh"]).await.0, 1, "no --metadata-url");
}

/// Time-travel tests preload a fake clock library (libfaketime), which needs a dynamically
/// linked binary: one with an ELF `PT_INTERP` program header naming the dynamic loader.
#[cfg(target_os = "linux")]
#[test]
fn the_binary_is_dynamically_linked() {
    const PT_INTERP: u32 = 3;
    let elf = std::fs::read(BIN).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!((elf[4], elf[5]), (2, 1), "64-bit little-endian ELF expected");
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    let interp = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) == PT_INTERP);
    let ph = interp.expect("no PT_INTERP program header: the binary is statically linked");
    let (offset, size) = (u64_at(ph + 8), u64_at(ph + 32));
    let loader = String::from_utf8_lossy(&elf[offset..offset + size]);
    assert!(loader.contains("ld-linux") || loader.contains("ld-musl"), "interpreter {loader}");
}
