//! Test harness: a real Ferry server in-process on 127.0.0.1:0, on a real SQLite file or a
//! throwaway PostgreSQL database, driven over real HTTP.
#![allow(dead_code)]

pub mod trust;

use std::sync::Arc;

use ferry_api::{
    ApprovalSpec, CheckinRequest, ContentInfo, EnrollRequest, ErrorCode, GroupSpec, PlatformSpec, ProductSpec,
    ReleaseSpec,
};
use ferry_client::{AdminClient, ClientError, DeviceClient};
use ferry_core::ApprovalAction;
use ferry_core::{Artifact, DeviceStatus, Release, ReleaseKind, Sha256};
use ferry_server::{App, Config};
use ferry_store::Store;
use ferry_store_sql::testing::TempPostgres;
use sha2::Digest as _;
use tokio::sync::oneshot;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server. Dropping it stops the server and removes its storage.
pub struct TestServer {
    pub url: String,
    pub admin_token: String,
    pub data_dir: std::path::PathBuf,
    pub store: Arc<dyn Store>,
    /// The server's shared state, for driving its background work (re-signing) at chosen times.
    pub state: Arc<ferry_server::state::AppState>,
    stop: Option<oneshot::Sender<()>>,
    _tmp: tempfile::TempDir,
    _pg: Option<TempPostgres>,
}

impl TestServer {
    /// A server without the signed-release gate: the catalogue, approval and device-API tests
    /// exercise those rules on their own. tests/trust.rs and tests/interop.rs run with the gate
    /// on, as servers do by default.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |c| c.trust.require_signed_releases = false).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: tmp.path().join("data"), ..Config::default() };
        tweak(&mut config);
        // The server opens its storage itself, as `ferry serve` does: the data directory, the
        // SQLite file and the content store are created with the modes a real start gives them.
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let pg = TempPostgres::create().await.expect("PostgreSQL must be reachable (FERRY_TEST_POSTGRES_URL)");
                config.database_url = pg.url().to_owned();
                Some(pg)
            }
        };
        let data_dir = config.data_dir.clone();
        let app = App::open(config).await.unwrap();
        let store = app.state().store.clone();
        let admin_token = app.initial_admin_token().expect("a fresh server creates an admin token").to_owned();
        let state = app.state().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            ferry_server::serve(listener, &app, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self { url, admin_token, data_dir, store, state, stop: Some(stop), _tmp: tmp, _pg: pg }
    }
}

/// The admin's client, after creating `product`, platform `platform` and group `group` (with
/// its check-in interval in seconds and jitter, else the server's defaults); returns it with the
/// group's enrollment key.
pub async fn catalogue(
    srv: &TestServer,
    product: ProductSpec,
    platform: &str,
    group: &str,
    checkin: Option<(u64, f64)>,
) -> (AdminClient, String) {
    let admin = AdminClient::new(&srv.url, &srv.admin_token).unwrap();
    admin.create_product(&product).await.unwrap();
    admin.create_platform(&PlatformSpec { name: platform.parse().unwrap(), description: String::new() }).await.unwrap();
    let group = admin
        .create_group(&GroupSpec {
            name: group.parse().unwrap(),
            description: String::new(),
            checkin_interval_secs: checkin.map(|(interval, _)| interval),
            checkin_jitter: checkin.map(|(_, jitter)| jitter),
            filter: None,
            parent: None,
            window: None,
        })
        .await
        .unwrap();
    (admin, group.enrollment_key.expect("a static group has an enrollment key"))
}

/// The SHA-256 of `data`.
pub fn sha(data: &[u8]) -> Sha256 {
    Sha256::from_bytes(sha2::Sha256::digest(data).into())
}

/// The HTTP status and error code of an API error.
pub fn code(e: &ClientError) -> (u16, ErrorCode) {
    match e {
        ClientError::Api { status, code, .. } => (*status, *code),
        other => panic!("expected an API error, got {other}"),
    }
}

/// The message of an API error.
pub fn message(e: &ClientError) -> String {
    match e {
        ClientError::Api { message, .. } => message.clone(),
        other => panic!("expected an API error, got {other}"),
    }
}

/// A check-in from a linux-x86_64 device with `installed` (product, version) pairs.
pub fn report(installed: &[(&str, &str)]) -> CheckinRequest {
    CheckinRequest {
        platform: Some("linux-x86_64".parse().unwrap()),
        installed: installed.iter().map(|(p, v)| (p.parse().unwrap(), v.parse().unwrap())).collect(),
        agent_version: Some("0.1.0".into()),
        boot_id: Some("boot-a".into()),
        ..Default::default()
    }
}

/// A catalogue with one product, platform `linux-x86_64` and group `office`, as [`catalogue`]
/// makes it; each test file adds how it publishes releases.
pub struct Fleet {
    pub admin: AdminClient,
    pub enrollment_key: String,
    pub url: String,
}

impl Fleet {
    pub async fn new(srv: &TestServer, product: ProductSpec, checkin: Option<(u64, f64)>) -> Self {
        let (admin, enrollment_key) = catalogue(srv, product, "linux-x86_64", "office", checkin).await;
        Fleet { admin, enrollment_key, url: srv.url.clone() }
    }

    /// Approves `release` for installing in group `office`, by `deadline` if given.
    pub async fn approve(&self, release: &Release, deadline: Option<i64>) {
        let spec = ApprovalSpec { action: ApprovalAction::Install, deadline };
        self.admin.set_approval(release.id, &"office".parse().unwrap(), &spec).await.unwrap();
    }

    /// Enrolls device `id` with the group's key; it is accepted.
    pub async fn enroll(&self, id: &str) -> DeviceClient {
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

/// Artifact `name` of `media_type`, holding the uploaded content `info`.
pub fn artifact(name: &str, info: &ContentInfo, media_type: &str) -> Artifact {
    Artifact {
        name: name.parse().unwrap(),
        length: info.length,
        sha256: info.sha256.clone(),
        media_type: media_type.into(),
        custom: Default::default(),
    }
}

/// A full release of `product` `version` for `platform` with `artifact`: not required, without
/// notes, dependencies or restrictions.
pub fn release_spec(product: &str, version: &str, platform: &str, artifact: Artifact) -> ReleaseSpec {
    ReleaseSpec {
        product: product.parse().unwrap(),
        version: version.parse().unwrap(),
        kind: ReleaseKind::Full,
        platforms: vec![platform.parse().unwrap()],
        artifacts: vec![artifact],
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

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Declares a test that runs once on SQLite and once on PostgreSQL:
/// `on_both_backends!(name, |srv| async move { ... });`
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let srv = common::TestServer::start(common::Backend::Sqlite).await;
                ($body)(srv).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let srv = common::TestServer::start(common::Backend::Postgres).await;
                ($body)(srv).await;
            }
        }
    };
}
