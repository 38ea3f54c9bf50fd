//! A release marked bad on the server, end to end with real processes (`ferry serve`, the
//! `ferry` CLI, `ferry-agent` with the `dir` handler): a device running it goes back to the
//! version it kept, reports `rolled_back` and holds the release back; a device that does not
//! run exactly that release, or kept nothing before it, changes nothing; an agent killed in the
//! middle of the instructed rollback finishes it when it starts again.

#[path = "common/fleet.rs"]
mod fleet;

use std::process::Stdio;
use std::time::Duration;

use ferry_agent::exit::Exit;
use fleet::{exit, ok, output, Device, Fleet, KillOnDrop};

fn mark_bad(fleet: &Fleet, release: i64, reason: &str) {
    ok(fleet.cli().args(["release", "mark-bad", &release.to_string(), "--reason", reason]));
}

/// A device that installed 1.0 (the first release published).
fn on_v1(fleet: &Fleet, id: &str) -> Device {
    let device = Device::new(fleet, id, "");
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Updated), "1.0");
    device
}

/// The server's events of `device` about `release`, oldest first.
fn events(fleet: &Fleet, device: &str, release: i64) -> Vec<serde_json::Value> {
    let all = fleet.device(device)["events"].as_array().unwrap().clone();
    all.into_iter().filter(|e| e["release"] == release).collect()
}

#[test]
fn a_device_running_a_bad_release_goes_back_to_the_version_it_kept() {
    let fleet = Fleet::start();
    let v1 = fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);
    let kept = on_v1(&fleet, "gw-1");
    let other = on_v1(&fleet, "gw-2");
    let v2 = fleet.publish("2.0", &[("VERSION", b"2.0\n")], &["--required"]);
    for device in [&kept, &other] {
        assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Updated), "2.0");
    }
    // A device that had nothing before 2.0: nothing is kept.
    let fresh = Device::new(&fleet, "gw-3", "");
    assert_eq!(output(fresh.agent().arg("check")).0, exit(Exit::Updated));
    assert_eq!(fresh.status()["installed"]["app"]["kept"], serde_json::Value::Null);
    // gw-2's record says it runs 2.0 from another release (as after a reinstall from elsewhere).
    let state_file = other.dir.join("state/state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    state["installed"]["app"]["release"] = serde_json::json!(v2 + 1000);
    std::fs::write(&state_file, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let sent = |device: &str| fleet.device(device)["events"].as_array().unwrap().len();
    let (sent_other, sent_fresh) = (sent("gw-2"), sent("gw-3"));

    mark_bad(&fleet, v2, "drops the tunnel after an hour");
    let why = ok(fleet.cli().args(["device", "why", "gw-1"]));
    assert!(why.contains("marked_bad") && why.contains("drops the tunnel after an hour"), "{why}");

    // The device running it rolls back at its next check, to its kept 1.0.
    let (code, out, err) = output(kept.agent().args(["check", "--json"]));
    assert_eq!(code, exit(Exit::RolledBack), "{out}\n{err}");
    assert!(err.contains("the server marked the installed release bad"), "{err}");
    assert!(!err.contains("downloaded and verified"), "nothing is downloaded for a rollback:\n{err}");
    assert_eq!(kept.current().as_deref(), Some("1.0"));
    assert_eq!(std::fs::read(kept.dir.join("opt/app/current/VERSION")).unwrap(), b"1.0\n");
    assert_eq!(fleet.release_state("gw-1", v2).as_deref(), Some("rolled_back"));
    let rolled = events(&fleet, "gw-1", v2);
    let last = rolled.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["error_code"].as_str()),
        (Some("rolled_back"), Some("rollback_instructed"))
    );
    assert_eq!(fleet.device("gw-1")["device"]["installed"]["app"], "1.0", "the check-in after it reports 1.0");
    let status = kept.status();
    assert_eq!(status["phase"], "idle");
    assert_eq!(status["installed"]["app"]["version"], "1.0");
    assert_eq!(status["installed"]["app"]["release"], v1, "the kept record is restored, release and counter");
    assert_eq!(status["installed"]["app"]["release_counter"], 1);
    assert_eq!(status["held_back"][0]["release"], v2, "{status:#}");
    assert_eq!(status["held_back"][0]["code"], "rollback_instructed");

    // It stays there: the next checks install nothing and send nothing.
    let sent_kept = sent("gw-1");
    for _ in 0..2 {
        let (code, out, err) = output(kept.agent().arg("check"));
        assert_eq!(code, exit(Exit::NothingToDo), "{out}\n{err}");
    }
    assert_eq!(kept.current().as_deref(), Some("1.0"));
    assert_eq!(sent("gw-1"), sent_kept);

    // Not exactly that release: the instruction is ignored, nothing changes.
    let (code, out, err) = output(other.agent().arg("check"));
    assert_eq!(code, exit(Exit::NothingToDo), "{out}\n{err}");
    assert!(
        err.contains("ignoring the server's rollback instruction") && err.contains("this device runs 2.0"),
        "{err}"
    );
    assert_eq!(other.current().as_deref(), Some("2.0"));
    assert_eq!(other.status()["held_back"], serde_json::json!([]));
    assert_eq!(sent("gw-2"), sent_other);

    // Nothing kept: nothing to go back to; it stays on 2.0 until a fixed release comes.
    let (code, out, err) = output(fresh.agent().arg("check"));
    assert_eq!(code, exit(Exit::NothingToDo), "{out}\n{err}");
    assert!(err.contains("no version before it is kept"), "{err}");
    assert_eq!(fresh.current().as_deref(), Some("2.0"));
    assert_eq!(sent("gw-3"), sent_fresh);

    // A fixed release: every device installs it as usual, the one that went back too.
    fleet.publish("2.1", &[("VERSION", b"2.1\n")], &["--required"]);
    for device in [&kept, &other, &fresh] {
        let (code, out, err) = output(device.agent().arg("check"));
        assert_eq!(code, exit(Exit::Updated), "{}: {out}\n{err}", device.id);
        assert_eq!(device.current().as_deref(), Some("2.1"));
    }
}

/// Killed right after it saved the instructed rollback's `rolling_back`, the agent finishes the
/// rollback at its next start.
#[test]
fn an_instructed_rollback_killed_midway_is_finished_on_restart() {
    let fleet = Fleet::start();
    fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);
    let device = on_v1(&fleet, "gw-9");
    let v2 = fleet.publish("2.0", &[("VERSION", b"2.0\n")], &["--required"]);
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Updated));
    mark_bad(&fleet, v2, "memory leak");

    let mut guard = KillOnDrop(
        device
            .agent()
            .arg("check")
            .env("FERRY_AGENT_PAUSE_AFTER", "rolling_back")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut reached = false;
    for _ in 0..1200 {
        if device.status()["phase"] == "rolling_back" {
            reached = true;
            break;
        }
        assert!(guard.0.try_wait().unwrap().is_none(), "the agent exited before rolling back");
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(reached, "the agent never started the rollback");
    guard.0.kill().unwrap();
    guard.0.wait().unwrap();
    let status = device.status();
    assert_eq!(status["job"]["cause"], "instructed", "{status:#}");

    let (code, out, err) = output(device.agent().arg("check"));
    assert_eq!(code, exit(Exit::RolledBack), "{out}\n{err}");
    assert_eq!(device.current().as_deref(), Some("1.0"));
    assert_eq!(fleet.release_state("gw-9", v2).as_deref(), Some("rolled_back"));
    let rolled = events(&fleet, "gw-9", v2).iter().filter(|e| e["state"] == "rolled_back").count();
    assert_eq!(rolled, 1, "reported once");
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::NothingToDo));
}
