//! The server's HTTP API end to end: a real server in-process, real HTTP over loopback, the
//! real client crate, on SQLite and on PostgreSQL.

mod common;

use ferry_api::*;
use ferry_client::{AdminClient, ClientError, DeviceClient, DeviceQuery};
use ferry_core::applicability::Verdict;
use ferry_core::{ApprovalAction, DeviceState, DeviceStatus, NewEvent, Release, ReleaseKind, Role, VersionRange};

use common::{code, report, sha, Fleet};

/// A catalogue with product `agent`, platform `linux-x86_64` and group `office`.
async fn fleet(srv: &common::TestServer) -> Fleet {
    let product = ProductSpec { name: "agent".parse().unwrap(), description: "the agent".into() };
    Fleet::new(srv, product, Some((600, 0.2))).await
}

impl Fleet {
    async fn publish(&self, version: &str, data: &[u8]) -> Release {
        self.publish_spec(version, data, |_| {}).await
    }

    async fn publish_spec(&self, version: &str, data: &[u8], tweak: impl FnOnce(&mut ReleaseSpec)) -> Release {
        let info = self.admin.upload_content(data.to_vec(), Some(&sha(data))).await.unwrap();
        let artifact = common::artifact(&format!("agent-{version}.tar.gz"), &info, "application/gzip");
        let mut spec = ReleaseSpec {
            notes: format!("release {version}"),
            ..common::release_spec("agent", version, "linux-x86_64", artifact)
        };
        tweak(&mut spec);
        self.admin.create_release(&spec).await.unwrap()
    }
}

async fn read_all(mut d: ferry_client::Download) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = d.chunk().await.unwrap() {
        out.extend_from_slice(&c);
    }
    out
}

on_both_backends!(health_and_openapi, |srv: common::TestServer| async move {
    let admin = AdminClient::new(&srv.url, &srv.admin_token).unwrap();
    assert_eq!(admin.livez().await.unwrap().status, "ok");
    assert_eq!(admin.readyz().await.unwrap().status, "ok");
    let doc = admin.openapi().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/products",
        "/api/v1/releases/{id}/approvals/{group}",
        "/api/v1/content",
        "/api/v1/devices/{id}/applicability",
        "/device/v1/checkin",
        "/device/v1/content/{sha256}",
    ] {
        assert!(paths.contains_key(p), "openapi document lacks {p}");
    }
    assert!(doc["components"]["schemas"]["ErrorCode"].is_object());
    // The initial admin token was written to a 0600 file and works.
    let path = srv.data_dir.join("admin-token");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk.trim(), srv.admin_token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(admin.whoami().await.unwrap().role, Role::Admin);
});

on_both_backends!(catalogue_and_deduplication, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let first = f.admin.upload_content(b"payload".to_vec(), None).await.unwrap();
    assert!(first.created);
    assert_eq!(first.sha256, sha(b"payload"));
    let again = f.admin.upload_content(b"payload".to_vec(), None).await.unwrap();
    assert!(!again.created, "identical content is stored once");
    assert_eq!(f.admin.content_exists(&sha(b"payload")).await.unwrap(), Some(7));
    assert_eq!(f.admin.content_exists(&sha(b"absent")).await.unwrap(), None);

    let r1 = f.publish("1.0", b"one").await;
    let r2 = f.publish("1.1", b"two").await;
    assert_eq!((r1.counter, r2.counter), (1, 2), "release counters rise per product");
    assert_eq!(f.admin.get_release(r1.id).await.unwrap(), r1);
    let listed = f.admin.list_releases(Some(&"agent".parse().unwrap())).await.unwrap();
    assert_eq!(listed.len(), 2);

    // Same version again: refused. Same version on the config line: a different release.
    let info = f.admin.upload_content(b"one".to_vec(), None).await.unwrap();
    let artifact = common::artifact("a.bin", &info, "application/octet-stream");
    let dup = common::release_spec("agent", "1.0", "linux-x86_64", artifact);
    let e = f.admin.create_release(&dup).await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::Conflict), "{e}");
    let config = f.admin.create_release(&ReleaseSpec { kind: ReleaseKind::Config, ..dup.clone() }).await.unwrap();
    assert_eq!(config.kind, ReleaseKind::Config);

    // Unknown product or platform.
    let e = f.admin.create_release(&ReleaseSpec { product: "nope".parse().unwrap(), ..dup.clone() }).await.unwrap_err();
    assert_eq!(code(&e).0, 404, "{e}");
    let e = f
        .admin
        .create_release(&ReleaseSpec {
            version: "9".parse().unwrap(),
            platforms: vec!["nope".parse().unwrap()],
            ..dup.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e).0, 404, "{e}");
    // A patch needs a range; a declared length must match the content.
    let e = f
        .admin
        .create_release(&ReleaseSpec { version: "9".parse().unwrap(), kind: ReleaseKind::Patch, ..dup.clone() })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, ErrorCode::BadRequest), "{e}");
    let mut wrong_len = dup.clone();
    wrong_len.version = "9".parse().unwrap();
    wrong_len.artifacts[0].length += 1;
    let e = f.admin.create_release(&wrong_len).await.unwrap_err();
    assert_eq!(code(&e), (400, ErrorCode::SizeMismatch), "{e}");
    // Artifacts whose content was never uploaded.
    let mut missing = dup.clone();
    missing.version = "9".parse().unwrap();
    missing.artifacts[0].sha256 = sha(b"never uploaded");
    let e = f.admin.create_release(&missing).await.unwrap_err();
    assert_eq!(code(&e).0, 400, "{e}");
    assert!(e.to_string().contains("upload it first"), "{e}");
});

on_both_backends!(checkin_offer_download_and_report, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let release = f.publish("2.0", &data).await;
    let device = f.enroll("pc-001").await;

    // Not approved yet: nothing offered.
    let answer = device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    assert!(answer.offers.is_empty());
    assert!((480..=720).contains(&answer.next_checkin_secs), "interval 600 ± 20%: {}", answer.next_checkin_secs);

    f.approve(&release, None).await;
    let answer = device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    assert_eq!(answer.offers.len(), 1);
    let offer = &answer.offers[0];
    assert_eq!((offer.release, offer.version.as_str()), (release.id, "2.0"));
    let art = &offer.artifacts[0];
    assert_eq!((art.artifact.length, &art.artifact.sha256), (data.len() as u64, &sha(&data)));
    assert_eq!(art.url, format!("/device/v1/content/{}", sha(&data)));

    // Interrupted download resumed with Range + If-Range.
    let digest = sha(&data);
    let etag = ferry_client::entity_tag(&digest);
    let head = device.download_content(&digest, Some((0, Some(99_999))), None).await.unwrap();
    assert_eq!(head.status, 206);
    assert_eq!(head.etag.as_deref(), Some(etag.as_str()));
    let cr = head.content_range.unwrap();
    assert_eq!((cr.start, cr.end, cr.total), (0, 99_999, Some(data.len() as u64)));
    let mut got = read_all(head).await;
    let tail = device.download_content(&digest, Some((100_000, None)), Some(&etag)).await.unwrap();
    assert_eq!(tail.status, 206);
    got.extend(read_all(tail).await);
    assert_eq!(got, data);
    // An If-Range that no longer matches gets the whole content.
    let stale = device.download_content(&digest, Some((100_000, None)), Some("\"something-else\"")).await.unwrap();
    assert_eq!(stale.status, 200);
    assert_eq!(read_all(stale).await.len(), data.len());
    // A range past the end: 416.
    let e = device.download_content(&digest, Some((data.len() as u64, None)), None).await.unwrap_err();
    assert_eq!(code(&e).0, 416, "{e}");
    // The resumable helper finishes a partial file and verifies it.
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("agent.part");
    std::fs::write(&part, &data[..12_345]).unwrap();
    let outcome = device.download_to_file_resumable(&digest, &part).await.unwrap();
    assert_eq!((outcome.length, outcome.resumed_from), (data.len() as u64, 12_345));
    assert_eq!(std::fs::read(&part).unwrap(), data);

    // Report progress; the server keeps the events in order and the latest state.
    let events: Vec<NewEvent> = [
        (1, DeviceState::Downloading, Some(100_000)),
        (2, DeviceState::Downloaded, None),
        (3, DeviceState::Installing, None),
        (4, DeviceState::Installed, None),
    ]
    .into_iter()
    .map(|(seq, state, progress)| NewEvent {
        seq,
        release: release.id,
        state,
        progress,
        error_code: None,
        message: None,
        at: 1_700_000_000 + seq,
    })
    .collect();
    let stored = device.send_events(&EventBatch { events: events.clone() }).await.unwrap();
    assert_eq!((stored.stored, stored.duplicates), (4, 0));
    let detail = f.admin.get_device(&"pc-001".parse().unwrap()).await.unwrap();
    assert_eq!(detail.releases.len(), 1);
    assert_eq!(detail.releases[0].state, DeviceState::Installed);
    assert_eq!(detail.events.iter().map(|e| e.event.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(detail.device.platform.as_ref().map(|p| p.as_str()), Some("linux-x86_64"));
    assert!(detail.device.last_contact.is_some());

    // Once it runs 2.0, nothing more is offered.
    let answer = device.checkin(&report(&[("agent", "2.0")])).await.unwrap();
    assert!(answer.offers.is_empty());
    let detail = f.admin.get_device(&"pc-001".parse().unwrap()).await.unwrap();
    assert_eq!(detail.device.installed.get(&"agent".parse().unwrap()).map(|v| v.as_str()), Some("2.0"));
});

on_both_backends!(approvals_decline_and_why, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let old = f.publish("1.1", b"old").await;
    let new = f.publish("1.2", b"new").await;
    let patch = f
        .publish_spec("1.2.1", b"patch", |s| {
            s.kind = ReleaseKind::Patch;
            s.applies_to = Some(VersionRange { min: Some("1.2".parse().unwrap()), max: Some("1.2".parse().unwrap()) });
        })
        .await;
    let device = f.enroll("pc-002").await;
    f.approve(&old, None).await;
    f.approve(&new, None).await;
    f.approve(&patch, None).await;
    let answer = device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    assert_eq!(answer.offers.iter().map(|o| o.release).collect::<Vec<_>>(), vec![new.id], "only the newest is offered");

    let why = f.admin.device_applicability(&"pc-002".parse().unwrap()).await.unwrap();
    let verdict = |id| why.decisions.iter().find(|d| d.release == id).unwrap().verdict.clone();
    assert_eq!(verdict(old.id), Verdict::Superseded { by: new.id });
    assert_eq!(verdict(patch.id), Verdict::OutsidePatchRange);

    // Decline the newest: the older approved one comes back.
    let office = "office".parse().unwrap();
    f.admin
        .set_approval(new.id, &office, &ApprovalSpec { action: ApprovalAction::Decline, deadline: None })
        .await
        .unwrap();
    let answer = device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    assert_eq!(answer.offers.iter().map(|o| o.release).collect::<Vec<_>>(), vec![old.id]);
    // Unapprove the older one: nothing left.
    f.admin.delete_approval(old.id, &office).await.unwrap();
    let answer = device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    assert!(answer.offers.is_empty());
    let e = f.admin.delete_approval(old.id, &office).await.unwrap_err();
    assert_eq!(code(&e).0, 404);
    // A device on 1.2 gets the patch.
    f.admin
        .set_approval(new.id, &office, &ApprovalSpec { action: ApprovalAction::Install, deadline: Some(1_900_000_000) })
        .await
        .unwrap();
    let answer = device.checkin(&report(&[("agent", "1.2")])).await.unwrap();
    assert_eq!(answer.offers.iter().map(|o| o.release).collect::<Vec<_>>(), vec![patch.id]);
    let approvals = f.admin.list_approvals(Some(&office)).await.unwrap();
    assert_eq!(approvals.len(), 2);
});

on_both_backends!(enrollment_pending_preauthorised_and_clones, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("2.0", b"two").await;
    f.approve(&release, None).await;

    // Without a key: pending, no offers, until an admin accepts and adds it to a group.
    let mut pending = DeviceClient::new(&f.url, None).unwrap();
    let e = pending
        .enroll(&EnrollRequest {
            device_id: "kiosk-1".parse().unwrap(),
            enrollment_key: Some("ferry_enr_wrong".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (401, ErrorCode::Unauthorized));
    let enrolled =
        pending.enroll(&EnrollRequest { device_id: "kiosk-1".parse().unwrap(), enrollment_key: None }).await.unwrap();
    assert_eq!(enrolled.status, DeviceStatus::Pending);
    pending.set_credential(&enrolled.credential).unwrap();
    let answer = pending.checkin(&report(&[])).await.unwrap();
    assert_eq!(answer.status, DeviceStatus::Pending);
    assert!(answer.offers.is_empty());
    let listed =
        f.admin.list_devices(&DeviceQuery { status: Some(DeviceStatus::Pending), ..Default::default() }).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["kiosk-1"]);
    let id = "kiosk-1".parse().unwrap();
    f.admin.accept_device(&id).await.unwrap();
    f.admin.set_device_groups(&id, &DeviceGroups { groups: vec!["office".parse().unwrap()] }).await.unwrap();
    assert_eq!(pending.checkin(&report(&[])).await.unwrap().offers.len(), 1);

    // Pre-authorised: accepted on enrollment with its own key, in the listed group.
    let issued = f
        .admin
        .preauthorize_device(&PreauthorizeSpec {
            id: "phone-7".parse().unwrap(),
            groups: vec!["office".parse().unwrap()],
        })
        .await
        .unwrap();
    let mut pre = DeviceClient::new(&f.url, None).unwrap();
    let enrolled = pre
        .enroll(&EnrollRequest {
            device_id: "phone-7".parse().unwrap(),
            enrollment_key: Some(issued.enrollment_key.clone()),
        })
        .await
        .unwrap();
    assert_eq!(enrolled.status, DeviceStatus::Accepted);
    pre.set_credential(&enrolled.credential).unwrap();
    assert_eq!(pre.checkin(&report(&[])).await.unwrap().offers.len(), 1);

    // A second machine claiming an enrolled id is refused and recorded.
    let clone = DeviceClient::new(&f.url, None).unwrap();
    let e = clone
        .enroll(&EnrollRequest {
            device_id: "phone-7".parse().unwrap(),
            enrollment_key: Some(f.enrollment_key.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::Conflict), "{e}");
    // Two machines sharing one credential alternate boot ids: detected.
    let mut a = report(&[]);
    a.boot_id = Some("boot-A".into());
    let mut b = report(&[]);
    b.boot_id = Some("boot-B".into());
    for r in [&a, &b, &a] {
        pre.checkin(r).await.unwrap();
    }
    let conflicted = f.admin.list_devices(&DeviceQuery { conflicts: true, ..Default::default() }).await.unwrap();
    assert_eq!(conflicted.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["phone-7"]);
    assert_eq!(conflicted[0].identity_conflicts, 2, "one duplicate enrollment, one boot-id flip");

    // Rejected: the credential stops working.
    f.admin.reject_device(&"phone-7".parse().unwrap()).await.unwrap();
    let e = pre.checkin(&report(&[])).await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::DeviceRejected));
});

/// An enrollment's full error: status, code and message.
async fn enroll_refusal(url: &str, id: &str, key: Option<&str>) -> (u16, ErrorCode, String) {
    let device = DeviceClient::new(url, None).unwrap();
    let request = EnrollRequest { device_id: id.parse().unwrap(), enrollment_key: key.map(str::to_owned) };
    match device.enroll(&request).await.unwrap_err() {
        ClientError::Api { status, code, message, .. } => (status, code, message),
        other => panic!("expected an API error, got {other}"),
    }
}

on_both_backends!(preauthorised_ids_are_bound_to_their_own_key, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let spec = PreauthorizeSpec { id: "phone-8".parse().unwrap(), groups: vec!["office".parse().unwrap()] };
    let issued = f.admin.preauthorize_device(&spec).await.unwrap();
    assert!(issued.enrollment_key.starts_with(DEVICE_ENROLLMENT_KEY_PREFIX), "{}", issued.enrollment_key);
    let id: ferry_core::DeviceId = "phone-8".parse().unwrap();
    let before = f.admin.get_device(&id).await.unwrap().device;

    // What a stranger gets for a wrong key on an id nobody has heard of...
    let unknown = enroll_refusal(&f.url, "never-seen", Some("ferry_enr_wrong")).await;
    assert_eq!((unknown.0, unknown.1), (401, ErrorCode::Unauthorized));
    // ...is exactly what it gets for the pre-authorised id without its key, with a group's
    // key, or with another id's key: the answer does not tell that the id exists.
    let other = PreauthorizeSpec { id: "phone-9".parse().unwrap(), groups: vec![] };
    let other_key = f.admin.preauthorize_device(&other).await.unwrap().enrollment_key;
    let wrong_device_key = format!("{DEVICE_ENROLLMENT_KEY_PREFIX}{}", "0".repeat(64));
    for key in [None, Some(f.enrollment_key.as_str()), Some(other_key.as_str()), Some(wrong_device_key.as_str())] {
        assert_eq!(enroll_refusal(&f.url, "phone-8", key).await, unknown, "claim with {key:?}");
    }
    // A device key is bound to its id: on an unknown id it is as wrong as any other key.
    assert_eq!(enroll_refusal(&f.url, "never-seen-2", Some(&issued.enrollment_key)).await, unknown);
    assert!(f.admin.get_device(&"never-seen-2".parse().unwrap()).await.is_err(), "nothing was created");
    // None of it touched the device.
    assert_eq!(f.admin.get_device(&id).await.unwrap().device, before);

    // Re-issuing the key replaces the old one.
    let reissued = f.admin.preauthorize_device(&spec).await.unwrap();
    assert_eq!(enroll_refusal(&f.url, "phone-8", Some(&issued.enrollment_key)).await, unknown);

    // The device itself, with its key: accepted into its groups.
    let mut device = DeviceClient::new(&f.url, None).unwrap();
    let enrolled = device
        .enroll(&EnrollRequest { device_id: id.clone(), enrollment_key: Some(reissued.enrollment_key.clone()) })
        .await
        .unwrap();
    assert_eq!(enrolled.status, DeviceStatus::Accepted);
    device.set_credential(&enrolled.credential).unwrap();
    device.checkin(&report(&[])).await.unwrap();

    // Enrolled now. An unproven claim still gets the stranger's answer and counts for nothing;
    // a claim with the device's own key is another machine holding it: a clone, recorded.
    assert_eq!(enroll_refusal(&f.url, "phone-8", None).await, unknown);
    assert_eq!(f.admin.get_device(&id).await.unwrap().device.identity_conflicts, 0);
    let clone = enroll_refusal(&f.url, "phone-8", Some(&reissued.enrollment_key)).await;
    assert_eq!((clone.0, clone.1), (409, ErrorCode::Conflict), "{clone:?}");
    assert_eq!(f.admin.get_device(&id).await.unwrap().device.identity_conflicts, 1);
    // Once enrolled, the id cannot be pre-authorised again.
    let e = f.admin.preauthorize_device(&spec).await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::Conflict));
});

/// Posts a keyless enrollment and returns the raw answer (status, `Retry-After`, body).
async fn raw_enroll(url: &str, id: &str) -> (u16, Option<String>, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}{DEVICE_PREFIX}/enroll"))
        .json(&serde_json::json!({ "device_id": id }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry, response.json().await.unwrap())
}

/// Enrollment needs no credential, so it is rate-limited per address and overall: past a
/// limit the answer is 429 with `Retry-After`, and nothing is created.
async fn enrollment_is_rate_limited(backend: common::Backend) {
    let srv = common::TestServer::start_with(backend, |c| {
        c.trust.require_signed_releases = false;
        c.enrollment.per_address_per_minute = 3;
    })
    .await;
    let admin = AdminClient::new(&srv.url, &srv.admin_token).unwrap();
    for i in 0..3 {
        assert_eq!(raw_enroll(&srv.url, &format!("flood-{i}")).await.0, 201);
    }
    let (status, retry, body) = raw_enroll(&srv.url, "flood-3").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"].as_str().unwrap().contains("127.0.0.1"), "{body}");
    let secs: u64 = retry.expect("a Retry-After header").parse().unwrap();
    assert!((1..=20).contains(&secs), "one enrollment every 20 s: retry within that, not {secs}");
    assert!(admin.get_device(&"flood-3".parse().unwrap()).await.is_err(), "nothing was created");

    // The server-wide limit holds whatever the addresses.
    let srv = common::TestServer::start_with(common::Backend::Sqlite, |c| {
        c.enrollment.per_address_per_minute = 100;
        c.enrollment.total_per_minute = 2;
    })
    .await;
    for i in 0..2 {
        assert_eq!(raw_enroll(&srv.url, &format!("wave-{i}")).await.0, 201);
    }
    let (status, retry, body) = raw_enroll(&srv.url, "wave-2").await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert!(retry.is_some());
}

/// With `enrollment.allow_keyless = false`, a device without a key is refused with a message
/// saying what to set; a group's key still enrolls.
async fn keyless_enrollment_can_be_switched_off(backend: common::Backend) {
    let srv = common::TestServer::start_with(backend, |c| {
        c.trust.require_signed_releases = false;
        c.enrollment.allow_keyless = false;
    })
    .await;
    let f = fleet(&srv).await;
    let (status, _, body) = raw_enroll(&srv.url, "kiosk-9").await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("only with an enrollment key"), "{body}");
    assert!(f.admin.get_device(&"kiosk-9".parse().unwrap()).await.is_err(), "nothing was created");
    f.enroll("kiosk-9").await;
}

mod enrollment_limits {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limited_sqlite() {
        enrollment_is_rate_limited(common::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limited_postgres() {
        enrollment_is_rate_limited(common::Backend::Postgres).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keyless_off_sqlite() {
        keyless_enrollment_can_be_switched_off(common::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keyless_off_postgres() {
        keyless_enrollment_can_be_switched_off(common::Backend::Postgres).await;
    }
}

/// Posts `body` as JSON to a device route with `credential`; returns status and body.
async fn device_post(url: &str, path: &str, credential: &str, body: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}{DEVICE_PREFIX}/{path}"))
        .bearer_auth(credential)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

on_both_backends!(events_only_for_releases_the_device_has_a_part_in, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let offered = f.publish("2.0", b"two").await;
    f.approve(&offered, None).await;
    let never = f.publish("3.0", b"three").await;
    let installed = f.publish("1.5", b"one-five").await;
    let device = f.enroll("gw-1").await;
    device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    let ev =
        |seq, release, state| NewEvent { seq, release, state, progress: None, error_code: None, message: None, at: 1 };
    let id: ferry_core::DeviceId = "gw-1".parse().unwrap();

    // A release never offered, not installed, never reported on: refused, nothing stored.
    let batch = EventBatch {
        events: vec![ev(1, offered.id, DeviceState::Downloading), ev(2, never.id, DeviceState::Installed)],
    };
    let e = device.send_events(&batch).await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::NotEntitled), "{e}");
    assert!(e.to_string().contains(&format!("release {}", never.id)), "{e}");
    assert!(f.admin.device_events(&id, None, None).await.unwrap().is_empty(), "nothing of the batch was stored");

    // The offered release: accepted. After the offer is withdrawn, the device still reports
    // how its update ends, since it reported on the release before.
    device.send_events(&EventBatch { events: vec![ev(1, offered.id, DeviceState::Downloading)] }).await.unwrap();
    f.admin.delete_approval(offered.id, &"office".parse().unwrap()).await.unwrap();
    device.send_events(&EventBatch { events: vec![ev(2, offered.id, DeviceState::RolledBack)] }).await.unwrap();
    // A release it reports installed: accepted.
    device.checkin(&report(&[("agent", "1.5")])).await.unwrap();
    device.send_events(&EventBatch { events: vec![ev(3, installed.id, DeviceState::Committed)] }).await.unwrap();

    // A retry of seq 1 with other content is a conflict, not a silently dropped duplicate.
    let e = device.send_events(&EventBatch { events: vec![ev(1, offered.id, DeviceState::Failed)] }).await.unwrap_err();
    assert_eq!(code(&e).0, 409, "{e}");
    assert!(e.to_string().contains("different content"), "{e}");
    let stored = f.admin.device_events(&id, None, None).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.event.state).collect::<Vec<_>>(),
        [DeviceState::Downloading, DeviceState::RolledBack, DeviceState::Committed]
    );
});

on_both_backends!(pending_devices_read_no_metadata_and_post_no_events, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("2.0", b"two").await;
    f.approve(&release, None).await;
    let mut pending = DeviceClient::new(&f.url, None).unwrap();
    let enrolled =
        pending.enroll(&EnrollRequest { device_id: "kiosk-2".parse().unwrap(), enrollment_key: None }).await.unwrap();
    assert_eq!(enrolled.status, DeviceStatus::Pending);
    pending.set_credential(&enrolled.credential).unwrap();
    for file in ["timestamp.json", "1.root.json"] {
        let e = pending.image_metadata(file).await.unwrap_err();
        assert_eq!(code(&e), (403, ErrorCode::Forbidden), "{file}: {e}");
        assert!(e.to_string().contains("ferry device accept kiosk-2"), "{e}");
    }
    let e = pending.director_metadata("timestamp.json").await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::Forbidden), "{e}");
    let event = NewEvent {
        seq: 1,
        release: release.id,
        state: DeviceState::Downloading,
        progress: None,
        error_code: None,
        message: None,
        at: 1,
    };
    let e = pending.send_events(&EventBatch { events: vec![event] }).await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::Forbidden), "{e}");
    assert!(f.admin.device_events(&"kiosk-2".parse().unwrap(), None, None).await.unwrap().is_empty());
});

on_both_backends!(device_reports_refuse_unknown_fields_and_repeated_keys, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("2.0", b"two").await;
    f.approve(&release, None).await;
    let mut device = DeviceClient::new(&f.url, None).unwrap();
    let enrolled = device
        .enroll(&EnrollRequest { device_id: "gw-2".parse().unwrap(), enrollment_key: Some(f.enrollment_key.clone()) })
        .await
        .unwrap();
    device.set_credential(&enrolled.credential).unwrap();
    let credential = enrolled.credential;

    // A misspelt event field is refused, like everywhere else.
    let typo =
        format!(r#"{{"events":[{{"seq":1,"release":{},"state":"downloading","at":1,"mesage":"x"}}]}}"#, release.id);
    let (status, body) = device_post(&f.url, "events", &credential, &typo).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("mesage"), "{body}");

    // A key repeated in attributes would lose one of the values: refused, nothing recorded.
    let repeated = r#"{"platform":"linux-x86_64","attributes":{"site":"north","site":"south"}}"#;
    let (status, body) = device_post(&f.url, "checkin", &credential, repeated).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("\"site\" appears more than once"), "{body}");
    let repeated = r#"{"installed":{"agent":"1.0","agent":"2.0"}}"#;
    assert_eq!(device_post(&f.url, "checkin", &credential, repeated).await.0, 400);
    let detail = f.admin.get_device(&"gw-2".parse().unwrap()).await.unwrap().device;
    assert!(detail.attributes.is_empty() && detail.installed.is_empty(), "{detail:?}");
});

on_both_backends!(approval_deadlines_outside_a_sane_range_are_refused, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("2.0", b"two").await;
    let office = "office".parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Milliseconds for seconds, the epoch, long past, and decades ahead.
    for deadline in [now * 1000, 0, now - 3 * 86_400, now + 20 * 366 * 86_400] {
        let spec = ApprovalSpec { action: ApprovalAction::Install, deadline: Some(deadline) };
        let e = f.admin.set_approval(release.id, &office, &spec).await.unwrap_err();
        assert_eq!(code(&e), (400, ErrorCode::BadRequest), "{deadline}: {e}");
        assert!(e.to_string().contains("not a plausible time"), "{e}");
    }
    assert!(f.admin.list_approvals(Some(&office)).await.unwrap().is_empty(), "nothing was approved");
    for deadline in [now, now + 30 * 86_400, now + 4 * 366 * 86_400] {
        let spec = ApprovalSpec { action: ApprovalAction::Install, deadline: Some(deadline) };
        f.admin.set_approval(release.id, &office, &spec).await.unwrap();
    }
});

on_both_backends!(events_are_idempotent_and_ordered, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("2.0", b"two").await;
    f.approve(&release, None).await;
    let device = f.enroll("gw-1").await;
    device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    let ev = |seq, state| NewEvent {
        seq,
        release: release.id,
        state,
        progress: None,
        error_code: None,
        message: None,
        at: 1,
    };
    let out = device
        .send_events(&EventBatch { events: vec![ev(1, DeviceState::Downloading), ev(3, DeviceState::Downloaded)] })
        .await
        .unwrap();
    assert_eq!(out.stored, 2);
    // A retry of the same batch stores nothing new.
    let out = device
        .send_events(&EventBatch { events: vec![ev(1, DeviceState::Downloading), ev(3, DeviceState::Downloaded)] })
        .await
        .unwrap();
    assert_eq!((out.stored, out.duplicates), (0, 2));
    // Seq 2 arrives after 3: refused, and the batch's other event is not stored either.
    let e = device
        .send_events(&EventBatch { events: vec![ev(2, DeviceState::Failed), ev(4, DeviceState::Installing)] })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::OutOfOrder), "{e}");
    let events = f.admin.device_events(&"gw-1".parse().unwrap(), None, None).await.unwrap();
    assert_eq!(events.iter().map(|e| e.event.seq).collect::<Vec<_>>(), vec![1, 3]);
    // Failure with code and message, for an unknown release: 404.
    let mut failed = ev(5, DeviceState::Failed);
    failed.error_code = Some("E_DISK_FULL".into());
    failed.message = Some("no space left on device".into());
    device.send_events(&EventBatch { events: vec![failed] }).await.unwrap();
    let detail = f.admin.get_device(&"gw-1".parse().unwrap()).await.unwrap();
    assert_eq!(detail.releases[0].state, DeviceState::Failed);
    assert_eq!(detail.releases[0].error_code.as_deref(), Some("E_DISK_FULL"));
    let mut unknown = ev(6, DeviceState::Failed);
    unknown.release = ferry_core::ReleaseId(9999);
    assert_eq!(code(&device.send_events(&EventBatch { events: vec![unknown] }).await.unwrap_err()).0, 404);
    // Unsorted batch: a malformed request (out_of_order, 409, is for a batch that clashes with
    // what the server already has).
    let e = device
        .send_events(&EventBatch { events: vec![ev(8, DeviceState::Failed), ev(7, DeviceState::Failed)] })
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, ErrorCode::BadRequest));
});

on_both_backends!(roles_and_credential_kinds, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("2.0", b"two").await;
    let viewer = f.admin.create_token(&TokenSpec { name: "dash".into(), role: Role::Viewer }).await.unwrap();
    let operator = f.admin.create_token(&TokenSpec { name: "ops".into(), role: Role::Operator }).await.unwrap();
    let viewer_client = AdminClient::new(&f.url, &viewer.secret).unwrap();
    let operator_client = AdminClient::new(&f.url, &operator.secret).unwrap();
    assert_eq!(viewer_client.list_releases(None).await.unwrap().len(), 1);
    let spec = ProductSpec { name: "other".parse().unwrap(), description: String::new() };
    assert_eq!(code(&viewer_client.create_product(&spec).await.unwrap_err()), (403, ErrorCode::Forbidden));
    let approve = ApprovalSpec { action: ApprovalAction::Install, deadline: None };
    let office = "office".parse().unwrap();
    assert_eq!(
        code(&viewer_client.set_approval(release.id, &office, &approve).await.unwrap_err()).1,
        ErrorCode::Forbidden
    );
    operator_client.set_approval(release.id, &office, &approve).await.unwrap();
    assert_eq!(code(&operator_client.create_product(&spec).await.unwrap_err()).1, ErrorCode::Forbidden);
    assert_eq!(code(&operator_client.list_tokens().await.unwrap_err()).1, ErrorCode::Forbidden);

    // Credential kinds never cross over.
    let mut device = DeviceClient::new(&f.url, None).unwrap();
    let enrolled = device
        .enroll(&EnrollRequest { device_id: "d1".parse().unwrap(), enrollment_key: Some(f.enrollment_key.clone()) })
        .await
        .unwrap();
    device.set_credential(&enrolled.credential).unwrap();
    let device_as_admin = AdminClient::new(&f.url, &enrolled.credential).unwrap();
    assert_eq!(code(&device_as_admin.list_products().await.unwrap_err()), (401, ErrorCode::WrongCredentialKind));
    let admin_as_device = DeviceClient::new(&f.url, Some(srv.admin_token.clone())).unwrap();
    assert_eq!(code(&admin_as_device.checkin(&report(&[])).await.unwrap_err()), (401, ErrorCode::WrongCredentialKind));
    let nobody = DeviceClient::new(&f.url, Some("ferry_dev_unknown".into())).unwrap();
    assert_eq!(code(&nobody.checkin(&report(&[])).await.unwrap_err()), (401, ErrorCode::Unauthorized));

    // Revoked tokens stop working; the list never shows secrets.
    f.admin.revoke_token(viewer.token.id).await.unwrap();
    assert_eq!(code(&viewer_client.list_releases(None).await.unwrap_err()), (401, ErrorCode::Unauthorized));
    let tokens = serde_json::to_string(&f.admin.list_tokens().await.unwrap()).unwrap();
    assert!(!tokens.contains(&operator.secret));
});

on_both_backends!(downloads_need_entitlement, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let release = f.publish("2.0", b"secret firmware").await;
    f.approve(&release, None).await;
    let inside = f.enroll("in-1").await;
    inside.checkin(&report(&[])).await.unwrap();
    let digest = sha(b"secret firmware");
    assert_eq!(read_all(inside.download_content(&digest, None, None).await.unwrap()).await, b"secret firmware");
    // Another platform is not offered the release, so it may not download it.
    let outside = f.enroll("out-1").await;
    let mut other = report(&[]);
    other.platform = Some("windows-x86_64".parse().unwrap());
    outside.checkin(&other).await.unwrap();
    let e = outside.download_content(&digest, None, None).await.unwrap_err();
    assert_eq!(code(&e), (403, ErrorCode::NotEntitled));
    let anonymous = DeviceClient::new(&f.url, None).unwrap();
    assert_eq!(code(&anonymous.download_content(&digest, None, None).await.unwrap_err()).0, 401);
});

on_both_backends!(unchanged_checkins_still_record_last_contact, |srv: common::TestServer| async move {
    let f = fleet(&srv).await;
    let device = f.enroll("quiet-1").await;
    let id = "quiet-1".parse().unwrap();
    device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    let first = f.admin.get_device(&id).await.unwrap().device.last_contact.unwrap();
    srv.state.clock.set(first + 90);
    // Same facts again: only the contact time changes, written behind within a second or so
    // (the wait is for the background writer, not for time to pass).
    device.checkin(&report(&[("agent", "1.0")])).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = f.admin.get_device(&id).await.unwrap().device.last_contact.unwrap();
        if now > first {
            assert_eq!(now, first + 90, "the contact time is the server's clock at the check-in");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "last contact never advanced past {first}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
});
