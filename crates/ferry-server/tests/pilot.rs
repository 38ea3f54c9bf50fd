//! Test devices (a pilot ring) end to end, on a server that requires signed releases: a test
//! device is offered signed releases no one approved, and check-in, download entitlement, the
//! director metadata and the "why" report agree; declines and archiving still win; a release
//! shows how its test devices did. On SQLite and PostgreSQL.

mod common;

use common::trust::{Fleet, Publisher};
use ferry_api::*;
use ferry_client::{ClientError, DeviceClient};
use ferry_core::applicability::Verdict;
use ferry_core::{ApprovalAction, DeviceState, NewEvent, Release, ReleaseChange};

fn field() -> ferry_core::GroupName {
    "field".parse().unwrap()
}

/// The versions offered to `device` at a check-in as `arm64`.
async fn offered(device: &DeviceClient) -> Vec<String> {
    let request = CheckinRequest { platform: Some("arm64".parse().unwrap()), ..Default::default() };
    device.checkin(&request).await.unwrap().offers.iter().map(|o| o.version.to_string()).collect()
}

/// The target paths `device`'s current director targets list (read, not verified: the
/// verification of the director chain is tests/trust.rs's).
async fn director_paths(device: &DeviceClient) -> Vec<String> {
    let request = CheckinRequest { platform: Some("arm64".parse().unwrap()), ..Default::default() };
    let version = device.checkin(&request).await.unwrap().director.unwrap().version;
    let bytes = device.director_metadata(&format!("{version}.targets.json")).await.unwrap().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["signed"]["targets"].as_object().unwrap().keys().cloned().collect()
}

async fn entitled(device: &DeviceClient, release: &Release) -> bool {
    match device.content_exists(&release.artifacts[0].sha256).await {
        Ok(found) => found.is_some(),
        // A HEAD answer carries no body, so only its status says "not entitled".
        Err(ClientError::Api { status: 403, .. }) => false,
        Err(e) => panic!("unexpected answer: {e}"),
    }
}

async fn report(device: &DeviceClient, seq: i64, release: &Release, state: DeviceState, error: Option<&str>) {
    let event = NewEvent {
        seq,
        release: release.id,
        state,
        progress: None,
        error_code: error.map(str::to_owned),
        message: None,
        at: 1000 + seq,
    };
    device.send_events(&EventBatch { events: vec![event] }).await.unwrap();
}

async fn test_devices_get_signed_unapproved_releases(srv: common::TestServer) {
    let fleet = Fleet::checked_in(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    let (other, _) = fleet.enroll(&srv, "gw-2").await;
    offered(&other).await;
    // 1.0 is signed (the draft lists approved releases), then its approval is withdrawn;
    // 2.0 is never signed.
    let signed = fleet.publish("1.0", b"firmware 1.0").await;
    fleet.sign_all(&publisher).await;
    fleet.admin.delete_approval(signed.id, &field()).await.unwrap();
    let unsigned = fleet.publish("2.0", b"firmware 2.0").await;
    fleet.admin.delete_approval(unsigned.id, &field()).await.unwrap();
    assert_eq!(fleet.offered().await, Vec::<String>::new(), "not approved: offered to nobody yet");

    let gw1 = "gw-1".parse().unwrap();
    let marked = fleet.admin.set_device_test(&gw1, true).await.unwrap();
    assert!(marked.test);
    assert!(fleet.admin.get_device(&gw1).await.unwrap().device.test, "the device shows it");
    assert_eq!(fleet.offered().await, ["1.0"], "a test device gets the signed release, not the unsigned one");
    assert_eq!(offered(&other).await, Vec::<String>::new(), "a device of the same group that is not a test device");
    assert!(entitled(&fleet.device, &signed).await, "the download entitlement matches");
    assert!(!entitled(&other, &signed).await);
    assert!(!entitled(&fleet.device, &unsigned).await);
    assert_eq!(director_paths(&fleet.device).await, [signed.target_path(&signed.artifacts[0].name)]);
    assert_eq!(director_paths(&other).await, Vec::<String>::new());

    // The "why" report says why.
    let why = fleet.admin.device_applicability(&gw1).await.unwrap();
    assert!(why.test);
    assert_eq!(why.pilot, [signed.id]);
    let verdict = why.decisions.iter().find(|d| d.release == signed.id).unwrap().verdict.clone();
    assert_eq!(verdict, Verdict::Offer { deadline: None });
    assert!(!fleet.admin.device_applicability(&"gw-2".parse().unwrap()).await.unwrap().test);

    // A decline for one of its groups wins.
    let decline = ApprovalSpec { action: ApprovalAction::Decline, deadline: None };
    fleet.admin.set_approval(signed.id, &field(), &decline).await.unwrap();
    assert_eq!(fleet.offered().await, Vec::<String>::new(), "decline beats test");
    assert!(!entitled(&fleet.device, &signed).await);
    let why = fleet.admin.device_applicability(&gw1).await.unwrap();
    assert_eq!(why.decisions.iter().find(|d| d.release == signed.id).unwrap().verdict.clone(), Verdict::Declined);
    fleet.admin.delete_approval(signed.id, &field()).await.unwrap();

    // A test group makes every member a test device.
    fleet.admin.set_device_test(&gw1, false).await.unwrap();
    assert_eq!(fleet.offered().await, Vec::<String>::new());
    let update = GroupUpdate { test: Some(true), ..Default::default() };
    assert!(fleet.admin.update_group(&field(), &update).await.unwrap().test);
    assert!(fleet.admin.get_group(&field()).await.unwrap().test);
    assert_eq!(fleet.offered().await, ["1.0"]);
    assert_eq!(offered(&other).await, ["1.0"]);

    // Archived releases are never offered.
    let archive = ReleaseChange { notes: None, archived: Some(true) };
    fleet.admin.update_release(signed.id, &archive).await.unwrap();
    assert_eq!(fleet.offered().await, Vec::<String>::new(), "archived is never offered");
    assert!(!entitled(&fleet.device, &signed).await);
    assert_eq!(director_paths(&fleet.device).await, Vec::<String>::new());
    let unarchive = ReleaseChange { notes: None, archived: Some(false) };
    fleet.admin.update_release(signed.id, &unarchive).await.unwrap();

    // How the release went on its test devices; a device that is not one does not count.
    assert_eq!(offered(&other).await, ["1.0"]);
    report(&fleet.device, 1, &signed, DeviceState::Downloading, None).await;
    report(&fleet.device, 2, &signed, DeviceState::Committed, None).await;
    report(&other, 1, &signed, DeviceState::Failed, Some("E_HANDLER")).await;
    let results = fleet.admin.release_test_results(signed.id).await.unwrap();
    assert_eq!(
        results.counts,
        [
            StateCount { state: DeviceState::Committed, devices: 1 },
            StateCount { state: DeviceState::Failed, devices: 1 }
        ]
    );
    let devices: Vec<_> =
        results.devices.iter().map(|d| (d.device.as_str(), d.state, d.error_code.as_deref())).collect();
    assert_eq!(devices, [("gw-1", DeviceState::Committed, None), ("gw-2", DeviceState::Failed, Some("E_HANDLER"))]);
    // gw-2 stops being a test device (the group no longer is; it is not marked itself).
    fleet.admin.set_device_test(&gw1, true).await.unwrap();
    fleet.admin.update_group(&field(), &GroupUpdate { test: Some(false), ..Default::default() }).await.unwrap();
    let results = fleet.admin.release_test_results(signed.id).await.unwrap();
    assert_eq!(results.devices.len(), 1);
    assert_eq!(results.counts, [StateCount { state: DeviceState::Committed, devices: 1 }]);

    let e = fleet.admin.release_test_results(ferry_core::ReleaseId(9999)).await.unwrap_err();
    assert_eq!(common::code(&e).1, ErrorCode::NotFound);
    let e = fleet.admin.set_device_test(&"ghost".parse().unwrap(), true).await.unwrap_err();
    assert_eq!(common::code(&e).1, ErrorCode::NotFound);
}

on_both_backends_signed!(test_devices_get_signed_unapproved_releases);

/// Without the signed-release gate, a test device gets every release that is not archived.
async fn without_the_gate_every_release_is_piloted(srv: common::TestServer) {
    let fleet = Fleet::checked_in(&srv).await;
    let release = fleet.publish("1.0", b"firmware 1.0").await;
    fleet.admin.delete_approval(release.id, &field()).await.unwrap();
    assert_eq!(fleet.offered().await, Vec::<String>::new());
    fleet.admin.set_device_test(&"gw-1".parse().unwrap(), true).await.unwrap();
    assert_eq!(fleet.offered().await, ["1.0"]);
}

mod unsigned {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        without_the_gate_every_release_is_piloted(common::TestServer::start(common::Backend::Sqlite).await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        without_the_gate_every_release_is_piloted(common::TestServer::start(common::Backend::Postgres).await).await;
    }
}
