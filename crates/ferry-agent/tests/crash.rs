//! Crash safety, with real processes: the agent is stopped right after it saved
//! each phase of an update (`FERRY_AGENT_PAUSE_AFTER`), killed with SIGKILL, and started again
//! without the pause. Every time it must finish the update, and the server must end with the
//! right state: committed for a good release, rolled back for an unhealthy one.

#[path = "common/fleet.rs"]
mod fleet;

use std::process::{Child, Stdio};
use std::time::Duration;

use fleet::{output, Device, Fleet, KillOnDrop};

/// Starts `ferry-agent check` paused after `phase`, waits (bounded) until the state file shows
/// that phase, then kills it with SIGKILL.
fn kill_in(device: &Device, phase: &str) {
    let mut guard = KillOnDrop(
        device
            .agent()
            .arg("check")
            .env("FERRY_AGENT_PAUSE_AFTER", phase)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child: &mut Child = &mut guard.0;
    let mut reached = false;
    for _ in 0..1200 {
        if device.status()["phase"] == phase {
            reached = true;
            break;
        }
        if let Some(code) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the agent exited ({code}) before reaching {phase}:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(reached, "the agent never reached {phase}");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn killed_in_any_phase_the_agent_finishes_the_update_on_restart() {
    let fleet = Fleet::start();
    let release = fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);
    for phase in ["downloading", "downloaded", "installing", "switching", "installed", "committing", "reporting"] {
        let device = Device::new(&fleet, &format!("dev-{phase}"), "");
        kill_in(&device, phase);
        assert_eq!(device.status()["phase"], phase, "the state survived the kill");
        let (code, out, err) = output(device.agent().arg("check"));
        assert_eq!(code, 4, "after a kill in {phase}, a restart commits the update\n{out}\n{err}");
        assert_eq!(device.current().as_deref(), Some("1.0"), "{phase}");
        assert_eq!(std::fs::read(device.dir.join("opt/app/current/VERSION")).unwrap(), b"1.0\n", "{phase}");
        let status = device.status();
        assert_eq!(status["phase"], "idle", "{phase}");
        assert_eq!(status["installed"]["app"]["version"], "1.0", "{phase}");
        assert_eq!(status["events"]["pending"], 0, "{phase}");
        assert_eq!(fleet.release_state(&device.id, release).as_deref(), Some("committed"), "{phase}");
        // Exactly one committed event, however often the step was repeated.
        let events = fleet.device(&device.id)["events"].clone();
        let commits = events.as_array().unwrap().iter().filter(|e| e["state"] == "committed").count();
        assert_eq!(commits, 1, "{phase}: {events:#}");
    }
}

#[test]
fn killed_while_rolling_back_the_agent_finishes_the_rollback_on_restart() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "dev-rb", "");
    fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);
    assert_eq!(output(device.agent().arg("check")).0, 4);
    let bad = fleet.publish("1.1", &[("VERSION", b"1.1\n"), ("BAD", b"")], &["--required"]);
    kill_in(&device, "rolling_back");
    let (code, out, err) = output(device.agent().arg("check"));
    assert_eq!(code, 11, "{out}\n{err}");
    assert_eq!(device.current().as_deref(), Some("1.0"));
    assert_eq!(device.status()["installed"]["app"]["version"], "1.0");
    assert_eq!(fleet.release_state(&device.id, bad).as_deref(), Some("rolled_back"));
}

/// A release that needs a reboot is reported "reboot pending" and committed only after the
/// boot id changed and the health check passed.
#[test]
fn a_reboot_is_awaited_before_the_commit() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "dev-boot", "");
    let boot_id = device.dir.join("boot_id");
    std::fs::write(&boot_id, "boot-1\n").unwrap();
    let release = fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required", "--reboot", "required"]);
    let check = |d: &Device| output(d.agent().arg("check").env("FERRY_AGENT_BOOT_ID_FILE", &boot_id));

    let (code, out, err) = check(&device);
    assert_eq!(code, 5, "{out}\n{err}");
    assert_eq!(fleet.release_state(&device.id, release).as_deref(), Some("reboot_pending"));
    assert_eq!(check(&device).0, 5, "no reboot yet: still waiting");

    std::fs::write(&boot_id, "boot-2\n").unwrap();
    let (code, out, err) = check(&device);
    assert_eq!(code, 4, "{out}\n{err}");
    assert_eq!(fleet.release_state(&device.id, release).as_deref(), Some("committed"));
}

/// A download is not synced to disk once complete (it is verified as it arrives), so after a
/// crash before or during the install its content is not trusted: the restart hashes it again,
/// and one that no longer matches is downloaded anew in the same check (with fresh metadata)
/// rather than handed to the handler.
#[test]
fn a_download_damaged_before_the_install_is_fetched_again() {
    let fleet = Fleet::start();
    let release = fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);
    for phase in ["downloaded", "installing"] {
        let device = Device::new(&fleet, &format!("dev-damaged-{phase}"), "");
        kill_in(&device, phase);
        let downloads = device.dir.join("state/downloads");
        let files: Vec<_> =
            std::fs::read_dir(&downloads).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        assert_eq!(files.len(), 1, "{phase}: one download in {}: {files:?}", downloads.display());
        // What a power cut can leave of a file not yet written out: its length, zeros for content.
        let length = std::fs::metadata(&files[0]).unwrap().len();
        std::fs::write(&files[0], vec![0u8; length as usize]).unwrap();

        let (code, out, err) = output(device.agent().arg("check"));
        assert_eq!(code, 4, "{phase}: the update is committed from a fresh download\n{out}\n{err}");
        assert!(err.contains("downloading it again"), "{phase}: {err}");
        assert_eq!(std::fs::read(device.dir.join("opt/app/current/VERSION")).unwrap(), b"1.0\n", "{phase}");
        assert_eq!(fleet.release_state(&device.id, release).as_deref(), Some("committed"), "{phase}");
    }
}
