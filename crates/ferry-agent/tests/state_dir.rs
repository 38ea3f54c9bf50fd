//! The real `ferry-agent` binary and a state directory another user could tamper with: one
//! that others can write, one owned by someone else, and symlinks planted inside it. The agent
//! refuses them before it talks to any server, and leaves what a link points at untouched.
//! Also `config check`, which reports such problems together with every other one.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use ferry_agent::exit::Exit;

#[path = "common/site.rs"]
mod site;

use site::{code, Site};

/// A file outside the state directory that a planted link points at.
fn victim(site: &Site) -> PathBuf {
    let victim = site.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    victim
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_state_directory_others_can_write_is_refused() {
    let site = Site::quiet();
    for (mode, who) in [(0o777, "every user"), (0o1777, "every user"), (0o770, "its group")] {
        chmod(&site.state_dir(), mode);
        for command in ["check", "status", "notify"] {
            let (exit, err) = site.run(&[command]);
            assert_eq!(exit, code(Exit::State), "{command}: {err}");
            assert!(err.contains(&format!("is writable by {who}")) && err.contains("chmod go-w"), "{command}: {err}");
        }
        assert_eq!(std::fs::read_dir(site.state_dir()).unwrap().count(), 0, "the agent wrote into it");
    }
}

#[test]
fn a_state_directory_owned_by_another_user_is_refused() {
    let site = Site::quiet();
    let me = rustix::process::geteuid().as_raw();
    let other = if me == 4242 { 4243 } else { 4242 };
    if me != 0 {
        // Only root can give a directory away; a non-root run checks the other rule instead.
        chmod(&site.state_dir(), 0o777);
        assert_eq!(site.run(&["check"]).0, code(Exit::State));
        return;
    }
    std::os::unix::fs::chown(site.state_dir(), Some(other), None).unwrap();
    let (exit, err) = site.run(&["check"]);
    assert_eq!(exit, code(Exit::State), "{err}");
    assert!(err.contains(&format!("is owned by uid {other}, not by this user (uid 0) or root")), "{err}");
}

#[test]
fn a_missing_state_directory_is_created_private() {
    let site = Site::quiet();
    std::fs::remove_dir(site.state_dir()).unwrap();
    // The check gets past the state directory and fails only at the closed server address.
    let (exit, err) = site.run(&["check"]);
    assert_eq!(exit, code(Exit::Unreachable), "{err}");
    assert_eq!(std::fs::metadata(site.state_dir()).unwrap().permissions().mode() & 0o7777, 0o700);
}

#[test]
fn a_symlinked_event_queue_is_refused_and_its_target_untouched() {
    let site = Site::quiet();
    let victim = victim(&site);
    std::os::unix::fs::symlink(&victim, site.state_dir().join("events.jsonl")).unwrap();
    let (exit, err) = site.run(&["check"]);
    assert_eq!(exit, code(Exit::State), "{err}");
    assert!(err.contains("events.jsonl") && err.contains("symlink"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_symlinked_state_file_is_refused_and_its_target_untouched() {
    for name in ["state.json", "state.json.bak"] {
        let site = Site::quiet();
        let victim = victim(&site);
        std::os::unix::fs::symlink(&victim, site.state_dir().join(name)).unwrap();
        for command in [&["check"][..], &["status"][..]] {
            let (exit, err) = site.run(command);
            assert_eq!(exit, code(Exit::State), "{command:?}: {err}");
            assert!(err.contains(name) && err.contains("symlink"), "{command:?}: {err}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(site.state_dir().join(name)).unwrap().is_symlink(), "the link was replaced");
    }
}

#[test]
fn config_check_lists_every_problem_at_once() {
    let site = Site::quiet();
    chmod(&site.state_dir(), 0o777);
    let shared_root = site.path("shared-root");
    std::fs::create_dir(&shared_root).unwrap();
    chmod(&shared_root, 0o777);
    let config = std::fs::read_to_string(site.path("agent.toml"))
        .unwrap()
        .replace("director-root.json", "missing-root.json")
        .replace("log_level = \"error\"", "log_level = \"loud\"")
        .replace("#enrollment_key_file = \"/etc/ferry-agent/enrollment-key\"", "enrollment_key_file = \"/nonexistent/key\"")
        + &format!(
            "[[handler]]\nproduct = \"a\"\ntype = \"dir\"\nroot = \"/\"\n\n[[handler]]\nproduct = \"b\"\ntype = \"dir\"\nroot = \"{}\"\n",
            shared_root.display()
        );
    std::fs::write(site.path("bad.toml"), config).unwrap();
    let (exit, err) = site.run(&["config", "check", site.path("bad.toml").to_str().unwrap()]);
    assert_eq!(exit, code(Exit::Config), "{err}");
    assert!(err.contains("6 problems:"), "{err}");
    for expected in [
        "\n  enrollment_key_file: cannot read /nonexistent/key",
        "\n  state_dir: ",
        "is writable by every user",
        "\n  log_level: \"loud\" is not a level",
        "\n  trust.director_root: cannot read ",
        "\n  handler #1: root: \"/\" is the root of the file system",
        "\n  handler #2: root: ",
    ] {
        assert!(err.contains(expected), "{expected:?} missing from {err}");
    }
}

#[test]
fn the_file_system_root_is_refused_as_the_state_directory() {
    let site = Site::quiet();
    let config = std::fs::read_to_string(site.path("agent.toml"))
        .unwrap()
        .replace(&format!("state_dir = \"{}\"", site.state_dir().display()), "state_dir = \"/\"");
    assert!(config.contains("state_dir = \"/\""));
    std::fs::write(site.path("agent.toml"), config).unwrap();
    let (exit, err) = site.run(&["config", "check"]);
    assert_eq!(exit, code(Exit::Config), "{err}");
    assert!(err.contains("state_dir: \"/\" is the root of the file system"), "{err}");
    // Every command refuses it, before touching anything.
    let (exit, err) = site.run(&["check"]);
    assert_eq!(exit, code(Exit::Config), "{err}");
}
