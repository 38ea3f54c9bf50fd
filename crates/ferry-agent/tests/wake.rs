//! The wake channel end to end: `ferry-agent run` with an hour between check-ins installs an
//! approved release within seconds of `ferry device check-now`.

#[path = "common/fleet.rs"]
mod fleet;

use std::process::Stdio;
use std::time::Duration;

use fleet::{ok, Device, Fleet, KillOnDrop};

/// Starts `ferry-agent run` for `device` and waits (bounded) until its first check reached the
/// server.
fn daemon(fleet: &Fleet, device: &Device) -> KillOnDrop {
    let log = std::fs::File::create(device.dir.join("daemon.log")).unwrap();
    let mut daemon = KillOnDrop(
        device.agent().args(["run", "--no-initial-jitter"]).stdout(Stdio::null()).stderr(log).spawn().unwrap(),
    );
    for _ in 0..300 {
        let (code, out, _) = fleet::output(fleet.cli().args(["device", "show", &device.id, "--json"]));
        if code == 0 {
            let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
            if !shown["device"]["last_contact"].is_null() {
                return daemon;
            }
        }
        assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon exited by itself");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the daemon's first check did not reach the server");
}

/// Whether `release` is committed on `device` within 20 seconds, polling the server.
fn committed_soon(fleet: &Fleet, device: &Device, release: i64) -> bool {
    for _ in 0..200 {
        if fleet.release_state(&device.id, release).as_deref() == Some("committed") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn check_now_reaches_a_sleeping_daemon() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "kiosk-1", "");
    let _daemon = daemon(&fleet, &device);
    // Its first check found nothing; the next one is an hour away (group `office`).
    let release = fleet.publish("1.0", &[("VERSION", b"1.0")], &["--required"]);
    let asked: serde_json::Value =
        serde_json::from_str(&ok(fleet.cli().args(["device", "check-now", "kiosk-1", "--json"]))).unwrap();
    assert_eq!(asked["device"], "kiosk-1");
    let log = || std::fs::read_to_string(device.dir.join("daemon.log")).unwrap();
    assert!(committed_soon(&fleet, &device, release), "not installed after check-now:\n{}", log());
    assert_eq!(device.current().as_deref(), Some("1.0"));
    assert!(log().contains("the server asked for a check now"), "{}", log());
}
