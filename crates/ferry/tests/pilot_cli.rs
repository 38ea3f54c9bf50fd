//! The test-device and wake-up commands against a `ferry serve` child on SQLite: `device
//! set-test`, `group set --test`, `release test-results` and `device check-now`.

mod common;

use common::{output, Server};
use serde_json::Value;

/// Enrolls device `gw-1` with `key`, reports vpn-client 5.0 installed (`release` is that
/// release) and a committed event for it.
fn enroll_and_report(url: &str, key: &str, release: i64) {
    use ferry_api::{CheckinRequest, EnrollRequest, EventBatch};
    use ferry_core::{DeviceState, NewEvent, ReleaseId};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut device = ferry_client::DeviceClient::new(url, None).unwrap();
        let request = EnrollRequest { device_id: "gw-1".parse().unwrap(), enrollment_key: Some(key.to_owned()) };
        let enrolled = device.enroll(&request).await.unwrap();
        device.set_credential(&enrolled.credential).unwrap();
        let checkin = CheckinRequest {
            installed: [("vpn-client".parse().unwrap(), "5.0".parse().unwrap())].into(),
            ..Default::default()
        };
        device.checkin(&checkin).await.unwrap();
        let event = NewEvent {
            seq: 1,
            release: ReleaseId(release),
            state: DeviceState::Committed,
            progress: None,
            error_code: None,
            message: None,
            at: 1_738_324_800,
        };
        device.send_events(&EventBatch { events: vec![event] }).await.unwrap();
    });
}

#[test]
#[cfg(unix)]
fn test_devices_and_check_now() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let run = |args: &[&str]| output(server.cli().args(args));
    let json = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };

    assert_eq!(run(&["product", "create", "vpn-client"]).0, 0);
    assert_eq!(run(&["platform", "create", "linux-x86_64"]).0, 0);
    let group = json(&["group", "create", "lab", "--json"]);
    assert_eq!(group["group"]["test"], false);
    let artifact = dir.path().join("vpn-5.0.tar.gz");
    std::fs::write(&artifact, b"vpn 5.0").unwrap();
    let release = json(&[
        "release",
        "publish",
        "--product",
        "vpn-client",
        "--version",
        "5.0",
        "--platform",
        "linux-x86_64",
        "--artifact",
        artifact.to_str().unwrap(),
        "--json",
    ]);
    let id = release["id"].to_string();

    let results = json(&["release", "test-results", &id, "--json"]);
    assert_eq!(results["devices"], serde_json::json!([]));
    let (code, out, _) = run(&["release", "test-results", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("no test device has reported"), "{out}");

    enroll_and_report(&server.url, group["enrollment_key"].as_str().unwrap(), id.parse().unwrap());

    // A device marked as a test device, and unmarked.
    assert_eq!(json(&["device", "set-test", "gw-1", "--json"])["test"], true);
    assert_eq!(json(&["device", "show", "gw-1", "--json"])["device"]["test"], true);
    let (code, out, _) = run(&["device", "show", "gw-1"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("test device") && l.ends_with("yes")), "{out}");
    let results = json(&["release", "test-results", &id, "--json"]);
    assert_eq!(results["counts"], serde_json::json!([{ "state": "committed", "devices": 1 }]));
    assert_eq!(results["devices"][0]["device"], "gw-1");
    let (_, out, _) = run(&["release", "test-results", &id]);
    assert!(out.contains("1 committed") && out.contains("gw-1"), "{out}");
    assert_eq!(json(&["device", "set-test", "gw-1", "--off", "--json"])["test"], false);
    assert_eq!(json(&["release", "test-results", &id, "--json"])["devices"], serde_json::json!([]));

    // A test group makes its members test devices.
    assert_eq!(json(&["group", "set", "lab", "--test", "true", "--json"])["test"], true);
    assert_eq!(json(&["group", "show", "lab", "--json"])["test"], true);
    assert_eq!(json(&["release", "test-results", &id, "--json"])["devices"][0]["device"], "gw-1");
    assert_eq!(json(&["group", "set", "lab", "--test", "false", "--json"])["test"], false);

    // check-now: the device is not waiting, so it is told at its next wait.
    let asked = json(&["device", "check-now", "gw-1", "--json"]);
    assert_eq!((asked["device"].as_str(), asked["woken"].as_bool()), (Some("gw-1"), Some(false)));
    let (code, out, _) = run(&["device", "check-now", "gw-1"]);
    assert_eq!(code, 0);
    assert!(out.contains("asked device gw-1 to check in now"), "{out}");

    // Unknown ids are "not found" (exit 3); a release id that is not a number is a usage error.
    assert_eq!(run(&["device", "set-test", "nobody"]).0, 3);
    assert_eq!(run(&["device", "check-now", "nobody"]).0, 3);
    assert_eq!(run(&["release", "test-results", "999"]).0, 3);
    assert_eq!(run(&["release", "test-results", "x"]).0, 2);
    assert_eq!(run(&["group", "set", "nosuch", "--test", "true"]).0, 3);
    assert_eq!(server.stop(), Some(0));
}
