//! The release catalogue end to end over real HTTP, on SQLite and on PostgreSQL: which releases
//! a device is offered beside each other, the version conflict check, deleting, archiving and
//! editing releases, and the "why" report.

mod common;

use ferry_api::*;
use ferry_client::{AdminClient, DeviceClient};
use ferry_core::{DeviceStatus, Release, Sha256};
use ferry_store::ApprovalAction;
use sha2::Digest;

fn sha(data: &[u8]) -> Sha256 {
    Sha256::from_bytes(sha2::Sha256::digest(data).into())
}

/// A catalogue with product `vpn`, platform `linux-x86_64` and group `office`.
struct Fleet {
    admin: AdminClient,
    enrollment_key: String,
    url: String,
}

async fn fleet(srv: &common::TestServer) -> Fleet {
    let product = ProductSpec { name: "vpn".parse().unwrap(), description: String::new() };
    let (admin, enrollment_key) = common::catalogue(srv, product, "linux-x86_64", "office", None).await;
    Fleet { admin, enrollment_key, url: srv.url.clone() }
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

    async fn approve(&self, release: &Release, deadline: Option<i64>) {
        let spec = ApprovalSpec { action: ApprovalAction::Install, deadline };
        self.admin.set_approval(release.id, &"office".parse().unwrap(), &spec).await.unwrap();
    }

    async fn enroll(&self, id: &str) -> DeviceClient {
        let mut device = DeviceClient::new(&self.url, None).unwrap();
        let enrolled = device
            .enroll(&EnrollRequest {
                device_id: id.parse().unwrap(),
                enrollment_key: Some(self.enrollment_key.clone()),
            })
            .await
            .unwrap();
        assert_eq!(enrolled.status, DeviceStatus::Accepted);
        device.set_credential(&enrolled.credential).unwrap();
        device
    }
}

fn report(installed: &[(&str, &str)]) -> CheckinRequest {
    CheckinRequest {
        platform: Some("linux-x86_64".parse().unwrap()),
        installed: installed.iter().map(|(p, v)| (p.parse().unwrap(), v.parse().unwrap())).collect(),
        agent_version: Some("0.1.0".into()),
        boot_id: Some("boot-a".into()),
        ..Default::default()
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
