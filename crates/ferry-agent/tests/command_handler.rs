//! External install commands and health checks, run for real with shell scripts: every class
//! of the exit-code contract, the documented environment, capped output, and a timeout that
//! stops the whole process group.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_agent::config::CommandSpec;
use ferry_agent::handler::command::{
    healthy, install_result, CommandError, InstallResult, Invocation, Runner, Step, Termination,
};
use ferry_core::{ArtifactName, ProductName, ReleaseId, ReleaseKind, Sha256, Version};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An executable `/bin/sh` script.
    fn script(&self, name: &str, body: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn invocation(&self, step: Step) -> Invocation {
        Invocation {
            step,
            file: Some(self.path("download/app.tar.gz")),
            artifact: Some(ArtifactName::new("app.tar.gz").unwrap()),
            media_type: Some("application/gzip".into()),
            sha256: Some(Sha256::from_bytes([0xab; 32])),
            product: ProductName::new("vpn-client").unwrap(),
            version: Version::new("5.0.04").unwrap(),
            previous_version: None,
            kind: ReleaseKind::Full,
            release: ReleaseId(42),
            attempt: 1,
            install_dir: None,
            state_dir: self.path("state"),
            work_dir: self.path("state/work/42"),
        }
    }

    async fn run(
        &self,
        runner: &Runner,
        spec: &CommandSpec,
        step: Step,
    ) -> ferry_agent::handler::command::CommandReport {
        runner.run(spec, &self.invocation(step), &self.path("logs/run.log")).await.unwrap()
    }
}

fn spec(program: String, timeout_secs: u64, env: &[(&str, &str)]) -> CommandSpec {
    CommandSpec {
        argv: vec![program],
        timeout: Duration::from_secs(timeout_secs),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test]
async fn every_exit_code_class_means_what_the_contract_says() {
    let f = Fixture::new();
    let script = f.script("install", "echo \"installing $FERRY_VERSION\"\nexit \"$CODE\"");
    let runner = Runner::default();
    for (code, expected) in [
        ("0", InstallResult::Installed),
        ("10", InstallResult::RebootRequired),
        ("20", InstallResult::RetryLater),
        ("1", InstallResult::Failed { code: "handler_failed" }),
        ("3", InstallResult::Failed { code: "handler_failed" }),
    ] {
        let report = f.run(&runner, &spec(script.clone(), 30, &[("CODE", code)]), Step::Install).await;
        assert_eq!(report.termination, Termination::Exited(code.parse().unwrap()));
        assert_eq!(install_result(report.termination), expected, "exit {code}");
        assert_eq!(healthy(report.termination), code == "0", "as a health check, exit {code}");
        assert_eq!(report.excerpt, "installing 5.0.04\n");
    }
}

#[tokio::test]
async fn a_command_killed_by_a_signal_failed() {
    let f = Fixture::new();
    let script = f.script("crash", "kill -KILL $$");
    let report = f.run(&Runner::default(), &spec(script, 30, &[]), Step::Install).await;
    assert_eq!(report.termination, Termination::Signalled(9));
    assert_eq!(install_result(report.termination), InstallResult::Failed { code: "handler_killed" });
}

#[tokio::test]
async fn the_documented_environment_is_set() {
    let f = Fixture::new();
    // `set -u`: every documented variable is set, even when empty.
    let script = f.script(
        "env",
        "set -eu\nfor v in $(env | sed -n 's/^\\(FERRY_[A-Z0-9_]*\\)=.*/\\1/p' | sort); do echo \"$v\"; done > \"$FERRY_WORK_DIR/names\"\n\
         echo \"$FERRY_PREVIOUS_VERSION|$FERRY_INSTALL_DIR|$FERRY_VERSION|$FERRY_RELEASE_ID|$FERRY_KIND|$MODE|$(pwd)\" > \"$FERRY_WORK_DIR/values\"",
    );
    let report = f.run(&Runner::default(), &spec(script, 30, &[("MODE", "fleet")]), Step::HealthCheck).await;
    assert_eq!(report.termination, Termination::Exited(0), "{}", std::fs::read_to_string(&report.log_file).unwrap());
    let work = f.path("state/work/42");
    let names = std::fs::read_to_string(work.join("names")).unwrap();
    let mut documented: Vec<&str> = readme_variables();
    documented.sort_unstable();
    assert_eq!(names.lines().collect::<Vec<_>>(), documented, "the README's table lists exactly what is set");
    let values = std::fs::read_to_string(work.join("values")).unwrap();
    let cwd = std::fs::canonicalize(&work).unwrap();
    assert_eq!(values.trim(), format!("||5.0.04|42|full|fleet|{}", cwd.display()));
}

/// The variable names in the README's handler environment table.
fn readme_variables() -> Vec<&'static str> {
    let readme = include_str!("../README.md");
    let table = readme.split("| variable | value |").nth(1).expect("the README has the environment table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').next().unwrap().trim().trim_matches('`'))
        .collect()
}

#[tokio::test]
async fn output_is_logged_interleaved_capped_and_excerpted() {
    let f = Fixture::new();
    let script = f.script(
        "noisy",
        "echo to-stdout\necho to-stderr >&2\nhead -c 100000 /dev/zero | tr '\\0' 'x'\necho\necho the-end",
    );
    let runner = Runner { log_cap: 4096, ..Runner::default() };
    let report = f.run(&runner, &spec(script, 30, &[]), Step::Install).await;
    assert_eq!(report.termination, Termination::Exited(0));
    let log = std::fs::read_to_string(&report.log_file).unwrap();
    assert!(log.starts_with("[ferry-agent] running [\""), "{log}");
    assert!(log.contains("to-stdout\n") && log.contains("to-stderr\n"), "{log}");
    assert!(log.contains("output beyond 4096 bytes is not kept"), "{log}");
    assert!(log.ends_with("\n[ferry-agent] the command exited with code 0 (100029 bytes of output in all)\n"), "{log}");
    assert!(log.len() < 4096 + 512, "capped: {} bytes", log.len());
    assert!(report.truncated);
    assert_eq!(report.output_bytes, 100_000 + "to-stdout\nto-stderr\n\nthe-end\n".len() as u64);
    assert!(report.excerpt.ends_with("xxx\nthe-end\n"), "the excerpt is the tail: {:?}", report.excerpt);
    assert_eq!(report.excerpt.len(), ferry_agent::handler::command::EXCERPT_BYTES);
    let mode = std::fs::metadata(&report.log_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "logs may hold secrets");
}

/// Whether `pid` is still alive now (not gone, not a zombie).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap().split_whitespace().next().unwrap();
            !matches!(state, "Z" | "X")
        }
    }
}

/// Waits until `pid` has exited (a pidfd becomes readable then), whoever its parent is.
/// Bounded generously, so that a process that was not stopped fails the test instead of
/// hanging it.
fn has_exited(pid: &str) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let pid = rustix::process::Pid::from_raw(pid.parse().unwrap()).unwrap();
    let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return true; // already gone
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    poll(&mut fds, Some(&Timespec { tv_sec: 60, tv_nsec: 0 })).unwrap() == 1
}

/// Starts a background process that never ends by itself and records its pid.
const FOREVER: &str = "( while :; do sleep 1; done ) &\necho $! > \"$FERRY_WORK_DIR/child.pid\"";

async fn timed_out_group(body: &str, runner: Runner) -> (String, String) {
    let f = Fixture::new();
    let script = f.script("hang", body);
    // The background child never ends by itself. Output is collected until every process
    // holding it has closed it, so in the good case `run` returns once the group is stopped;
    // if the child survived, it returns after the drain time and the check below fails.
    let runner = Runner { output_drain: Duration::from_secs(30), ..runner };
    let report = f.run(&runner, &spec(script, 1, &[]), Step::Install).await;
    assert_eq!(report.termination, Termination::TimedOut);
    assert_eq!(install_result(report.termination), InstallResult::Failed { code: "handler_timeout" });
    let pid = std::fs::read_to_string(f.path("state/work/42/child.pid")).unwrap().trim().to_owned();
    let log = std::fs::read_to_string(&report.log_file).unwrap();
    (pid, log)
}

#[tokio::test]
async fn a_timeout_stops_the_whole_process_group() {
    let (child, log) = timed_out_group(&format!("{FOREVER}\necho started\nwait"), Runner::default()).await;
    assert!(has_exited(&child), "the background child {child} was stopped with its parent");
    assert!(log.contains("timeout: sending SIGTERM to the process group"), "{log}");
    assert!(log.contains("the command ran past its timeout and was stopped"), "{log}");
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_gets_sigkill() {
    let runner = Runner { kill_grace: Duration::from_secs(1), ..Runner::default() };
    let (child, log) = timed_out_group(&format!("trap '' TERM\n{FOREVER}\nwait\nwait"), runner).await;
    assert!(has_exited(&child), "the TERM-ignoring child {child} was killed");
    assert!(log.contains("sending SIGKILL to the process group"), "{log}");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_an_error_naming_it() {
    let f = Fixture::new();
    let missing = f.path("no-such-installer").display().to_string();
    let err = Runner::default()
        .run(&spec(missing.clone(), 30, &[]), &f.invocation(Step::Install), &f.path("logs/run.log"))
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains(&missing) && err.to_string().contains("check the handler's argv"), "{err}");
    let log = std::fs::read_to_string(f.path("logs/run.log")).unwrap();
    assert!(log.contains("cannot start"), "the log says why: {log}");
}

#[tokio::test]
async fn background_processes_left_after_a_normal_exit_are_not_killed() {
    let f = Fixture::new();
    // A daemon started by an installer keeps running; its open output only delays the end by
    // the drain time.
    let script = f.script("daemon", "sleep 300 &\necho $! > \"$FERRY_WORK_DIR/child.pid\"\nexit 0");
    let runner = Runner { output_drain: Duration::from_millis(100), ..Runner::default() };
    let report = f.run(&runner, &spec(script, 30, &[]), Step::Install).await;
    assert_eq!(report.termination, Termination::Exited(0));
    let pid = std::fs::read_to_string(f.path("state/work/42/child.pid")).unwrap().trim().to_owned();
    assert!(alive(&pid), "the daemon {pid} still runs");
    std::process::Command::new("kill").arg(&pid).status().unwrap();
    let log = std::fs::read_to_string(&report.log_file).unwrap();
    assert!(log.contains("no longer collected"), "{log}");
}

#[test]
fn readme_variables_parse() {
    assert!(readme_variables().contains(&"FERRY_FILE"));
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md").exists());
}
