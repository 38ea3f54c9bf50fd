//! The attack matrix: each test serves a real, really signed repository over HTTP, mounts one
//! attack, and asserts the exact error and that nothing was promoted (trusted metadata on disk
//! unchanged, no target file, no partial file left where the download was refused). The positive
//! tests show the same machinery accepting what it should.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use common::*;
use ferry_tuf::metadata::sign;
use ferry_tuf::uptane::CrossCheckError;
use ferry_tuf::{KeyKind, MetaFile, TargetFile, Targets, Timestamp, TufError};
use ferry_updater::persist::{partial_file, target_file_name};
use ferry_updater::{Director, Error, Updater, UpdaterConfig};
use serde_json::json;

const FIRMWARE: &str = "gateway/1.4.0/firmware.bin";

/// A repository with one 100 KiB target, published; a server requiring the test credential.
async fn image_repo() -> (Server, Repo, Vec<u8>) {
    let server = Server::start(Some(TOKEN)).await;
    let mut repo = Repo::new(&server, "image");
    let firmware = content(100 * 1024, 7);
    repo.add_target("targets", FIRMWARE, &firmware, Some(ferry_custom("gateway", "1.4.0", 12)));
    repo.publish();
    (server, repo, firmware)
}

/// An updater that has refreshed once against `repo`.
async fn refreshed(repo: &Repo, dirs: &Dirs) -> Updater {
    let mut updater = repo.updater(&dirs.metadata).await;
    updater.refresh().await.unwrap();
    updater
}

/// The image repository with its trusted root (v1) installed in a new metadata directory, and
/// nothing fetched yet.
async fn installed() -> (Server, Repo, Dirs) {
    let (server, repo, _) = image_repo().await;
    let dirs = Dirs::new();
    ferry_updater::init(&dirs.metadata, &repo.roots[0]).await.unwrap();
    (server, repo, dirs)
}

/// Refreshes with a new updater for `repo` whose configuration `change` adjusts, expecting it to
/// fail; returns the error.
async fn refresh_failing(repo: &Repo, dirs: &Dirs, change: impl FnOnce(&mut UpdaterConfig)) -> Error {
    let mut config = repo.config(&dirs.metadata);
    change(&mut config);
    let mut updater = Updater::new(config).unwrap();
    updater.refresh().await.unwrap_err()
}

fn target_file(dirs: &Dirs, path: &str) -> PathBuf {
    dirs.downloads.join(target_file_name(path).unwrap())
}

fn part_file(dirs: &Dirs, path: &str) -> PathBuf {
    partial_file(&dirs.downloads, &target_file_name(path).unwrap())
}

/// Asserts a TUF refusal of `file` and returns its reason.
#[track_caller]
fn tuf_error(result: Result<impl std::fmt::Debug, Error>, expected_file: &str) -> TufError {
    match result {
        Err(Error::Tuf { file, source }) => {
            assert_eq!(file, expected_file, "refused file");
            source
        }
        other => panic!("expected a refusal of {expected_file}, got {other:?}"),
    }
}

/// Root v2 naming the repository's keys after its root key is replaced by a new one of `kind`,
/// signed by the old and the new root key (not served yet).
fn rotate_root_key(repo: &mut Repo, kind: KeyKind) -> Vec<u8> {
    let old_root = std::mem::replace(&mut repo.root_keys, vec![key(kind)]);
    sign(&repo.root_meta(2), &[&old_root[0], &repo.root_keys[0]]).unwrap()
}

/// Most tests' setup: a served repository and an updater that has refreshed once against it,
/// with the trusted metadata that refresh left on disk.
struct Refreshed {
    server: Server,
    repo: Repo,
    firmware: Vec<u8>,
    dirs: Dirs,
    updater: Updater,
    /// The trusted metadata on disk after the first refresh.
    before: BTreeMap<String, Vec<u8>>,
}

impl Refreshed {
    /// Refreshed against [`image_repo`].
    async fn new() -> Self {
        let (server, repo, firmware) = image_repo().await;
        Self::against(server, repo, firmware).await
    }

    /// Refreshed against `repo` as it is now; `firmware` is FIRMWARE's content.
    async fn against(server: Server, repo: Repo, firmware: Vec<u8>) -> Self {
        let dirs = Dirs::new();
        let updater = refreshed(&repo, &dirs).await;
        let before = files(&dirs.metadata);
        Self { server, repo, firmware, dirs, updater, before }
    }

    /// Refreshed against [`image_repo`] published a second time; returns with it what `keep`
    /// takes from the first publication.
    async fn republished<T>(keep: impl FnOnce(&Repo) -> T) -> (Self, T) {
        let (server, mut repo, firmware) = image_repo().await;
        let kept = keep(&repo);
        repo.publish();
        (Self::against(server, repo, firmware).await, kept)
    }

    /// A new updater on the same metadata directory, as the agent after a restart.
    fn restarted(&self) -> Updater {
        Updater::new(self.repo.config(&self.dirs.metadata)).unwrap()
    }

    /// The trusted entry for FIRMWARE.
    async fn target(&mut self) -> TargetFile {
        let (_, target) = self.updater.get_targetinfo(FIRMWARE).await.unwrap().unwrap();
        target
    }

    async fn download(&self, target: &TargetFile) -> Result<PathBuf, Error> {
        self.updater.download_target(FIRMWARE, target, &self.dirs.downloads).await
    }

    /// Serves FIRMWARE's content as `serve`, then downloads it; returns its trusted entry and
    /// what the download came to.
    async fn download_served(&mut self, serve: Serve) -> (TargetFile, Result<PathBuf, Error>) {
        let target = self.target().await;
        self.server.put(&self.repo.target_path(FIRMWARE, &target), serve);
        let result = self.download(&target).await;
        (target, result)
    }

    /// Leaves `bytes` as a partial download of FIRMWARE.
    fn write_part(&self, bytes: &[u8]) {
        std::fs::create_dir_all(self.part_file().parent().unwrap()).unwrap();
        std::fs::write(self.part_file(), bytes).unwrap();
    }

    fn target_file(&self) -> PathBuf {
        target_file(&self.dirs, FIRMWARE)
    }

    fn part_file(&self) -> PathBuf {
        part_file(&self.dirs, FIRMWARE)
    }

    /// Asserts that neither FIRMWARE nor a partial download of it is on disk.
    #[track_caller]
    fn assert_nothing_downloaded(&self) {
        assert!(!self.target_file().exists());
        assert!(!self.part_file().exists());
    }

    /// Refreshes, expecting a TUF refusal of `file`; returns its reason.
    async fn refresh_refused(&mut self, file: &str) -> TufError {
        tuf_error(self.updater.refresh().await, file)
    }

    /// Asserts that the trusted metadata on disk is what the first refresh left.
    #[track_caller]
    fn assert_metadata_unchanged(&self) {
        assert_eq!(files(&self.dirs.metadata), self.before);
    }
}

/// Leaves the first 5000 bytes of FIRMWARE as a partial download, serves its content as `serve`
/// makes it, and downloads it; returns the setup and the downloaded file's content. Only the
/// download is in the server's log.
async fn resumed_after_5000_bytes(serve: fn(Vec<u8>) -> Serve) -> (Refreshed, Vec<u8>) {
    let mut t = Refreshed::new().await;
    let target = t.target().await;
    t.write_part(&t.firmware[..5000]);
    t.server.put(&t.repo.target_path(FIRMWARE, &target), serve(t.firmware.clone()));
    t.server.clear_log();
    let file = t.download(&target).await.unwrap();
    let downloaded = std::fs::read(file).unwrap();
    (t, downloaded)
}

// ---------------------------------------------------------------------------------------------
// What must work.

#[tokio::test]
async fn refresh_and_download_end_to_end() {
    let (server, repo, firmware) = image_repo().await;
    let dirs = Dirs::new();
    let mut updater = repo.updater(&dirs.metadata).await;
    let summary = updater.refresh().await.unwrap();
    assert_eq!(
        (summary.root_version, summary.timestamp_version, summary.snapshot_version, summary.targets_version),
        (1, 1, 1, 1)
    );
    assert!(summary.timestamp_changed);
    // Trusted metadata under non-versioned names, holding the original bytes.
    let on_disk = files(&dirs.metadata);
    assert_eq!(on_disk.keys().collect::<Vec<_>>(), ["root.json", "snapshot.json", "targets.json", "timestamp.json"]);
    assert_eq!(on_disk["root.json"], repo.roots[0]);
    assert_eq!(on_disk["timestamp.json"], repo.last_timestamp);
    assert_eq!(on_disk["snapshot.json"], repo.last_snapshot);
    assert_eq!(on_disk["targets.json"], repo.last_targets);
    assert_eq!(
        server.paths(),
        [
            "/image/metadata/2.root.json",
            "/image/metadata/timestamp.json",
            "/image/metadata/1.snapshot.json",
            "/image/metadata/1.targets.json"
        ]
    );

    let (role, target) = updater.get_targetinfo(FIRMWARE).await.unwrap().unwrap();
    assert_eq!(role, "targets");
    assert_eq!(target.length, firmware.len() as u64);
    assert_eq!(target.custom.as_ref().unwrap()["ferry"]["release_counter"], 12);
    assert_eq!(updater.get_targetinfo("gateway/9.9.9/firmware.bin").await.unwrap(), None);

    server.clear_log();
    let file = updater.download_target(FIRMWARE, &target, &dirs.downloads).await.unwrap();
    assert_eq!(file, dirs.downloads.join("gateway%2F1.4.0%2Ffirmware.bin"));
    assert_eq!(std::fs::read(&file).unwrap(), firmware);
    assert!(!part_file(&dirs, FIRMWARE).exists());
    // Consistent snapshot: the target is fetched by its hash-prefixed name.
    assert_eq!(server.paths(), [repo.target_path(FIRMWARE, &target)]);
    assert!(server.log().iter().all(|l| l.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}"))));
}

#[tokio::test]
async fn requests_carry_the_configured_credential() {
    let (server, repo, dirs) = installed().await;
    // Without the credential the server refuses even the root chain's first step, which must
    // not be mistaken for the end of the chain.
    let err = refresh_failing(&repo, &dirs, |config| config.headers.clear()).await;
    assert!(matches!(&err, Error::Http { status: 401, url } if url.ends_with("/image/metadata/2.root.json")), "{err}");
    assert_eq!(files(&dirs.metadata).keys().collect::<Vec<_>>(), ["root.json"]);
    assert_eq!(server.log().len(), 1);
}

#[tokio::test]
async fn an_unchanged_timestamp_ends_the_refresh_with_persisted_metadata() {
    let t = Refreshed::new().await;
    t.server.clear_log();
    // A new process, as the agent after a restart.
    let mut updater = t.restarted();
    let summary = updater.refresh().await.unwrap();
    assert!(!summary.timestamp_changed);
    assert_eq!(summary.targets_version, 1);
    assert_eq!(t.server.paths(), ["/image/metadata/2.root.json", "/image/metadata/timestamp.json"]);
    t.assert_metadata_unchanged();
    assert!(updater.get_targetinfo(FIRMWARE).await.unwrap().is_some());
}

#[tokio::test]
async fn delegated_roles_are_loaded_lazily_and_persisted() {
    let server = Server::start(Some(TOKEN)).await;
    let mut repo = Repo::new(&server, "image");
    repo.delegate("gateway-team", &["gateway/*/*"]);
    let firmware = content(3000, 1);
    repo.add_target("gateway-team", FIRMWARE, &firmware, None);
    repo.publish();
    let mut t = Refreshed::against(server, repo, firmware).await;
    assert!(!t.server.paths().iter().any(|p| p.contains("gateway-team")), "not needed by a refresh");

    let (role, target) = t.updater.get_targetinfo(FIRMWARE).await.unwrap().unwrap();
    assert_eq!(role, "gateway-team");
    assert_eq!(t.server.paths().last().unwrap(), "/image/metadata/1.gateway-team.json");
    assert_eq!(files(&t.dirs.metadata)["gateway-team.json"], server_file(&t.repo, "1.gateway-team.json"));
    // Paths the delegation does not cover are not searched there.
    t.server.clear_log();
    assert_eq!(t.updater.get_targetinfo("other/1.0/x.bin").await.unwrap(), None);
    assert!(t.server.paths().is_empty());

    // A new process finds the role on disk and fetches nothing but the timestamp.
    t.server.clear_log();
    let mut again = t.restarted();
    assert_eq!(again.get_targetinfo(FIRMWARE).await.unwrap(), Some(("gateway-team".into(), target.clone())));
    assert_eq!(t.server.paths(), ["/image/metadata/2.root.json", "/image/metadata/timestamp.json"]);
    let file = again.download_target(FIRMWARE, &target, &t.dirs.downloads).await.unwrap();
    assert_eq!(std::fs::read(file).unwrap(), t.firmware);
}

fn server_file(repo: &Repo, file: &str) -> Vec<u8> {
    repo.server.bytes(&repo.metadata_path(file))
}

#[tokio::test]
async fn a_downloaded_target_is_not_fetched_again() {
    let mut t = Refreshed::new().await;
    let target = t.target().await;
    t.download(&target).await.unwrap();
    t.server.clear_log();
    let file = t.download(&target).await.unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), t.firmware);
    assert!(t.server.paths().is_empty(), "fetched again: {:?}", t.server.paths());

    // A file that no longer verifies (changed on disk) is fetched anew and replaced.
    let mut damaged = t.firmware.clone();
    damaged[10] ^= 0xff;
    std::fs::write(&file, &damaged).unwrap();
    t.download(&target).await.unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), t.firmware);
    assert_eq!(t.server.paths(), [t.repo.target_path(FIRMWARE, &target)]);
}

#[tokio::test]
async fn a_download_cut_mid_file_resumes_with_a_range_request() {
    let mut t = Refreshed::new().await;
    let cut = 40_000;
    let (target, result) = t.download_served(Serve::CutAfter { bytes: t.firmware.clone(), after: cut }).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Transport { .. } | Error::Truncated { .. }), "{err}");
    assert!(!t.target_file().exists());
    assert_eq!(std::fs::read(t.part_file()).unwrap(), t.firmware[..cut]);

    t.server.clear_log();
    let file = t.download(&target).await.unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), t.firmware);
    assert!(!t.part_file().exists());
    let log = t.server.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].range.as_deref(), Some(&*format!("bytes={cut}-")));
    assert_eq!(log[0].status, 206);
}

#[tokio::test]
async fn a_target_named_like_another_targets_partial_download_does_not_collide_with_it() {
    // Targets `a` and `a.part`: with partial downloads kept as `NAME.part` next to the targets,
    // the first would resume from (and then delete) the second, and the second would overwrite
    // the first's partial download.
    let (server, mut repo, firmware) = image_repo().await;
    let (a, a_part) = (content(30_000, 1), content(10_000, 2));
    repo.add_target("targets", "a", &a, None);
    repo.add_target("targets", "a.part", &a_part, None);
    repo.publish();
    let mut t = Refreshed::against(server, repo, firmware).await;
    let (_, target_a) = t.updater.get_targetinfo("a").await.unwrap().unwrap();
    let (_, target_a_part) = t.updater.get_targetinfo("a.part").await.unwrap().unwrap();
    let downloads = t.dirs.downloads.clone();

    let file = t.updater.download_target("a.part", &target_a_part, &downloads).await.unwrap();
    assert_eq!(file, downloads.join("a.part"));
    // `a` is cut after 20000 bytes: its partial download is kept apart from the target `a.part`.
    let cut = 20_000;
    t.server.put(&t.repo.target_path("a", &target_a), Serve::CutAfter { bytes: a.clone(), after: cut });
    t.updater.download_target("a", &target_a, &downloads).await.unwrap_err();
    assert_eq!(std::fs::read(part_file(&t.dirs, "a")).unwrap(), a[..cut]);
    assert_eq!(std::fs::read(downloads.join("a.part")).unwrap(), a_part);

    // `a` resumes from its own partial download.
    t.server.clear_log();
    let file = t.updater.download_target("a", &target_a, &downloads).await.unwrap();
    assert_eq!(file, downloads.join("a"));
    assert_eq!(std::fs::read(&file).unwrap(), a);
    let log = t.server.log();
    assert_eq!((log.len(), log[0].range.as_deref(), log[0].status), (1, Some(&*format!("bytes={cut}-")), 206));
    assert!(!part_file(&t.dirs, "a").exists());
    // `a.part` is intact and still verified: not fetched again.
    t.server.clear_log();
    assert_eq!(
        t.updater.download_target("a.part", &target_a_part, &downloads).await.unwrap(),
        downloads.join("a.part")
    );
    assert_eq!(std::fs::read(downloads.join("a.part")).unwrap(), a_part);
    assert!(t.server.paths().is_empty(), "fetched again: {:?}", t.server.paths());
    // Only the two targets are visible in the download directory; partial files are hidden.
    let mut visible: Vec<_> = std::fs::read_dir(&downloads)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .collect();
    visible.sort();
    assert_eq!(visible, ["a", "a.part"]);
}

#[tokio::test]
async fn a_server_ignoring_the_range_restarts_the_download_from_zero() {
    let (t, downloaded) = resumed_after_5000_bytes(Serve::IgnoreRange).await;
    assert_eq!(downloaded, t.firmware, "the prefix is not doubled");
    let log = t.server.log();
    assert_eq!((log.len(), log[0].range.as_deref(), log[0].status), (1, Some("bytes=5000-"), 200));
}

#[tokio::test]
async fn a_wrong_content_range_restarts_the_download_from_zero() {
    let (t, downloaded) = resumed_after_5000_bytes(Serve::BadContentRange).await;
    assert_eq!(downloaded, t.firmware);
    let ranges: Vec<_> = t.server.log().into_iter().map(|l| (l.range, l.status)).collect();
    assert_eq!(ranges, [(Some("bytes=5000-".to_owned()), 206), (None, 200)]);
}

#[tokio::test]
async fn a_corrupt_partial_download_is_caught_by_the_hash_and_discarded() {
    let mut t = Refreshed::new().await;
    let target = t.target().await;
    t.write_part(&[0u8; 5000]);

    let err = t.download(&target).await.unwrap_err();
    assert!(matches!(&err, Error::HashMismatch { algorithm, .. } if algorithm == "sha256"), "{err}");
    t.assert_nothing_downloaded();
    // The next attempt starts from zero and succeeds.
    t.server.clear_log();
    t.download(&target).await.unwrap();
    assert_eq!(t.server.log()[0].range, None);
    assert_eq!(std::fs::read(t.target_file()).unwrap(), t.firmware);
}

#[tokio::test]
async fn a_rotated_root_is_followed_and_its_new_keys_used() {
    let mut t = Refreshed::new().await;
    // Root v2 replaces the root key and the targets key; signed by the old and the new root key.
    t.repo.targets_key = key(KeyKind::Ed25519);
    let v2 = rotate_root_key(&mut t.repo, KeyKind::EcdsaP256);
    t.repo.put_root(v2.clone());
    let release = content(2048, 9);
    let path = "gateway/1.5.0/firmware.bin";
    t.repo.add_target("targets", path, &release, Some(ferry_custom("gateway", "1.5.0", 13)));
    t.repo.publish();

    let summary = t.updater.refresh().await.unwrap();
    assert_eq!((summary.root_version, summary.targets_version), (2, 2));
    assert_eq!(files(&t.dirs.metadata)["root.json"], v2);
    assert_eq!(files(&t.dirs.metadata)["targets.json"], t.repo.last_targets);
    assert!(t.server.paths().contains(&"/image/metadata/3.root.json".to_owned()), "the chain is followed to its end");
    let (_, target) = t.updater.get_targetinfo(path).await.unwrap().unwrap();
    let file = t.updater.download_target(path, &target, &t.dirs.downloads).await.unwrap();
    assert_eq!(std::fs::read(file).unwrap(), release);
}

#[tokio::test]
async fn a_new_root_not_signed_by_the_old_root_is_refused_and_the_old_root_kept() {
    let mut t = Refreshed::new().await;
    // Root v2 with a new root key, signed by that key only: the old root's threshold is not met.
    t.repo.root_keys = vec![key(KeyKind::Ed25519)];
    let only_new = sign(&t.repo.root_meta(2), &[&t.repo.root_keys[0]]).unwrap();
    t.repo.put_root(only_new);

    let reason = t.refresh_refused("2.root.json").await;
    assert!(
        matches!(reason, TufError::Threshold { ref role, valid: 0, threshold: 1, .. } if role == "root"),
        "{reason}"
    );
    t.assert_metadata_unchanged();
    assert_eq!(t.updater.trusted().root().version, 1);
    assert!(t.updater.get_targetinfo(FIRMWARE).await.is_err(), "no lookups without a successful refresh");
}

#[tokio::test]
async fn a_new_root_with_a_bad_signature_is_refused_and_the_old_root_kept() {
    let mut t = Refreshed::new().await;
    let both = rotate_root_key(&mut t.repo, KeyKind::Ed25519);
    // Changed after signing: both signatures are now invalid.
    let forged = tamper(&both, |signed| signed["expires"] = json!(format_later_by_a_year()));
    t.repo.put_root(forged);

    let reason = t.refresh_refused("2.root.json").await;
    assert!(matches!(reason, TufError::Threshold { valid: 0, .. }), "{reason}");
    t.assert_metadata_unchanged();
    assert_eq!(t.updater.trusted().root().version, 1);
}

fn format_later_by_a_year() -> String {
    ferry_tuf::time::format_expires(now() + 365 * 86_400)
}

#[tokio::test]
async fn rotating_the_timestamp_key_recovers_from_a_fast_forwarded_timestamp() {
    let (server, mut repo, firmware) = image_repo().await;
    // An attacker with the old timestamp key pushed the device to timestamp version 1000.
    repo.timestamp_version = 999;
    repo.republish_timestamp(&later(), None);
    let mut t = Refreshed::against(server, repo, firmware).await;
    assert_eq!(t.updater.trusted().timestamp().unwrap().version, 1000);

    // Recovery: root v2 names a new timestamp key; the timestamp restarts at version 1.
    t.repo.timestamp_keys = vec![key(KeyKind::Ed25519)];
    let v2 = sign(&t.repo.root_meta(2), &[&t.repo.root_keys[0]]).unwrap();
    t.repo.put_root(v2);
    t.repo.timestamp_version = 0;
    t.repo.publish();
    let summary = t.updater.refresh().await.unwrap();
    assert_eq!((summary.root_version, summary.timestamp_version), (2, 1));
    assert_eq!(files(&t.dirs.metadata)["timestamp.json"], t.repo.last_timestamp);
}

#[tokio::test]
async fn without_a_set_clock_refresh_refuses_to_run() {
    let (server, repo, dirs) = installed().await;
    // 1970-01-02: a device without RTC after boot.
    let err = refresh_failing(&repo, &dirs, |config| config.now = Some(86_400)).await;
    assert!(matches!(err, Error::ClockNotSet { now: 86_400, .. }), "{err}");
    assert!(server.log().is_empty(), "nothing is fetched");
}

#[tokio::test]
async fn init_keeps_a_root_already_installed() {
    let (_server, mut repo, _) = image_repo().await;
    let dirs = Dirs::new();
    assert!(ferry_updater::init(&dirs.metadata, &repo.roots[0]).await.unwrap());
    let v2 = sign(&repo.root_meta(2), &[&repo.root_keys[0]]).unwrap();
    repo.put_root(v2.clone());
    Updater::new(repo.config(&dirs.metadata)).unwrap().refresh().await.unwrap();
    assert!(!ferry_updater::init(&dirs.metadata, &repo.roots[0]).await.unwrap());
    assert_eq!(files(&dirs.metadata)["root.json"], v2, "the factory root does not replace the rotated one");
    // A file that is not a self-signed root is refused.
    let other = Dirs::new();
    let err = ferry_updater::init(&other.metadata, &repo.last_timestamp).await.unwrap_err();
    assert!(matches!(err, Error::Tuf { source: TufError::WrongType { .. }, .. }), "{err}");
    assert!(files(&other.metadata).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Attacks on targets.

#[tokio::test]
async fn a_tampered_artifact_is_discarded() {
    let mut t = Refreshed::new().await;
    let mut evil = t.firmware.clone();
    evil[50_000] ^= 1;
    let (_, result) = t.download_served(Serve::Bytes(evil.clone())).await;

    let err = result.unwrap_err();
    match &err {
        Error::HashMismatch { target, algorithm, expected, actual } => {
            assert_eq!((target.as_str(), algorithm.as_str()), (FIRMWARE, "sha256"));
            assert_eq!(expected, &sha256(&t.firmware));
            assert_eq!(actual, &sha256(&evil));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    t.assert_nothing_downloaded();
}

#[tokio::test]
async fn endless_target_data_is_cut_at_the_signed_length() {
    let mut t = Refreshed::new().await;
    let (target, result) = t.download_served(Serve::Endless).await;

    let err = result.unwrap_err();
    assert!(matches!(&err, Error::LengthExceeded { length, .. } if *length == target.length), "{err}");
    t.assert_nothing_downloaded();
}

#[tokio::test]
async fn a_target_shorter_than_its_length_is_kept_partial_and_not_promoted() {
    let mut t = Refreshed::new().await;
    let (_, result) = t.download_served(Serve::Bytes(t.firmware[..1000].to_vec())).await;

    let err = result.unwrap_err();
    assert!(matches!(err, Error::Truncated { received: 1000, .. }), "{err}");
    assert!(!t.target_file().exists());
}

// ---------------------------------------------------------------------------------------------
// Attacks on metadata.

#[tokio::test]
async fn tampered_metadata_is_refused() {
    let mut t = Refreshed::new().await;
    let signed = t.repo.republish_timestamp(&later(), None);
    // A man in the middle extends the expiry of a validly signed timestamp.
    t.repo.serve_timestamp(&tamper(&signed, |s| s["expires"] = json!(format_later_by_a_year())));

    let reason = t.refresh_refused("timestamp.json").await;
    assert!(matches!(reason, TufError::Threshold { ref role, valid: 0, .. } if role == "timestamp"), "{reason}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn a_signature_by_an_unknown_key_is_refused() {
    let mut t = Refreshed::new().await;
    let stranger = key(KeyKind::Ed25519);
    t.repo.republish_timestamp(&later(), Some(&[&stranger]));

    let reason = t.refresh_refused("timestamp.json").await;
    assert!(matches!(reason, TufError::Threshold { valid: 0, threshold: 1, .. }), "{reason}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn fewer_signatures_than_the_threshold_are_refused() {
    let server = Server::start(Some(TOKEN)).await;
    let mut repo = Repo::with_timestamp_keys(&server, "image", 2, 2);
    repo.publish();
    let mut t = Refreshed::against(server, repo, Vec::new()).await;
    let snapshot = MetaFile::of_bytes(t.repo.snapshot_version, &t.repo.last_snapshot);
    let one = &t.repo.timestamp_keys[0];
    let file = sign(&Timestamp::new(t.repo.timestamp_version + 1, later(), snapshot), &[one]).unwrap();
    t.repo.serve_timestamp(&file);

    let reason = t.refresh_refused("timestamp.json").await;
    assert!(matches!(reason, TufError::Threshold { valid: 1, threshold: 2, .. }), "{reason}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn a_key_id_signing_twice_is_refused() {
    let mut t = Refreshed::new().await;
    // A validly signed timestamp whose one signature is listed twice: with a threshold of 1 it
    // would verify, but the specification refuses repeated key ids outright.
    let signed = t.repo.republish_timestamp(&later(), None);
    let mut file: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    let first = file["signatures"][0].clone();
    file["signatures"].as_array_mut().unwrap().push(first);
    t.repo.serve_timestamp(&serde_json::to_vec(&file).unwrap());

    let reason = t.refresh_refused("timestamp.json").await;
    assert!(matches!(reason, TufError::Malformed { ref reason, .. } if reason.contains("more than once")), "{reason}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn an_expired_timestamp_is_refused_freeze_attack() {
    let mut t = Refreshed::new().await;
    // The repository (or an attacker replaying it) serves a timestamp that has expired.
    t.repo.republish_timestamp(&past(), None);
    let reason = t.refresh_refused("timestamp.json").await;
    assert!(matches!(reason, TufError::Expired { ref role, .. } if role == "timestamp"), "{reason}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn metadata_frozen_past_its_expiry_is_refused() {
    let t = Refreshed::new().await;
    // The server keeps answering the same, once valid, timestamp; eight days later it has expired.
    let err = refresh_failing(&t.repo, &t.dirs, |config| config.now = Some(now() + 8 * 86_400)).await;
    assert!(matches!(err, Error::Tuf { source: TufError::Expired { .. }, .. }), "{err}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn a_rolled_back_timestamp_is_refused() {
    let (mut t, v1) = Refreshed::republished(|repo| repo.last_timestamp.clone()).await;
    t.repo.serve_timestamp(&v1);

    let reason = t.refresh_refused("timestamp.json").await;
    assert_eq!(reason, TufError::RolledBack { role: "timestamp".into(), trusted: 2, new: 1 });
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn a_rolled_back_snapshot_is_refused() {
    let (mut t, snapshot_v1) = Refreshed::republished(|repo| MetaFile::of_bytes(1, &repo.last_snapshot)).await;
    // A new timestamp naming the old snapshot.
    t.repo.publish_timestamp(snapshot_v1, &later(), None);

    let reason = t.refresh_refused("timestamp.json").await;
    assert!(matches!(reason, TufError::RolledBack { trusted: 2, new: 1, .. }), "{reason}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn rolled_back_targets_are_refused() {
    let (mut t, targets_v1) = Refreshed::republished(|repo| repo.last_targets.clone()).await;
    // A new snapshot (and timestamp) listing targets version 1 again.
    let meta = [("targets.json".to_owned(), MetaFile::of_bytes(1, &targets_v1))].into();
    t.repo.publish_snapshot(meta);
    t.repo.republish_timestamp(&later(), None);

    let snapshot_file = format!("{}.snapshot.json", t.repo.snapshot_version);
    let reason = t.refresh_refused(&snapshot_file).await;
    assert_eq!(reason, TufError::RolledBack { role: "targets".into(), trusted: 2, new: 1 });
    let after = files(&t.dirs.metadata);
    assert_eq!(after["targets.json"], t.before["targets.json"]);
    assert_eq!(after["snapshot.json"], t.before["snapshot.json"]);
    assert_eq!(after["timestamp.json"], t.repo.last_timestamp, "the valid new timestamp is trusted");
}

#[tokio::test]
async fn mix_and_match_targets_are_refused() {
    let mut t = Refreshed::new().await;
    t.repo.add_target("targets", "gateway/1.5.0/firmware.bin", b"new release", None);
    t.repo.publish();
    // The server answers another, validly signed, targets v2 than the one the snapshot lists.
    let mut other = Targets::new(2, later());
    other.targets.insert("gateway/0.1.0/firmware.bin".into(), TargetFile::new(3, &sha256(b"old"), None));
    t.server.put_bytes(&t.repo.metadata_path("2.targets.json"), &t.repo.sign_targets(&other, &t.repo.targets_key));

    let reason = t.refresh_refused("2.targets.json").await;
    assert!(matches!(reason, TufError::Mismatch { ref what, .. } if what == "targets.json"), "{reason}");
    assert_eq!(files(&t.dirs.metadata)["targets.json"], t.before["targets.json"]);
    assert!(t.updater.get_targetinfo("gateway/0.1.0/firmware.bin").await.is_err());
}

#[tokio::test]
async fn an_endless_timestamp_is_cut_at_its_size_cap() {
    let mut t = Refreshed::new().await;
    t.server.put(&t.repo.metadata_path("timestamp.json"), Serve::Endless);

    let err = t.updater.refresh().await.unwrap_err();
    assert!(matches!(&err, Error::TooLarge { what, cap: 16_384 } if what == "timestamp.json"), "{err}");
    t.assert_metadata_unchanged();
}

#[tokio::test]
async fn a_length_in_the_timestamp_or_snapshot_does_not_lift_the_configured_cap() {
    // The timestamp gives the snapshot's length and the snapshot the targets' length; the
    // configured caps still apply when they are smaller.
    let (_server, repo, dirs) = installed().await;
    let err = refresh_failing(&repo, &dirs, |config| config.snapshot_max_length = 100).await;
    assert!(matches!(&err, Error::TooLarge { what, cap: 100 } if what == "1.snapshot.json"), "{err}");
    let err = refresh_failing(&repo, &dirs, |config| config.targets_max_length = 100).await;
    assert!(matches!(&err, Error::TooLarge { what, cap: 100 } if what == "1.targets.json"), "{err}");
    // Delegated roles, loaded lazily, too: a role larger than the configured cap is refused at
    // the cap, although the snapshot gives its (larger) length.
    let (_server, mut repo, _) = image_repo().await;
    repo.delegate("gw", &["gateway/2.*/*"]);
    for i in 0..20 {
        repo.add_target("gw", &format!("gateway/2.0.{i}/firmware.bin"), b"two", None);
    }
    repo.publish();
    let top_level = MetaFile::of_bytes(0, &repo.last_targets).length.unwrap();
    let delegated = MetaFile::of_bytes(0, &server_file(&repo, "1.gw.json")).length.unwrap();
    assert!(delegated > top_level, "{delegated} > {top_level}");
    let dirs = Dirs::new();
    ferry_updater::init(&dirs.metadata, &repo.roots[0]).await.unwrap();
    let mut config = repo.config(&dirs.metadata);
    config.targets_max_length = top_level;
    let mut updater = Updater::new(config).unwrap();
    updater.refresh().await.unwrap();
    let err = updater.get_targetinfo("gateway/2.0.0/firmware.bin").await.unwrap_err();
    assert!(matches!(&err, Error::TooLarge { what, cap } if what == "1.gw.json" && *cap == top_level), "{err}");
    assert!(!files(&dirs.metadata).contains_key("gw.json"));
}

#[tokio::test]
async fn a_snapshot_longer_than_the_timestamp_says_is_cut_at_that_length() {
    let mut t = Refreshed::new().await;
    t.repo.publish();
    let snapshot = format!("{}.snapshot.json", t.repo.snapshot_version);
    let length = MetaFile::of_bytes(0, &t.repo.last_snapshot).length.unwrap();
    t.server.put(&t.repo.metadata_path(&snapshot), Serve::Endless);

    let err = t.updater.refresh().await.unwrap_err();
    assert!(matches!(&err, Error::TooLarge { what, cap } if *what == snapshot && *cap == length), "{err}");
    let after = files(&t.dirs.metadata);
    assert_eq!(after["snapshot.json"], t.before["snapshot.json"]);
}

// ---------------------------------------------------------------------------------------------
// The director.

const DEVICE: &str = "dev-0001";
/// DEVICE's platform, the one FIRMWARE is built for ([`ferry_custom`]).
const PLATFORM: &str = "arm64";

/// An image repository with FIRMWARE (counter 12) and a director repository assigning it to
/// `DEVICE`; the director's entry is what `change` makes of the image entry.
struct Uptane {
    server: Server,
    image: Repo,
    director: Repo,
    dirs: Dirs,
    firmware: Vec<u8>,
}

impl Uptane {
    async fn new() -> Self {
        let (server, image, firmware) = image_repo().await;
        let mut director = Repo::new(&server, "director");
        director.publish();
        Self { server, image, director, dirs: Dirs::new(), firmware }
    }

    /// Publishes director targets naming `device` and holding `entries` (path → entry).
    fn assign(&mut self, device: Option<&str>, entries: Vec<(&str, TargetFile)>) {
        self.director.targets.targets.clear();
        match device {
            Some(d) => self.director.targets.unrecognized.insert("custom".into(), json!({ "device": d })),
            None => self.director.targets.unrecognized.remove("custom"),
        };
        for (path, entry) in entries {
            self.director.targets.targets.insert(path.to_owned(), entry);
        }
        self.director.publish();
    }

    /// The director's copy of the image entry for FIRMWARE, for `device`.
    fn entry(&self, device: &str) -> TargetFile {
        self.entry_for(FIRMWARE, device)
    }

    /// The director's copy of the image entry for `path`, for `device`.
    fn entry_for(&self, path: &str, device: &str) -> TargetFile {
        let mut entry = self.image.targets.targets[path].clone();
        let ferry = entry.custom.take().unwrap()["ferry"].clone();
        entry.custom = Some(json!({ "device": device, "ferry": ferry }));
        entry
    }

    async fn director(&self) -> Director {
        let director = self.director.updater(&self.dirs.director_metadata).await;
        let image = self.image.updater(&self.dirs.metadata).await;
        let mut both = Director::new(director, image);
        both.refresh_both().await.unwrap();
        both
    }

    /// What a new director client for DEVICE (of PLATFORM) finds assigned.
    async fn assigned(&self, floors: &[(&str, i64)]) -> Result<Vec<ferry_updater::VerifiedTarget>, Error> {
        self.assigned_as(PLATFORM, floors).await
    }

    /// What a new director client for DEVICE, were it of `platform`, finds assigned.
    async fn assigned_as(
        &self,
        platform: &str,
        floors: &[(&str, i64)],
    ) -> Result<Vec<ferry_updater::VerifiedTarget>, Error> {
        let floors: HashMap<String, i64> = floors.iter().map(|(p, c)| ((*p).to_owned(), *c)).collect();
        self.director().await.assigned(DEVICE, platform, &floors).await
    }
}

#[tokio::test]
async fn an_agreeing_director_assignment_is_verified_and_downloads() {
    let mut uptane = Uptane::new().await;
    uptane.assign(Some(DEVICE), vec![(FIRMWARE, uptane.entry(DEVICE))]);
    let director = uptane.director().await;
    let mut director = director;
    let assigned = director.assigned(DEVICE, PLATFORM, &HashMap::from([("gateway".to_owned(), 12)])).await.unwrap();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].path, FIRMWARE);
    assert_eq!(assigned[0].image_role, "targets");
    assert_eq!(assigned[0].target, uptane.image.targets.targets[FIRMWARE]);
    assert_eq!(assigned[0].director_custom.as_ref().unwrap()["device"], DEVICE);
    let file = director.download(&assigned[0], &uptane.dirs.downloads).await.unwrap();
    assert_eq!(std::fs::read(file).unwrap(), uptane.firmware);
    assert!(files(&uptane.dirs.director_metadata).contains_key("targets.json"));
    assert!(uptane.server.paths().iter().any(|p| p.starts_with("/director/metadata/")));
}

#[tokio::test]
async fn an_empty_director_assignment_must_still_name_the_device() {
    let mut uptane = Uptane::new().await;
    uptane.assign(Some(DEVICE), vec![]);
    assert_eq!(uptane.assigned(&[]).await.unwrap(), vec![]);
    uptane.assign(None, vec![]);
    let err = uptane.assigned(&[]).await.unwrap_err();
    assert!(matches!(err, Error::CrossCheck(CrossCheckError::WrongDevice { found: None, .. })), "{err}");
}

#[tokio::test]
async fn another_devices_director_metadata_is_refused() {
    let mut uptane = Uptane::new().await;
    uptane.assign(Some("dev-0002"), vec![(FIRMWARE, uptane.entry("dev-0002"))]);
    let err = uptane.assigned(&[]).await.unwrap_err();
    assert!(
        matches!(&err, Error::CrossCheck(CrossCheckError::WrongDevice { found: Some(f), entry: None, .. }) if f == "dev-0002"),
        "{err}"
    );
    assert!(err.to_string().contains("is for device dev-0002, not dev-0001"), "{err}");
    // Metadata naming the device with an entry for another one is refused as well.
    uptane.assign(Some(DEVICE), vec![(FIRMWARE, uptane.entry("dev-0002"))]);
    let err = uptane.assigned(&[]).await.unwrap_err();
    assert!(matches!(err, Error::CrossCheck(CrossCheckError::WrongDevice { entry: Some(_), .. })), "{err}");
    assert!(!uptane.dirs.downloads.exists());
}

#[tokio::test]
async fn a_director_disagreeing_with_the_image_repository_is_refused() {
    let mut uptane = Uptane::new().await;
    type Change = fn(&mut TargetFile);
    let cases: [(&str, Change); 4] = [
        ("length", |e| e.length += 1),
        ("hash", |e| {
            e.hashes.insert("sha256".into(), sha256(b"something else"));
        }),
        ("release counter", |e| e.custom.as_mut().unwrap()["ferry"]["release_counter"] = json!(99)),
        ("platforms", |e| e.custom.as_mut().unwrap()["ferry"]["platforms"] = json!(["arm64", "x86_64"])),
    ];
    for (what, change) in cases {
        let mut entry = uptane.entry(DEVICE);
        change(&mut entry);
        uptane.assign(Some(DEVICE), vec![(FIRMWARE, entry)]);
        let err = uptane.assigned(&[]).await.unwrap_err();
        let Error::CrossCheck(reason) = &err else { panic!("{what}: {err}") };
        match (what, reason) {
            ("length", CrossCheckError::Length { director, image, .. }) => assert_eq!(director, &(image + 1)),
            ("hash", CrossCheckError::Digest { algorithm, .. }) => assert_eq!(algorithm, "sha256"),
            ("release counter", CrossCheckError::Field { field, .. }) => assert_eq!(field, "release_counter"),
            ("platforms", CrossCheckError::Field { field, .. }) => assert_eq!(field, "platforms"),
            _ => panic!("{what}: unexpected {reason}"),
        }
    }
    assert!(!uptane.dirs.downloads.exists());
}

#[tokio::test]
async fn a_director_assigning_an_unpublished_target_is_refused() {
    let mut uptane = Uptane::new().await;
    let mut entry = uptane.entry(DEVICE);
    entry.custom.as_mut().unwrap()["ferry"]["version"] = json!("6.6.6");
    uptane.assign(Some(DEVICE), vec![("gateway/6.6.6/firmware.bin", entry)]);
    let err = uptane.assigned(&[]).await.unwrap_err();
    assert!(matches!(err, Error::CrossCheck(CrossCheckError::NotInImageRepository { .. })), "{err}");
}

#[tokio::test]
async fn a_release_counter_going_down_is_refused() {
    let mut uptane = Uptane::new().await;
    uptane.assign(Some(DEVICE), vec![(FIRMWARE, uptane.entry(DEVICE))]);
    let err = uptane.assigned(&[("gateway", 13)]).await.unwrap_err();
    assert!(matches!(err, Error::CrossCheck(CrossCheckError::CounterDown { floor: 13, counter: 12, .. })), "{err}");
    assert!(err.to_string().contains("release counter goes down from 13 to 12"), "{err}");
    // Another product's floor does not apply.
    assert_eq!(uptane.assigned(&[("router", 50)]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_image_for_another_platform_is_refused() {
    let mut uptane = Uptane::new().await;
    // A genuinely published image, built for x86_64 only, assigned to the arm64 device: the
    // repositories agree, but installing it would brick the device.
    const X86: &str = "gateway/1.4.0/firmware-x86_64.bin";
    let mut custom = ferry_custom("gateway", "1.4.0", 12);
    custom["ferry"]["platforms"] = json!(["x86_64"]);
    uptane.image.add_target("targets", X86, &content(2048, 9), Some(custom));
    uptane.image.publish();
    uptane.assign(Some(DEVICE), vec![(FIRMWARE, uptane.entry(DEVICE)), (X86, uptane.entry_for(X86, DEVICE))]);
    let err = uptane.assigned(&[]).await.unwrap_err();
    assert!(
        matches!(&err, Error::CrossCheck(CrossCheckError::WrongPlatform { path, platform, platforms })
            if path == X86 && platform == PLATFORM && platforms == &["x86_64"]),
        "{err}"
    );
    assert!(err.to_string().contains("not for this device's platform arm64"), "{err}");
    assert!(!uptane.dirs.downloads.exists());
    // The same images are refused to an x86_64 device for FIRMWARE (arm64 only), and accepted
    // once the assignment holds only what it can run.
    let err = uptane.assigned_as("x86_64", &[]).await.unwrap_err();
    assert!(
        matches!(&err, Error::CrossCheck(CrossCheckError::WrongPlatform { path, .. }) if path == FIRMWARE),
        "{err}"
    );
    uptane.assign(Some(DEVICE), vec![(X86, uptane.entry_for(X86, DEVICE))]);
    let assigned = uptane.assigned_as("x86_64", &[]).await.unwrap();
    assert_eq!(assigned.iter().map(|a| &*a.path).collect::<Vec<_>>(), [X86]);
}

#[tokio::test]
async fn a_product_other_than_the_paths_is_refused() {
    let mut uptane = Uptane::new().await;
    // An older gateway image whose entries (image and director alike) call it product "router":
    // keyed by that free-form field, the device's gateway floor would not apply to it.
    const OLD: &str = "gateway/1.3.0/firmware.bin";
    uptane.image.add_target("targets", OLD, &content(4096, 3), Some(ferry_custom("router", "1.3.0", 11)));
    uptane.image.publish();
    uptane.assign(Some(DEVICE), vec![(OLD, uptane.entry_for(OLD, DEVICE))]);
    for floors in [&[("gateway", 12)][..], &[("router", 0)], &[]] {
        let err = uptane.assigned(floors).await.unwrap_err();
        assert!(
            matches!(&err, Error::CrossCheck(CrossCheckError::Malformed { path, reason })
                if path == OLD && reason.contains("not the path's first segment")),
            "{floors:?}: {err}"
        );
        assert!(err.to_string().contains(r#"custom.ferry.product is "router""#), "{err}");
    }
    // A director alone renaming the product disagrees with the image repository.
    let mut entry = uptane.entry(DEVICE);
    entry.custom.as_mut().unwrap()["ferry"]["product"] = json!("router");
    uptane.assign(Some(DEVICE), vec![(FIRMWARE, entry)]);
    let err = uptane.assigned(&[]).await.unwrap_err();
    assert!(matches!(&err, Error::CrossCheck(CrossCheckError::Field { field, .. }) if field == "product"), "{err}");
    assert!(!uptane.dirs.downloads.exists());
}
