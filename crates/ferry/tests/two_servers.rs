//! Two `ferry serve` processes sharing one PostgreSQL database: grants are decided in the
//! database, so many devices checking in concurrently through both never get more grants
//! between them than the rollout's limit allows.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::serve;
use ferry_api::*;
use ferry_client::{AdminClient, DeviceClient};
use ferry_core::rollout::{Limits, Rate, Wave};
use ferry_core::DeviceId;
use ferry_store_sql::testing::TempPostgres;
use futures::StreamExt;

const DEVICES: usize = 300;
const RATE: u32 = 120;

fn server(data_dir: &std::path::Path, database_url: &str) -> (std::process::Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.env_clear()
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .env("FERRY_DATABASE_URL", database_url)
        .env("FERRY_TRUST__REQUIRE_SIGNED_RELEASES", "false")
        .env("FERRY_ENROLLMENT__PER_ADDRESS_PER_MINUTE", "100000")
        .env("FERRY_ENROLLMENT__TOTAL_PER_MINUTE", "100000");
    serve::spawn(cmd)
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_grant_past_the_rate_limit_between_them() {
    let pg = TempPostgres::create().await.expect("PostgreSQL must be reachable (FERRY_TEST_POSTGRES_URL)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (a, url_a) = server(&data, pg.url());
    let _a = Killed(a);
    let (b, url_b) = server(&data, pg.url());
    let _b = Killed(b);
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let admin = AdminClient::new(&url_a, token.trim()).unwrap();

    admin
        .create_product(&ProductSpec { name: "vpn-client".parse().unwrap(), description: String::new() })
        .await
        .unwrap();
    admin
        .create_platform(&PlatformSpec { name: "linux-x86_64".parse().unwrap(), description: String::new() })
        .await
        .unwrap();
    let group = admin
        .create_group(&GroupSpec {
            name: "office".parse().unwrap(),
            description: String::new(),
            checkin_interval_secs: None,
            checkin_jitter: None,
            filter: None,
            parent: None,
            window: None,
        })
        .await
        .unwrap();
    let bytes = b"vpn-client 2.0".to_vec();
    let info = admin.upload_content(bytes, None).await.unwrap();
    let artifact = ferry_core::Artifact {
        name: "vpn.tar".parse().unwrap(),
        length: info.length,
        sha256: info.sha256.clone(),
        media_type: "application/x-tar".into(),
        custom: Default::default(),
    };
    let release = admin
        .create_release(&ReleaseSpec {
            product: "vpn-client".parse().unwrap(),
            version: "2.0".parse().unwrap(),
            kind: ferry_core::ReleaseKind::Full,
            platforms: vec!["linux-x86_64".parse().unwrap()],
            artifacts: vec![artifact],
            required: false,
            reboot: Default::default(),
            classification: Default::default(),
            notes: String::new(),
            dependencies: vec![],
            supersedes: vec![],
            no_update_versions: vec![],
            applies_to: None,
        })
        .await
        .unwrap();
    // One wave that soaks for a day, so the rollout stays running (and limited) for the test.
    let everyone = Wave {
        group: None,
        share: 10_000,
        soak_secs: 86_400,
        success: 0,
        failure: 10_000,
        failure_min: 1000,
        manual_gate: false,
    };
    let rollout = admin
        .create_rollout(&RolloutSpec {
            release: release.id,
            targets: vec!["office".parse().unwrap()],
            waves: vec![everyone],
            limits: Limits { rate: Some(Rate { count: RATE, period_secs: 3600 }), max_in_progress: None },
            commit_timeout_secs: 3600,
            emergency: false,
        })
        .await
        .unwrap()
        .rollout;

    // Every device enrolls through server A and then checks in through both, concurrently.
    let pool = reqwest::Client::new();
    let pool = &pool;
    let enrolled: Vec<(DeviceId, String)> = futures::stream::iter((0..DEVICES).map(|i| {
        let (pool, url, key) = (pool.clone(), url_a.clone(), group.enrollment_key.clone());
        async move {
            let id: DeviceId = format!("pc-{i:03}").parse().unwrap();
            let client = DeviceClient::with_client(&url, None, pool).unwrap();
            let answer = client.enroll(&EnrollRequest { device_id: id.clone(), enrollment_key: key }).await.unwrap();
            (id, answer.credential)
        }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    let (url_a, url_b) = (&url_a, &url_b);
    let checkins = enrolled.iter().flat_map(|(id, credential)| {
        [url_a, url_b, url_b, url_a].into_iter().map(move |url| {
            let client = DeviceClient::with_client(url, Some(credential.clone()), pool.clone()).unwrap();
            let request = CheckinRequest {
                platform: Some("linux-x86_64".parse().unwrap()),
                installed: [("vpn-client".parse().unwrap(), "1.0".parse().unwrap())].into(),
                ..Default::default()
            };
            let (id, release) = (id.clone(), release.id);
            async move {
                let answer = client.checkin(&request).await.unwrap();
                answer.offers.iter().any(|o| o.release == release).then_some(id)
            }
        })
    });
    let offered: Vec<Option<DeviceId>> = futures::stream::iter(checkins).buffer_unordered(96).collect().await;
    let granted: BTreeSet<DeviceId> = offered.into_iter().flatten().collect();
    assert_eq!(granted.len(), RATE as usize, "devices offered the release through the two servers");

    let detail = admin.get_rollout(rollout.id).await.unwrap();
    assert_eq!(detail.waves[0].granted, u64::from(RATE));
    assert_eq!(detail.waves[0].eligible, DEVICES as u64);
}
