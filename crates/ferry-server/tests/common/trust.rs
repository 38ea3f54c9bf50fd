//! The trust tests' shared setup (tests/trust.rs, tests/interop.rs): a publisher's keys, made
//! here as a publisher makes them offline, and a small fleet on a server that requires signed
//! releases: product `gw`, platform `arm64`, group `field` and device `gw-1`, with releases
//! published from content and approved.
#![allow(dead_code)] // Each test binary uses part of it.

use ferry_api::*;
use ferry_client::{AdminClient, DeviceClient};
use ferry_core::{ApprovalAction, Release, Sha256};
use ferry_tuf::metadata::{add_signatures, sign};
use ferry_tuf::time::format_expires;
use ferry_tuf::{KeyKind, PublicKey, Root, SigningKey, Targets};
use sha2::Digest;

use super::{Backend, TestServer};

pub use ferry_core::time::now;

/// A server on `backend` that requires signed releases, as servers do by default.
pub async fn signed_server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| c.trust.require_signed_releases = true).await
}

/// Declares tests that run `body(srv)` (an async function taking a [`TestServer`] from
/// [`signed_server`]) once on SQLite and once on PostgreSQL:
/// `on_both_backends_signed!(body);` as tests `body::sqlite` and `body::postgres`, or
/// `on_both_backends_signed!(body, sqlite_test, postgres_test);` under those names.
#[macro_export]
macro_rules! on_both_backends_signed {
    ($body:ident) => {
        mod $body {
            $crate::on_both_backends_signed!(super::$body, sqlite, postgres);
        }
    };
    ($body:path, $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body($crate::common::trust::signed_server($crate::common::Backend::Sqlite).await).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $body($crate::common::trust::signed_server($crate::common::Backend::Postgres).await).await;
        }
    };
}

/// The publisher's offline root and targets keys, and the server's online keys as it lists them.
pub struct Publisher {
    pub root_key: SigningKey,
    pub targets_key: SigningKey,
    pub online: serde_json::Value,
}

impl Publisher {
    /// An ed25519 root key and an ECDSA P-256 targets key.
    pub async fn new(admin: &AdminClient) -> Self {
        Self::with_targets_key(admin, KeyKind::EcdsaP256).await
    }

    /// An ed25519 root key and a targets key of `kind`.
    pub async fn with_targets_key(admin: &AdminClient, kind: KeyKind) -> Self {
        Self {
            root_key: SigningKey::generate(KeyKind::Ed25519).unwrap(),
            targets_key: SigningKey::generate(kind).unwrap(),
            online: serde_json::to_value(admin.online_keys().await.unwrap()).unwrap(),
        }
    }

    pub fn online(&self, role: &str) -> PublicKey {
        serde_json::from_value(self.online[role].clone()).unwrap()
    }

    /// Root `version` listing `root_keys`, the targets key and the online keys.
    pub fn root(&self, version: u64, root_keys: &[&SigningKey]) -> Root {
        Root::new(
            version,
            format_expires(now() + 365 * 86_400),
            &[
                ("root", root_keys.iter().map(|k| k.public().clone()).collect(), 1),
                ("targets", vec![self.targets_key.public().clone()], 1),
                ("snapshot", vec![self.online("snapshot")], 1),
                ("timestamp", vec![self.online("timestamp")], 1),
            ],
        )
    }

    /// Root `version` listing the publisher's root key, signed by it.
    pub fn signed_root(&self, version: u64) -> Vec<u8> {
        sign(&self.root(version, &[&self.root_key]), &[&self.root_key]).unwrap()
    }
}

/// An admin and one device, `gw-1`, enrolled in group `field`.
pub struct Fleet {
    pub admin: AdminClient,
    pub device: DeviceClient,
    pub credential: String,
}

impl Fleet {
    /// Product `gw`, platform `arm64`, group `field` (the server's check-in defaults), and `gw-1`
    /// enrolled with the group's key.
    pub async fn new(srv: &TestServer) -> Self {
        let product = ProductSpec { name: "gw".parse().unwrap(), description: String::new() };
        let (admin, enrollment_key) = super::catalogue(srv, product, "arm64", "field", None).await;
        let (device, credential) = enrolled(srv, "gw-1", enrollment_key).await;
        Self { admin, device, credential }
    }

    /// As [`Fleet::new`], after `gw-1` has checked in once as `arm64`.
    pub async fn checked_in(srv: &TestServer) -> Self {
        let fleet = Self::new(srv).await;
        fleet.offered().await;
        fleet
    }

    /// Enrolls another device `id` in group `field` (with a new enrollment key); its client and
    /// credential.
    pub async fn enroll(&self, srv: &TestServer, id: &str) -> (DeviceClient, String) {
        let key = self.admin.rotate_enrollment_key(&"field".parse().unwrap()).await.unwrap().enrollment_key;
        enrolled(srv, id, key).await
    }

    /// Uploads `data`, creates release `gw` `version` with it and approves it for `field`.
    pub async fn publish(&self, version: &str, data: &[u8]) -> Release {
        let sha = Sha256::from_bytes(sha2::Sha256::digest(data).into());
        let info = self.admin.upload_content(data.to_vec(), Some(&sha)).await.unwrap();
        let artifact = super::artifact("firmware.bin", &info, "application/octet-stream");
        let spec = ReleaseSpec { required: true, ..super::release_spec("gw", version, "arm64", artifact) };
        let release = self.admin.create_release(&spec).await.unwrap();
        let approval = ApprovalSpec { action: ApprovalAction::Install, deadline: None };
        self.admin.set_approval(release.id, &"field".parse().unwrap(), &approval).await.unwrap();
        release
    }

    /// The versions offered to `gw-1` at a check-in as `arm64`.
    pub async fn offered(&self) -> Vec<String> {
        let request = CheckinRequest { platform: Some("arm64".parse().unwrap()), ..Default::default() };
        let answer = self.device.checkin(&request).await.unwrap();
        answer.offers.iter().map(|o| o.version.to_string()).collect()
    }

    /// Checks `device` in as `arm64`, reporting that it trusts director metadata version `seen`.
    pub async fn checkin(&self, device: &DeviceClient, seen: Option<u64>) -> CheckinResponse {
        let request =
            CheckinRequest { platform: Some("arm64".parse().unwrap()), director_version: seen, ..Default::default() };
        device.checkin(&request).await.unwrap()
    }

    /// Checks `device` in as `arm64`; the answer's pointer to its director metadata.
    pub async fn director(&self, device: &DeviceClient) -> DirectorPointer {
        self.checkin(device, None).await.director.expect("an accepted device gets a director pointer")
    }

    /// The next version of `role`'s targets listing `releases`, unsigned, as the server drafts it.
    pub async fn draft(&self, role: &str, releases: &[&Release]) -> Targets {
        let ids: Vec<_> = releases.iter().map(|r| r.id).collect();
        let draft = self.admin.draft_targets(role, Some(&ids), Some(30)).await.unwrap();
        serde_json::from_value(draft.signed).unwrap()
    }

    /// Signs `targets` (the top-level role's) with the publisher's targets key and pushes them.
    pub async fn push_targets(&self, publisher: &Publisher, targets: &Targets) {
        let signed = sign(targets, &[&publisher.targets_key]).unwrap();
        self.admin.push_image_metadata("targets", signed).await.unwrap();
    }

    /// Signs the server's draft of the top-level targets (every approved release) with the
    /// publisher's targets key and pushes it.
    pub async fn sign_targets(&self, publisher: &Publisher) {
        let draft = serde_json::to_vec(&self.admin.draft_targets("targets", None, Some(30)).await.unwrap()).unwrap();
        let signed = add_signatures::<Targets>(&draft, &[&publisher.targets_key]).unwrap();
        self.admin.push_image_metadata("targets", signed).await.unwrap();
    }

    /// Publishes root 1 and targets signed by the publisher: every approved release becomes signed.
    pub async fn sign_all(&self, publisher: &Publisher) {
        self.admin.push_image_metadata("root", publisher.signed_root(1)).await.unwrap();
        self.sign_targets(publisher).await;
    }

    /// The image repository's `file`, as `gw-1` fetches it.
    pub async fn fetch(&self, file: &str) -> Vec<u8> {
        self.device.image_metadata(file).await.unwrap().unwrap_or_else(|| panic!("{file} missing")).to_vec()
    }
}

/// Enrolls device `id` with `enrollment_key`; its client and credential.
async fn enrolled(srv: &TestServer, id: &str, enrollment_key: String) -> (DeviceClient, String) {
    let mut device = DeviceClient::new(&srv.url, None).unwrap();
    let enrolled = device
        .enroll(&EnrollRequest { device_id: id.parse().unwrap(), enrollment_key: Some(enrollment_key) })
        .await
        .unwrap();
    device.set_credential(&enrolled.credential).unwrap();
    (device, enrolled.credential)
}
