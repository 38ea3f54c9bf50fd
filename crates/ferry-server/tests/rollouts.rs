//! Staged rollouts end to end: a fleet of 1,000 devices checking in over real HTTP through the
//! typed client, on SQLite and PostgreSQL, taken through a three-wave rollout with injected
//! failures. The server's clock is set by the test, and the rollout tick is run when the test
//! has finished a round, so soak times pass without sleeping.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use ferry_api::*;
use ferry_client::DeviceClient;
use ferry_core::rollout::{self, Action, Cause, RolloutState, Wave};
use ferry_core::{DeviceId, DeviceState, NewEvent, Release, ReleaseId};
use futures::StreamExt;

use common::{code, report, sha, Backend, Fleet, TestServer};

const FLEET: usize = 1000;
const CONCURRENCY: usize = 32;
const T0: i64 = 1_900_000_000;

async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.trust.require_signed_releases = false;
        c.enrollment.per_address_per_minute = 100_000;
        c.enrollment.total_per_minute = 100_000;
    })
    .await
}

struct Device {
    id: DeviceId,
    client: DeviceClient,
    installed: String,
    seq: i64,
}

/// One round: every device in `who` checks in; then every device offered `release` reports
/// its progress and `committed`, or `failed` if it is in `failing`. All check-ins come before
/// any report, so a pause the server's own tick makes while reports arrive does not change who
/// was granted. Returns the devices that were offered the release.
async fn round(
    devices: &mut [Device],
    who: impl Fn(&DeviceId) -> bool,
    release: &Release,
    failing: &BTreeSet<DeviceId>,
) -> BTreeSet<DeviceId> {
    let checkins = devices.iter_mut().filter(|d| who(&d.id)).map(|d| async move {
        let answer = d.client.checkin(&report(&[("vpn-client", &d.installed)])).await.unwrap();
        answer.offers.iter().any(|o| o.release == release.id).then_some(d)
    });
    let offered: Vec<&mut Device> =
        futures::stream::iter(checkins).buffer_unordered(CONCURRENCY).filter_map(|x| async move { x }).collect().await;
    let version = release.version.to_string();
    let reports = offered.into_iter().map(|d| {
        let version = version.clone();
        async move {
            let fail = failing.contains(&d.id);
            let states: &[DeviceState] = if fail {
                &[DeviceState::Downloading, DeviceState::Failed]
            } else {
                &[DeviceState::Downloading, DeviceState::Installed, DeviceState::Committed]
            };
            let mut events = Vec::new();
            for &state in states {
                d.seq += 1;
                events.push(NewEvent {
                    seq: d.seq,
                    release: release.id,
                    state,
                    progress: None,
                    error_code: None,
                    message: None,
                    at: T0,
                });
            }
            d.client.send_events(&EventBatch { events }).await.unwrap();
            if !fail {
                d.installed = version;
            }
            d.id.clone()
        }
    });
    futures::stream::iter(reports).buffer_unordered(CONCURRENCY).collect().await
}

/// Product `vpn-client`, platform `linux-x86_64` and group `office`.
async fn vpn_fleet(srv: &TestServer) -> Fleet {
    Fleet::new(srv, ProductSpec { name: "vpn-client".parse().unwrap(), description: String::new() }, None).await
}

/// Publishes vpn-client `version` for linux-x86_64, approved for no one.
async fn publish(f: &Fleet, version: &str) -> Release {
    let data = format!("vpn-client {version}").into_bytes();
    let info = f.admin.upload_content(data.clone(), Some(&sha(&data))).await.unwrap();
    let artifact = common::artifact("vpn.tar", &info, "application/x-tar");
    f.admin.create_release(&common::release_spec("vpn-client", version, "linux-x86_64", artifact)).await.unwrap()
}

/// A rollout of `release` to `targets` in `waves`, without limits, not an emergency, with a
/// commit timeout of an hour.
fn plan(release: ReleaseId, targets: Vec<ferry_core::GroupName>, waves: Vec<Wave>) -> RolloutSpec {
    RolloutSpec { release, targets, waves, limits: Default::default(), commit_timeout_secs: 3600, emergency: false }
}

async fn tick(srv: &TestServer, at: i64) {
    srv.state.clock.set(at);
    ferry_server::rollouts::tick(&srv.state).await.unwrap();
}

fn wave(share: u32, failure_min: u32) -> Wave {
    Wave { group: None, share, soak_secs: 60, success: 9000, failure: 500, failure_min, manual_gate: false }
}

async fn fleet_through_three_waves(backend: Backend) {
    let srv = server(backend).await;
    srv.state.clock.set(T0);
    let f = vpn_fleet(&srv).await;
    let release = publish(&f, "2.0").await;

    // The simulated devices share one connection pool, so the test holds CONCURRENCY
    // connections, not one per device.
    let pool = reqwest::Client::new();
    let ids: Vec<String> = (0..FLEET).map(|i| format!("pc-{i:04}")).collect();
    let mut devices: Vec<Device> = futures::stream::iter(ids.iter().map(|id| {
        let (f, pool) = (&f, pool.clone());
        async move {
            let mut client = DeviceClient::with_client(&f.url, None, pool).unwrap();
            let request =
                EnrollRequest { device_id: id.parse().unwrap(), enrollment_key: Some(f.enrollment_key.clone()) };
            let enrolled = client.enroll(&request).await.unwrap();
            client.set_credential(&enrolled.credential).unwrap();
            Device { id: id.parse().unwrap(), client, installed: "1.0".into(), seq: 0 }
        }
    }))
    .buffered(CONCURRENCY)
    .collect()
    .await;
    // Before any rollout nothing is offered.
    assert!(round(&mut devices, |_| true, &release, &BTreeSet::new()).await.is_empty());

    let created = f
        .admin
        .create_rollout(&plan(
            release.id,
            vec!["office".parse().unwrap()],
            vec![wave(1000, 5), wave(5000, 5), wave(10_000, 5)],
        ))
        .await
        .unwrap();
    let r = created.rollout.clone();
    assert_eq!((r.state, r.wave), (RolloutState::Running, 0));
    assert_eq!(created.waves.iter().map(|w| w.eligible).sum::<u64>(), FLEET as u64);
    let wave_of: BTreeMap<DeviceId, u32> =
        devices.iter().map(|d| (d.id.clone(), r.wave_of(rollout::place(r.id.0 as u64, &d.id), &[]))).collect();
    let in_wave = |w: u32| wave_of.values().filter(|&&x| x == w).count();
    assert!((60..=140).contains(&in_wave(0)), "about 10 % in wave 1: {}", in_wave(0));

    // Wave 1: exactly its devices are granted; all commit.
    let granted = round(&mut devices, |_| true, &release, &BTreeSet::new()).await;
    assert_eq!(granted, wave_of.iter().filter(|(_, &w)| w == 0).map(|(d, _)| d.clone()).collect());
    tick(&srv, T0 + 30).await;
    let detail = f.admin.get_rollout(r.id).await.unwrap();
    assert_eq!((detail.rollout.state, detail.rollout.wave), (RolloutState::Running, 0), "still soaking");
    assert_eq!(detail.waves[0].committed, in_wave(0) as u64);
    tick(&srv, T0 + 61).await;
    let detail = f.admin.get_rollout(r.id).await.unwrap();
    assert_eq!((detail.rollout.state, detail.rollout.wave), (RolloutState::Running, 1), "wave 2 opened");

    // Wave 2: half its devices check in, and a quarter of those fail: about 10 % of the devices
    // admitted so far (waves 1 and 2), over the 5 % threshold.
    let wave2: Vec<DeviceId> = wave_of.iter().filter(|(_, &w)| w == 1).map(|(d, _)| d.clone()).collect();
    let (early, late) = wave2.split_at(wave2.len() / 2);
    let early: BTreeSet<DeviceId> = early.iter().cloned().collect();
    let failing: BTreeSet<DeviceId> = early.iter().step_by(4).cloned().collect();
    let granted = round(&mut devices, |d| early.contains(d), &release, &failing).await;
    assert_eq!(granted, early);
    tick(&srv, T0 + 70).await;
    let detail = f.admin.get_rollout(r.id).await.unwrap();
    assert_eq!(detail.rollout.state, RolloutState::Paused, "{:?}", detail.timeline);
    let paused_by = &detail.timeline.last().unwrap().cause;
    // The server's own tick may have paused it while the reports came in: at least at the
    // threshold (5 failures, 5 % of those admitted), at most every failure.
    assert!(
        matches!(paused_by, Cause::FailureThreshold { failed, admitted }
            if *failed >= 5 && *failed * 20 >= *admitted && *failed <= failing.len() as u64),
        "{paused_by:?}"
    );
    assert_eq!(detail.waves[1].failed, failing.len() as u64);

    // Paused: the wave's other devices get nothing, and neither does anyone later.
    let late_set: BTreeSet<DeviceId> = late.iter().cloned().collect();
    assert!(round(&mut devices, |d| late_set.contains(d) || wave_of[d] == 2, &release, &BTreeSet::new())
        .await
        .is_empty());
    // A device's "why" says which rollout holds it and why.
    let why = f.admin.device_applicability(&late[0]).await.unwrap();
    let decision = why.decisions.iter().find(|d| d.release == release.id).unwrap();
    let text = serde_json::to_string(&decision.verdict).unwrap();
    assert!(text.contains("awaiting_rollout") && text.contains("paused"), "{text}");
    // Pausing again is refused with a reason; resuming a paused rollout is what works.
    let e = f.admin.rollout_action(r.id, Action::Pause, "").await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::Conflict));

    // The fix: the failed devices retry and commit (granted before the pause, they still get
    // it); the administrator resumes.
    let fixed = round(&mut devices, |d| failing.contains(d), &release, &BTreeSet::new()).await;
    assert_eq!(fixed, failing);
    let resumed = f.admin.rollout_action(r.id, Action::Resume, "fixed the installer's disk check").await.unwrap();
    assert_eq!(resumed.rollout.state, RolloutState::Running);
    assert_eq!(resumed.waves[1].failed, 0);
    let granted = round(&mut devices, |d| late_set.contains(d), &release, &BTreeSet::new()).await;
    assert_eq!(granted, late_set);
    tick(&srv, T0 + 200).await;
    assert_eq!(f.admin.get_rollout(r.id).await.unwrap().rollout.wave, 2, "wave 3 opened");

    // Wave 3, then completion: every device runs 2.0.
    let rest = round(&mut devices, |_| true, &release, &BTreeSet::new()).await;
    assert_eq!(rest.len(), in_wave(2));
    tick(&srv, T0 + 300).await;
    let detail = f.admin.get_rollout(r.id).await.unwrap();
    assert_eq!(detail.rollout.state, RolloutState::Completed);
    assert_eq!(detail.waves.iter().map(|w| w.committed).sum::<u64>(), FLEET as u64);
    assert!(devices.iter().all(|d| d.installed == "2.0"));
    let causes: Vec<String> = detail.timeline.iter().map(|e| format!("{} {}", e.state.as_str(), e.wave + 1)).collect();
    assert_eq!(causes, ["running 1", "running 2", "paused 2", "running 2", "running 3", "completed 3"]);
    assert!(
        matches!(detail.timeline[3].cause, Cause::Admin { ref action, ref note } if action == "resume" && note.contains("disk check"))
    );
    assert_eq!(detail.timeline[3].by.as_deref(), Some("initial-admin"));

    // Completed: the release is approved for the target, so a device that joins now gets it.
    let approvals = f.admin.release_approvals(release.id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].approved_by, format!("rollout {}", r.id));
    let newcomer = f.enroll("pc-late").await;
    let answer = newcomer.checkin(&report(&[("vpn-client", "1.0")])).await.unwrap();
    assert_eq!(answer.offers.iter().map(|o| o.release).collect::<Vec<ReleaseId>>(), [release.id]);
    // Finished rollouts refuse every action.
    let e = f.admin.rollout_action(r.id, Action::Cancel, "").await.unwrap_err();
    assert_eq!(code(&e), (409, ErrorCode::Conflict));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_through_three_waves_sqlite() {
    fleet_through_three_waves(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_through_three_waves_postgres() {
    fleet_through_three_waves(Backend::Postgres).await;
}

/// Marking a release bad cancels its active rollouts, with that cause in their timelines, and
/// leaves finished ones alone.
async fn marking_the_release_bad_cancels_its_rollouts(backend: Backend) {
    let srv = server(backend).await;
    let f = vpn_fleet(&srv).await;
    let release = publish(&f, "3.0").await;
    let plan = plan(release.id, vec!["office".parse().unwrap()], vec![wave(1000, 5), wave(10_000, 5)]);
    let running = f.admin.create_rollout(&plan).await.unwrap().rollout;
    let paused = f.admin.create_rollout(&plan).await.unwrap().rollout;
    f.admin.rollout_action(paused.id, Action::Pause, "").await.unwrap();
    let cancelled = f.admin.create_rollout(&plan).await.unwrap().rollout;
    f.admin.rollout_action(cancelled.id, Action::Cancel, "by hand").await.unwrap();

    f.admin.mark_release_bad(release.id, "crashes on start").await.unwrap();
    for id in [running.id, paused.id] {
        let detail = f.admin.get_rollout(id).await.unwrap();
        assert_eq!(detail.rollout.state, RolloutState::Cancelled);
        let last = detail.timeline.last().unwrap();
        assert_eq!((&last.cause, last.by.as_deref()), (&Cause::ReleaseMarkedBad, None));
    }
    let detail = f.admin.get_rollout(cancelled.id).await.unwrap();
    assert!(matches!(detail.timeline.last().unwrap().cause, Cause::Admin { .. }), "cancelled before: unchanged");
    assert!(f.admin.list_rollouts(Some(release.id), true).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_the_release_bad_cancels_its_rollouts_sqlite() {
    marking_the_release_bad_cancels_its_rollouts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_the_release_bad_cancels_its_rollouts_postgres() {
    marking_the_release_bad_cancels_its_rollouts(Backend::Postgres).await;
}

/// A rollout reaches the devices of its targets' child groups and of dynamic targets, as
/// approvals do, and no others; its tally counts exactly those.
async fn rollouts_reach_nested_and_dynamic_targets(backend: Backend) {
    let srv = server(backend).await;
    let f = vpn_fleet(&srv).await;
    let group = |name: &str, filter: Option<&str>, parent: Option<&str>| GroupSpec {
        name: name.parse().unwrap(),
        description: String::new(),
        checkin_interval_secs: None,
        checkin_jitter: None,
        filter: filter.map(str::to_owned),
        parent: parent.map(|p| p.parse().unwrap()),
        window: None,
    };
    f.admin.create_group(&group("fleet", None, None)).await.unwrap();
    let osaka = f.admin.create_group(&group("osaka", None, Some("fleet"))).await.unwrap();
    f.admin.create_group(&group("beta", Some(r#"attr.ring = "beta""#), None)).await.unwrap();
    let release = publish(&f, "4.0").await;
    let everyone = Wave {
        group: None,
        share: 10_000,
        soak_secs: 86_400,
        success: 10_000,
        failure: 10_000,
        failure_min: 100,
        manual_gate: false,
    };
    let rollout = f
        .admin
        .create_rollout(&plan(release.id, vec!["fleet".parse().unwrap(), "beta".parse().unwrap()], vec![everyone]))
        .await
        .unwrap()
        .rollout;

    let enroll = |id: &'static str, key: String| {
        let url = f.url.clone();
        async move {
            let mut client = DeviceClient::new(&url, None).unwrap();
            let answer = client
                .enroll(&EnrollRequest { device_id: id.parse().unwrap(), enrollment_key: Some(key) })
                .await
                .unwrap();
            client.set_credential(&answer.credential).unwrap();
            client
        }
    };
    let in_osaka = enroll("osaka-1", osaka.enrollment_key.clone().unwrap()).await;
    let beta = enroll("office-beta", f.enrollment_key.clone()).await;
    let other = enroll("office-1", f.enrollment_key.clone()).await;
    async fn offered(client: &DeviceClient, ring: &str, release: ReleaseId) -> bool {
        let mut request = report(&[("vpn-client", "1.0")]);
        request.attributes.insert("ring".into(), ring.into());
        client.checkin(&request).await.unwrap().offers.iter().any(|o| o.release == release)
    }
    assert!(offered(&in_osaka, "stable", release.id).await, "a child group of a target is reached");
    assert!(offered(&beta, "beta", release.id).await, "a device matching a dynamic target is reached");
    assert!(!offered(&other, "stable", release.id).await, "a device of neither is not");
    let detail = f.admin.get_rollout(rollout.id).await.unwrap();
    assert_eq!((detail.waves[0].eligible, detail.waves[0].granted), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_reach_nested_and_dynamic_targets_sqlite() {
    rollouts_reach_nested_and_dynamic_targets(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_reach_nested_and_dynamic_targets_postgres() {
    rollouts_reach_nested_and_dynamic_targets(Backend::Postgres).await;
}

/// A rollout grants a device only inside its group's maintenance window: outside it the
/// device is told why and to come back when the window opens; an emergency rollout ignores
/// the window, wakes the device through its wake channel and shortens its check-in interval
/// until it runs the release.
async fn rollouts_wait_for_maintenance_windows(backend: Backend) {
    let srv = server(backend).await;
    // Wednesday 2 December 2026, 12:00 UTC: 21:00 in Tokyo.
    let noon = 1_796_212_800;
    srv.state.clock.set(noon);
    let f = vpn_fleet(&srv).await;
    let night = f
        .admin
        .create_group(&GroupSpec {
            name: "night".parse().unwrap(),
            description: String::new(),
            checkin_interval_secs: Some(86_400),
            checkin_jitter: Some(0.0),
            filter: None,
            parent: None,
            window: Some(ferry_core::MaintenanceWindow {
                time_zone: "Asia/Tokyo".into(),
                periods: "daily 22:00-06:00".into(),
            }),
        })
        .await
        .unwrap();
    assert_eq!(night.group.window.as_ref().unwrap().time_zone, "Asia/Tokyo");
    let bad = GroupSpec {
        name: "bad".parse().unwrap(),
        window: Some(ferry_core::MaintenanceWindow {
            time_zone: "Mars/Base".into(),
            periods: "daily 01:00-02:00".into(),
        }),
        ..night_spec()
    };
    let e = f.admin.create_group(&bad).await.unwrap_err();
    assert_eq!(code(&e).0, 400);
    assert!(common::message(&e).contains("Mars/Base"), "{e}");

    let mut device = DeviceClient::new(&f.url, None).unwrap();
    let answer = device
        .enroll(&EnrollRequest { device_id: "kiosk-1".parse().unwrap(), enrollment_key: night.enrollment_key.clone() })
        .await
        .unwrap();
    device.set_credential(&answer.credential).unwrap();
    let release = publish(&f, "6.0").await;
    let everyone = Wave {
        group: None,
        share: 10_000,
        soak_secs: 86_400,
        success: 10_000,
        failure: 10_000,
        failure_min: 100,
        manual_gate: false,
    };
    let plan = plan(release.id, vec!["night".parse().unwrap()], vec![everyone]);
    f.admin.create_rollout(&plan).await.unwrap();

    // 21:00 in Tokyo: not granted, told to come back within the window's first five minutes.
    let answer = device.checkin(&report(&[("vpn-client", "1.0")])).await.unwrap();
    assert!(answer.offers.is_empty());
    assert!((3600..=3900).contains(&answer.next_checkin_secs), "back at 22:00 Tokyo: {}", answer.next_checkin_secs);
    let why = f.admin.device_applicability(&"kiosk-1".parse().unwrap()).await.unwrap();
    let text = serde_json::to_string(&why.decisions).unwrap();
    assert!(text.contains("outside_window") && text.contains(&(noon + 3600).to_string()), "{text}");
    // 22:30 in Tokyo: granted.
    srv.state.clock.set(noon + 5400);
    let answer = device.checkin(&report(&[("vpn-client", "1.0")])).await.unwrap();
    assert_eq!(answer.offers.iter().map(|o| o.release).collect::<Vec<_>>(), [release.id]);

    // An emergency rollout ignores the window (07:00 in Tokyo, closed).
    srv.state.clock.set(noon + 36_000);
    let urgent = publish(&f, "6.1").await;
    // The device waits on its wake channel; creating the emergency rollout wakes it.
    let waiting = device.wait(30);
    let create = async {
        // Give the wait a moment to be registered; a wake that comes first is kept for it anyway.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        f.admin.create_rollout(&RolloutSpec { release: urgent.id, emergency: true, ..plan }).await.unwrap()
    };
    let (woken, _) = tokio::join!(waiting, create);
    assert!(woken.unwrap().wake, "the emergency woke the device");
    let answer = device.checkin(&report(&[("vpn-client", "1.0")])).await.unwrap();
    assert!(answer.offers.iter().any(|o| o.release == urgent.id), "{:?}", answer.offers);
    assert!(answer.next_checkin_secs <= 300, "emergencies shorten the interval: {}", answer.next_checkin_secs);
    // Once it runs the emergency release, its own interval applies again.
    let answer = device.checkin(&report(&[("vpn-client", "6.1")])).await.unwrap();
    assert!(answer.next_checkin_secs > 300, "{}", answer.next_checkin_secs);
}

fn night_spec() -> GroupSpec {
    GroupSpec {
        name: "night".parse().unwrap(),
        description: String::new(),
        checkin_interval_secs: None,
        checkin_jitter: None,
        filter: None,
        parent: None,
        window: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_wait_for_maintenance_windows_sqlite() {
    rollouts_wait_for_maintenance_windows(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_wait_for_maintenance_windows_postgres() {
    rollouts_wait_for_maintenance_windows(Backend::Postgres).await;
}
