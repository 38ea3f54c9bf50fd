//! The release catalogue end to end over real HTTP, on SQLite and on PostgreSQL: which releases
//! a device is offered beside each other, the version conflict check, deleting, archiving and
//! editing releases, and the "why" report.

mod common;

use ferry_api::*;
use ferry_client::DeviceClient;
use ferry_core::applicability::Verdict;
use ferry_core::{ApprovalAction, Release, ReleaseChange};

use common::{code, message, report, sha, Fleet};

/// A catalogue with product `vpn`, platform `linux-x86_64` and group `office`.
async fn fleet(srv: &common::TestServer) -> Fleet {
    let product = ProductSpec { name: "vpn".parse().unwrap(), description: String::new() };
    Fleet::new(srv, product, None).await
}

impl Fleet {
    async fn spec(&self, version: &str) -> ReleaseSpec {
        let data = format!("vpn {version}").into_bytes();
        let info = self.admin.upload_content(data.clone(), Some(&sha(&data))).await.unwrap();
        let artifact = common::artifact("vpn.tar.gz", &info, "application/gzip");
        common::release_spec("vpn", version, "linux-x86_64", artifact)
    }

    async fn publish(&self, version: &str, tweak: impl FnOnce(&mut ReleaseSpec)) -> Release {
        let mut spec = self.spec(version).await;
        tweak(&mut spec);
        self.admin.create_release(&spec).await.unwrap()
    }

    /// Release `version` of another `product`, for linux-x86_64.
    async fn publish_other(&self, product: &str, version: &str) -> Release {
        let data = format!("{product} {version}").into_bytes();
        let info = self.admin.upload_content(data.clone(), Some(&sha(&data))).await.unwrap();
        let artifact = common::artifact("file.bin", &info, "application/octet-stream");
        self.admin.create_release(&common::release_spec(product, version, "linux-x86_64", artifact)).await.unwrap()
    }
}

/// The offers of a check-in as (version, required, deadline), in the order given.
async fn offers(device: &DeviceClient, installed: &[(&str, &str)]) -> Vec<(String, bool, Option<i64>)> {
    let answer = device.checkin(&report(installed)).await.unwrap();
    answer.offers.iter().map(|o| (o.version.to_string(), o.required, o.deadline)).collect()
}

on_both_backends!(a_required_release_is_offered_beside_a_newer_optional_one, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let required = f.publish("6.0", |s| s.required = true).await;
    let optional = f.publish("6.1", |_| {}).await;
    f.approve(&required, Some(1_900_000_000)).await;
    f.approve(&optional, None).await;
    let device = f.enroll("pc-001").await;

    // Nothing installed: the device must reach 6.0 by its deadline and may take 6.1 with
    // consent; the newer one comes first.
    assert_eq!(
        offers(&device, &[]).await,
        vec![("6.1".to_owned(), false, None), ("6.0".to_owned(), true, Some(1_900_000_000))]
    );
    // On 6.0 only the optional 6.1 is left.
    assert_eq!(offers(&device, &[("vpn", "6.0")]).await, vec![("6.1".to_owned(), false, None)]);

    // A newer release that is itself required replaces both.
    let newest = f.publish("6.2", |s| s.required = true).await;
    f.approve(&newest, Some(1_800_000_000)).await;
    assert_eq!(offers(&device, &[]).await, vec![("6.2".to_owned(), true, Some(1_800_000_000))]);
});

on_both_backends!(versions_that_compare_equal_conflict, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let first = f.publish("5.0", |_| {}).await;
    for same in ["5", "5.00", "5.0 (Rel)"] {
        let e = f.admin.create_release(&f.spec(same).await).await.unwrap_err();
        assert_eq!(code(&e), (409, ErrorCode::Conflict), "{e}");
        let text = message(&e);
        assert!(text.contains("5.0") && text.contains(&first.id.to_string()) && text.contains("ranks equal"), "{text}");
    }
    assert_eq!(f.admin.list_releases(None).await.unwrap().len(), 1);
});

on_both_backends!(delete_only_what_no_device_was_offered, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let draft = f.publish("1.0", |_| {}).await;
    f.admin.delete_release(draft.id).await.unwrap();
    assert_eq!(code(&f.admin.get_release(draft.id).await.unwrap_err()).0, 404);
    assert_eq!(code(&f.admin.delete_release(draft.id).await.unwrap_err()).0, 404);
    // Its version is free again.
    let approved = f.publish("1.0", |_| {}).await;
    f.approve(&approved, None).await;
    f.admin.delete_approval(approved.id, &"office".parse().unwrap()).await.unwrap();
    let e = f.admin.delete_release(approved.id).await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::Conflict));
    assert!(message(&e).contains("ferry release archive"), "{e}");
    assert_eq!(f.admin.get_release(approved.id).await.unwrap(), approved);
});

on_both_backends!(archive_unarchive_and_edit_notes, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("6.0", |_| {}).await;
    f.approve(&release, None).await;
    let device = f.enroll("pc-002").await;
    assert_eq!(offers(&device, &[]).await, vec![("6.0".to_owned(), false, None)]);

    let archive = ReleaseChange { notes: None, archived: Some(true) };
    let archived = f.admin.update_release(release.id, &archive).await.unwrap();
    assert!(archived.archived);
    // No longer offered, nor served to the device, but still listed and explained.
    assert_eq!(offers(&device, &[]).await, vec![]);
    let sha = &release.artifacts[0].sha256;
    let e = device.download_content(sha, None, None).await.unwrap_err();
    assert_eq!(code(&e).0, 403, "{e}");
    assert_eq!(f.admin.list_releases(None).await.unwrap(), vec![archived.clone()]);
    let why = f.admin.device_applicability(&"pc-002".parse().unwrap()).await.unwrap();
    assert_eq!(why.decisions.iter().find(|d| d.release == release.id).unwrap().verdict, Verdict::Archived);

    let unarchive = ReleaseChange { notes: None, archived: Some(false) };
    assert!(!f.admin.update_release(release.id, &unarchive).await.unwrap().archived);
    assert_eq!(offers(&device, &[]).await, vec![("6.0".to_owned(), false, None)]);

    let notes = ReleaseChange { notes: Some("fixes the tunnel MTU".to_owned()), archived: None };
    assert_eq!(f.admin.update_release(release.id, &notes).await.unwrap().notes, "fixes the tunnel MTU");
    let answer = device.checkin(&report(&[])).await.unwrap();
    assert_eq!(answer.offers[0].notes, "fixes the tunnel MTU");

    // Bad changes: nothing to change, notes too long, an unknown release.
    let e = f.admin.update_release(release.id, &ReleaseChange::default()).await.unwrap_err();
    assert_eq!(code(&e), (400, ErrorCode::BadRequest), "{e}");
    let long = ReleaseChange { notes: Some("x".repeat(70_000)), archived: None };
    let e = f.admin.update_release(release.id, &long).await.unwrap_err();
    assert_eq!(code(&e).0, 400, "{e}");
    assert!(message(&e).contains("65536"), "{e}");
    assert_eq!(code(&f.admin.update_release(ferry_core::ReleaseId(9_999), &notes).await.unwrap_err()).0, 404);
    assert_eq!(f.admin.get_release(release.id).await.unwrap().notes, "fixes the tunnel MTU");
});

/// A release listed in the signed targets metadata stays: devices trusting that metadata may
/// fetch it.
async fn a_signed_release_cannot_be_deleted(srv: common::TestServer) {
    use common::trust::{Fleet, Publisher};
    let fleet = Fleet::new(&srv).await;
    let publisher = Publisher::new(&fleet.admin).await;
    let release = fleet.publish("1.0", b"firmware 1.0").await;
    fleet.admin.delete_approval(release.id, &"field".parse().unwrap()).await.unwrap();
    fleet.admin.push_image_metadata("root", publisher.signed_root(1)).await.unwrap();
    let targets = fleet.draft("targets", &[&release]).await;
    fleet.push_targets(&publisher, &targets).await;
    let e = fleet.admin.delete_release(release.id).await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::Conflict), "{e}");
    let text = message(&e);
    assert!(
        text.contains("signed targets") && text.contains("gw/1.0/firmware.bin") && text.contains("archive"),
        "{text}"
    );
    assert!(fleet.admin.get_release(release.id).await.is_ok());
}
on_both_backends_signed!(a_signed_release_cannot_be_deleted);

on_both_backends!(why_explains_every_release_of_the_devices_products, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    f.admin
        .create_platform(&PlatformSpec { name: "windows-x86_64".parse().unwrap(), description: String::new() })
        .await
        .unwrap();
    f.admin.create_product(&ProductSpec { name: "tool".parse().unwrap(), description: String::new() }).await.unwrap();
    f.admin.create_product(&ProductSpec { name: "other".parse().unwrap(), description: String::new() }).await.unwrap();
    let offered = f.publish("6.0", |_| {}).await;
    let unapproved = f.publish("6.1", |_| {}).await;
    let declined = f.publish("6.2", |_| {}).await;
    let archived = f.publish("6.3", |_| {}).await;
    let windows = f.publish("6.4", |s| s.platforms = vec!["windows-x86_64".parse().unwrap()]).await;
    let older = f.publish("5.0", |_| {}).await;
    f.approve(&offered, None).await;
    f.approve(&archived, None).await;
    f.admin
        .set_approval(
            declined.id,
            &"office".parse().unwrap(),
            &ApprovalSpec { action: ApprovalAction::Decline, deadline: None },
        )
        .await
        .unwrap();
    f.admin.update_release(archived.id, &ReleaseChange { notes: None, archived: Some(true) }).await.unwrap();
    // A product the device runs, with no approval at all, and one it neither runs nor is approved.
    let tool = f.publish_other("tool", "2.0").await;
    let other = f.publish_other("other", "1.0").await;

    let device = f.enroll("pc-003").await;
    let answer = device.checkin(&report(&[("vpn", "5.5"), ("tool", "1.0")])).await.unwrap();
    assert_eq!(answer.offers.iter().map(|o| o.release).collect::<Vec<_>>(), vec![offered.id]);

    let why = f.admin.device_applicability(&"pc-003".parse().unwrap()).await.unwrap();
    assert_eq!(why.groups, vec!["office".parse().unwrap()]);
    let verdict = |id| why.decisions.iter().find(|d| d.release == id).map(|d| d.verdict.clone());
    assert_eq!(verdict(offered.id), Some(Verdict::Offer { deadline: None }));
    assert_eq!(verdict(unapproved.id), Some(Verdict::NotApproved));
    assert_eq!(verdict(declined.id), Some(Verdict::Declined));
    assert_eq!(verdict(archived.id), Some(Verdict::Archived));
    assert_eq!(verdict(windows.id), Some(Verdict::WrongPlatform));
    assert_eq!(verdict(older.id), Some(Verdict::NewerInstalled));
    assert_eq!(verdict(tool.id), Some(Verdict::NotApproved));
    assert_eq!(verdict(other.id), None, "not one of the device's products");
    assert_eq!(why.decisions.len(), 7);
});
