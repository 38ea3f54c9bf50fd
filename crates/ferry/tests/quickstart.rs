//! The README's quick start, run as written: the shell block after "In a second terminal" is
//! extracted from README.md and executed with bash against a `ferry serve` process started in
//! a temporary directory, with the real `ferry-agent` installing the release, so the documented
//! steps cannot drift from what works.

mod common;

use std::process::Command;

/// The quick start's shell commands (the second block of the section), adapted to this test:
/// the build step is skipped (the test binary is on PATH) and the address is the test server's.
fn quick_start_script(url: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme.split("## Quick start").nth(1).expect("README has a Quick start section");
    let after = section.split("In a second terminal").nth(1).expect("the quick start has a second-terminal part");
    let block = after.split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).expect("a sh code block");
    block
        .lines()
        .filter(|l| !l.starts_with("cargo build"))
        .map(|l| l.replace("http://localhost:8080", url).replace("localhost:8080", url))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first shell block of the README section `heading`, with the address made the test
/// server's.
fn section_script(heading: &str, url: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme.split(&format!("## {heading}\n")).nth(1).unwrap_or_else(|| panic!("README has {heading}"));
    let block = section.split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).expect("a sh code block");
    block.replace("http://localhost:8080", url).replace("localhost:8080", url)
}

/// Runs `script` with bash in `dir` with the workspace's binaries first on PATH; its stdout.
fn run_script(dir: &std::path::Path, url: &str, script: &str) -> String {
    let ferry = std::path::Path::new(env!("CARGO_BIN_EXE_ferry"));
    let bin_dir = ferry.parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("FERRY_URL", url)
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_DATABASE_URL")
        .env("FERRY_INSECURE_FAST_KEY_SEALING", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

/// The README's staged-rollout walkthrough, run as written after the quick start with four
/// real agents: a test device installs the unapproved release, a rollout brings it to the pilot
/// group and the rest of the fleet, pauses on a device whose health check fails, completes
/// after the fix and `resume`, and `mark-bad` brings every device back to the version it kept.
#[test]
fn the_readme_rollout_walkthrough_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_in(dir.path());
    let ferry = std::path::Path::new(env!("CARGO_BIN_EXE_ferry"));
    common::workspace_binary::workspace_binary("ferry-agent", ferry);
    let script = format!("{}\n{}", quick_start_script(&server.url), section_script("Staged rollouts", &server.url));
    let stdout = run_script(dir.path(), &server.url, &script);
    assert!(stdout.contains("pc-002"), "the test results name the test device: {stdout}");
    assert!(stdout.ends_with("vpn-client 5.0\n"), "pc-001 runs 5.0 again: {stdout}");

    let json = |args: &[&str]| -> serde_json::Value {
        let (code, out, err) = common::output(server.cli().args(args).arg("--json"));
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    // The rollout's timeline: the pilot wave, the broad waves, the pause the failure caused,
    // the administrator's resume and the completion, each with its cause.
    let rollout = json(&["rollout", "show", "1"]);
    assert_eq!(rollout["rollout"]["state"], "completed", "{rollout:#}");
    let steps: Vec<(String, String)> = rollout["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["state"].as_str().unwrap().to_owned(), e["cause"]["kind"].as_str().unwrap().to_owned()))
        .collect();
    let paused = steps.iter().position(|s| s == &("paused".to_owned(), "failure_threshold".to_owned()));
    let resumed = steps.iter().position(|s| s == &("running".to_owned(), "admin".to_owned()));
    assert!(paused.is_some() && resumed > paused, "{steps:?}");
    assert_eq!(steps.first().map(|s| s.1.as_str()), Some("created"));
    assert_eq!(steps.last(), Some(&("completed".to_owned(), "succeeded".to_owned())), "{steps:?}");
    assert!(steps.iter().filter(|s| s.1 == "succeeded").count() >= 2, "the waves moved on by themselves: {steps:?}");

    // Every device is back on 5.0, both as the server sees it and on disk, and each reported
    // the rollback of the bad release.
    let program =
        |root: &str| std::fs::read_to_string(dir.path().join(root).join("vpn-client/current/bin/vpn-client")).unwrap();
    for (n, root) in [(1, "opt"), (2, "opt-2"), (3, "opt-3"), (4, "opt-4")] {
        let id = format!("pc-00{n}");
        let device = json(&["device", "show", &id]);
        assert_eq!(device["device"]["installed"]["vpn-client"], "5.0", "{id}: {device:#}");
        assert!(program(root).contains("vpn-client 5.0"), "{id} runs 5.0 on disk");
        let events = json(&["device", "events", &id]);
        let rolled_back = events.as_array().unwrap().iter().any(|e| e["state"] == "rolled_back" && e["release"] == 2);
        assert!(rolled_back, "{id} reported the rollback of 5.1: {events:#}");
    }
}

#[test]
fn the_readme_quick_start_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_in(dir.path());
    let ferry = std::path::Path::new(env!("CARGO_BIN_EXE_ferry"));
    // The quick start runs `ferry-agent` from the same directory as `ferry`.
    common::workspace_binary::workspace_binary("ferry-agent", ferry);

    let script = quick_start_script(&server.url);
    let bin_dir = ferry.parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("FERRY_URL", &server.url)
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_DATABASE_URL")
        // Cheap key sealing: the README's passphrase is not what this test is about.
        .env("FERRY_INSECURE_FAST_KEY_SEALING", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the quick start failed\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    // The archive was published as what it is and unpacked by the `dir` handler: the program
    // is installed with its mode and runs.
    let installed = dir.path().join("opt/vpn-client/current/bin/vpn-client");
    let original = std::fs::read(dir.path().join("vpn-client-5.0/bin/vpn-client")).unwrap();
    assert_eq!(std::fs::read(&installed).unwrap(), original, "the installed program differs from the archive's");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&installed).unwrap().permissions());
    assert_eq!(mode & 0o111, 0o111, "the program keeps its executable mode");
    assert!(!dir.path().join("opt/vpn-client/current/vpn-client-5.0.tar.gz").exists(), "the archive was unpacked");
    assert!(stdout.contains("update installed and committed\nferry-agent exited 4\n"), "{stdout}");
    assert!(stdout.contains("\nvpn-client 5.0\n"), "the installed program ran: {stdout}");
    assert!(stderr.contains("unpacked"), "the agent says what it did: {stderr}");

    // The last command printed the device as JSON: the release committed, 5.0 installed.
    let json_start = stdout.rfind("{\n  \"device\"").expect("device show --json printed the device");
    let device: serde_json::Value = serde_json::from_str(&stdout[json_start..]).unwrap();
    assert_eq!(device["device"]["id"], "pc-001");
    assert_eq!(device["device"]["platform"], "linux-x86_64");
    assert_eq!(device["device"]["installed"]["vpn-client"], "5.0", "{device:#}");
    assert_eq!(device["releases"][0]["state"], "committed", "{device:#}");
    let release = &device["releases"][0];
    assert!(release["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')), "an RFC 3339 time: {release}");

    // Nothing the quick start wrote would be committed by mistake: `.gitignore` covers it all.
    let gitignore = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.gitignore");
    std::fs::copy(gitignore, dir.path().join(".gitignore")).unwrap();
    let git = |args: &[&str]| Command::new("git").args(args).current_dir(dir.path()).output().unwrap();
    assert!(git(&["init", "--quiet"]).status.success());
    let status = git(&["status", "--porcelain", "--untracked-files=all"]);
    let untracked = String::from_utf8_lossy(&status.stdout).replace("?? .gitignore\n", "");
    assert!(status.status.success() && untracked.is_empty(), "not in .gitignore:\n{untracked}");
}
