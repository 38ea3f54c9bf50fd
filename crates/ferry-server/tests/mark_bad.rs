//! Marking a release bad, over real HTTP on SQLite and PostgreSQL: the release is withdrawn
//! from offers, downloads and the "why" report alike, and the signed director metadata of each
//! device running it carries the instruction to go back (verified as a device verifies it:
//! from the director's root, through the TUF client state machine); devices not running it get
//! none.

mod common;

use std::collections::BTreeMap;

use common::trust::{now, Fleet, Publisher};
use ferry_api::*;
use ferry_client::{AdminClient, ClientError, DeviceClient};
use ferry_core::applicability::Verdict;
use ferry_core::{DeviceId, Release, ReleaseId, Role, Version};
use ferry_tuf::trusted::TrustedSet;
use ferry_tuf::{DirectorInstructions, RollbackInstruction, Targets, VersionLine};

fn api_error(e: ClientError) -> (u16, ErrorCode, String) {
    match e {
        ClientError::Api { status, code, message, .. } => (status, code, message),
        other => panic!("expected an API error, got {other}"),
    }
}

/// The device's director targets, verified from the director's root as a device does.
async fn director_targets(device: &DeviceClient) -> Targets {
    let fetch = |file: String| async move {
        device.director_metadata(&file).await.unwrap().unwrap_or_else(|| panic!("director {file} missing")).to_vec()
    };
    let mut trusted = TrustedSet::new(&fetch("1.root.json".into()).await, now()).unwrap();
    trusted.check_final_root().unwrap();
    let update = trusted.update_timestamp(&fetch("timestamp.json".into()).await).unwrap();
    assert_eq!(update, ferry_tuf::trusted::TimestampUpdate::Updated);
    let version = trusted.timestamp().unwrap().snapshot_meta().unwrap().version;
    trusted.update_snapshot(&fetch(format!("{version}.snapshot.json")).await).unwrap();
    trusted.update_targets(&fetch(format!("{version}.targets.json")).await).unwrap();
    trusted.targets().unwrap().clone()
}

/// Checks `device` in as `arm64` running `gw` `version`: its offers and director version.
async fn running(device: &DeviceClient, version: &str) -> (Vec<ReleaseId>, u64) {
    let installed: BTreeMap<_, Version> = [("gw".parse().unwrap(), version.parse().unwrap())].into();
    let request = CheckinRequest { platform: Some("arm64".parse().unwrap()), installed, ..Default::default() };
    let answer = device.checkin(&request).await.unwrap();
    (answer.offers.iter().map(|o| o.release).collect(), answer.director.unwrap().version)
}

fn verdict(report: &ApplicabilityReport, release: &Release) -> Verdict {
    report.decisions.iter().find(|d| d.release == release.id).expect("decided").verdict.clone()
}

async fn mark_bad_withdraws_the_release_and_instructs_the_devices_running_it(srv: common::TestServer) {
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    let v1 = fleet.publish("1.0", b"firmware one").await;
    let v2 = fleet.publish("2.0", b"firmware two").await;
    fleet.sign_all(&publisher).await;
    let (gw2, _) = fleet.enroll(&srv, "gw-2").await;
    let (gw1_id, gw2_id): (DeviceId, DeviceId) = ("gw-1".parse().unwrap(), "gw-2".parse().unwrap());

    // gw-1 runs 2.0, gw-2 still 1.0 and is offered 2.0, which it may download.
    let (offers, before) = running(&fleet.device, "2.0").await;
    assert!(offers.is_empty());
    assert_eq!(DirectorInstructions::of(&director_targets(&fleet.device).await).unwrap().rollback, vec![]);
    assert_eq!(running(&gw2, "1.0").await.0, vec![v2.id]);
    gw2.download_content(&v2.artifacts[0].sha256, None, None).await.unwrap();

    let marked = fleet.admin.mark_release_bad(v2.id, "  bricks the radio on rev B boards ").await.unwrap();
    let mark = marked.bad.clone().expect("marked");
    assert_eq!((mark.reason.as_str(), mark.by.as_str()), ("bricks the radio on rev B boards", "initial-admin"));
    assert_eq!(marked, Release { bad: Some(mark.clone()), ..v2.clone() });
    assert_eq!(fleet.admin.get_release(v2.id).await.unwrap(), marked);

    // Withdrawn everywhere at once: the offer, the download, the why report.
    assert_eq!(running(&gw2, "1.0").await.0, vec![], "no longer offered");
    let Err(e) = gw2.download_content(&v2.artifacts[0].sha256, None, None).await else { panic!("downloaded") };
    assert_eq!(api_error(e).1, ErrorCode::NotEntitled);
    assert_eq!(verdict(&fleet.admin.device_applicability(&gw2_id).await.unwrap(), &v2), Verdict::MarkedBad);
    assert_eq!(verdict(&fleet.admin.device_applicability(&gw1_id).await.unwrap(), &v2), Verdict::MarkedBad);

    // gw-1 runs it: a newly signed chain names the release to leave; gw-2 does not.
    let (_, after) = running(&fleet.device, "2.0").await;
    assert!(after > before, "the instruction changes the chain: {after} > {before}");
    let targets = director_targets(&fleet.device).await;
    let told = DirectorInstructions::of(&targets).unwrap();
    let expected = RollbackInstruction {
        product: "gw".parse().unwrap(),
        kind: VersionLine::Software,
        release: v2.id,
        version: "2.0".parse().unwrap(),
        counter: v2.counter,
    };
    assert_eq!(told, DirectorInstructions { device: "gw-1".into(), rollback: vec![expected] });
    assert_eq!(targets.unrecognized["custom"]["rollback"][0]["kind"], "software");
    assert_eq!(DirectorInstructions::of(&director_targets(&gw2).await).unwrap().rollback, vec![]);

    // Marking again changes nothing: the same record, the same chain.
    let again = fleet.admin.mark_release_bad(v2.id, "another reason").await.unwrap();
    assert_eq!(again, marked);
    assert_eq!(running(&fleet.device, "2.0").await.1, after, "no new chain while nothing changed");

    // Back on 1.0, gw-1 is told nothing any more, and 1.0 stays where it was.
    let (offers, back) = running(&fleet.device, "1.0").await;
    assert!(back > after);
    assert!(offers.is_empty(), "2.0 is not offered again");
    assert_eq!(DirectorInstructions::of(&director_targets(&fleet.device).await).unwrap().rollback, vec![]);
    assert!(fleet.admin.get_release(v1.id).await.unwrap().bad.is_none());
}

on_both_backends_signed!(mark_bad_withdraws_the_release_and_instructs_the_devices_running_it);

/// A configuration bundle is its own version line: a device running the bad bundle is told so
/// with `"kind": "config"`, whatever software version it runs.
async fn a_bad_configuration_bundle_is_named_on_its_own_line(srv: common::TestServer) {
    let fleet = Fleet::new(&srv).await;
    let release = fleet.publish("3", b"config three").await;
    let bundle = fleet.admin.create_release(&release_spec_of(&release)).await.unwrap();
    fleet.admin.mark_release_bad(bundle.id, "wrong proxy address").await.unwrap();
    let configs: BTreeMap<_, Version> = [("gw".parse().unwrap(), "4".parse().unwrap())].into();
    let installed: BTreeMap<_, Version> = [("gw".parse().unwrap(), "3".parse().unwrap())].into();
    let request = CheckinRequest { platform: Some("arm64".parse().unwrap()), installed, configs, ..Default::default() };
    fleet.device.checkin(&request).await.unwrap();
    let told = DirectorInstructions::of(&director_targets(&fleet.device).await).unwrap();
    assert_eq!(told.rollback.len(), 1, "{told:?}");
    assert_eq!((told.rollback[0].release, told.rollback[0].kind), (bundle.id, VersionLine::Config));
}

/// A config release of the same product at version 4, with the same artifact as `release`.
fn release_spec_of(release: &Release) -> ReleaseSpec {
    ReleaseSpec {
        product: release.product.clone(),
        version: "4".parse().unwrap(),
        kind: ferry_core::ReleaseKind::Config,
        platforms: release.platforms.clone(),
        artifacts: release.artifacts.clone(),
        required: false,
        reboot: Default::default(),
        classification: Default::default(),
        notes: String::new(),
        dependencies: vec![],
        supersedes: vec![],
        no_update_versions: vec![],
        applies_to: None,
    }
}

on_both_backends_signed!(a_bad_configuration_bundle_is_named_on_its_own_line);

/// Bad input gets a clear answer with the right status, and changes nothing.
async fn bad_input_is_refused_clearly(srv: common::TestServer) {
    let fleet = Fleet::new(&srv).await;
    let release = fleet.publish("1.0", b"firmware one").await;
    for reason in ["", "   "] {
        let (status, code, message) = api_error(fleet.admin.mark_release_bad(release.id, reason).await.unwrap_err());
        assert_eq!((status, code), (400, ErrorCode::BadRequest), "{message}");
        assert!(message.contains("a reason is required") && message.contains("--reason"), "{message}");
    }
    let (status, _, message) =
        api_error(fleet.admin.mark_release_bad(release.id, &"x".repeat(1025)).await.unwrap_err());
    assert_eq!(status, 400);
    assert!(message.contains("1025 bytes") && message.contains("limit is 1024"), "{message}");
    let (status, code, message) = api_error(fleet.admin.mark_release_bad(ReleaseId(9999), "gone").await.unwrap_err());
    assert_eq!((status, code), (404, ErrorCode::NotFound));
    assert!(message.contains("release 9999 does not exist") && message.contains("ferry release list"), "{message}");

    // A body without a reason at all, as another client may send it.
    let raw = reqwest::Client::new()
        .post(format!("{}/api/v1/releases/{}/mark-bad", srv.url, release.id))
        .bearer_auth(&srv.admin_token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("a reason is required"), "{body}");

    // Operators may mark releases bad; viewers may not.
    let (status, code, _) = api_error(
        token(&srv, &fleet.admin, Role::Viewer).await.mark_release_bad(release.id, "looks wrong").await.unwrap_err(),
    );
    assert_eq!((status, code), (403, ErrorCode::Forbidden));
    assert!(fleet.admin.get_release(release.id).await.unwrap().bad.is_none(), "nothing was marked");
    let marked =
        token(&srv, &fleet.admin, Role::Operator).await.mark_release_bad(release.id, "looks wrong").await.unwrap();
    assert_eq!(marked.bad.unwrap().by, "a-operator");
}

on_both_backends_signed!(bad_input_is_refused_clearly);

/// A client with a new admin token of `role`, named `a-ROLE`.
async fn token(srv: &common::TestServer, admin: &AdminClient, role: Role) -> AdminClient {
    let created = admin.create_token(&TokenSpec { name: format!("a-{}", role.as_str()), role }).await.unwrap();
    AdminClient::new(&srv.url, created.secret).unwrap()
}
