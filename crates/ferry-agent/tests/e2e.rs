//! End to end, with real processes on loopback: `ferry serve`, the `ferry` CLI as the
//! administrator and publisher (real keys, signed root and targets metadata), and
//! `ferry-agent` binaries installing through the built-in `dir` handler.

#[path = "common/fleet.rs"]
mod fleet;

use ferry_agent::exit::Exit;
use fleet::{exit, ok, output, Device, Fleet, KillOnDrop};

/// Publish, sign, approve → the agent installs and commits it, and the server shows it
/// committed; then a release that fails its health check is rolled back by the agent, and
/// the server shows it rolled back; the kept version is still the one running.
#[test]
fn the_agent_installs_a_signed_release_and_rolls_back_an_unhealthy_one() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "gw-1", "");

    // Nothing approved yet: nothing to do (exit 3), and the device is enrolled and accepted.
    let (code, out, err) = output(device.agent().args(["check", "--json"]));
    assert_eq!(code, exit(Exit::NothingToDo), "{out}\n{err}");
    assert_eq!(fleet.device("gw-1")["device"]["status"], "accepted");
    let credential = device.dir.join("state/credential");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&credential).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let good =
        fleet.publish("1.0", &[("bin/app.sh", b"#!/bin/sh\necho 1.0\n"), ("VERSION", b"1.0\n")], &["--required"]);
    let (code, out, err) = output(device.agent().args(["check", "--json"]));
    assert_eq!(code, exit(Exit::Updated), "the update should be installed and committed\n{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["result"], "updated");
    assert_eq!(device.current().as_deref(), Some("1.0"));
    let installed = std::fs::read(device.dir.join("opt/app/current/VERSION")).unwrap();
    assert_eq!(installed, b"1.0\n");
    assert_eq!(fleet.release_state("gw-1", good).as_deref(), Some("committed"));
    assert_eq!(fleet.device("gw-1")["device"]["installed"]["app"], "1.0", "the check-in after the commit reports it");
    let status = device.status();
    assert_eq!(status["phase"], "idle");
    assert_eq!(status["installed"]["app"]["version"], "1.0");
    assert_eq!(status["events"]["pending"], 0, "every event was delivered");

    // Up to date now.
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::NothingToDo));

    // 1.1 installs but is unhealthy: the agent goes back to 1.0 by itself.
    let bad = fleet.publish("1.1", &[("VERSION", b"1.1\n"), ("BAD", b"")], &["--required"]);
    let (code, out, err) = output(device.agent().args(["check", "--json"]));
    assert_eq!(code, exit(Exit::RolledBack), "the update should be rolled back\n{out}\n{err}");
    assert_eq!(device.current().as_deref(), Some("1.0"));
    assert_eq!(std::fs::read(device.dir.join("opt/app/current/VERSION")).unwrap(), b"1.0\n");
    assert_eq!(fleet.release_state("gw-1", bad).as_deref(), Some("rolled_back"));
    let events = fleet.device("gw-1")["events"].clone();
    let rolled = events.as_array().unwrap().iter().find(|e| e["state"] == "rolled_back").expect("a rolled_back event");
    assert_eq!(rolled["error_code"], "health_check_failed");
    assert!(
        rolled["message"].as_str().unwrap().contains("1.1 is bad"),
        "the health check's output is reported: {rolled}"
    );
    assert_eq!(device.status()["installed"]["app"]["version"], "1.0");

    // The handler logs are kept and listed.
    let logs = ok(device.agent().args(["logs", &bad.to_string()]));
    assert!(logs.contains("1.1 is bad"), "{logs}");
}

/// An optional release waits for consent: `notify` lists it with its notes, `install` installs
/// it.
#[test]
fn an_optional_release_waits_for_consent() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "pc-7", "");
    let release = fleet.publish("2.0", &[("VERSION", b"2.0\n")], &["--notes", "Faster tunnels."]);

    let (code, out, err) = output(device.agent().arg("check"));
    assert_eq!(code, exit(Exit::Deferred), "an optional release is deferred until consent\n{out}\n{err}");
    assert_eq!(device.current(), None);
    assert_eq!(fleet.release_state("pc-7", release).as_deref(), Some("deferred"), "the server hears it waits");
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Deferred));
    let deferred =
        fleet.device("pc-7")["events"].as_array().unwrap().iter().filter(|e| e["state"] == "deferred").count();
    assert_eq!(deferred, 1, "the wait is reported once, not at every check");
    let (code, out, _) = output(device.agent().arg("notify"));
    assert_eq!(code, exit(Exit::Success));
    assert!(out.contains("Faster tunnels.") && out.contains(&format!("ferry-agent install {release}")), "{out}");

    let (code, out, err) = output(device.agent().args(["install", &release.to_string()]));
    assert_eq!(code, exit(Exit::Updated), "{out}\n{err}");
    assert_eq!(device.current().as_deref(), Some("2.0"));
    assert_eq!(fleet.release_state("pc-7", release).as_deref(), Some("committed"));
    assert_eq!(output(device.agent().arg("notify")).0, exit(Exit::NothingToDo), "nothing waits any more");

    // A release that is not offered is refused with "nothing to do".
    let (code, _, err) = output(device.agent().args(["install", "9999"]));
    assert_eq!(code, exit(Exit::NothingToDo), "{err}");
    assert!(err.contains("not offered"), "{err}");
}

/// A download cut by killing the agent (SIGKILL) resumes from its `.part` file after a
/// restart and installs a file with the signed digest.
#[test]
fn a_download_killed_midway_resumes_after_restart() {
    let fleet = Fleet::start();
    // Slow enough to be killed mid-way: 6 MiB at 1 MiB/s.
    let slow = Device::new(&fleet, "gw-9", "bandwidth_limit = \"1MiB/s\"");
    let payload: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let artifact = fleet.path("firmware.bin");
    std::fs::write(&artifact, &payload).unwrap();
    let release = fleet.publish_file("3.0", &artifact, "application/octet-stream", &["--required"]);

    let mut guard = KillOnDrop(
        slow.agent()
            .arg("check")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let downloads = slow.dir.join("state/downloads");
    // Wait (bounded) until part of the file has arrived, then kill the agent.
    let mut partial = 0;
    for _ in 0..600 {
        partial = part_size(&downloads);
        if partial >= 1024 * 1024 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the agent ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(partial >= 1024 * 1024, "the download never got going");
    child.kill().unwrap();
    child.wait().unwrap();
    let status = slow.status();
    assert_eq!(status["phase"], "downloading", "{status:#}");
    let kept = part_size(&downloads);
    assert!(kept > 0 && kept < payload.len() as u64, "a partial file is kept: {kept}");

    // Restart without the cap: it resumes and installs the verified file.
    let fast = Device::new(&fleet, "gw-9", "");
    let (code, out, err) = output(fast.agent().arg("check"));
    assert_eq!(code, exit(Exit::Updated), "{out}\n{err}");
    assert!(err.contains("resuming"), "the download resumed rather than restarted:\n{err}");
    let installed = std::fs::read(fast.dir.join("opt/app/current/firmware.bin")).unwrap();
    assert!(installed == payload, "the installed file differs from the published artifact");
    assert_eq!(fleet.release_state("gw-9", release).as_deref(), Some("committed"));
}

/// Bytes in `.part` files under `dir` (searched recursively).
fn part_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut total = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += part_size(&path);
        } else if path.to_string_lossy().ends_with(".part") {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

/// `ferry-agent run`, the daemon: checks in at start (so after every boot) and installs what
/// is approved, then waits for the server's interval; SIGTERM stops it with exit 0, and a new
/// start checks again at once.
#[test]
fn the_daemon_installs_at_start_and_stops_on_sigterm() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "kiosk-1", "");
    for version in ["1.0", "1.1"] {
        let release = fleet.publish(version, &[("VERSION", version.as_bytes())], &["--required"]);
        let mut daemon = KillOnDrop(
            device
                .agent()
                .args(["run", "--no-initial-jitter"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let daemon = &mut daemon.0;
        let mut committed = false;
        for _ in 0..600 {
            if fleet.release_state("kiosk-1", release).as_deref() == Some("committed") {
                committed = true;
                break;
            }
            assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited by itself");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(committed, "{version} was not installed by the daemon's first check");
        assert_eq!(device.current().as_deref(), Some(version));

        let pid = daemon.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let mut code = None;
        for _ in 0..300 {
            if let Some(status) = daemon.try_wait().unwrap() {
                code = status.code();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if code.is_none() {
            let _ = daemon.kill();
        }
        assert_eq!(code, Some(0), "SIGTERM stops the daemon with exit 0");
    }
}

/// A release whose artifact is not an archive is installed as one file, and the agent's log
/// says it copied it (not that it unpacked it).
#[test]
fn a_single_file_is_copied_and_the_log_says_so() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "phone-1", "");
    let artifact = fleet.path("firmware-2.0.bin");
    std::fs::write(&artifact, b"firmware 2.0").unwrap();
    fleet.publish_file("2.0", &artifact, "application/octet-stream", &["--required"]);
    let (code, out, err) = output(device.agent().arg("check"));
    assert_eq!(code, exit(Exit::Updated), "{out}\n{err}");
    assert_eq!(std::fs::read(device.dir.join("opt/app/current/firmware-2.0.bin")).unwrap(), b"firmware 2.0");
    let line = err.lines().find(|l| l.contains("versions/2.0")).unwrap_or_else(|| panic!("no install line:\n{err}"));
    assert!(line.contains("copied") && !line.contains("unpacked"), "{line}");
}

/// The sequence number of the last status event the server stored from `device`: how many
/// events the device has sent (they are numbered from 1 without gaps).
fn events_sent(fleet: &Fleet, device: &str) -> i64 {
    let shown = fleet.device(device);
    shown["events"].as_array().unwrap().iter().filter_map(|e| e["seq"].as_i64()).max().unwrap_or(0)
}

/// Runs `ferry-agent run` until its log shows the check after the one that ended `release`
/// badly: a check that says the release is held back, or that starts an update again. Stops it
/// with SIGTERM and returns its log.
fn run_until_the_next_check(device: &Device, release: i64) -> String {
    let log_path = device.dir.join("daemon.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut daemon = KillOnDrop(
        device
            .agent()
            .args(["run", "--no-initial-jitter"])
            .stdout(std::process::Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let daemon = &mut daemon.0;
    let held = format!("release {release} is held back");
    let mut log = String::new();
    // The first check installs and fails; the next follows after a backoff of at most 5 s.
    for _ in 0..600 {
        log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains(&held) || log.matches("update starts").count() > 1 {
            break;
        }
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited by itself:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = daemon.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    daemon.wait().unwrap();
    log
}

/// A release whose health check always fails is installed once and rolled back; the daemon's
/// next check, and checks after restarts, hold it back instead of installing it again and
/// send no more events; `status` says so and how to retry. `ferry-agent install` retries it,
/// and a newer release is installed as usual.
#[test]
fn a_release_that_fails_its_health_check_is_not_installed_again_by_itself() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "gw-2", "");
    fleet.publish("1.0", &[("VERSION", b"1.0\n")], &["--required"]);
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::Updated));
    let bad = fleet.publish("1.1", &[("VERSION", b"1.1\n"), ("BAD", b"")], &["--required"]);

    let log = run_until_the_next_check(&device, bad);
    assert_eq!(log.matches("update starts").count(), 1, "installed only once:\n{log}");
    assert!(log.contains(&format!("release {bad} is held back")), "{log}");
    assert_eq!(fleet.release_state("gw-2", bad).as_deref(), Some("rolled_back"));
    assert_eq!(device.current().as_deref(), Some("1.0"));
    let sent = events_sent(&fleet, "gw-2");

    // Restarts do not forget it: one-shot checks find nothing to do and report nothing new.
    for _ in 0..2 {
        let (code, out, err) = output(device.agent().arg("check"));
        assert_eq!(code, exit(Exit::NothingToDo), "{out}\n{err}");
        assert!(out.contains(&format!("`ferry-agent install {bad}` tries it again")), "{out}");
    }
    assert_eq!(events_sent(&fleet, "gw-2"), sent, "no events after the rollback's");
    let status = device.status();
    assert_eq!(status["held_back"][0]["release"], bad, "{status:#}");
    assert_eq!(status["held_back"][0]["outcome"], "rolled_back");
    assert_eq!(status["held_back"][0]["code"], "health_check_failed");
    let text = ok(device.agent().arg("status"));
    assert!(
        text.contains(&format!("held back: app 1.1 (release {bad}, full): rolled back (health_check_failed)")),
        "{text}"
    );
    assert!(text.contains(&format!("`ferry-agent install {bad}` tries it again")), "{text}");

    // The administrator asks for a retry on the device: it is installed (and rolled back) again.
    let (code, out, err) = output(device.agent().args(["install", &bad.to_string()]));
    assert_eq!(code, exit(Exit::RolledBack), "{out}\n{err}");
    assert!(events_sent(&fleet, "gw-2") > sent);
    assert_eq!(output(device.agent().arg("check")).0, exit(Exit::NothingToDo), "held back again");

    // A newer release is not held back.
    fleet.publish("1.2", &[("VERSION", b"1.2\n")], &["--required"]);
    let (code, out, err) = output(device.agent().arg("check"));
    assert_eq!(code, exit(Exit::Updated), "{out}\n{err}");
    assert_eq!(device.current().as_deref(), Some("1.2"));
    assert_eq!(device.status()["held_back"], serde_json::json!([]), "installing on the line ends the hold");
}

/// A signed release whose archive is damaged fails to install once; the daemon's next check
/// and later checks do not download and try it again.
#[test]
fn a_damaged_archive_is_not_tried_again_by_itself() {
    let fleet = Fleet::start();
    let device = Device::new(&fleet, "gw-3", "");
    let damaged = fleet.path("damaged.tar.gz");
    std::fs::write(&damaged, b"\x1f\x8b\x08\x00 this is not a gzip stream, whatever the signature says").unwrap();
    let release = fleet.publish_file("2.0", &damaged, "application/gzip", &["--required"]);

    let log = run_until_the_next_check(&device, release);
    assert_eq!(log.matches("update starts").count(), 1, "tried only once:\n{log}");
    assert_eq!(fleet.release_state("gw-3", release).as_deref(), Some("failed"));
    let sent = events_sent(&fleet, "gw-3");
    let (code, out, err) = output(device.agent().args(["check", "--json"]));
    assert_eq!(code, exit(Exit::NothingToDo), "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["held_back"][0], release);
    assert_eq!(events_sent(&fleet, "gw-3"), sent);
    let status = device.status();
    assert_eq!(
        (status["held_back"][0]["outcome"].as_str(), status["held_back"][0]["code"].as_str()),
        (Some("failed"), Some("install_failed"))
    );
    assert_eq!(device.current(), None, "nothing was switched");
}
