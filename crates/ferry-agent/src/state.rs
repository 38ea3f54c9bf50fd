//! The persistent update state machine: what is installed, and where the one
//! job in progress stands, so that an agent killed at any instant resumes or reverts cleanly.
//!
//! # Phases and what a restart does
//!
//! One job runs at a time: an **update** (install a release) or a **rollback** (go back from
//! the installed release to the kept version: `ferry-agent rollback`, or the server's signed
//! instruction for a release marked bad, [`crate::instructed`]). Each arrow is a write of the state file, made *after* the step before it
//! finished; so a restart finds the phase whose step may have been cut short, and
//! [`on_restart`] says how to continue. Every restart action is idempotent.
//!
//! ```text
//!  Idle (no job) ── offer ──▶ Downloading{bytes} ◀── kept file's digest differs: delete ──┐
//!                                  │ file complete and verified as it arrived              │
//!                                  ▼                                                       │
//!                  ┌── window closed / handler said "retry later" ── Downloaded{deferred} ─┤
//!                  ▼                                                   │ install now       │
//!               Installing{attempts} ── dir handler: unpacked ──▶ Switching ──┐            │
//!                  │  command handler: exit 0 or 10 ────────────────────────────┤  (restart: hash again)
//!                  │  handler failed ──▶ Reporting{failed}                      ▼
//!                  │                                   Installed{reboot_pending, boot_id, health_checks}
//!                  │                                        │ (after the reboot, when one is pending)
//!                  │                                        │ health check passes ──▶ Committing ──▶ Reporting{committed}
//!                  │                                        │ health check fails
//!                  ▼                                        ▼
//!   (too many interrupted attempts) ─────────────▶ RollingBack{cause, attempts} ──▶ Reporting{rolled_back}
//!                                                  ▲ (no kept version: Reporting{failed})
//!  Idle ── rollback requested or instructed ───────┘ (a rollback job: only these two phases;
//!                                                     its Reporting records the kept version as installed)
//!   Reporting{outcome} ── event queued ──▶ Idle
//! ```
//!
//! | phase | restart action ([`Action`]) |
//! |---|---|
//! | Idle | `None` |
//! | `Downloading` | `ResumeDownload`: the `.part` file is resumed with `Range` |
//! | `Downloaded` | `Reverify`: hash the file again (it sat on disk); a mismatch downloads again |
//! | `Installing` | `RetryInstall` (handlers are idempotent), after hashing the file again (a mismatch downloads again); after [`MAX_ATTEMPTS`] interrupted attempts `RollBack`, or `Report(failed)` when no version is kept |
//! | `Switching` | `FinishSwitch`: point `current` at the new version (idempotent) |
//! | `Installed`, reboot pending | `AwaitReboot`: a changed boot id means the reboot happened, go on to the health check; the same boot id means keep waiting |
//! | `Installed` | `HealthCheck`; after [`MAX_ATTEMPTS`] interrupted checks `RollBack` / `Report(failed)` |
//! | `Committing` | `FinishCommit`: record the version as installed, prune older versions |
//! | `RollingBack` | `ResumeRollback` (the handler's rollback is idempotent; a rollback job's `Reporting` is written in the same save as the kept version's record); after [`MAX_ATTEMPTS`] interrupted attempts `Report(failed)`, touching nothing more |
//! | `Reporting` | `Report(outcome)`: queue the outcome's event (the queue drops a repeat), then Idle |
//!
//! The attempt counters are what make the agent impossible to brick by a crash loop: the
//! executor increments and saves a counter *before* the step it counts, so an install or a
//! health check that kills the device is tried at most [`MAX_ATTEMPTS`] times.
//!
//! # The state file
//!
//! `STATE_DIR/state.json`, JSON with a `format` field ([`FORMAT`]). Each save writes
//! `state.json.bak` with the previous good content, then `state.json`, each atomically
//! (temporary file, fsync, rename, fsync of the directory). Loading:
//! 1. `state.json` parses → use it.
//! 2. else `state.json.bak` parses → use it ([`Source::Backup`]). It is one transition behind,
//!    and every restart action is idempotent, so resuming from it redoes at most one step.
//! 3. else neither exists → a fresh state (first start).
//! 4. else both are unreadable → both are moved aside as `*.corrupt` and the agent starts from
//!    a fresh state ([`Source::Reset`]): it installs nothing and rolls nothing back without a new
//!    instruction from the server, and the built-in handler still knows its `current` link.
//!
//! Beside the job, the file keeps the installed versions and the releases held back after they
//! failed or were rolled back ([`State::held_back`]), so that a restart does not forget either.
//!
//! A file with a `format` above [`FORMAT`] was written by a newer agent and is an error, never
//! "corrupt": a downgraded agent must not guess at it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_core::{ArtifactName, DeviceState, ReleaseId, ReleaseKind, Sha256, Version};
use ferry_core::{ProductName, RebootBehaviour};
use serde::{Deserialize, Serialize};

use crate::atomic::{self, IoError};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The previous good state, beside it.
pub const BACKUP_FILE: &str = "state.json.bak";
/// The state format this agent writes and reads.
pub const FORMAT: u32 = 1;
/// How many times a step is started before the agent stops retrying it.
pub const MAX_ATTEMPTS: u32 = 3;

/// Everything the agent must remember across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// [`FORMAT`].
    pub format: u32,
    /// Installed software per product (full and patch releases).
    #[serde(default)]
    pub installed: BTreeMap<ProductName, Installed>,
    /// Installed configuration bundles per product (`config` releases).
    #[serde(default)]
    pub configs: BTreeMap<ProductName, Installed>,
    /// The update in progress; `None` is Idle.
    #[serde(default)]
    pub job: Option<Job>,
    /// Releases whose job failed or was rolled back here, at most one per version line: the
    /// agent does not start them again by itself, so a release that cannot work on this device
    /// is not installed, reported and undone over and over. A job starting on the line (a
    /// newer release the server offers, or this one after `ferry-agent install`) ends the hold.
    /// Left out of the file while empty, so an older agent reads the file as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<HeldBack>,
}

impl Default for State {
    fn default() -> Self {
        Self { format: FORMAT, installed: BTreeMap::new(), configs: BTreeMap::new(), job: None, held_back: Vec::new() }
    }
}

impl State {
    /// The installed record of `product` on the version line of `kind`.
    pub fn installed_line(&self, product: &ProductName, kind: ReleaseKind) -> Option<&Installed> {
        if kind.is_config() {
            self.configs.get(product)
        } else {
            self.installed.get(product)
        }
    }

    /// The phase's name, `idle` without a job.
    pub fn phase_name(&self) -> &'static str {
        self.job.as_ref().map_or("idle", |j| j.phase.name())
    }

    /// The release held back on the version line of `kind` of `product`, if any.
    pub fn held_back(&self, product: &ProductName, kind: ReleaseKind) -> Option<&HeldBack> {
        self.held_back.iter().find(|h| h.is_on(product, kind))
    }

    /// Holds a release back, in place of what was held on its version line.
    pub fn hold_back(&mut self, held: HeldBack) {
        self.end_hold(&held.product, held.kind);
        self.held_back.push(held);
    }

    /// Ends the hold on the version line of `kind` of `product` (a job starts on it).
    pub fn end_hold(&mut self, product: &ProductName, kind: ReleaseKind) {
        self.held_back.retain(|h| !h.is_on(product, kind));
    }
}

/// A release the agent does not install again by itself (see [`State::held_back`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBack {
    /// The release.
    pub release: ReleaseId,
    /// Its product.
    pub product: ProductName,
    /// Its kind (which version line).
    pub kind: ReleaseKind,
    /// Its version.
    pub version: Version,
    /// How its job ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Unix seconds when it ended.
    pub at: i64,
}

impl HeldBack {
    /// Whether it is on the version line of `kind` of `product` (software and configuration
    /// bundles are separate lines).
    fn is_on(&self, product: &ProductName, kind: ReleaseKind) -> bool {
        self.product == *product && self.kind.is_config() == kind.is_config()
    }
}

/// A version installed and committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The version.
    pub version: Version,
    /// The release it came from (`None` when found installed rather than installed by the agent).
    pub release: Option<ReleaseId>,
    /// Its release counter, the floor below which the agent refuses releases (docs/trust.md).
    pub release_counter: Option<i64>,
    /// The version before it, kept for rollback.
    pub kept: Option<Kept>,
    /// Unix seconds of the commit.
    pub committed_at: i64,
}

impl Installed {
    /// The record a rollback returns to, or a new install keeps.
    pub fn as_kept(&self) -> Kept {
        Kept { version: self.version.clone(), release: self.release, release_counter: self.release_counter }
    }
}

/// A version kept for rollback, with the release it came from, so that going back to it
/// restores its whole record (the release-counter floor included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The version.
    pub version: Version,
    /// Its release (`None` when it was found installed rather than installed by the agent).
    pub release: Option<ReleaseId>,
    /// Its release counter, when known.
    pub release_counter: Option<i64>,
}

impl Kept {
    /// A version known only by its name (found installed).
    pub fn version_only(version: Version) -> Self {
        Self { version, release: None, release_counter: None }
    }
}

impl<'de> Deserialize<'de> for Kept {
    /// Also reads the bare version string that agents before this record wrote.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Full {
                version: Version,
                #[serde(default)]
                release: Option<ReleaseId>,
                #[serde(default)]
                release_counter: Option<i64>,
            },
            Bare(Version),
        }
        Ok(match Written::deserialize(deserializer)? {
            Written::Full { version, release, release_counter } => Self { version, release, release_counter },
            Written::Bare(version) => Self::version_only(version),
        })
    }
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.release {
            Some(release) => write!(f, "{} (release {release})", self.version),
            None => write!(f, "{}", self.version),
        }
    }
}

/// What is being installed: the release and its verified artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The release.
    pub release: ReleaseId,
    /// Its product.
    pub product: ProductName,
    /// Its kind (which version line, and which handler).
    pub kind: ReleaseKind,
    /// Its version.
    pub version: Version,
    /// Its release counter, as signed.
    pub release_counter: i64,
    /// The TUF target path (`product/version/artifact`).
    pub target_path: String,
    /// The artifact's file name.
    pub artifact: ArtifactName,
    /// Signed length in bytes.
    pub length: u64,
    /// Signed SHA-256.
    pub sha256: Sha256,
    /// Media type (decides how the built-in handler unpacks it).
    pub media_type: String,
    /// Required updates install by themselves; optional ones wait for consent.
    pub required: bool,
    /// What the catalogue says about rebooting.
    pub reboot: RebootBehaviour,
    /// Unix seconds after which it installs even outside the maintenance window.
    #[serde(default)]
    pub deadline: Option<i64>,
}

/// The job in progress: an update or a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// What it does.
    #[serde(flatten)]
    pub work: Work,
    /// The version installed when the job began, for an update (what its rollback returns to);
    /// the version to go back to, for a rollback.
    pub previous: Option<Kept>,
    /// Unix seconds when the job began.
    pub started_at: i64,
    /// Where it stands.
    #[serde(flatten)]
    pub phase: Phase,
}

/// What a job does. Written as a `target` (an update, the only job older agents wrote) or a
/// `rollback` field of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Work {
    /// Installs a release: download, verify, install, check, commit (or roll back).
    Update {
        /// The release and its verified artifact.
        target: Target,
    },
    /// Goes back from the installed release to the kept version ([`Job::previous`]): only the
    /// `RollingBack` and `Reporting` phases.
    Rollback {
        /// What is rolled back.
        rollback: RollbackOf,
    },
}

/// The version line a rollback job leaves, and the release installed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOf {
    /// The product.
    pub product: ProductName,
    /// Its version line (software or configuration bundle).
    pub kind: ReleaseKind,
    /// The installed release being left.
    pub from: Kept,
}

impl Job {
    /// The update's target; `None` for a rollback.
    pub fn target(&self) -> Option<&Target> {
        match &self.work {
            Work::Update { target } => Some(target),
            Work::Rollback { .. } => None,
        }
    }

    /// The product.
    pub fn product(&self) -> &ProductName {
        match &self.work {
            Work::Update { target } => &target.product,
            Work::Rollback { rollback } => &rollback.product,
        }
    }

    /// The kind of release (which version line, and which handler).
    pub fn kind(&self) -> ReleaseKind {
        match &self.work {
            Work::Update { target } => target.kind,
            Work::Rollback { rollback } => rollback.kind,
        }
    }

    /// The release installed (an update) or left (a rollback), when known: the release its
    /// status events and its hold are about.
    pub fn release(&self) -> Option<ReleaseId> {
        match &self.work {
            Work::Update { target } => Some(target.release),
            Work::Rollback { rollback } => rollback.from.release,
        }
    }

    /// The version installed (an update) or left (a rollback).
    pub fn version(&self) -> &Version {
        match &self.work {
            Work::Update { target } => &target.version,
            Work::Rollback { rollback } => &rollback.from.version,
        }
    }

    /// Whether it is a rollback job.
    pub fn is_rollback(&self) -> bool {
        matches!(self.work, Work::Rollback { .. })
    }
}

/// Why a job waits with its verified file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Deferral {
    /// Outside the maintenance window.
    Window,
    /// The handler asked to be run again later.
    RetryLater {
        /// Not before this Unix time.
        not_before: i64,
    },
}

/// Why the agent is rolling back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "cause")]
pub enum RollbackCause {
    /// The health check failed.
    HealthCheckFailed {
        /// Its log excerpt.
        detail: String,
    },
    /// The install or health check was interrupted [`MAX_ATTEMPTS`] times.
    Interrupted {
        /// The step that kept being interrupted.
        step: String,
    },
    /// The server marked the release bad, and its signed director metadata told this device to
    /// leave it ([`crate::instructed`]).
    Instructed,
    /// Someone on the device asked for it (`ferry-agent rollback`).
    Requested,
}

impl RollbackCause {
    /// The machine-readable code reported with the rollback.
    pub fn code(&self) -> &'static str {
        match self {
            Self::HealthCheckFailed { .. } => "health_check_failed",
            Self::Interrupted { .. } => "interrupted",
            Self::Instructed => "rollback_instructed",
            Self::Requested => "rollback_requested",
        }
    }

    /// A sentence for people.
    pub fn message(&self) -> String {
        match self {
            Self::HealthCheckFailed { detail } => format!("the health check failed: {detail}"),
            Self::Interrupted { step } => format!("the {step} was interrupted {MAX_ATTEMPTS} times"),
            Self::Instructed => {
                "the server asked for a rollback: the release was marked bad (signed director instruction)".to_owned()
            }
            Self::Requested => "asked for on the device (ferry-agent rollback)".to_owned(),
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Installed, confirmed running, recorded. Only this counts as success.
    Committed,
    /// Not installed, or installed and broken with nothing to go back to.
    Failed {
        /// Machine-readable code.
        code: String,
        /// Message or log excerpt.
        message: String,
    },
    /// Went back to the kept version.
    RolledBack {
        /// Machine-readable code (see [`RollbackCause::code`]).
        code: String,
        /// Why.
        message: String,
    },
}

impl Outcome {
    /// A failure with `code` and `message`.
    pub fn failed(code: &str, message: impl Into<String>) -> Self {
        Self::Failed { code: code.to_owned(), message: message.into() }
    }

    /// Whether the release is held back after this outcome ([`State::held_back`]): after a
    /// rollback or a failed install, yes; not after a download that failed verification or a
    /// handler that could not be started, which say nothing about the release on this device
    /// (the daemon retries those with its backoff).
    pub fn holds_back(&self) -> bool {
        match self {
            Self::Committed => false,
            Self::RolledBack { .. } => true,
            Self::Failed { code, .. } => !matches!(code.as_str(), "verification_failed" | "handler_error"),
        }
    }

    /// The status the server is told.
    pub fn device_state(&self) -> DeviceState {
        match self {
            Self::Committed => DeviceState::Committed,
            Self::Failed { .. } => DeviceState::Failed,
            Self::RolledBack { .. } => DeviceState::RolledBack,
        }
    }
}

/// Where a job stands. Serialised flat into the job as `"phase": "…"` plus its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// Fetching the artifact into a `.part` file.
    Downloading {
        /// Bytes received so far (progress; the `.part` file is the truth).
        bytes: u64,
    },
    /// Verified and waiting to be installed. (Older agents wrote a `verifying` phase, never
    /// entered since: it meant a complete file about to be hashed again, as here.)
    #[serde(alias = "verifying")]
    Downloaded {
        /// Why it waits, when it does.
        deferred: Option<Deferral>,
    },
    /// The handler runs (for `dir`: unpacking into `versions/VERSION`; nothing visible changes).
    Installing {
        /// Runs started, including the current one.
        attempts: u32,
    },
    /// The `dir` handler points `current` at the new version.
    Switching,
    /// Installed; not yet confirmed.
    Installed {
        /// A reboot must happen before the health check.
        reboot_pending: bool,
        /// The boot id when the install finished, to recognise the reboot.
        boot_id: Option<String>,
        /// Health checks started, including the current one.
        health_checks: u32,
    },
    /// Confirmed: recording the new version and pruning old ones.
    Committing,
    /// Going back to the kept version.
    RollingBack {
        /// Why.
        #[serde(flatten)]
        cause: RollbackCause,
        /// Runs started, including the current one.
        attempts: u32,
    },
    /// The job ended; its event must be queued.
    Reporting {
        /// How it ended.
        #[serde(flatten)]
        outcome: Outcome,
    },
}

impl Phase {
    /// The snake-case name, as serialised.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Downloading { .. } => "downloading",
            Self::Downloaded { .. } => "downloaded",
            Self::Installing { .. } => "installing",
            Self::Switching => "switching",
            Self::Installed { .. } => "installed",
            Self::Committing => "committing",
            Self::RollingBack { .. } => "rolling_back",
            Self::Reporting { .. } => "reporting",
        }
    }

    /// The status reported to the server on entering this phase, if any.
    pub fn device_state(&self) -> Option<DeviceState> {
        Some(match self {
            Self::Downloading { .. } => DeviceState::Downloading,
            Self::Downloaded { deferred: None } => DeviceState::Downloaded,
            Self::Downloaded { deferred: Some(_) } => DeviceState::Deferred,
            Self::Installing { .. } => DeviceState::Installing,
            Self::Installed { reboot_pending: true, .. } => DeviceState::RebootPending,
            Self::Installed { reboot_pending: false, .. } => DeviceState::Installed,
            Self::Reporting { outcome } => outcome.device_state(),
            Self::Switching | Self::Committing | Self::RollingBack { .. } => return None,
        })
    }
}

/// What to do with a job found in the state file at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Idle: nothing to resume.
    None,
    /// Resume the download from its `.part` file.
    ResumeDownload,
    /// Hash the downloaded file again before going on.
    Reverify,
    /// Run the handler's install again.
    RetryInstall,
    /// Point `current` at the new version again.
    FinishSwitch,
    /// Compare boot ids: changed → health check; same → keep waiting for the reboot.
    AwaitReboot,
    /// Run the health check.
    HealthCheck,
    /// Record the commit and prune.
    FinishCommit,
    /// Start a rollback to the kept version.
    RollBack(RollbackCause),
    /// Run the interrupted rollback again.
    ResumeRollback,
    /// Enter (or stay in) `Reporting` with this outcome and queue its event.
    Report(Outcome),
}

/// The restart action for a state, a pure function of it (see the module table).
pub fn on_restart(state: &State) -> Action {
    let Some(job) = &state.job else { return Action::None };
    let exhausted = |step: &str| match job.previous {
        Some(_) => Action::RollBack(RollbackCause::Interrupted { step: step.to_owned() }),
        None => Action::Report(Outcome::failed(
            "interrupted",
            format!("the {step} was interrupted {MAX_ATTEMPTS} times and no earlier version is kept"),
        )),
    };
    match &job.phase {
        Phase::Downloading { .. } => Action::ResumeDownload,
        Phase::Downloaded { .. } => Action::Reverify,
        Phase::Installing { attempts } if *attempts >= MAX_ATTEMPTS => exhausted("install"),
        Phase::Installing { .. } => Action::RetryInstall,
        Phase::Switching => Action::FinishSwitch,
        Phase::Installed { reboot_pending: true, .. } => Action::AwaitReboot,
        Phase::Installed { health_checks, .. } if *health_checks >= MAX_ATTEMPTS => exhausted("health check"),
        Phase::Installed { .. } => Action::HealthCheck,
        Phase::Committing => Action::FinishCommit,
        Phase::RollingBack { attempts, cause } if *attempts >= MAX_ATTEMPTS => Action::Report(Outcome::failed(
            "rollback_interrupted",
            format!(
                "the rollback ({}) was interrupted {MAX_ATTEMPTS} times; the device needs attention",
                cause.message()
            ),
        )),
        Phase::RollingBack { .. } => Action::ResumeRollback,
        Phase::Reporting { outcome } => Action::Report(outcome.clone()),
    }
}

/// Why the state cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file was written by a newer agent.
    #[error("{} has state format {found}, newer than this agent's {FORMAT}; install the newer ferry-agent again, or move the file away to start afresh", .path.display())]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
}

/// Which file the state came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `state.json`.
    Primary,
    /// `state.json.bak`, because `state.json` was unreadable for this reason.
    Backup {
        /// What was wrong with `state.json`.
        reason: String,
    },
    /// Nothing there yet: a first start.
    Fresh,
    /// Both files unreadable; moved aside, started afresh.
    Reset {
        /// What was wrong.
        reason: String,
    },
}

/// The state file of one state directory.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    /// The bytes last loaded or saved: the next save's backup.
    last_good: Option<Vec<u8>>,
}

impl StateStore {
    /// The store in `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), last_good: None }
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Loads the state following the module's fallback rule; moves unreadable files aside.
    pub fn load(&mut self) -> Result<(State, Source), StateError> {
        let (found, source) = choose(&self.dir)?;
        if let Source::Reset { .. } = source {
            for name in [STATE_FILE, BACKUP_FILE] {
                let path = self.dir.join(name);
                if path.exists() {
                    let aside = self.dir.join(format!("{name}.corrupt"));
                    std::fs::rename(&path, &aside).map_err(IoError::on("move aside", &path))?;
                }
            }
            atomic::sync_dir(&self.dir)?;
        }
        let (state, bytes) = found.map_or((State::default(), None), |f| (f.state, Some(f.bytes)));
        self.last_good = bytes;
        Ok((state, source))
    }

    /// Reads the state as [`StateStore::load`] would, without changing any file (for
    /// `ferry-agent status`).
    pub fn peek(dir: &Path) -> Result<(State, Source), StateError> {
        let (found, source) = choose(dir)?;
        Ok((found.map(|f| f.state).unwrap_or_default(), source))
    }

    /// Saves `state`: the previous good content becomes the backup, then the new content
    /// replaces the state file, each write atomic and durable.
    pub fn save(&mut self, state: &State) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state).expect("the state serialises");
        bytes.push(b'\n');
        if let Some(previous) = &self.last_good {
            atomic::write_file(&self.dir.join(BACKUP_FILE), previous)?;
        }
        atomic::write_file(&self.dir.join(STATE_FILE), &bytes)?;
        self.last_good = Some(bytes);
        Ok(())
    }
}

/// A readable state file: the state, and its bytes (the next save's backup).
struct Found {
    state: State,
    bytes: Vec<u8>,
}

enum Read {
    Good(Box<Found>),
    Missing,
    Bad(String),
}

/// The module's loading rule: the state (with its bytes, for the next backup) and where it
/// came from; `None` for a fresh start.
fn choose(dir: &Path) -> Result<(Option<Found>, Source), StateError> {
    let (primary, backup) = (dir.join(STATE_FILE), dir.join(BACKUP_FILE));
    let problem = match read_state(&primary)? {
        Read::Good(found) => return Ok((Some(*found), Source::Primary)),
        Read::Missing => None,
        Read::Bad(reason) => Some(reason),
    };
    match (read_state(&backup)?, problem) {
        (Read::Good(found), problem) => {
            let reason = problem.unwrap_or_else(|| format!("{} is missing", primary.display()));
            Ok((Some(*found), Source::Backup { reason }))
        }
        (Read::Missing, None) => Ok((None, Source::Fresh)),
        (Read::Missing, Some(reason)) => Ok((None, Source::Reset { reason })),
        (Read::Bad(second), problem) => {
            let reason = problem.map_or(second.clone(), |first| format!("{first}; {second}"));
            Ok((None, Source::Reset { reason }))
        }
    }
}

fn read_state(path: &Path) -> Result<Read, StateError> {
    let bytes = match atomic::read_private(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
        Err(e) => return Err(IoError::on("read", path)(e).into()),
    };
    #[derive(Deserialize)]
    struct FormatOnly {
        format: u32,
    }
    if let Ok(FormatOnly { format }) = serde_json::from_slice::<FormatOnly>(&bytes) {
        if format > FORMAT {
            return Err(StateError::TooNew { path: path.to_owned(), found: format });
        }
    }
    match serde_json::from_slice::<State>(&bytes) {
        Ok(state) => Ok(Read::Good(Box::new(Found { state, bytes }))),
        Err(e) => Ok(Read::Bad(format!("{} is unreadable ({e})", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            release: ReleaseId(7),
            product: ProductName::new("gateway-app").unwrap(),
            kind: ReleaseKind::Full,
            version: Version::new("1.4.0").unwrap(),
            release_counter: 12,
            target_path: "gateway-app/1.4.0/app.tar.gz".into(),
            artifact: ArtifactName::new("app.tar.gz").unwrap(),
            length: 1234,
            sha256: Sha256::from_bytes([7; 32]),
            media_type: "application/gzip".into(),
            required: true,
            reboot: RebootBehaviour::None,
            deadline: None,
        }
    }

    fn with(phase: Phase, previous: Option<&str>) -> State {
        let previous = previous.map(|v| Kept {
            version: Version::new(v).unwrap(),
            release: Some(ReleaseId(6)),
            release_counter: Some(11),
        });
        let work = Work::Update { target: target() };
        State { job: Some(Job { work, previous, started_at: 1000, phase }), ..State::default() }
    }

    fn kept(phase: Phase) -> State {
        with(phase, Some("1.3.0"))
    }

    fn installed(reboot_pending: bool, health_checks: u32) -> Phase {
        Phase::Installed { reboot_pending, boot_id: Some("b1".into()), health_checks }
    }

    #[test]
    fn idle_has_nothing_to_resume() {
        assert_eq!(on_restart(&State::default()), Action::None);
    }

    #[test]
    fn downloads_resume_and_downloaded_files_are_verified_again() {
        assert_eq!(on_restart(&kept(Phase::Downloading { bytes: 10 })), Action::ResumeDownload);
        assert_eq!(on_restart(&kept(Phase::Downloaded { deferred: None })), Action::Reverify);
        let waiting = Phase::Downloaded { deferred: Some(Deferral::RetryLater { not_before: 5 }) };
        assert_eq!(on_restart(&kept(waiting)), Action::Reverify);
    }

    #[test]
    fn an_interrupted_install_is_retried_then_rolled_back() {
        assert_eq!(on_restart(&kept(Phase::Installing { attempts: 1 })), Action::RetryInstall);
        assert_eq!(on_restart(&kept(Phase::Installing { attempts: MAX_ATTEMPTS - 1 })), Action::RetryInstall);
        assert_eq!(
            on_restart(&kept(Phase::Installing { attempts: MAX_ATTEMPTS })),
            Action::RollBack(RollbackCause::Interrupted { step: "install".into() })
        );
    }

    #[test]
    fn without_a_kept_version_an_endless_install_is_reported_failed() {
        let Action::Report(Outcome::Failed { code, message }) =
            on_restart(&with(Phase::Installing { attempts: MAX_ATTEMPTS }, None))
        else {
            panic!("expected a failure report");
        };
        assert_eq!(code, "interrupted");
        assert!(message.contains("no earlier version is kept"), "{message}");
    }

    #[test]
    fn a_switch_is_finished() {
        assert_eq!(on_restart(&kept(Phase::Switching)), Action::FinishSwitch);
    }

    #[test]
    fn installed_waits_for_the_reboot_then_checks_health() {
        assert_eq!(on_restart(&kept(installed(true, 0))), Action::AwaitReboot);
        assert_eq!(on_restart(&kept(installed(false, 0))), Action::HealthCheck);
        assert_eq!(on_restart(&kept(installed(false, MAX_ATTEMPTS - 1))), Action::HealthCheck);
        assert_eq!(
            on_restart(&kept(installed(false, MAX_ATTEMPTS))),
            Action::RollBack(RollbackCause::Interrupted { step: "health check".into() })
        );
        assert!(matches!(
            on_restart(&with(installed(false, MAX_ATTEMPTS), None)),
            Action::Report(Outcome::Failed { .. })
        ));
    }

    #[test]
    fn a_commit_is_finished() {
        assert_eq!(on_restart(&kept(Phase::Committing)), Action::FinishCommit);
    }

    #[test]
    fn a_rollback_is_resumed_then_given_up_without_touching_more() {
        let rolling = |attempts| Phase::RollingBack { cause: RollbackCause::Instructed, attempts };
        assert_eq!(on_restart(&kept(rolling(1))), Action::ResumeRollback);
        let Action::Report(Outcome::Failed { code, message }) = on_restart(&kept(rolling(MAX_ATTEMPTS))) else {
            panic!("expected a failure report");
        };
        assert_eq!(code, "rollback_interrupted");
        assert!(message.contains("the server asked for a rollback"), "{message}");
    }

    #[test]
    fn an_outcome_is_reported_again() {
        for outcome in [
            Outcome::Committed,
            Outcome::failed("handler_failed", "exit 3"),
            Outcome::RolledBack { code: "health_check_failed".into(), message: "m".into() },
        ] {
            assert_eq!(on_restart(&kept(Phase::Reporting { outcome: outcome.clone() })), Action::Report(outcome));
        }
    }

    #[test]
    fn a_failed_or_rolled_back_release_is_held_back_one_per_line() {
        let mut state = State::default();
        let held = |release, kind, outcome| HeldBack {
            release: ReleaseId(release),
            product: target().product,
            kind,
            version: Version::new("1.4.0").unwrap(),
            outcome,
            at: 5,
        };
        let rolled = Outcome::RolledBack { code: "health_check_failed".into(), message: "m".into() };
        assert!(rolled.holds_back() && Outcome::failed("install_failed", "m").holds_back());
        assert!(!Outcome::failed("verification_failed", "m").holds_back() && !Outcome::Committed.holds_back());
        state.hold_back(held(7, ReleaseKind::Full, rolled.clone()));
        state.hold_back(held(8, ReleaseKind::Config, rolled.clone()));
        state.hold_back(held(9, ReleaseKind::Patch, rolled.clone()));
        let product = target().product;
        assert_eq!(state.held_back(&product, ReleaseKind::Full).map(|h| h.release), Some(ReleaseId(9)));
        assert_eq!(state.held_back(&product, ReleaseKind::Config).map(|h| h.release), Some(ReleaseId(8)));
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["held_back"][1]["outcome"], "rolled_back");
        assert_eq!(serde_json::from_value::<State>(json).unwrap(), state, "it survives a restart");
        state.end_hold(&product, ReleaseKind::Full);
        assert_eq!(state.held_back.len(), 1);
        let empty = serde_json::to_value(State::default()).unwrap();
        assert!(empty.get("held_back").is_none(), "an older agent sees the file it knows");
    }

    #[test]
    fn phases_map_to_reported_states() {
        assert_eq!(Phase::Downloading { bytes: 0 }.device_state(), Some(DeviceState::Downloading));
        assert_eq!(Phase::Downloaded { deferred: Some(Deferral::Window) }.device_state(), Some(DeviceState::Deferred));
        assert_eq!(installed(true, 0).device_state(), Some(DeviceState::RebootPending));
        assert_eq!(installed(false, 0).device_state(), Some(DeviceState::Installed));
        assert_eq!(Phase::Switching.device_state(), None);
        let rolled = Outcome::RolledBack { code: "c".into(), message: "m".into() };
        assert_eq!(Phase::Reporting { outcome: rolled }.device_state(), Some(DeviceState::RolledBack));
    }

    #[test]
    fn the_file_format_is_flat_and_readable() {
        let state = kept(Phase::RollingBack {
            cause: RollbackCause::HealthCheckFailed { detail: "exit 1".into() },
            attempts: 1,
        });
        let json = serde_json::to_value(&state).unwrap();
        let job = &json["job"];
        assert_eq!(job["phase"], "rolling_back");
        assert_eq!(job["cause"], "health_check_failed");
        assert_eq!(job["detail"], "exit 1");
        assert_eq!(job["attempts"], 1);
        assert_eq!(job["target"]["version"], "1.4.0");
        assert_eq!(json["format"], FORMAT);
        let back: State = serde_json::from_value(json).unwrap();
        assert_eq!(back, state);
    }

    /// A state file written by an agent before rollback jobs and full kept records: an
    /// update job (a bare `target`) with its `previous` and the installed `kept` as version
    /// strings, in the `verifying` phase that agent could write.
    #[test]
    fn a_state_file_of_the_previous_format_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{
  "format": 1,
  "installed": {"gateway-app": {"version": "1.3.0", "release": 6, "release_counter": 11,
    "kept": "1.2.0", "committed_at": 900}},
  "configs": {},
  "job": {
    "target": {"release": 7, "product": "gateway-app", "kind": "full", "version": "1.4.0",
      "release_counter": 12, "target_path": "gateway-app/1.4.0/app.tar.gz", "artifact": "app.tar.gz",
      "length": 1234, "sha256": "0707070707070707070707070707070707070707070707070707070707070707",
      "media_type": "application/gzip", "required": true, "reboot": "none"},
    "previous": "1.3.0",
    "started_at": 1000,
    "phase": "verifying"
  }
}
"#;
        std::fs::write(dir.path().join(STATE_FILE), old).unwrap();
        let (state, source) = StateStore::new(dir.path()).load().unwrap();
        assert_eq!(source, Source::Primary);
        let job = state.job.clone().unwrap();
        assert_eq!(job.work, Work::Update { target: target() });
        assert_eq!(job.previous, Some(Kept::version_only(Version::new("1.3.0").unwrap())));
        assert_eq!(job.phase, Phase::Downloaded { deferred: None }, "a complete file, hashed again at restart");
        assert_eq!(on_restart(&state), Action::Reverify);
        let installed = &state.installed[&target().product];
        assert_eq!(installed.kept, Some(Kept::version_only(Version::new("1.2.0").unwrap())));
        assert_eq!(installed.release_counter, Some(11));
    }

    #[test]
    fn a_rollback_job_is_written_and_read_back() {
        let from =
            Kept { version: Version::new("1.4.0").unwrap(), release: Some(ReleaseId(7)), release_counter: Some(12) };
        let to =
            Kept { version: Version::new("1.3.0").unwrap(), release: Some(ReleaseId(6)), release_counter: Some(11) };
        let job = Job {
            work: Work::Rollback { rollback: RollbackOf { product: target().product, kind: ReleaseKind::Full, from } },
            previous: Some(to),
            started_at: 5,
            phase: Phase::RollingBack { cause: RollbackCause::Requested, attempts: 1 },
        };
        let state = State { job: Some(job), ..State::default() };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["job"]["rollback"]["from"]["release_counter"], 12);
        assert_eq!(json["job"]["previous"]["version"], "1.3.0");
        assert!(json["job"].get("target").is_none());
        assert_eq!(json["job"]["cause"], "requested");
        assert_eq!(serde_json::from_value::<State>(json).unwrap(), state);
        assert_eq!(on_restart(&state), Action::ResumeRollback);
        let job = state.job.as_ref().unwrap();
        assert_eq!((job.release(), job.version().as_str(), job.target()), (Some(ReleaseId(7)), "1.4.0", None));
    }

    #[test]
    fn saves_keep_the_previous_good_state_as_backup() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        let (fresh, source) = store.load().unwrap();
        assert_eq!((fresh, source), (State::default(), Source::Fresh));
        let one = kept(Phase::Downloading { bytes: 0 });
        let two = kept(Phase::Downloaded { deferred: None });
        store.save(&one).unwrap();
        store.save(&two).unwrap();
        let (loaded, source) = StateStore::new(dir.path()).load().unwrap();
        assert_eq!((loaded, source), (two, Source::Primary));
        let backup: State = serde_json::from_slice(&std::fs::read(dir.path().join(BACKUP_FILE)).unwrap()).unwrap();
        assert_eq!(backup, one);
    }

    #[test]
    fn a_torn_state_file_falls_back_to_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        let one = kept(Phase::Installing { attempts: 1 });
        store.save(&one).unwrap();
        store.save(&kept(Phase::Switching)).unwrap();
        let path = dir.path().join(STATE_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

        let (peeked, source) = StateStore::peek(dir.path()).unwrap();
        assert_eq!(peeked, one);
        assert!(matches!(source, Source::Backup { .. }));

        let mut store = StateStore::new(dir.path());
        let (loaded, source) = store.load().unwrap();
        assert_eq!(loaded, one, "the backup is one transition behind");
        let Source::Backup { reason } = source else { panic!("{source:?}") };
        assert!(reason.contains("state.json is unreadable"), "{reason}");
        assert_eq!(on_restart(&loaded), Action::RetryInstall, "redoing the step is safe");
        // The next save replaces the torn file and keeps the good one as backup.
        store.save(&kept(Phase::Switching)).unwrap();
        let backup: State = serde_json::from_slice(&std::fs::read(dir.path().join(BACKUP_FILE)).unwrap()).unwrap();
        assert_eq!(backup, one);
    }

    #[test]
    fn a_zero_filled_state_file_counts_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        store.save(&kept(Phase::Downloaded { deferred: None })).unwrap();
        store.save(&kept(Phase::Downloaded { deferred: None })).unwrap();
        std::fs::write(dir.path().join(STATE_FILE), vec![0u8; 300]).unwrap();
        let (loaded, _) = StateStore::new(dir.path()).load().unwrap();
        assert_eq!(loaded, kept(Phase::Downloaded { deferred: None }));
    }

    #[test]
    fn both_files_unreadable_starts_afresh_and_keeps_the_evidence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{\"format\":1,\"job\":").unwrap();
        std::fs::write(dir.path().join(BACKUP_FILE), b"garbage").unwrap();
        let (state, source) = StateStore::new(dir.path()).load().unwrap();
        assert_eq!(state, State::default());
        let Source::Reset { reason } = source else { panic!("{source:?}") };
        assert!(reason.contains("state.json is unreadable") && reason.contains("state.json.bak is unreadable"));
        assert!(!dir.path().join(STATE_FILE).exists());
        assert_eq!(std::fs::read(dir.path().join("state.json.bak.corrupt")).unwrap(), b"garbage");
        assert!(dir.path().join("state.json.corrupt").exists());
    }

    #[test]
    fn a_state_from_a_newer_agent_is_refused_not_discarded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{\"format\":2,\"something\":\"new\"}").unwrap();
        let err = StateStore::new(dir.path()).load().unwrap_err();
        assert!(err.to_string().contains("state format 2, newer than this agent's 1"), "{err}");
        assert!(dir.path().join(STATE_FILE).exists(), "left in place");
    }
}
