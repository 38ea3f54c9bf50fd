//! Crash safety, with real processes: the agent is stopped right after it saved
//! each phase of a job (`FERRY_AGENT_PAUSE_AFTER`), killed with SIGKILL, and started again
//! without the pause. Every time it must finish the job, and the server must end with the
//! right state: committed for a good release, rolled back for an unhealthy one or for a
//! rollback asked for on the device.

#[path = "common/fleet.rs"]
mod fleet;

use std::process::{Child, Stdio};
use std::time::Duration;

use ferry_agent::exit::Exit;
use ferry_agent::handler::dir::DirHandler;
use ferry_core::Version;
use fleet::{exit, output, Device, Fleet, KillOnDrop};

/// Starts `ferry-agent check` paused after `phase`, waits (bounded) until the state file shows
/// that phase, then kills it with SIGKILL.
fn kill_in(device: &Device, phase: &str) {
    kill_command_in(device, &["check"], phase);
}

/// Starts `ferry-agent ARGS` paused after `phase`, waits (bounded) until the state file shows
/// that phase, then kills it with SIGKILL.
fn kill_command_in(device: &Device, args: &[&str], phase: &str) {
    let mut guard = KillOnDrop(
        device
            .agent()
            .args(args)
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
        assert_eq!(code, exit(Exit::Updated), "after a kill in {phase}, a restart commits the update\n{out}\n{err}");
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
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Updated));
    let bad = fleet.publish("1.1", &[("VERSION", b"1.1\n"), ("BAD", b"")], &["--required"]);
    kill_in(&device, "rolling_back");
    let (code, out, err) = output(device.agent().arg("check"));
    assert_eq!(code, exit(Exit::RolledBack), "{out}\n{err}");
    assert_eq!(device.current().as_deref(), Some("1.0"));
    assert_eq!(device.status()["installed"]["app"]["version"], "1.0");
    assert_eq!(fleet.release_state(&device.id, bad).as_deref(), Some("rolled_back"));
}

/// `ferry-agent rollback` is a job of the same state machine. Killed right after it saved each
/// phase it passes through (and once after the handler switched `current` but before the save
/// that records it), then started again by `check` or by `rollback` itself, it finishes the
/// rollback: `current` and state.json agree on the kept version, whose release and counter
/// (the floor below which releases are refused) are restored, the left release is held back
/// and reported rolled back once, and only `ferry-agent install` installs it again.
#[test]
fn killed_in_any_phase_of_a_manual_rollback_the_agent_finishes_it_on_restart() {
    let fleet = Fleet::start();
    let cases = [
        ("rolling_back", false, "check"),
        ("rolling_back", true, "rollback"),
        ("rolling_back", false, "rollback"),
        ("reporting", false, "check"),
    ];
    let devices: Vec<Device> = (0..cases.len()).map(|i| Device::new(&fleet, &format!("dev-manual-{i}"), "")).collect();
    let first = fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);
    for device in &devices {
        assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Updated));
    }
    let second = fleet.publish("1.1", &[("VERSION", b"1.1\n")], &["--required"]);
    for device in &devices {
        assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Updated));
    }
    for ((phase, handler_done, restart), device) in cases.into_iter().zip(&devices) {
        let case = format!("killed in {phase} (handler done: {handler_done}), restarted by {restart}");
        let before = device.status()["installed"]["app"].clone();
        assert_eq!((before["version"].as_str(), before["release"].as_i64()), (Some("1.1"), Some(second)), "{case}");
        let kept = before["kept"].clone();
        assert_eq!((kept["version"].as_str(), kept["release"].as_i64()), (Some("1.0"), Some(first)), "{case}");
        assert!(kept["release_counter"].is_i64(), "{case}: {kept}");

        // A consent left from an earlier `ferry-agent install` of it must not undo the hold.
        let consent = device.dir.join("state/consent.json");
        std::fs::write(&consent, format!("{{\"releases\": [{second}]}}\n")).unwrap();
        kill_command_in(device, &["rollback", "app"], phase);
        let status = device.status();
        assert_eq!(status["phase"], phase, "{case}: the state survived the kill");
        assert_eq!(status["job"]["rollback"]["from"]["release"], second, "{case}");
        if phase == "reporting" {
            assert_eq!(device.current().as_deref(), Some("1.0"), "{case}: the handler ran before the save");
            assert_eq!(status["installed"]["app"]["version"], "1.0", "{case}: recorded in the same save");
        } else {
            assert_eq!(device.current().as_deref(), Some("1.1"), "{case}: saved before the handler ran");
            assert_eq!(status["installed"]["app"]["version"], "1.1", "{case}");
        }
        if handler_done {
            // Killed after the handler's switch, before the save that records it.
            DirHandler::new(device.dir.join("opt/app")).rollback_to(&Version::new("1.0").unwrap()).unwrap();
        }

        let (code, out, err) = match restart {
            "check" => output(device.agent().arg("check")),
            _ => output(device.agent().args(["rollback", "app"])),
        };
        let expected = if restart == "check" { Exit::RolledBack } else { Exit::Success };
        assert_eq!(code, exit(expected), "{case}\n{out}\n{err}");
        if restart == "rollback" {
            assert!(out.contains("app is back at 1.0 (from 1.1)"), "{case}: {out}");
        }

        assert_eq!(device.current().as_deref(), Some("1.0"), "{case}");
        assert_eq!(std::fs::read(device.dir.join("opt/app/current/VERSION")).unwrap(), b"1.0\n", "{case}");
        let status = device.status();
        assert_eq!(status["phase"], "idle", "{case}");
        let installed = &status["installed"]["app"];
        assert_eq!(installed["version"], "1.0", "{case}: state.json agrees with current");
        assert_eq!(installed["release"], first, "{case}");
        assert_eq!(installed["release_counter"], kept["release_counter"], "{case}: the counter floor is kept");
        assert_eq!(status["held_back"][0]["release"], second, "{case}: {status:#}");
        assert_eq!(status["held_back"][0]["code"], "rollback_requested", "{case}");

        // Checks deliver the report and do not install the release again by themselves.
        for _ in 0..2 {
            let (code, out, err) = output(device.agent().arg("check"));
            assert_eq!(code, exit(Exit::NothingToDo), "{case}\n{out}\n{err}");
            assert!(out.contains(&format!("release {second} is held back")), "{case}: {out}");
        }
        assert_eq!(device.current().as_deref(), Some("1.0"), "{case}");
        assert_eq!(fleet.release_state(&device.id, second).as_deref(), Some("rolled_back"), "{case}");
        let events = fleet.device(&device.id)["events"].clone();
        let rolled = events.as_array().unwrap().iter().filter(|e| e["state"] == "rolled_back").count();
        assert_eq!(rolled, 1, "{case}: {events:#}");
    }
    // `ferry-agent install` installs it again.
    let device = &devices[0];
    let (code, out, err) = output(device.agent().args(["install", &second.to_string()]));
    assert_eq!(code, exit(Exit::Updated), "{out}\n{err}");
    assert_eq!(device.current().as_deref(), Some("1.1"));
    assert_eq!(device.status()["held_back"], serde_json::json!([]), "the hold ended");
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
    assert_eq!(code, exit(Exit::RebootRequired), "{out}\n{err}");
    assert_eq!(fleet.release_state(&device.id, release).as_deref(), Some("reboot_pending"));
    assert_eq!(check(&device).0, exit(Exit::RebootRequired), "no reboot yet: still waiting");

    std::fs::write(&boot_id, "boot-2\n").unwrap();
    let (code, out, err) = check(&device);
    assert_eq!(code, exit(Exit::Updated), "{out}\n{err}");
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
        assert_eq!(code, exit(Exit::Updated), "{phase}: the update is committed from a fresh download\n{out}\n{err}");
        assert!(err.contains("downloading it again"), "{phase}: {err}");
        assert_eq!(std::fs::read(device.dir.join("opt/app/current/VERSION")).unwrap(), b"1.0\n", "{phase}");
        assert_eq!(fleet.release_state(&device.id, release).as_deref(), Some("committed"), "{phase}");
    }
}
