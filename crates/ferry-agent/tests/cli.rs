//! The `ferry-agent` binary: `config default`, `config check`, `status`, and their exit codes.

use std::path::Path;

use ferry_agent::config::DEFAULT_CONFIG;
use ferry_agent::events::{EventDraft, EventQueue, EVENTS_FILE};
use ferry_agent::exit::Exit;
use ferry_agent::state::{Installed, Job, Kept, Phase, State, StateStore, Target, Work, BACKUP_FILE, STATE_FILE};
use ferry_core::{ArtifactName, DeviceState, ProductName, RebootBehaviour, ReleaseId, ReleaseKind, Sha256, Version};

#[path = "../../ferry/tests/common/doc_commands.rs"]
mod doc_commands;

#[path = "common/site.rs"]
mod site;

use site::{agent, code, Site};

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

fn stderr(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

#[test]
fn config_default_prints_the_documented_file() {
    let out = agent().args(["config", "default"]).assert().success();
    assert_eq!(stdout(&out), DEFAULT_CONFIG);
}

#[test]
fn config_check_accepts_a_usable_file() {
    let site = Site::new();
    let out = agent().args(["config", "check"]).arg(site.config()).assert().success();
    let text = stdout(&out);
    assert!(text.contains("valid (0 handlers"), "{text}");
    assert!(text.contains("no [[handler]] is configured"), "{text}");
    // The --config file is the default, also through the environment.
    agent().env("FERRY_AGENT_CONFIG", site.config()).args(["config", "check"]).assert().success();
}

#[test]
fn config_check_lists_every_problem_and_exits_with_the_config_code() {
    let site = Site::new();
    let bad = site.dir.path().join("bad.toml");
    std::fs::write(&bad, "server_url = \"ftp://x\"\nplatform = \"a b\"\n[[handler]]\ntype = \"dir\"\nroot = \"rel\"\n")
        .unwrap();
    let out = agent().args(["config", "check"]).arg(&bad).assert().code(code(Exit::Config));
    let err = stderr(&out);
    // The pinned roots it defaults to are missing too: files are checked with the values.
    assert!(err.starts_with(&format!("error: {}: 5 problems:", bad.display())), "{err}");
    assert!(
        err.contains("\n  server_url: ") && err.contains("\n  platform: ") && err.contains("\n  handler #1: root: "),
        "{err}"
    );

    std::fs::write(&bad, "server_url = \"https://f\"\nplatform = \"p\"\nsurprise = 1\n").unwrap();
    let out = agent().args(["config", "check"]).arg(&bad).assert().code(code(Exit::Config));
    assert!(stderr(&out).contains("unknown field `surprise`"), "{}", stderr(&out));

    // Valid values naming a file that is not there: the agent could not run with it.
    let text = std::fs::read_to_string(site.config()).unwrap().replace("image-root.json", "missing-root.json");
    std::fs::write(&bad, text).unwrap();
    let out = agent().args(["config", "check"]).arg(&bad).assert().code(code(Exit::Config));
    assert!(stderr(&out).contains("trust.image_root: cannot read"), "{}", stderr(&out));

    let out =
        agent().args(["config", "check"]).arg(site.dir.path().join("none.toml")).assert().code(code(Exit::Config));
    assert!(stderr(&out).contains("ferry-agent config default > FILE"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    agent().arg("frobnicate").assert().code(code(Exit::Usage));
    agent().args(["status", "--yaml"]).assert().code(code(Exit::Usage));
}

#[test]
fn status_of_a_fresh_device() {
    let site = Site::new();
    let out = site.status(false).success();
    let text = stdout(&out);
    assert!(text.contains("none yet") && text.contains("update:    none in progress"), "{text}");
    assert!(text.contains("installed: none") && text.contains("events:    0 waiting"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&site.status(true).success())).unwrap();
    assert_eq!(json["phase"], "idle");
    assert_eq!(json["state_source"], "fresh");
    assert!(json["job"].is_null());
    assert!(!site.state_dir().join(STATE_FILE).exists(), "status writes nothing");
}

fn job_state() -> State {
    let product = ProductName::new("gateway-app").unwrap();
    let mut state = State::default();
    state.installed.insert(
        product.clone(),
        Installed {
            version: Version::new("1.3.0").unwrap(),
            release: Some(ReleaseId(6)),
            release_counter: Some(11),
            kept: Some(Kept::version_only(Version::new("1.2.0").unwrap())),
            committed_at: 1_767_225_600,
        },
    );
    state.job = Some(Job {
        work: Work::Update {
            target: Target {
                release: ReleaseId(7),
                product,
                kind: ReleaseKind::Full,
                version: Version::new("1.4.0").unwrap(),
                release_counter: 12,
                target_path: "gateway-app/1.4.0/app.tar.gz".into(),
                artifact: ArtifactName::new("app.tar.gz").unwrap(),
                length: 100,
                sha256: Sha256::from_bytes([1; 32]),
                media_type: "application/gzip".into(),
                required: true,
                reboot: RebootBehaviour::None,
                deadline: None,
            },
        },
        previous: Some(Kept {
            version: Version::new("1.3.0").unwrap(),
            release: Some(ReleaseId(6)),
            release_counter: Some(11),
        }),
        started_at: 1_767_312_000,
        phase: Phase::Installing { attempts: 2 },
    });
    state
}

fn save(dir: &Path, states: &[State]) {
    let mut store = StateStore::new(dir);
    for s in states {
        store.save(s).unwrap();
    }
}

#[test]
fn status_shows_the_job_installed_versions_and_waiting_events() {
    let site = Site::new();
    save(&site.state_dir(), &[job_state()]);
    let mut queue = EventQueue::open(&site.state_dir().join(EVENTS_FILE), 1 << 20).unwrap();
    let draft = EventDraft {
        release: ReleaseId(7),
        state: DeviceState::Installing,
        progress: None,
        error_code: None,
        message: None,
        at: 1_767_312_001,
    };
    queue.push(draft, None).unwrap();
    drop(queue);

    let text = stdout(&site.status(false).success());
    assert!(text.contains("update:    gateway-app 1.4.0 (release 7, full, required), replacing 1.3.0"), "{text}");
    assert!(text.contains("phase:     installing (attempt 2 of 3)"), "{text}");
    assert!(text.contains("gateway-app 1.3.0 (release 6, kept 1.2.0, committed 2026-01-01T00:00:00Z)"), "{text}");
    assert!(text.contains("events:    1 waiting to be sent, oldest from 2026-01-02T00:00:01Z"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&stdout(&site.status(true).success())).unwrap();
    assert_eq!(json["phase"], "installing");
    assert_eq!(json["state_source"], "primary");
    assert_eq!(json["job"]["attempts"], 2);
    assert_eq!(json["job"]["target"]["version"], "1.4.0");
    assert_eq!(json["installed"]["gateway-app"]["kept"]["version"], "1.2.0");
    assert_eq!(json["events"]["pending"], 1);
}

#[test]
fn status_with_a_torn_state_file_shows_the_backup_and_warns() {
    let site = Site::new();
    let mut earlier = job_state();
    earlier.job.as_mut().unwrap().phase = Phase::Downloaded { deferred: None };
    save(&site.state_dir(), &[earlier, job_state()]);
    let path = site.state_dir().join(STATE_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();

    let out = site.status(true).success();
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((json["state_source"].as_str(), json["phase"].as_str()), (Some("backup"), Some("downloaded")));
    assert!(stderr(&out).contains("warning:") && stderr(&out).contains("state.json.bak"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&path).unwrap(), &bytes[..bytes.len() / 3], "status repairs nothing");
}

#[test]
fn status_with_no_readable_state_exits_with_the_state_code() {
    let site = Site::new();
    std::fs::write(site.state_dir().join(STATE_FILE), "{").unwrap();
    std::fs::write(site.state_dir().join(BACKUP_FILE), "").unwrap();
    let out = site.status(false).code(code(Exit::State));
    assert!(stderr(&out).contains("start afresh"), "{}", stderr(&out));

    std::fs::write(site.state_dir().join(STATE_FILE), "{\"format\":9}").unwrap();
    let out = site.status(false).code(code(Exit::State));
    assert!(stderr(&out).contains("newer than this agent's"), "{}", stderr(&out));
}

#[test]
fn status_without_a_valid_config_exits_with_the_config_code() {
    let site = Site::new();
    agent().arg("--config").arg(site.dir.path().join("none.toml")).arg("status").assert().code(code(Exit::Config));
}

/// A server that cannot be reached: `check` exits 7, says which address it tried and names the
/// agent's setting (`server_url`, not the admin CLI's `--server`); nothing is left
/// half-written (no credential). Its logs, on a pipe, carry no colour codes.
#[test]
fn check_with_the_server_unreachable_exits_7() {
    let site = Site::new();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = std::fs::read_to_string(site.config()).unwrap();
    let text = text
        .replace("http://127.0.0.1:9", &format!("http://127.0.0.1:{port}"))
        .replace("log_level = \"info\"", "log_level = \"debug\"");
    std::fs::write(site.config(), text).unwrap();
    let assert = agent().arg("--config").arg(site.config()).arg("check").assert().code(code(Exit::Unreachable));
    let err = stderr(&assert);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("`server_url`") && !err.contains("--server"), "{err}");
    assert!(err.contains("DEBUG"), "debug logs are on: {err}");
    assert!(!err.contains('\x1b'), "colour codes in a log that is not a terminal: {err:?}");
    assert!(!site.state_dir().join("credential").exists());
}

/// A release id that is not one: a usage error that says what an id looks like and where to
/// find them.
#[test]
fn a_release_id_that_is_not_a_number_is_explained() {
    for command in ["install", "logs"] {
        let out = agent().args([command, "abc"]).assert().code(code(Exit::Usage));
        let err = stderr(&out);
        assert!(err.contains("\"abc\" is not a release id: release ids are positive whole numbers"), "{err}");
        assert!(err.contains("ferry-agent notify"), "{err}");
    }
}

/// `logs --json` lists the handler logs with their release and step, and prints one release's
/// logs with their text; a release without logs is exit 3 with a JSON error.
#[test]
fn logs_as_json() {
    let site = Site::new();
    let logs = |args: &[&str]| agent().arg("--config").arg(site.config()).arg("logs").args(args).assert();
    let none: serde_json::Value =
        serde_json::from_str(&stdout(&logs(&["--json"]).code(code(Exit::NothingToDo)))).unwrap();
    assert_eq!(none["logs"], serde_json::json!([]));
    let dir = site.state_dir().join("logs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("7-install.log"), "unpacked\n").unwrap();
    std::fs::write(dir.join("7-health_check.log"), "1.1 is bad\n").unwrap();
    std::fs::write(dir.join("gateway-app-rollback.log"), "back\n").unwrap();

    let all: serde_json::Value = serde_json::from_str(&stdout(&logs(&["--json"]).success())).unwrap();
    let entries = all["logs"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{all:#}");
    assert_eq!((entries[0]["release"].as_i64(), entries[0]["step"].as_str()), (Some(7), Some("health_check")));
    assert_eq!(entries[1]["bytes"], 9);
    assert_eq!((entries[2]["release"].is_null(), entries[2]["step"].as_str()), (true, Some("rollback")));

    let one: serde_json::Value = serde_json::from_str(&stdout(&logs(&["7", "--json"]).success())).unwrap();
    assert_eq!(one["release"], 7);
    let texts: Vec<&str> = one["logs"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["1.1 is bad\n", "unpacked\n"]);

    let missing: serde_json::Value =
        serde_json::from_str(&stdout(&logs(&["8", "--json"]).code(code(Exit::NothingToDo)))).unwrap();
    assert!(missing["error"].as_str().unwrap().contains("no handler logs for release 8"), "{missing}");
}

/// Another agent holding the state directory: exit 12, at once.
#[test]
fn check_while_another_agent_works_exits_12() {
    let site = Site::new();
    let _held = ferry_agent::lock::StateLock::try_acquire(&site.state_dir()).unwrap();
    let assert = agent().arg("--config").arg(site.config()).arg("check").assert().code(code(Exit::Busy));
    assert!(stderr(&assert).contains("another ferry-agent"), "{}", stderr(&assert));
}

/// The systemd unit starts the agent with arguments it accepts: `--config FILE run`.
#[test]
fn the_systemd_unit_runs_a_command_the_agent_knows() {
    let unit = include_str!("../ferry-agent.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart line");
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args.last(), Some(&"run"));
    // The same arguments with a missing configuration fail on the configuration (6), not on
    // the arguments (2).
    let missing = tempfile::tempdir().unwrap().path().join("config.toml");
    let mut cmd = agent();
    for a in &args {
        if a.ends_with(".toml") {
            cmd.arg(&missing);
        } else {
            cmd.arg(a);
        }
    }
    cmd.assert().code(code(Exit::Config));
}

/// The README's minimal configuration is valid.
#[test]
fn the_readme_minimal_configuration_parses() {
    let readme = include_str!("../README.md");
    let block = readme.split("```toml\n").nth(1).and_then(|b| b.split("\n```").next()).expect("a toml block");
    let config = ferry_agent::config::Config::parse(block).unwrap();
    assert_eq!(config.handlers.len(), 1);
    assert!(config.handlers[0].health_check.is_some());
}

/// The real binary shows the help of every subcommand, as its own help lists them.
#[test]
fn every_subcommand_shows_its_help() {
    let paths = doc_commands::run_every_help(&std::path::PathBuf::from(site::AGENT));
    for expected in [&["rollback"][..], &["logs"], &["config", "check"], &["config", "default"]] {
        assert!(paths.iter().any(|p| p == expected), "{expected:?} missing from {paths:?}");
    }
}

/// `ferry-agent --config FILE rollback PRODUCT`, with and without `--config-bundle`, runs: clap
/// panicked on it while `rollback` had a `--config` flag of its own.
#[test]
fn rollback_after_the_global_config_option_runs() {
    let site = Site::new();
    let out = agent()
        .arg("--config")
        .arg(site.config())
        .args(["rollback", "vpn-client"])
        .assert()
        .code(code(Exit::NothingToDo));
    assert!(stderr(&out).contains("installed no software of vpn-client"), "{}", stderr(&out));
    let out = agent()
        .arg("--config")
        .arg(site.config())
        .args(["rollback", "vpn-client", "--config-bundle"])
        .assert()
        .code(code(Exit::NothingToDo));
    assert!(stderr(&out).contains("installed no configuration bundle of vpn-client"), "{}", stderr(&out));
}
