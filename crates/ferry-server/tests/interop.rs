//! Interoperability with python-tuf, the reference TUF client (docs/trust.md, "Interoperability rules": independent TUF
//! clients must verify what a Ferry server publishes). A real server on SQLite and on
//! PostgreSQL gets a root, top-level targets, a root rotation and a delegated per-product role
//! from publisher keys made here; `interop/tuf_client.py` then runs python-tuf's `ngclient`
//! against it as an entitled device, checks every metadata file the server published with
//! python-tuf's own verification, and must refuse a target whose bytes were tampered with.
//! Then Uptane: python-tuf verifies devices' director chains against the image repository,
//! as the device they name, and must refuse another device's chain and a release counter
//! below a floor.
//!
//! Python: `$FERRY_INTEROP_PYTHON` (set by `.ci/run`, a virtual environment with
//! `interop/requirements.txt`), else `python3`; without python-tuf the test fails.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::trust::{Fleet, Publisher};
use ferry_api::*;
use ferry_core::Release;
use ferry_tuf::metadata::sign;
use ferry_tuf::{DelegatedRole, Delegations, KeyKind, SigningKey};
use sha2::Digest;

/// A python run that has not finished by then is killed and the test fails.
const PYTHON_LIMIT: Duration = Duration::from_secs(120);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/tuf_client.py")
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `python ARGS…`, killed after [`PYTHON_LIMIT`].
async fn run(python: &Path, args: Vec<OsString>) -> Output {
    let mut cmd = tokio::process::Command::new(python);
    cmd.args(&args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let out = tokio::time::timeout(PYTHON_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} did not finish within {PYTHON_LIMIT:?}; killed", python.display()))
        .unwrap();
    let out = Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // Shown by the test runner when the test fails.
    eprintln!("$ {} {args:?}\n{out}", python.display());
    out
}

/// The python with python-tuf installed; fails the test (never skips it) without one.
async fn interop_python() -> PathBuf {
    let python = PathBuf::from(std::env::var_os("FERRY_INTEROP_PYTHON").unwrap_or_else(|| "python3".into()));
    let probe = "import tuf.ngclient, cryptography; print(tuf.__version__)";
    let out = run(&python, vec!["-c".into(), probe.into()]).await;
    assert_eq!(
        out.code,
        Some(0),
        "python-tuf is not importable with {} (FERRY_INTEROP_PYTHON). Run `bash .ci/run`, or \
         `python3 -m venv target/interop-venv && target/interop-venv/bin/pip install -r interop/requirements.txt` \
         and set FERRY_INTEROP_PYTHON=$PWD/target/interop-venv/bin/python\n{out}",
        python.display()
    );
    python
}

/// Runs `tuf_client.py SUBCOMMAND …`.
async fn tuf_client(python: &Path, args: &[&dyn AsRef<OsStr>]) -> Output {
    let mut all: Vec<OsString> = vec![script().into()];
    all.extend(args.iter().map(|a| a.as_ref().to_owned()));
    run(python, all).await
}

/// Pushes root 1 of `publisher` and writes it to `file`, as a device is provisioned with it.
async fn push_root1(fleet: &Fleet, publisher: &Publisher, file: &Path) {
    let root1 = publisher.signed_root(1);
    fleet.admin.push_image_metadata("root", root1.clone()).await.unwrap();
    std::fs::write(file, &root1).unwrap();
}

/// Signs `metadata` of `role` with `key` and pushes it; the snapshot and timestamp versions the
/// server signed with it. They are not 1, 2, 3…: online-signed versions start at the signing
/// time in milliseconds (`ferry_server::trust::next_version`).
async fn push_signed<T: ferry_tuf::Role>(fleet: &Fleet, role: &str, metadata: &T, key: &SigningKey) -> [u64; 2] {
    let published = fleet.admin.push_image_metadata(role, sign(metadata, &[key]).unwrap()).await.unwrap();
    let version = |v: Option<u64>| v.unwrap_or_else(|| panic!("no snapshot or timestamp version in {published:?}"));
    [version(published.snapshot_version), version(published.timestamp_version)]
}

/// Firmware bytes of `len`, different for each `seed`.
fn firmware(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A device running `image` with its credential `token`: python-tuf refreshes from `root`,
/// keeping its trusted metadata in `metadata_dir`.
struct ImageClient<'a> {
    python: &'a Path,
    srv: &'a common::TestServer,
    token: &'a str,
    root: &'a Path,
    metadata_dir: &'a Path,
}

impl ImageClient<'_> {
    /// `image`: downloads `target` into `out_dir`.
    async fn run(&self, target: &str, out_dir: &Path) -> Output {
        let metadata_url = format!("{}/tuf/image/", self.srv.url);
        let target_url = format!("{}/tuf/image/targets/", self.srv.url);
        tuf_client(
            self.python,
            &[
                &"image",
                &"--metadata-url",
                &metadata_url,
                &"--target-url",
                &target_url,
                &"--token",
                &self.token,
                &"--root",
                &self.root,
                &"--metadata-dir",
                &self.metadata_dir,
                &"--target",
                &target,
                &"--out-dir",
                &out_dir,
            ],
        )
        .await
    }
}

/// `metadata`: python-tuf checks each of `names` (files in `dir`) from the trusted `root`; all
/// must verify. `whose`: whose metadata, for the failure message.
async fn assert_metadata_verified(python: &Path, root: &Path, dir: &Path, names: &[String], whose: &str) {
    let files: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"metadata", &"--root", &root];
    args.extend(files.iter().map(|f| f as &dyn AsRef<OsStr>));
    let out = tuf_client(python, &args).await;
    assert_eq!(out.code, Some(0), "python-tuf does not verify {whose} metadata:\n{out}");
    for name in names {
        assert!(out.stdout.lines().any(|l| l.starts_with(&format!("verified {name}: "))), "{name} unverified:\n{out}");
    }
}

/// The files in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

/// Checks what `image` printed and downloaded against `release` and its bytes.
fn assert_downloaded(out: &Output, release: &Release, data: &[u8]) {
    assert_eq!(out.code, Some(0), "python-tuf refused what Ferry serves:\n{out}");
    let line = out.stdout.lines().last().unwrap_or_else(|| panic!("no output:\n{out}"));
    let info: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    let artifact = &release.artifacts[0];
    assert_eq!(info["path"], release.target_path(&artifact.name));
    assert_eq!(info["length"], artifact.length);
    assert_eq!(info["length"], data.len());
    assert_eq!(info["sha256"], artifact.sha256.as_str());
    assert_eq!(info["sha256"], hex::encode(sha2::Sha256::digest(data)));
    let ferry = &info["custom"]["ferry"];
    assert_eq!(ferry["product"], "gw");
    assert_eq!(ferry["version"], release.version.to_string());
    assert_eq!(ferry["platforms"], serde_json::json!(["arm64"]));
    assert_eq!(ferry["release_counter"], release.counter);
    let file = info["file"].as_str().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), data, "the downloaded file has the release's bytes");
}

async fn image_repository(srv: common::TestServer) {
    let python = interop_python().await;
    let fleet = Fleet::checked_in(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    let work = tempfile::tempdir().unwrap();
    let metadata_dir = work.path().join("trusted");

    // Root v1, and top-level targets v1 listing release 2.0.
    let trusted_root = work.path().join("bootstrap.root.json");
    push_root1(&fleet, &publisher, &trusted_root).await;
    // Past python-tuf's download chunk size, so the target streams in several pieces.
    let data1 = firmware(1, 300_000);
    let r1 = fleet.publish("2.0", &data1).await;
    let targets1 = fleet.draft("targets", &[&r1]).await;
    // The snapshot and timestamp versions each push made the server sign.
    let mut online = vec![push_signed(&fleet, "targets", &targets1, &publisher.targets_key).await];
    assert_eq!(fleet.offered().await, vec!["2.0".to_owned()]);

    let client = ImageClient {
        python: &python,
        srv: &srv,
        token: &fleet.credential,
        root: &trusted_root,
        metadata_dir: &metadata_dir,
    };
    let out = client.run("gw/2.0/firmware.bin", &work.path().join("out1")).await;
    assert_downloaded(&out, &r1, &data1);

    // Root v2 with a new root key (signed by the old and the new); top-level targets v2
    // delegating gw/*/* to a per-product role `gw`, whose own targets list release 2.1.
    let new_root_key = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let root2 = sign(&publisher.root(2, &[&new_root_key]), &[&publisher.root_key, &new_root_key]).unwrap();
    fleet.admin.push_image_metadata("root", root2).await.unwrap();
    let gw_key = SigningKey::generate(KeyKind::Ed25519).unwrap();
    let mut targets2 = fleet.draft("targets", &[]).await;
    targets2.delegations = Some(Delegations {
        keys: BTreeMap::from([(gw_key.key_id().to_owned(), gw_key.public().clone())]),
        roles: vec![DelegatedRole {
            name: "gw".into(),
            keyids: vec![gw_key.key_id().to_owned()],
            threshold: 1,
            terminating: true,
            paths: Some(vec!["gw/*/*".into()]),
            path_hash_prefixes: None,
        }],
        unrecognized: Default::default(),
    });
    online.push(push_signed(&fleet, "targets", &targets2, &publisher.targets_key).await);
    let data2 = firmware(2, 70_000);
    let r2 = fleet.publish("2.1", &data2).await;
    let gw1 = fleet.draft("gw", &[&r2]).await;
    assert_eq!(gw1.version, 1);
    online.push(push_signed(&fleet, "gw", &gw1, &gw_key).await);
    assert!(online.windows(2).all(|w| w[0][0] < w[1][0] && w[0][1] < w[1][1]), "versions rise: {online:?}");
    assert!(fleet.offered().await.contains(&"2.1".to_owned()), "release 2.1 is signed by the delegated role");

    // python-tuf updates its trusted state (root 1 → 2, newer timestamp, snapshot, targets)
    // and finds 2.1 through the delegation.
    let out = client.run("gw/2.1/firmware.bin", &work.path().join("out2")).await;
    assert_downloaded(&out, &r2, &data2);
    let cached_root = std::fs::read(metadata_dir.join("root.json")).unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&cached_root).unwrap()["signed"]["version"], 2);

    // Every metadata file the server published, fetched over HTTP as served.
    let served = work.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let status = fleet.admin.trust_status().await.unwrap();
    let mut names = vec!["root.json".to_owned(), "timestamp.json".to_owned()];
    for (role, state) in &status.roles {
        let newest = state.version;
        match role.as_str() {
            // Signed online: the versions the pushes reported.
            "snapshot" | "timestamp" => {
                let versions: Vec<u64> = online.iter().map(|v| v[usize::from(role == "timestamp")]).collect();
                assert_eq!(versions.last(), Some(&newest), "the status names the newest {role}");
                names.extend(versions.iter().map(|v| format!("{v}.{role}.json")));
            }
            // Signed offline: 1, 2, 3…
            _ => names.extend((1..=newest).map(|v| format!("{v}.{role}.json"))),
        }
    }
    for expected in ["1.root.json", "2.root.json", "2.targets.json", "1.gw.json"] {
        assert!(names.iter().any(|n| n == expected), "{expected} is not among the published files {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.ends_with(".snapshot.json")).count(), 3, "{names:?}");
    let http = reqwest::Client::new();
    for name in &names {
        let resp =
            http.get(format!("{}/tuf/image/{name}", srv.url)).bearer_auth(&fleet.credential).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET /tuf/image/{name}");
        std::fs::write(served.join(name), resp.bytes().await.unwrap()).unwrap();
    }
    assert_metadata_verified(&python, &trusted_root, &served, &names, "Ferry's").await;

    // The checker is not vacuous: a targets file whose signed content was altered fails.
    let forged_path = served.join("forged").join("2.targets.json");
    std::fs::create_dir(forged_path.parent().unwrap()).unwrap();
    let genuine = std::fs::read_to_string(served.join("2.targets.json")).unwrap();
    let forged = genuine.replacen("\"threshold\": 1", "\"threshold\": 2", 1);
    assert_ne!(forged, genuine);
    std::fs::write(&forged_path, forged).unwrap();
    let out =
        tuf_client(&python, &[&"metadata", &"--root", &trusted_root, &served.join("2.root.json"), &forged_path]).await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("FAILED 2.targets.json"), "{out}");

    // Tampered bytes in the content store, same length: python-tuf must refuse them, and
    // leave nothing in the download directory.
    let blob = srv
        .data_dir
        .join("content")
        .join("sha256")
        .join(&r2.artifacts[0].sha256.as_str()[..2])
        .join(r2.artifacts[0].sha256.as_str());
    let mut tampered = std::fs::read(&blob).unwrap_or_else(|e| panic!("content blob {}: {e}", blob.display()));
    assert_eq!(tampered, data2);
    tampered[40_000] ^= 0xff;
    std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&blob, &tampered).unwrap();
    let out3 = work.path().join("out3");
    let out = client.run("gw/2.1/firmware.bin", &out3).await;
    assert_eq!(out.code, Some(1), "python-tuf accepted tampered target bytes:\n{out}");
    assert!(out.stderr.contains("LengthOrHashMismatchError") && out.stderr.contains("hash"), "{out}");
    let left = files_in(&out3);
    assert!(left.is_empty(), "a refused target was left in the download directory: {left:?}");
}

/// Trusted roots and metadata directory of a device running `director`.
struct DirectorClient<'a> {
    python: &'a Path,
    srv: &'a common::TestServer,
    director_root: &'a Path,
    image_root: &'a Path,
}

impl DirectorClient<'_> {
    /// `director` with `token`, at the URLs of `pointer` (a check-in's answer): python-tuf
    /// verifies the director chain against the image repository as `device` and downloads the
    /// images into `out_dir`. `extra`: more arguments (`--counter-floor`).
    async fn run(
        &self,
        pointer: &DirectorPointer,
        token: &str,
        device: &str,
        metadata_dir: &Path,
        out_dir: &Path,
        extra: &[&str],
    ) -> Output {
        let director_url = format!("{}{}", self.srv.url, pointer.metadata_url);
        let image_url = format!("{}{}", self.srv.url, pointer.image_metadata_url);
        let target_url = format!("{}{}", self.srv.url, pointer.image_targets_url);
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![
            &"director",
            &"--director-url",
            &director_url,
            &"--image-url",
            &image_url,
            &"--target-url",
            &target_url,
            &"--token",
            &token,
            &"--director-root",
            &self.director_root,
            &"--image-root",
            &self.image_root,
            &"--metadata-dir",
            &metadata_dir,
            &"--out-dir",
            &out_dir,
            &"--device",
            &device,
        ];
        args.extend(extra.iter().map(|a| a as &dyn AsRef<OsStr>));
        tuf_client(self.python, &args).await
    }
}

/// The JSON line `director` printed, after a success.
fn director_output(out: &Output) -> serde_json::Value {
    assert_eq!(out.code, Some(0), "python-tuf refused the director's instructions:\n{out}");
    let line = out.stdout.lines().last().unwrap_or_else(|| panic!("no output:\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}:\n{out}"))
}

/// Asserts that `director` refused with exit 1 and `rule` in its message.
fn assert_refused(out: &Output, rule: &str) {
    assert_eq!(out.code, Some(1), "python-tuf accepted what it must refuse ({rule}):\n{out}");
    assert!(out.stderr.contains("DirectorRuleError") && out.stderr.contains(rule), "expected {rule:?}:\n{out}");
}

/// Uptane with python-tuf: devices gw-1 and gw-2, provisioned with the director's root v1 and
/// the image repository's root; the director's per-device chain must name the device (also
/// when it lists nothing), agree with the image repository, and keep release counters up.
async fn director_repository(srv: common::TestServer) {
    let python = interop_python().await;
    let fleet = Fleet::checked_in(&srv).await;
    let publisher = Publisher::with_targets_key(&fleet.admin, KeyKind::Ed25519).await;
    let work = tempfile::tempdir().unwrap();

    // Image repository: root v1 and top-level targets v1 listing nothing yet.
    let image_root = work.path().join("image.1.root.json");
    push_root1(&fleet, &publisher, &image_root).await;
    let empty = fleet.draft("targets", &[]).await;
    fleet.push_targets(&publisher, &empty).await;

    // The director's root v1, as a device is provisioned with it.
    let director_root = work.path().join("director.1.root.json");
    let provisioned = fleet.device.director_metadata("1.root.json").await.unwrap().expect("director root v1");
    std::fs::write(&director_root, &provisioned).unwrap();
    let client = DirectorClient { python: &python, srv: &srv, director_root: &director_root, image_root: &image_root };
    let gw1_dir = work.path().join("gw-1");

    // An approved release that is not signed yet: the director lists nothing, and still names gw-1.
    let data = firmware(7, 90_000);
    let release = fleet.publish("3.0", &data).await;
    let pointer = fleet.director(&fleet.device).await;
    let out = client.run(&pointer, &fleet.credential, "gw-1", &gw1_dir, &work.path().join("out0"), &[]).await;
    let listed = director_output(&out);
    assert_eq!(listed["device"], "gw-1");
    assert_eq!(listed["director_version"], pointer.version, "{out}");
    assert_eq!(listed["targets"], serde_json::json!([]), "{out}");

    // Signed (targets v2): the director lists it for gw-1, python-tuf finds the same entry in
    // the image repository and downloads it. A floor equal to the counter is no rollback; a
    // floor for another product does not apply.
    let targets2 = fleet.draft("targets", &[&release]).await;
    fleet.push_targets(&publisher, &targets2).await;
    let pointer = fleet.director(&fleet.device).await;
    let floor = format!("gw={}", release.counter);
    let out1 = work.path().join("out1");
    let extra = ["--counter-floor", floor.as_str(), "--counter-floor", "other=1000000"];
    let out = client.run(&pointer, &fleet.credential, "gw-1", &gw1_dir, &out1, &extra).await;
    let listed = director_output(&out);
    assert_eq!(listed["device"], "gw-1");
    assert_eq!(listed["director_version"], pointer.version, "the version the check-in announced:\n{out}");
    let targets = listed["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{out}");
    let artifact = &release.artifacts[0];
    assert_eq!(targets[0]["path"], release.target_path(&artifact.name));
    assert_eq!(targets[0]["length"], artifact.length);
    assert_eq!(targets[0]["length"], data.len());
    assert_eq!(targets[0]["sha256"], artifact.sha256.as_str());
    assert_eq!(targets[0]["sha256"], hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(targets[0]["release_counter"], release.counter);
    let file = targets[0]["file"].as_str().unwrap();
    assert!(Path::new(file).starts_with(&out1), "{file}");
    assert_eq!(std::fs::read(file).unwrap(), data, "the downloaded image has the release's bytes");

    // (a) Another device's instructions: with gw-2's credential the server serves gw-2's
    // chain, which names gw-2; a device that is gw-1 refuses it.
    let (gw2, gw2_credential) = fleet.enroll(&srv, "gw-2").await;
    let gw2_pointer = fleet.director(&gw2).await;
    let out = client
        .run(&gw2_pointer, &gw2_credential, "gw-1", &work.path().join("gw-2"), &work.path().join("out2"), &[])
        .await;
    assert_refused(&out, "director metadata names another device");
    assert!(out.stderr.contains("'gw-2'"), "{out}");

    // (b) A counter floor above the release's counter: a rollback, refused before anything
    // is downloaded.
    let floor = format!("gw={}", release.counter + 1);
    let out3 = work.path().join("out3");
    let out = client.run(&pointer, &fleet.credential, "gw-1", &gw1_dir, &out3, &["--counter-floor", &floor]).await;
    assert_refused(&out, "release counter goes down");
    let left = files_in(&out3);
    assert!(left.is_empty(), "a refused image was downloaded: {left:?}");

    // Every director file served for gw-1, checked with python-tuf's Metadata API from the
    // provisioned director root.
    let served = work.path().join("director-served");
    std::fs::create_dir(&served).unwrap();
    let fetch = |name: String| {
        let device = &fleet.device;
        let served = &served;
        async move {
            let bytes = device.director_metadata(&name).await.unwrap().unwrap_or_else(|| panic!("director {name}"));
            std::fs::write(served.join(&name), &bytes).unwrap();
            (name, bytes)
        }
    };
    let mut files = vec![fetch("1.root.json".into()).await, fetch("root.json".into()).await];
    let timestamp = fetch("timestamp.json".into()).await;
    let timestamp_json: serde_json::Value = serde_json::from_slice(&timestamp.1).unwrap();
    assert_eq!(timestamp_json["signed"]["version"], pointer.version);
    let version = timestamp_json["signed"]["meta"]["snapshot.json"]["version"].as_u64().unwrap();
    files.push(timestamp);
    files.push(fetch(format!("{version}.snapshot.json")).await);
    files.push(fetch(format!("{version}.targets.json")).await);
    let names: Vec<String> = files.into_iter().map(|(name, _)| name).collect();
    assert_metadata_verified(&python, &director_root, &served, &names, "the director's").await;
}

on_both_backends_signed!(
    image_repository,
    python_tuf_verifies_the_image_repository_sqlite,
    python_tuf_verifies_the_image_repository_postgres
);
on_both_backends_signed!(
    director_repository,
    python_tuf_verifies_the_director_repository_sqlite,
    python_tuf_verifies_the_director_repository_postgres
);
