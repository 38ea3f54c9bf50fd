//! The image repository end to end (docs/trust.md): publisher keys made here, offline-style;
//! root and targets pushed to a real server over HTTP; the server's snapshot and timestamp
//! checked with the verification code devices use. On SQLite and PostgreSQL.

mod common;

use common::trust::{now, Fleet, Publisher};
use ferry_api::*;
use ferry_client::{ClientError, DeviceClient};
use ferry_tuf::metadata::{add_signatures, sign};
use ferry_tuf::trusted::TrustedSet;
use ferry_tuf::{KeyKind, Root, Snapshot, Targets, Timestamp, Verifiable};

fn api_error(e: &ClientError) -> (u16, ErrorCode, String) {
    match e {
        ClientError::Api { status, code, message, .. } => (*status, *code, message.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

async fn signed_targets_gate_offers(srv: common::TestServer) {
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    let release = fleet.publish("2.0", b"firmware two").await;
    assert_eq!(fleet.offered().await, Vec::<String>::new(), "an unsigned release is not offered");
    let gw1: ferry_core::DeviceId = "gw-1".parse().unwrap();
    let why = fleet.admin.device_applicability(&gw1).await.unwrap();
    assert_eq!(why.awaiting_signature, vec![release.id], "the why report says it waits for a signature");

    // Targets before any root: refused, nothing stored.
    let draft = fleet.admin.draft_targets("targets", None, Some(30)).await.unwrap();
    let unsigned = serde_json::to_vec(&draft).unwrap();
    let e = fleet.admin.push_image_metadata("targets", unsigned.clone()).await.unwrap_err();
    assert_eq!(api_error(&e).0, 409);

    // A root that leaves out the server's online keys is refused and says what to do.
    let mut foreign = publisher.root(1, &[&publisher.root_key]);
    foreign.set_role("timestamp", &[publisher.root_key.public().clone()], 1);
    let e = fleet.admin.push_image_metadata("root", sign(&foreign, &[&publisher.root_key]).unwrap()).await.unwrap_err();
    let (status, code, message) = api_error(&e);
    assert_eq!((status, code), (400, ErrorCode::InvalidMetadata));
    assert!(message.contains("online-keys"), "{message}");
    // Signed by a key the root does not list: threshold not met.
    let stranger = ferry_tuf::SigningKey::generate(KeyKind::Ed25519).unwrap();
    let root1 = publisher.root(1, &[&publisher.root_key]);
    let e = fleet.admin.push_image_metadata("root", sign(&root1, &[&stranger]).unwrap()).await.unwrap_err();
    assert!(api_error(&e).2.contains("valid signature"), "{e}");
    let root1_bytes = sign(&root1, &[&publisher.root_key]).unwrap();
    fleet.admin.push_image_metadata("root", root1_bytes.clone()).await.unwrap();
    assert_eq!(fleet.fetch("1.root.json").await, root1_bytes, "the root is served byte for byte");

    // Unsigned targets, or signed by the wrong key: refused.
    let e = fleet.admin.push_image_metadata("targets", unsigned.clone()).await.unwrap_err();
    assert_eq!(api_error(&e).1, ErrorCode::InvalidMetadata);
    let by_stranger = add_signatures::<Targets>(&unsigned, &[&stranger]).unwrap();
    assert_eq!(
        api_error(&fleet.admin.push_image_metadata("targets", by_stranger).await.unwrap_err()).1,
        ErrorCode::InvalidMetadata
    );
    // The targets key's signature listed twice: refused as the specification requires, even
    // though the one signature alone meets the threshold.
    let signed = add_signatures::<Targets>(&unsigned, &[&publisher.targets_key]).unwrap();
    let mut doubled: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    let first = doubled["signatures"][0].clone();
    doubled["signatures"].as_array_mut().unwrap().push(first);
    let e = fleet.admin.push_image_metadata("targets", serde_json::to_vec(&doubled).unwrap()).await.unwrap_err();
    let (status, code, message) = api_error(&e);
    assert_eq!((status, code), (400, ErrorCode::InvalidMetadata), "{message}");
    assert!(message.contains("more than once"), "{message}");
    assert_eq!(fleet.offered().await, Vec::<String>::new());
    assert!(fleet.device.image_metadata("timestamp.json").await.unwrap().is_none(), "nothing published yet");

    // Signed by the targets key: published with a snapshot and timestamp, and offered.
    let signed = add_signatures::<Targets>(&unsigned, &[&publisher.targets_key]).unwrap();
    let published = fleet.admin.push_image_metadata("targets", signed.clone()).await.unwrap();
    assert_eq!(published.version, 1);
    assert_eq!(fleet.offered().await, vec!["2.0".to_owned()]);
    assert!(fleet.admin.device_applicability(&gw1).await.unwrap().awaiting_signature.is_empty());
    // The same version again loses: metadata is immutable.
    let e = fleet.admin.push_image_metadata("targets", signed.clone()).await.unwrap_err();
    assert_eq!(api_error(&e).1, ErrorCode::InvalidMetadata, "{e}");

    // What a device fetches verifies: timestamp → snapshot → targets, with the root's keys.
    let root = Verifiable::<Root>::parse("root", &fleet.fetch("1.root.json").await).unwrap().signed;
    let timestamp = Verifiable::<Timestamp>::parse("timestamp", &fleet.fetch("timestamp.json").await).unwrap();
    timestamp.verify_with_root("timestamp", &root).unwrap();
    let snap_meta = timestamp.signed.snapshot_meta().unwrap().clone();
    let snapshot_bytes = fleet.fetch(&format!("{}.snapshot.json", snap_meta.version)).await;
    snap_meta.check("snapshot", &snapshot_bytes).unwrap();
    let snapshot = Verifiable::<Snapshot>::parse("snapshot", &snapshot_bytes).unwrap();
    snapshot.verify_with_root("snapshot", &root).unwrap();
    let targets_version = snapshot.signed.meta["targets.json"].version;
    let targets =
        Verifiable::<Targets>::parse("targets", &fleet.fetch(&format!("{targets_version}.targets.json")).await)
            .unwrap();
    targets.verify_with_root("targets", &root).unwrap();
    let entry = &targets.signed.targets["gw/2.0/firmware.bin"];
    assert_eq!(entry.length, release.artifacts[0].length);
    assert_eq!(entry.sha256(), Some(release.artifacts[0].sha256.as_str()));
    assert_eq!(entry.custom.as_ref().unwrap()["ferry"]["release_counter"], release.counter);

    // The target is served at its consistent-snapshot path to an entitled device.
    let hash = release.artifacts[0].sha256.as_str();
    let url = format!("{}/tuf/image/targets/gw/2.0/{hash}.firmware.bin", srv.url);
    let credential = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(credential.status(), 401, "no credential, no target");
    let body = reqwest::Client::new().get(&url).bearer_auth(&srv.admin_token).send().await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(&body.bytes().await.unwrap()[..], b"firmware two");

    // Root rotation: version 2 signed by the old and the new root key is accepted; version 3
    // signed only by its new key is not.
    let new_root_key = ferry_tuf::SigningKey::generate(KeyKind::Ed25519).unwrap();
    let root2 = publisher.root(2, &[&new_root_key]);
    let only_new = sign(&root2, &[&new_root_key]).unwrap();
    let e = fleet.admin.push_image_metadata("root", only_new).await.unwrap_err();
    assert!(api_error(&e).2.contains("trusted root"), "{e}");
    fleet
        .admin
        .push_image_metadata("root", sign(&root2, &[&publisher.root_key, &new_root_key]).unwrap())
        .await
        .unwrap();
    let newest_key = ferry_tuf::SigningKey::generate(KeyKind::Ed25519).unwrap();
    let root3 = publisher.root(3, &[&newest_key]);
    let e = fleet.admin.push_image_metadata("root", sign(&root3, &[&newest_key]).unwrap()).await.unwrap_err();
    assert_eq!(api_error(&e).1, ErrorCode::InvalidMetadata);
    let status = serde_json::to_value(fleet.admin.trust_status().await.unwrap()).unwrap();
    assert_eq!(status["roles"]["root"]["version"], 2);
    assert_eq!(status["unsigned_releases"], serde_json::json!([]));
}

on_both_backends_signed!(signed_targets_gate_offers);

/// A device's director chain as the device verifies it: root from the server, then timestamp,
/// snapshot and targets through the client state machine.
async fn director_targets(device: &DeviceClient) -> (u64, Targets) {
    let fetch = |file: String| async move {
        device.director_metadata(&file).await.unwrap().unwrap_or_else(|| panic!("director {file} missing")).to_vec()
    };
    let mut trusted = TrustedSet::new(&fetch("1.root.json".into()).await, now()).unwrap();
    while let Some(next) = device.director_metadata(&format!("{}.root.json", trusted.root().version + 1)).await.unwrap()
    {
        trusted.update_root(&next).unwrap();
    }
    trusted.check_final_root().unwrap();
    let update = trusted.update_timestamp(&fetch("timestamp.json".into()).await).unwrap();
    assert_eq!(update, ferry_tuf::trusted::TimestampUpdate::Updated);
    let version = trusted.timestamp().unwrap().snapshot_meta().unwrap().version;
    trusted.update_snapshot(&fetch(format!("{version}.snapshot.json")).await).unwrap();
    let targets_version = trusted.snapshot_meta("targets").unwrap().version;
    trusted.update_targets(&fetch(format!("{targets_version}.targets.json")).await).unwrap();
    (version, trusted.targets().unwrap().clone())
}

async fn director_names_device_and_never_goes_back(srv: common::TestServer) {
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    let start = now();

    // Before anything is published: the device is pointed at metadata that lists nothing but
    // still names it.
    let first = fleet.director(&fleet.device).await;
    assert_eq!(first.metadata_url, "/tuf/director/");
    assert!(first.version >= start as u64 * 1000, "versions start at the issue time in ms: {}", first.version);
    let (version, targets) = director_targets(&fleet.device).await;
    assert_eq!(version, first.version);
    assert!(targets.targets.is_empty());
    assert_eq!(targets.unrecognized["custom"]["device"], "gw-1");
    assert_eq!(
        fleet.checkin(&fleet.device, None).await.director.unwrap().version,
        first.version,
        "unchanged: no reissue"
    );

    // An approved but unsigned release is not in the director's instructions either.
    let release = fleet.publish("2.0", b"firmware two").await;
    let (_, targets) = director_targets(&fleet.device).await;
    assert!(targets.targets.is_empty(), "unsigned releases are never directed");

    // Signed: the director lists it, agreeing with the image repository's entry.
    fleet.sign_all(&publisher).await;
    let second = fleet.checkin(&fleet.device, None).await.director.unwrap();
    assert!(second.version > first.version);
    let (version, targets) = director_targets(&fleet.device).await;
    assert_eq!(version, second.version);
    let entry = &targets.targets["gw/2.0/firmware.bin"];
    assert_eq!(entry.length, release.artifacts[0].length);
    assert_eq!(entry.sha256(), Some(release.artifacts[0].sha256.as_str()));
    let custom = entry.custom.as_ref().unwrap();
    assert_eq!(custom["device"], "gw-1");
    assert_eq!(custom["ferry"]["release_counter"], release.counter);
    let image = Verifiable::<Targets>::parse("targets", &fleet.fetch("1.targets.json").await).unwrap();
    assert_eq!(custom["ferry"], image.signed.targets["gw/2.0/firmware.bin"].custom.as_ref().unwrap()["ferry"]);

    // Another device gets its own chain, naming it; it cannot fetch gw-1's files by version.
    let (other, _) = fleet.enroll(&srv, "gw-2").await;
    let theirs = fleet.checkin(&other, None).await.director.unwrap();
    let (_, targets) = director_targets(&other).await;
    assert_eq!(targets.unrecognized["custom"]["device"], "gw-2");
    assert_eq!(targets.targets["gw/2.0/firmware.bin"].custom.as_ref().unwrap()["device"], "gw-2");
    if theirs.version != second.version {
        let e = other.director_metadata(&format!("{}.targets.json", second.version)).await.unwrap();
        assert!(e.is_none(), "another device's version is not served");
    }
    // Admins get the root, but per-device files only with the device's credential.
    let admin_device = DeviceClient::new(&srv.url, Some(srv.admin_token.clone())).unwrap();
    assert!(admin_device.director_metadata("root.json").await.unwrap().is_some());
    let e = admin_device.director_metadata("timestamp.json").await.unwrap_err();
    assert_eq!(api_error(&e).0, 403);

    // After a database restore the stored version may be older than what the device trusts; the
    // device reports its version and the server issues above it.
    let claimed = second.version + 5_000;
    let third = fleet.checkin(&fleet.device, Some(claimed)).await.director.unwrap();
    assert!(third.version > claimed, "{} must exceed the reported {claimed}", third.version);
    let (version, targets) = director_targets(&fleet.device).await;
    assert_eq!(version, third.version);
    assert!(targets.targets.contains_key("gw/2.0/firmware.bin"));
    // A claim from the far future does not push the version out of reach.
    let far = fleet.checkin(&fleet.device, Some(u64::MAX - 1)).await.director.unwrap();
    assert_eq!(far.version, third.version);

    // A rejected device gets no pointer.
    fleet.admin.reject_device(&"gw-2".parse().unwrap()).await.unwrap();
    let e = other.checkin(&CheckinRequest::default()).await;
    assert!(e.map(|r| r.director.is_none()).unwrap_or(true));
}

on_both_backends_signed!(director_names_device_and_never_goes_back);

async fn admin_post(srv: &common::TestServer, path: &str) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1{path}", srv.url))
        .bearer_auth(&srv.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "POST {path}");
    resp.json().await.unwrap()
}

/// The device-side chain after a refresh from `root` (bytes of the root the device trusts).
async fn refresh_image(fleet: &Fleet, trusted_root: &[u8]) -> TrustedSet {
    let mut trusted = TrustedSet::new(trusted_root, now()).unwrap();
    loop {
        let next = trusted.root().version + 1;
        match fleet.device.image_metadata(&format!("{next}.root.json")).await.unwrap() {
            Some(bytes) => trusted.update_root(&bytes).unwrap(),
            None => break,
        }
    }
    trusted.check_final_root().unwrap();
    let update = trusted.update_timestamp(&fleet.fetch("timestamp.json").await).unwrap();
    assert_eq!(update, ferry_tuf::trusted::TimestampUpdate::Updated);
    let version = trusted.timestamp().unwrap().snapshot_meta().unwrap().version;
    trusted.update_snapshot(&fleet.fetch(&format!("{version}.snapshot.json")).await).unwrap();
    let targets = trusted.snapshot_meta("targets").unwrap().version;
    trusted.update_targets(&fleet.fetch(&format!("{targets}.targets.json")).await).unwrap();
    trusted
}

async fn online_keys_rotate(srv: common::TestServer) {
    let fleet = Fleet::new(&srv).await;
    let mut publisher = Publisher::new(&fleet.admin).await;
    fleet.publish("2.0", b"firmware two").await;
    fleet.sign_all(&publisher).await;
    let root1 = fleet.fetch("1.root.json").await;
    let before = refresh_image(&fleet, &root1).await;
    assert!(before.targets().unwrap().targets.contains_key("gw/2.0/firmware.bin"));
    let old_timestamp = publisher.online["timestamp"].clone();

    // The server makes the next snapshot and timestamp keys; they wait until a root lists them.
    let next = admin_post(&srv, "/trust/image/online-keys/next").await;
    assert_ne!(next["timestamp"], old_timestamp);
    assert_eq!(admin_post(&srv, "/trust/image/online-keys/next").await, next, "asking again gives the same keys");
    let listed = serde_json::to_value(fleet.admin.online_keys().await.unwrap()).unwrap();
    assert_eq!(listed["timestamp"], old_timestamp, "still in force");
    assert_eq!(listed["next"]["timestamp"], next["timestamp"]);

    // Root 2 lists them, signed offline by the root key: the server switches keys and re-signs.
    publisher.online = next.clone();
    let root2 = publisher.signed_root(2);
    let published = fleet.admin.push_image_metadata("root", root2).await.unwrap();
    assert!(published.timestamp_version.is_some(), "{published:?}");
    let listed = serde_json::to_value(fleet.admin.online_keys().await.unwrap()).unwrap();
    assert_eq!(listed["timestamp"], next["timestamp"]);
    assert!(listed.get("next").is_none(), "{listed}");

    // A device that trusted root 1 follows to root 2, sees the keys rotated, and accepts the
    // chain signed with the new keys.
    let mut after = TrustedSet::new(&root1, now()).unwrap();
    after.update_root(&fleet.fetch("2.root.json").await).unwrap();
    assert!(after.online_keys_rotated());
    let after = refresh_image(&fleet, &root1).await;
    assert_eq!(after.root().version, 2);
    assert!(after.targets().unwrap().targets.contains_key("gw/2.0/firmware.bin"));
    // A timestamp signed with the retired key would no longer verify: the served one is new.
    let timestamp = Verifiable::<Timestamp>::parse("timestamp", &fleet.fetch("timestamp.json").await).unwrap();
    let root2 = Verifiable::<Root>::parse("root", &fleet.fetch("2.root.json").await).unwrap().signed;
    timestamp.verify_with_root("timestamp", &root2).unwrap();
    let root1 = Verifiable::<Root>::parse("root", &root1).unwrap().signed;
    assert!(timestamp.verify_with_root("timestamp", &root1).is_err(), "signed by the new key, not the old");

    // Publishing goes on with the new keys.
    fleet.publish("2.1", b"firmware two point one").await;
    fleet.sign_targets(&publisher).await;
    let latest = refresh_image(&fleet, &fleet.fetch("1.root.json").await).await;
    assert!(latest.targets().unwrap().targets.contains_key("gw/2.1/firmware.bin"));

    // A root that goes back to the retired keys is refused: they are gone.
    publisher.online["timestamp"] = old_timestamp;
    let root3 = publisher.signed_root(3);
    let e = fleet.admin.push_image_metadata("root", root3).await.unwrap_err();
    let (status, code, message) = api_error(&e);
    assert_eq!((status, code), (400, ErrorCode::InvalidMetadata));
    assert!(message.contains("timestamp role"), "{message}");
}

on_both_backends_signed!(online_keys_rotate);

async fn director_keys_rotate(srv: common::TestServer) {
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    fleet.publish("2.0", b"firmware two").await;
    fleet.sign_all(&publisher).await;
    let first = fleet.checkin(&fleet.device, None).await.director.unwrap();
    let root1 = fleet.device.director_metadata("1.root.json").await.unwrap().unwrap();

    let rotated = admin_post(&srv, "/trust/director/rotate").await;
    assert_eq!(rotated["root_version"], 2);
    assert_ne!(rotated["director"], publisher.online["director"]);
    let root2 = fleet.device.director_metadata("2.root.json").await.unwrap().expect("root 2 is published");

    // The device follows root 1 → 2 (signed by the old and the new root key), and the chain
    // issued now is signed with the new director key.
    let second = fleet.checkin(&fleet.device, None).await.director.unwrap();
    assert!(second.version > first.version, "every chain is reissued with the new key");
    let mut trusted = TrustedSet::new(&root1, now()).unwrap();
    trusted.update_root(&root2).unwrap();
    assert!(trusted.online_keys_rotated());
    let timestamp = fleet.device.director_metadata("timestamp.json").await.unwrap().unwrap();
    assert_eq!(trusted.update_timestamp(&timestamp).unwrap(), ferry_tuf::trusted::TimestampUpdate::Updated);
    let old_root = TrustedSet::new(&root1, now()).unwrap();
    let t = Verifiable::<Timestamp>::parse("timestamp", &timestamp).unwrap();
    assert!(t.verify_with_root("timestamp", old_root.root()).is_err(), "the old director key no longer signs");
    let (_, targets) = director_targets(&fleet.device).await;
    assert!(targets.targets.contains_key("gw/2.0/firmware.bin"));
}

on_both_backends_signed!(director_keys_rotate);

/// Ferry's own device-side client against a real server: the director names the release,
/// the image repository agrees, the target downloads and verifies; a floor above the
/// release's counter refuses it.
async fn updater_installs_what_the_director_assigns(srv: common::TestServer) {
    use ferry_updater::{Director, Updater, UpdaterConfig};
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    let release = fleet.publish("2.0", b"firmware two, signed").await;
    fleet.sign_all(&publisher).await;
    let pointer = fleet.checkin(&fleet.device, None).await.director.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let targets_url = format!("{}{}", srv.url, pointer.image_targets_url);
    let updater = |repo: &str, base: &str, root: Vec<u8>| {
        let base = format!("{}{base}", srv.url);
        let metadata_dir = dir.path().join(repo);
        let (credential, targets_url) = (fleet.credential.clone(), targets_url.clone());
        async move {
            ferry_updater::init(&metadata_dir, &root).await.unwrap();
            let mut config = UpdaterConfig::new(metadata_dir, base.parse().unwrap());
            config.target_base_url = Some(targets_url.parse().unwrap());
            config.headers.insert("authorization", format!("Bearer {credential}").parse().unwrap());
            Updater::new(config).unwrap()
        }
    };
    let director_root = fleet.device.director_metadata("1.root.json").await.unwrap().unwrap().to_vec();
    let image_root = fleet.fetch("1.root.json").await;
    let mut both = Director::new(
        updater("director", &pointer.metadata_url, director_root).await,
        updater("image", &pointer.image_metadata_url, image_root).await,
    );
    let (director, _) = both.refresh_both().await.unwrap();
    assert_eq!(director.timestamp_version, pointer.version, "the check-in names the version served");
    let assigned = both.assigned("gw-1", "arm64", &Default::default()).await.unwrap();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].path, "gw/2.0/firmware.bin");
    let file = both.download(&assigned[0], &dir.path().join("downloads")).await.unwrap();
    assert_eq!(std::fs::read(file).unwrap(), b"firmware two, signed");

    let floors = [("gw".to_owned(), release.counter + 1)].into();
    let e = both.assigned("gw-1", "arm64", &floors).await.unwrap_err();
    assert!(e.to_string().contains("release counter goes down"), "{e}");
    let e = both.assigned("gw-2", "arm64", &Default::default()).await.unwrap_err();
    assert!(e.to_string().contains("gw-1"), "metadata for gw-1 is refused as gw-2's: {e}");
}

on_both_backends_signed!(updater_installs_what_the_director_assigns);

/// What the background task does every minute, driven here at chosen times: online metadata is
/// re-signed at half its lifetime, before it expires, and devices accept the result.
async fn online_metadata_is_resigned_before_it_expires(srv: common::TestServer) {
    use ferry_server::trust::{director, image};
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    fleet.publish("2.0", b"firmware two").await;
    fleet.sign_all(&publisher).await;
    let start = now();
    let parse_timestamp = |b: &[u8]| Verifiable::<Timestamp>::parse("timestamp", b).unwrap().signed;
    let first = parse_timestamp(&fleet.fetch("timestamp.json").await);
    let trust = &srv.state.config.trust;

    assert!(!image::refresh(&srv.state, start).await.unwrap(), "fresh metadata is left alone");
    // Past half the timestamp's lifetime: a new timestamp for the same snapshot.
    let later = start + trust.timestamp_expiry_secs as i64 / 2 + 60;
    assert!(image::refresh(&srv.state, later).await.unwrap());
    let second = parse_timestamp(&fleet.fetch("timestamp.json").await);
    assert!(second.version > first.version, "{} after {}", second.version, first.version);
    assert!(second.version >= later as u64 * 1000, "at least the signing time in ms: {}", second.version);
    assert_eq!(second.snapshot_meta().unwrap().version, first.snapshot_meta().unwrap().version);
    assert!(
        ferry_tuf::time::parse_expires(&second.expires).unwrap()
            > ferry_tuf::time::parse_expires(&first.expires).unwrap()
    );
    assert!(!image::refresh(&srv.state, later).await.unwrap(), "once is enough");
    // Past half the snapshot's lifetime: a new snapshot and timestamp; a device at that time
    // verifies the whole chain.
    let much_later = start + trust.snapshot_expiry_secs as i64 / 2 + 60;
    assert!(image::refresh(&srv.state, much_later).await.unwrap());
    let third = parse_timestamp(&fleet.fetch("timestamp.json").await);
    assert!(third.snapshot_meta().unwrap().version > first.snapshot_meta().unwrap().version);
    let mut device = TrustedSet::new(&fleet.fetch("1.root.json").await, much_later).unwrap();
    assert_eq!(
        device.update_timestamp(&fleet.fetch("timestamp.json").await).unwrap(),
        ferry_tuf::TimestampUpdate::Updated
    );
    let snapshot = device.timestamp().unwrap().snapshot_meta().unwrap().version;
    device.update_snapshot(&fleet.fetch(&format!("{snapshot}.snapshot.json")).await).unwrap();
    let targets = device.snapshot_meta("targets").unwrap().version;
    device.update_targets(&fleet.fetch(&format!("{targets}.targets.json")).await).unwrap();

    // The director: a device's chain is reissued past half its lifetime, above the old version;
    // the director root is re-signed past half of its own, and devices follow it.
    let first_chain = fleet.director(&fleet.device).await.version;
    let device_record = srv.store.get_device(&"gw-1".parse().unwrap()).await.unwrap().unwrap();
    let eval = ferry_server::offers::evaluate(&srv.state, &device_record).await.unwrap();
    let at = start + trust.director_expiry_secs as i64 / 2 + 60;
    let reissued = director::current(&srv.state, &device_record, &eval, None, at).await.unwrap();
    assert!(reissued.version > first_chain);
    let t = Verifiable::<Timestamp>::parse("timestamp", &reissued.files.timestamp).unwrap().signed;
    assert_eq!(ferry_tuf::time::parse_expires(&t.expires).unwrap(), at + trust.director_expiry_secs as i64);
    let root_v1 = fleet.device.director_metadata("1.root.json").await.unwrap().unwrap();
    let next_year = start + director::ROOT_EXPIRY_SECS / 2 + 60;
    assert_eq!(director::ensure_root(&srv.state, next_year).await.unwrap(), 2);
    let mut trusted = TrustedSet::new(&root_v1, next_year).unwrap();
    trusted.update_root(&fleet.device.director_metadata("2.root.json").await.unwrap().unwrap()).unwrap();
    trusted.check_final_root().unwrap();
}

on_both_backends_signed!(online_metadata_is_resigned_before_it_expires);

/// A crash after a rotating root was stored but before the waiting keys were renamed into
/// place: the next start finishes the rotation; a waiting key no root lists stays waiting.
async fn an_interrupted_rotation_is_finished_at_start(srv: common::TestServer) {
    use ferry_server::trust::{image, keys};
    use ferry_store::{MetadataFile, Repo};
    let fleet = Fleet::new(&srv).await;
    let mut publisher = Publisher::new(&fleet.admin).await;
    fleet.admin.push_image_metadata("root", publisher.signed_root(1)).await.unwrap();
    let next = serde_json::to_value(fleet.admin.next_online_keys().await.unwrap()).unwrap();
    // Root 2 listing the waiting keys lands in the database, and then the server stops.
    publisher.online = next.clone();
    let root2 = publisher.signed_root(2);
    let file = MetadataFile { repo: Repo::Image, role: "root".into(), version: 2, bytes: root2, created_at: now() };
    srv.store.put_metadata(&[file]).await.unwrap();
    let dir = srv.state.config.keys_dir();
    assert!(keys::next_key(&dir, keys::TIMESTAMP).unwrap().is_some());
    assert_ne!(serde_json::to_value(srv.state.keys().timestamp.public()).unwrap(), next["timestamp"]);

    image::adopt_rotated_keys(&srv.state).await.unwrap();
    assert_eq!(serde_json::to_value(srv.state.keys().timestamp.public()).unwrap(), next["timestamp"]);
    assert_eq!(serde_json::to_value(srv.state.keys().snapshot.public()).unwrap(), next["snapshot"]);
    assert!(keys::next_key(&dir, keys::TIMESTAMP).unwrap().is_none(), "the waiting key took over");

    // A rotation started but not yet listed by any root is left waiting.
    let waiting = serde_json::to_value(fleet.admin.next_online_keys().await.unwrap()).unwrap();
    image::adopt_rotated_keys(&srv.state).await.unwrap();
    assert_eq!(serde_json::to_value(srv.state.keys().timestamp.public()).unwrap(), next["timestamp"]);
    assert_eq!(
        serde_json::to_value(fleet.admin.online_keys().await.unwrap()).unwrap()["next"]["timestamp"],
        waiting["timestamp"]
    );
}

on_both_backends_signed!(an_interrupted_rotation_is_finished_at_start);

/// A database restored from a backup holds older image snapshot and timestamp versions than
/// devices have seen. What the server signs next is still above those (versions are at least
/// the signing time in milliseconds), so a device takes it instead of refusing it as a
/// rollback. Re-signing is driven at chosen times, each later than the one before.
async fn image_versions_stay_above_what_devices_saw_after_a_restore(backend: common::Backend) {
    use ferry_server::trust::image;
    use ferry_store::Repo;
    use ferry_updater::{Updater, UpdaterConfig};
    let srv = common::trust::signed_server(backend).await;
    let start = now();
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    fleet.publish("2.0", b"firmware two").await;
    fleet.sign_all(&publisher).await;
    let first = Verifiable::<Timestamp>::parse("timestamp", &fleet.fetch("timestamp.json").await).unwrap().signed;
    let floor = start as u64 * 1000;
    assert!(first.version >= floor, "the timestamp version is at least the time in ms: {}", first.version);
    assert!(first.snapshot_meta().unwrap().version >= floor, "so is the snapshot's: {first:?}");

    // The backup: the image repository as stored now (root 1, targets 1, snapshot, timestamp).
    let mut backup = Vec::new();
    for (role, _) in srv.store.metadata_roles(Repo::Image).await.unwrap() {
        backup.push(srv.store.latest_metadata(Repo::Image, &role).await.unwrap().unwrap());
    }
    assert_eq!(backup.len(), 4, "{:?}", backup.iter().map(|f| (&f.role, f.version)).collect::<Vec<_>>());

    // After the backup, the server re-signs (past half the snapshot's lifetime) and a device,
    // which keeps what it trusts in its metadata directory, takes those versions.
    let metadata_dir = tempfile::tempdir().unwrap();
    ferry_updater::init(metadata_dir.path(), &fleet.fetch("1.root.json").await).await.unwrap();
    let device = |server: &common::TestServer, at: i64| {
        let url = format!("{}/tuf/image/", server.url).parse().unwrap();
        let mut config = UpdaterConfig::new(metadata_dir.path(), url);
        config.headers.insert("authorization", format!("Bearer {}", server.admin_token).parse().unwrap());
        config.now = Some(at);
        Updater::new(config).unwrap()
    };
    let mid = start + srv.state.config.trust.snapshot_expiry_secs as i64 / 2 + 60;
    assert!(image::refresh(&srv.state, mid).await.unwrap());
    let seen = device(&srv, mid).refresh().await.unwrap();
    assert!(seen.timestamp_version > first.version, "{seen:?}");

    // The restore: a server with the same keys whose database is the backup. Its stored
    // versions are below what the device trusts.
    let keys_dir = srv.state.config.keys_dir();
    let restored = common::TestServer::start_with(backend, |c| {
        c.trust.require_signed_releases = true;
        c.trust.keys_dir = keys_dir;
    })
    .await;
    restored.store.put_metadata(&backup).await.unwrap();
    let stored = restored.store.latest_metadata(Repo::Image, "timestamp").await.unwrap().unwrap();
    assert!(stored.version < seen.timestamp_version);

    // The restored server's next snapshot and timestamp are above the device's, which takes them.
    let later = mid + 60;
    assert!(image::refresh(&restored.state, later).await.unwrap());
    let after = device(&restored, later).refresh().await.unwrap();
    assert!(after.timestamp_changed, "{after:?}");
    assert!(after.timestamp_version > seen.timestamp_version, "{after:?} after {seen:?}");
    assert!(after.snapshot_version > seen.snapshot_version, "{after:?} after {seen:?}");
    assert_eq!((after.root_version, after.targets_version), (1, 1));
}

mod image_versions_stay_above_what_devices_saw_after_a_restore {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::image_versions_stay_above_what_devices_saw_after_a_restore(super::common::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::image_versions_stay_above_what_devices_saw_after_a_restore(super::common::Backend::Postgres).await;
    }
}

/// A rotating root is stored, but a waiting key cannot be renamed into place (here the key file
/// is in the way as a directory): the push fails, yet the server signs only with the keys the
/// root lists from then on; once the directory is fixed, the start finishes the rotation.
async fn a_rotation_the_keys_directory_cannot_follow_signs_with_the_new_keys(srv: common::TestServer) {
    use ferry_server::trust::{image, keys};
    let fleet = Fleet::new(&srv).await;
    let mut publisher = Publisher::new(&fleet.admin).await;
    fleet.publish("2.0", b"firmware two").await;
    fleet.sign_all(&publisher).await;
    let root1 = fleet.fetch("1.root.json").await;
    let next = serde_json::to_value(fleet.admin.next_online_keys().await.unwrap()).unwrap();
    let dir = srv.state.config.keys_dir();
    let in_the_way = dir.join(format!("{}.pk8", keys::TIMESTAMP));
    std::fs::remove_file(&in_the_way).unwrap();
    std::fs::create_dir(&in_the_way).unwrap();

    publisher.online = next.clone();
    let e = fleet.admin.push_image_metadata("root", publisher.signed_root(2)).await.unwrap_err();
    assert_eq!(api_error(&e).0, 500, "{e}");
    let in_force = serde_json::to_value(fleet.admin.online_keys().await.unwrap()).unwrap();
    assert_eq!(in_force["snapshot"], next["snapshot"]);
    assert_eq!(in_force["timestamp"], next["timestamp"], "memory follows the root, not the keys directory");
    assert!(keys::next_key(&dir, keys::TIMESTAMP).unwrap().is_some(), "the timestamp key still waits on disk");

    // Root 2 and the chain signed with it verify, and so does a timestamp re-signed afterwards.
    let device = refresh_image(&fleet, &root1).await;
    assert_eq!(device.root().version, 2);
    let later = now() + srv.state.config.trust.timestamp_expiry_secs as i64 / 2 + 60;
    assert!(image::refresh(&srv.state, later).await.unwrap());
    let timestamp = Verifiable::<Timestamp>::parse("timestamp", &fleet.fetch("timestamp.json").await).unwrap();
    let root2 = Verifiable::<Root>::parse("root", &fleet.fetch("2.root.json").await).unwrap().signed;
    timestamp.verify_with_root("timestamp", &root2).unwrap();
    let root1 = Verifiable::<Root>::parse("root", &root1).unwrap().signed;
    assert!(timestamp.verify_with_root("timestamp", &root1).is_err(), "not signed with the retired key");

    // The directory fixed, what a start runs finishes the rotation on disk.
    std::fs::remove_dir(&in_the_way).unwrap();
    image::adopt_rotated_keys(&srv.state).await.unwrap();
    assert!(keys::next_key(&dir, keys::TIMESTAMP).unwrap().is_none());
    let on_disk = ferry_server::trust::OnlineKeys::load_or_create(&dir).unwrap();
    assert_eq!(serde_json::to_value(on_disk.timestamp.public()).unwrap(), next["timestamp"]);
    assert_eq!(serde_json::to_value(on_disk.snapshot.public()).unwrap(), next["snapshot"]);
    assert_eq!(serde_json::to_value(fleet.admin.online_keys().await.unwrap()).unwrap()["timestamp"], next["timestamp"]);
}

on_both_backends_signed!(a_rotation_the_keys_directory_cannot_follow_signs_with_the_new_keys);

/// Requests for the next online keys made at the same time all get the same keys, and those
/// are the ones waiting on disk.
async fn concurrent_requests_for_the_next_keys_agree(srv: common::TestServer) {
    use ferry_server::trust::keys;
    let fleet = Fleet::new(&srv).await;
    let answers = futures::future::join_all((0..8).map(|_| fleet.admin.next_online_keys())).await;
    let answers: Vec<serde_json::Value> =
        answers.into_iter().map(|a| serde_json::to_value(a.unwrap()).unwrap()).collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let dir = srv.state.config.keys_dir();
    let waiting = keys::next_key(&dir, keys::TIMESTAMP).unwrap().unwrap();
    assert_eq!(serde_json::to_value(waiting.public()).unwrap(), answers[0]["timestamp"]);
}

on_both_backends_signed!(concurrent_requests_for_the_next_keys_agree);
