//! External commands: `command` install handlers and health checks.
//!
//! # Environment
//!
//! The command inherits the agent's environment, plus its handler's `env` table, plus these
//! variables, which are always set (empty when they do not apply), so scripts may use `set -u`:
//!
//! | variable | value |
//! |---|---|
//! | `FERRY_ACTION` | `install`, `rollback` or `health_check` |
//! | `FERRY_FILE` | absolute path of the verified artifact (`install`; for `rollback`, the kept artifact of the version to return to, when the agent has it) |
//! | `FERRY_ARTIFACT` | the artifact's file name |
//! | `FERRY_MEDIA_TYPE` | its media type |
//! | `FERRY_SHA256` | its verified SHA-256 (lower-case hex) |
//! | `FERRY_PRODUCT` | the product |
//! | `FERRY_VERSION` | the version being installed (`rollback`: the version returned to; `health_check`: the version to check) |
//! | `FERRY_PREVIOUS_VERSION` | the version installed before (`rollback`: the version being left) |
//! | `FERRY_KIND` | `full`, `patch` or `config` |
//! | `FERRY_RELEASE_ID` | the server's release id |
//! | `FERRY_ATTEMPT` | 1 for the first run of this step; more when a run was interrupted or asked to retry later |
//! | `FERRY_INSTALL_DIR` | for the `dir` handler, the version's directory (`ROOT/versions/VERSION`) |
//! | `FERRY_STATE_DIR` | the agent's state directory |
//! | `FERRY_WORK_DIR` | a scratch directory for this job, also the working directory; kept until the job ends |
//!
//! # Exit codes
//!
//! | code | install / rollback | health check |
//! |---|---|---|
//! | 0 ([`EXIT_SUCCESS`]) | done | healthy |
//! | 10 ([`EXIT_REBOOT_REQUIRED`]) | done; the change takes effect after a reboot | unhealthy |
//! | 20 ([`EXIT_RETRY_LATER`]) | not done, nothing changed; run again later (e.g. the device is busy) | unhealthy |
//! | anything else, or killed by a signal | failed | unhealthy |
//!
//! A command must be idempotent: after a crash or power cut the agent runs an interrupted step
//! again (`FERRY_ATTEMPT` > 1), at most three times. A failing install should leave the
//! previous version in place: the agent reports the failure and does not run a rollback.
//!
//! # Timeout
//!
//! The command runs in a process group of its own. When its timeout passes, the whole group
//! gets SIGTERM and, [`Runner::kill_grace`] later, SIGKILL; a timeout counts as a failure.
//! Processes it leaves running after a normal exit are not touched (an installer may start a
//! service); the agent stops collecting output [`Runner::output_drain`] after the command
//! exits, so such processes should redirect their output.
//!
//! # Output
//!
//! Standard output and error go, interleaved in one pipe, to a log file of at most [`Runner::log_cap`]
//! bytes (the rest is counted, not kept), framed by a line naming the command and one with
//! how it ended. The last [`EXCERPT_BYTES`] bytes of output come back as an excerpt for the
//! status event.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ferry_core::{ArtifactName, ProductName, ReleaseId, ReleaseKind, Sha256, Version};
use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;

use crate::atomic::IoError;
use crate::config::CommandSpec;

/// Exit code: done (install, rollback) or healthy (health check).
pub const EXIT_SUCCESS: i32 = 0;
/// Exit code: installed, effective after a reboot.
pub const EXIT_REBOOT_REQUIRED: i32 = 10;
/// Exit code: nothing changed, run again later.
pub const EXIT_RETRY_LATER: i32 = 20;
/// Bytes of output returned as the excerpt.
pub const EXCERPT_BYTES: usize = 2048;

/// What the command is asked to do (`FERRY_ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Install the artifact.
    Install,
    /// Return to the kept version.
    Rollback,
    /// Check the installed version.
    HealthCheck,
}

impl Step {
    /// The value of `FERRY_ACTION`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Rollback => "rollback",
            Self::HealthCheck => "health_check",
        }
    }
}

/// Everything a command is told, as `FERRY_*` variables (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `FERRY_ACTION`.
    pub step: Step,
    /// `FERRY_FILE`.
    pub file: Option<PathBuf>,
    /// `FERRY_ARTIFACT`.
    pub artifact: Option<ArtifactName>,
    /// `FERRY_MEDIA_TYPE`.
    pub media_type: Option<String>,
    /// `FERRY_SHA256`.
    pub sha256: Option<Sha256>,
    /// `FERRY_PRODUCT`.
    pub product: ProductName,
    /// `FERRY_VERSION`.
    pub version: Version,
    /// `FERRY_PREVIOUS_VERSION`.
    pub previous_version: Option<Version>,
    /// `FERRY_KIND`.
    pub kind: ReleaseKind,
    /// `FERRY_RELEASE_ID`.
    pub release: ReleaseId,
    /// `FERRY_ATTEMPT`.
    pub attempt: u32,
    /// `FERRY_INSTALL_DIR`.
    pub install_dir: Option<PathBuf>,
    /// `FERRY_STATE_DIR`.
    pub state_dir: PathBuf,
    /// `FERRY_WORK_DIR`, and the working directory.
    pub work_dir: PathBuf,
}

impl Invocation {
    /// The `FERRY_*` variables, in the order of the module table.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
        vec![
            ("FERRY_ACTION", self.step.as_str().to_owned()),
            ("FERRY_FILE", path(&self.file)),
            ("FERRY_ARTIFACT", text(self.artifact.as_ref().map(ArtifactName::as_str))),
            ("FERRY_MEDIA_TYPE", text(self.media_type.as_deref())),
            ("FERRY_SHA256", text(self.sha256.as_ref().map(Sha256::as_str))),
            ("FERRY_PRODUCT", self.product.to_string()),
            ("FERRY_VERSION", self.version.to_string()),
            ("FERRY_PREVIOUS_VERSION", text(self.previous_version.as_ref().map(Version::as_str))),
            ("FERRY_KIND", self.kind.as_str().to_owned()),
            ("FERRY_RELEASE_ID", self.release.to_string()),
            ("FERRY_ATTEMPT", self.attempt.to_string()),
            ("FERRY_INSTALL_DIR", path(&self.install_dir)),
            ("FERRY_STATE_DIR", self.state_dir.display().to_string()),
            ("FERRY_WORK_DIR", self.work_dir.display().to_string()),
        ]
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// A signal (not the agent's) ended it.
    Signalled(i32),
    /// It ran past its timeout and was stopped with its process group.
    TimedOut,
}

impl std::fmt::Display for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "exited with code {code}"),
            Self::Signalled(signal) => write!(f, "was killed by signal {signal}"),
            Self::TimedOut => f.write_str("ran past its timeout and was stopped"),
        }
    }
}

/// What an install or rollback command's end means (the module's exit-code contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallResult {
    /// Done.
    Installed,
    /// Done; a reboot makes it effective.
    RebootRequired,
    /// Nothing changed; run again later.
    RetryLater,
    /// Failed.
    Failed {
        /// `handler_failed`, `handler_killed` or `handler_timeout`.
        code: &'static str,
    },
}

/// Reads an install or rollback command's termination under the exit-code contract.
pub fn install_result(termination: Termination) -> InstallResult {
    match termination {
        Termination::Exited(EXIT_SUCCESS) => InstallResult::Installed,
        Termination::Exited(EXIT_REBOOT_REQUIRED) => InstallResult::RebootRequired,
        Termination::Exited(EXIT_RETRY_LATER) => InstallResult::RetryLater,
        Termination::Exited(_) => InstallResult::Failed { code: "handler_failed" },
        Termination::Signalled(_) => InstallResult::Failed { code: "handler_killed" },
        Termination::TimedOut => InstallResult::Failed { code: "handler_timeout" },
    }
}

/// Whether a health check's termination means healthy: exit 0, nothing else.
pub fn healthy(termination: Termination) -> bool {
    termination == Termination::Exited(EXIT_SUCCESS)
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReport {
    /// How it ended.
    pub termination: Termination,
    /// The log file.
    pub log_file: PathBuf,
    /// The last [`EXCERPT_BYTES`] of output (lossy UTF-8).
    pub excerpt: String,
    /// Bytes of output produced, kept or not.
    pub output_bytes: u64,
    /// Whether output was cut at the log cap.
    pub truncated: bool,
}

/// Why a command could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started (missing, not executable).
    #[error("cannot start {program}: {source}; check the handler's argv")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The log file or working directory could not be prepared.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Runs commands under the module's rules.
#[derive(Debug, Clone)]
pub struct Runner {
    /// Largest log file, in bytes.
    pub log_cap: u64,
    /// Time between SIGTERM and SIGKILL after a timeout.
    pub kill_grace: Duration,
    /// How long output is still collected after the command exited.
    pub output_drain: Duration,
}

impl Default for Runner {
    fn default() -> Self {
        Self { log_cap: 256 * 1024, kill_grace: Duration::from_secs(5), output_drain: Duration::from_secs(2) }
    }
}

impl Runner {
    /// Runs `spec` with the invocation's environment in its work directory (created if
    /// missing), writing output to `log_file` (replaced).
    pub async fn run(
        &self,
        spec: &CommandSpec,
        invocation: &Invocation,
        log_file: &Path,
    ) -> Result<CommandReport, CommandError> {
        std::fs::create_dir_all(&invocation.work_dir).map_err(IoError::on("create", &invocation.work_dir))?;
        let env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(invocation.env().into_iter().map(|(k, v)| (k.to_owned(), v)))
            .collect();
        self.run_argv(&spec.argv, &env, &invocation.work_dir, spec.timeout, log_file).await
    }

    /// Runs `argv` with extra `env` in `cwd`; the engine behind [`Runner::run`].
    pub async fn run_argv(
        &self,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        timeout: Duration,
        log_file: &Path,
    ) -> Result<CommandReport, CommandError> {
        let program = argv.first().cloned().unwrap_or_default();
        let mut log = CappedLog::create(log_file, self.log_cap)?;
        log.note(&format!("running {argv:?} (timeout {} s)", timeout.as_secs()));
        // One pipe for both streams, as `2>&1`: output keeps its order, and the cap cannot
        // favour one stream.
        let (reader, writer) = std::io::pipe().map_err(IoError::on("create a pipe for", log_file))?;
        let writer_too = writer.try_clone().map_err(IoError::on("create a pipe for", log_file))?;
        let mut command = tokio::process::Command::new(&program);
        // The documented FERRY_* variables are the only ones a handler sees: any the agent
        // itself inherited (its service environment, a test harness) are not passed on.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("FERRY_")) {
                command.env_remove(&key);
            }
        }
        command
            .args(argv.iter().skip(1))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_too)
            .process_group(0);
        let spawned = command.spawn();
        // The command holds the parent's copies of the write end: without dropping them the
        // output would never end.
        drop(command);
        let mut child = spawned.map_err(|source| {
            log.note(&format!("cannot start: {source}"));
            CommandError::Spawn { program: program.clone(), source }
        })?;
        let mut output = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into())
            .map_err(IoError::on("read the output pipe for", log_file))?;
        // The child leads its own group, so the group id is its pid.
        let group = child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
        let signal_group = |signal: Signal| {
            if let Some(group) = group {
                // ESRCH (the group is gone) is the outcome wanted anyway.
                let _ = kill_process_group(group, signal);
            }
        };
        let mut buf = vec![0u8; 8192];
        let mut output_open = true;
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let mut kill_at: Option<Instant> = None;
        let mut drain_until: Option<Instant> = None;
        let mut status = None;
        while status.is_none() || output_open {
            tokio::select! {
                read = output.read(&mut buf), if output_open => match read {
                    Ok(n) if n > 0 => log.output(&buf[..n]),
                    _ => output_open = false,
                },
                waited = child.wait(), if status.is_none() => {
                    let waited = waited.map_err(|source| CommandError::Spawn { program: program.clone(), source })?;
                    status = Some(waited);
                    if timed_out {
                        // Whatever is left of the group goes too.
                        signal_group(Signal::KILL);
                    }
                    drain_until = Some(Instant::now() + self.output_drain);
                },
                () = tokio::time::sleep_until(deadline), if !timed_out && status.is_none() => {
                    log.note("timeout: sending SIGTERM to the process group");
                    signal_group(Signal::TERM);
                    timed_out = true;
                    kill_at = Some(Instant::now() + self.kill_grace);
                },
                () = sleep_until_opt(kill_at), if kill_at.is_some() && status.is_none() => {
                    log.note("still running: sending SIGKILL to the process group");
                    signal_group(Signal::KILL);
                    kill_at = None;
                },
                () = sleep_until_opt(drain_until), if drain_until.is_some() => {
                    log.note("output still open after the command exited: no longer collected");
                    break;
                },
            }
        }
        let status = status.expect("the loop ends only after the command exited");
        let termination = if timed_out {
            Termination::TimedOut
        } else {
            use std::os::unix::process::ExitStatusExt as _;
            match (status.code(), status.signal()) {
                (Some(code), _) => Termination::Exited(code),
                (None, Some(signal)) => Termination::Signalled(signal),
                (None, None) => Termination::Signalled(0),
            }
        };
        Ok(log.finish(termination))
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The log file: output up to a cap, the agent's notes always, and a tail for the excerpt.
struct CappedLog {
    path: PathBuf,
    file: Option<File>,
    cap: u64,
    written: u64,
    output_bytes: u64,
    truncated: bool,
    tail: Vec<u8>,
}

impl CappedLog {
    fn create(path: &Path, cap: u64) -> Result<Self, IoError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(IoError::on("create", dir))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(crate::atomic::NOFOLLOW)
            .open(path)
            .map_err(IoError::on("create", path))?;
        Ok(Self {
            path: path.to_owned(),
            file: Some(file),
            cap,
            written: 0,
            output_bytes: 0,
            truncated: false,
            tail: Vec::new(),
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(file) = &mut self.file {
            if file.write_all(bytes).is_err() {
                // A full disk must not fail the install: the log is only a record.
                self.file = None;
            }
        }
        self.written += bytes.len() as u64;
    }

    fn note(&mut self, text: &str) {
        self.write(format!("[ferry-agent] {text}\n").as_bytes());
    }

    fn output(&mut self, bytes: &[u8]) {
        self.output_bytes += bytes.len() as u64;
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * EXCERPT_BYTES {
            self.tail.drain(..self.tail.len() - EXCERPT_BYTES);
        }
        let room = self.cap.saturating_sub(self.written);
        if (bytes.len() as u64) <= room {
            self.write(bytes);
        } else if !self.truncated {
            let keep = usize::try_from(room).unwrap_or(usize::MAX);
            self.write(&bytes[..keep]);
            self.truncated = true;
            self.write(b"\n");
            self.note(&format!("output beyond {} bytes is not kept", self.cap));
        }
    }

    fn finish(mut self, termination: Termination) -> CommandReport {
        let mut last = format!("the command {termination}");
        if self.truncated {
            last.push_str(&format!(" ({} bytes of output in all)", self.output_bytes));
        }
        self.note(&last);
        if let Some(file) = &self.file {
            let _ = file.sync_all();
        }
        let start = self.tail.len().saturating_sub(EXCERPT_BYTES);
        let excerpt = String::from_utf8_lossy(&self.tail[start..]).trim_start_matches('\u{FFFD}').to_owned();
        CommandReport {
            termination,
            log_file: self.path,
            excerpt,
            output_bytes: self.output_bytes,
            truncated: self.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_contract() {
        assert_eq!(install_result(Termination::Exited(0)), InstallResult::Installed);
        assert_eq!(install_result(Termination::Exited(10)), InstallResult::RebootRequired);
        assert_eq!(install_result(Termination::Exited(20)), InstallResult::RetryLater);
        for code in [1, 2, 11, 21, 126, 127, 255] {
            assert_eq!(install_result(Termination::Exited(code)), InstallResult::Failed { code: "handler_failed" });
        }
        assert_eq!(install_result(Termination::Signalled(9)), InstallResult::Failed { code: "handler_killed" });
        assert_eq!(install_result(Termination::TimedOut), InstallResult::Failed { code: "handler_timeout" });
        assert!(healthy(Termination::Exited(0)));
        for t in [Termination::Exited(10), Termination::Exited(20), Termination::Exited(1), Termination::TimedOut] {
            assert!(!healthy(t), "{t:?}");
        }
    }
}
