//! Runs the state machine of [`crate::state`]: an update job downloads, verifies, installs,
//! switches, checks, commits or rolls back, and reports; a rollback job (begun by
//! [`Engine::begin_rollback`]) rolls back and reports. Every transition is saved before the next step starts and
//! queues its status event first (the queue drops a repeated key), so killing the agent at any
//! instant leaves a state from which [`Engine::drive`] resumes or reverts.
//!
//! `drive` looks at the phase the job is in and does that phase's step, until the job ends or
//! must wait (a maintenance window, a reboot, a handler's "retry later", the network). Finding
//! `Installing`, `Installed` or `RollingBack` at the top of the loop means the step was cut
//! short (the normal flow leaves those phases inside the step); the attempt counters then
//! decide, through [`crate::state::on_restart`], whether to try again or give up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::{ProductName, RebootBehaviour, ReleaseId, ReleaseKind, Version};
use ferry_tuf::TargetFile;
use ferry_updater::Updater;

use crate::config::{Config, Handler, HandlerType};
use crate::events::{event_key, EventDraft, EventQueue};
use crate::exit::{Exit, Failure};
use crate::handler::command::{healthy, install_result, InstallResult, Invocation, Runner, Step};
use crate::handler::dir::{DirHandler, Package};
use crate::net::updater_failure;
use crate::state::{
    on_restart, Action, Deferral, HeldBack, Installed, Job, Kept, Outcome, Phase, RollbackCause, RollbackOf, State,
    StateStore, Target, Work,
};

/// How long a handler's "retry later" (exit 20) waits.
pub const RETRY_LATER: Duration = Duration::from_secs(900);

/// Where a job stopped for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rest {
    /// No job; the one that ended during this drive, if any, with its outcome.
    Idle(Option<Outcome>),
    /// The verified download waits.
    Deferred(Deferral),
    /// Installed; waits for the device to reboot.
    AwaitingReboot,
    /// The job must download (again: a kept file no longer matched) and `drive` was given no
    /// image repository; call it again with one.
    NeedsImage,
}

impl Rest {
    /// The exit code a one-shot command reports for this rest.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Idle(None) => Exit::NothingToDo,
            Self::Idle(Some(Outcome::Committed)) => Exit::Updated,
            Self::Idle(Some(Outcome::RolledBack { .. })) => Exit::RolledBack,
            Self::Idle(Some(Outcome::Failed { code, .. })) => match code.as_str() {
                "verification_failed" => Exit::VerificationFailed,
                _ => Exit::InstallFailed,
            },
            Self::Deferred(_) => Exit::Deferred,
            Self::AwaitingReboot => Exit::RebootRequired,
            Self::NeedsImage => Exit::Internal,
        }
    }
}

/// Files of the agent's state directory that the engine uses.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// The state directory.
    pub state: PathBuf,
}

impl Dirs {
    /// Verified downloads (and their `.part` files).
    pub fn downloads(&self) -> PathBuf {
        self.state.join("downloads")
    }

    /// Handler logs.
    pub fn logs(&self) -> PathBuf {
        self.state.join("logs")
    }

    /// A job's scratch directory.
    pub fn work(&self, job: &Job) -> PathBuf {
        self.state.join("work").join(job_name(job))
    }

    /// Where the job's verified file is.
    pub fn download(&self, target: &Target) -> Result<PathBuf, Failure> {
        let name = ferry_updater::persist::target_file_name(&target.target_path)
            .map_err(|e| Failure::new(Exit::VerificationFailed, e))?;
        Ok(self.downloads().join(name))
    }
}

/// Drives one state directory's job.
pub struct Engine<'a> {
    /// The configuration (handlers, maintenance).
    config: &'a Config,
    /// The state file.
    store: &'a mut StateStore,
    /// The state, saved through `store` at every transition.
    state: &'a mut State,
    /// Status events.
    events: &'a mut EventQueue,
    /// Runs handler commands.
    runner: Runner,
    /// This boot's id (a change means the device rebooted).
    boot_id: Option<String>,
    /// Whether the maintenance window is open now.
    window_open: bool,
    /// Unix seconds now.
    now: i64,
    /// The state directory's layout.
    dirs: Dirs,
    /// Set when this process downloaded (and so verified) the job's file a moment ago; the
    /// check before installing then need not hash it again.
    fresh_download: bool,
}

impl<'a> Engine<'a> {
    /// An engine for the state directory of `config`, at Unix time `now`: it reads this boot's
    /// id and whether the maintenance window is open now.
    pub fn new(
        config: &'a Config,
        store: &'a mut StateStore,
        state: &'a mut State,
        events: &'a mut EventQueue,
        now: i64,
    ) -> Self {
        let window_open = crate::cycle::window_open(config, now);
        Self {
            config,
            store,
            state,
            events,
            runner: Runner::default(),
            boot_id: crate::cycle::read_boot_id(),
            window_open,
            now,
            dirs: Dirs { state: config.state_dir.clone() },
            fresh_download: false,
        }
    }

    /// Starts an update job for `target` (nothing must be in progress): `Downloading`.
    pub fn begin(&mut self, target: Target) -> Result<(), Failure> {
        debug_assert!(self.state.job.is_none());
        let previous = match self.state.installed_line(&target.product, target.kind) {
            Some(installed) => Some(installed.as_kept()),
            None => self
                .dir_handler(&target.product, target.kind)
                .map(|d| d.current())
                .transpose()
                .map_err(state_failure)?
                .flatten()
                .map(Kept::version_only),
        };
        tracing::info!(release = %target.release, product = %target.product, version = %target.version, "update starts");
        self.state.end_hold(&target.product, target.kind);
        let work = Work::Update { target };
        self.state.job = Some(Job { work, previous, started_at: self.now, phase: Phase::Downloading { bytes: 0 } });
        self.announce_and_save(None)
    }

    /// Starts a rollback job (nothing must be in progress): the version line of `kind` of
    /// `product` goes back from its installed release to the version kept before it, through
    /// the same phases, restart actions and report as an update's rollback. `RollingBack`.
    /// Fails with [`Exit::NothingToDo`] when nothing is installed there or nothing is kept.
    pub fn begin_rollback(
        &mut self,
        product: &ProductName,
        kind: ReleaseKind,
        cause: RollbackCause,
    ) -> Result<(), Failure> {
        debug_assert!(self.state.job.is_none());
        let installed = self.state.installed_line(product, kind).cloned().ok_or_else(|| {
            let what = if kind.is_config() { "configuration bundle" } else { "software" };
            Failure::new(
                Exit::NothingToDo,
                format!("the agent has installed no {what} of {product}; `ferry-agent status` shows what it has"),
            )
        })?;
        let kept = installed.kept.clone().ok_or_else(|| {
            Failure::new(
                Exit::NothingToDo,
                format!("no version of {product} before {} is kept; nothing to roll back to", installed.version),
            )
        })?;
        tracing::info!(product = %product, from = %installed.version, to = %kept.version, "rollback starts");
        let rollback = RollbackOf { product: product.clone(), kind, from: installed.as_kept() };
        self.state.job = Some(Job {
            work: Work::Rollback { rollback },
            previous: Some(kept),
            started_at: self.now,
            phase: Phase::RollingBack { cause, attempts: 0 },
        });
        self.announce_and_save(None)
    }

    /// Runs the job until it ends or must wait. `image` downloads; without it, a job that must
    /// download stops at [`Rest::NeedsImage`]. An `Err` leaves the job where it was (e.g. a
    /// download cut by the network resumes next time).
    pub async fn drive(&mut self, image: Option<&Updater>) -> Result<Rest, Failure> {
        let mut ended = None;
        loop {
            let Some(job) = self.state.job.clone() else { return Ok(Rest::Idle(ended)) };
            match &job.phase {
                Phase::Downloading { .. } => match image {
                    Some(image) => self.download(&job, image).await?,
                    None => return Ok(Rest::NeedsImage),
                },
                Phase::Downloaded { deferred } => {
                    if let Some(wait) = self.deferral(update_target(&job)?, *deferred) {
                        if *deferred != Some(wait) {
                            self.enter(Phase::Downloaded { deferred: Some(wait) }, Some(deferral_message(wait)))?;
                        }
                        return Ok(Rest::Deferred(wait));
                    }
                    // A file downloaded by this process was verified as it arrived; one that sat
                    // on disk (deferred, or found at a restart) is hashed again.
                    if std::mem::take(&mut self.fresh_download) || self.verify(&job).await? {
                        self.enter(Phase::Installing { attempts: 1 }, None)?;
                        self.install(1).await?;
                    }
                }
                Phase::Installing { attempts } => {
                    // Cut short: the file is hashed again before the retry, as after any restart
                    // (the download is not synced to disk; see `ferry_updater::download`).
                    if !self.give_up_if_exhausted()? && self.verify(&job).await? {
                        self.enter(Phase::Installing { attempts: attempts + 1 }, None)?;
                        self.install(attempts + 1).await?;
                    }
                }
                Phase::Switching => self.switch(&job)?,
                Phase::Installed { reboot_pending: true, boot_id, .. } => {
                    if self.boot_id.is_none() || *boot_id == self.boot_id {
                        return Ok(Rest::AwaitingReboot);
                    }
                    tracing::info!("the device rebooted; checking the new version");
                    self.enter(
                        Phase::Installed { reboot_pending: false, boot_id: self.boot_id.clone(), health_checks: 0 },
                        None,
                    )?;
                }
                Phase::Installed { reboot_pending: false, boot_id, health_checks } => {
                    if !self.give_up_if_exhausted()? {
                        let checks = health_checks + 1;
                        let phase =
                            Phase::Installed { reboot_pending: false, boot_id: boot_id.clone(), health_checks: checks };
                        self.enter(phase, None)?;
                        self.check(&job, checks).await?;
                    }
                }
                Phase::Committing => self.commit(&job)?,
                Phase::RollingBack { cause, attempts } => {
                    if !self.give_up_if_exhausted()? {
                        self.enter(Phase::RollingBack { cause: cause.clone(), attempts: attempts + 1 }, None)?;
                        self.roll_back(&job, cause, attempts + 1).await?;
                    }
                }
                Phase::Reporting { outcome } => {
                    self.report(&job, outcome)?;
                    ended = Some(outcome.clone());
                }
            }
        }
    }

    /// When the job's step was interrupted too often: enters the rollback or the failure
    /// report [`on_restart`] names, and returns true.
    fn give_up_if_exhausted(&mut self) -> Result<bool, Failure> {
        match on_restart(self.state) {
            Action::RollBack(cause) => {
                tracing::warn!(cause = %cause.message(), "giving up on the step");
                self.enter(Phase::RollingBack { cause, attempts: 0 }, None)?;
                Ok(true)
            }
            Action::Report(outcome) => {
                self.enter(Phase::Reporting { outcome }, None)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn deferral(&self, target: &Target, current: Option<Deferral>) -> Option<Deferral> {
        deferral(target, current, self.window_open, self.now)
    }

    async fn download(&mut self, job: &Job, image: &Updater) -> Result<(), Failure> {
        let t = update_target(job)?;
        let entry = TargetFile::new(t.length, t.sha256.as_str(), None);
        match image.download_target(&t.target_path, &entry, &self.dirs.downloads()).await {
            Ok(file) => {
                tracing::info!(file = %file.display(), bytes = t.length, "downloaded and verified");
                self.fresh_download = true;
                self.enter(Phase::Downloaded { deferred: None }, None)
            }
            Err(e) => {
                let failure = updater_failure(&format!("downloading {}", t.target_path), e);
                if failure.exit == Exit::VerificationFailed {
                    tracing::error!("{failure}");
                    self.enter(
                        Phase::Reporting { outcome: Outcome::failed("verification_failed", failure.message) },
                        None,
                    )
                } else {
                    Err(failure)
                }
            }
        }
    }

    /// Hashes the downloaded file again (it sat on disk, or a crash may have cut its writing
    /// short). True when it matches; otherwise it is deleted and the job goes back to
    /// downloading.
    async fn verify(&mut self, job: &Job) -> Result<bool, Failure> {
        let t = update_target(job)?;
        let file = self.dirs.download(t)?;
        let entry = TargetFile::new(t.length, t.sha256.as_str(), None);
        let matches = ferry_updater::download::is_verified(&file, &t.target_path, &entry)
            .await
            .map_err(|e| updater_failure("re-verifying the download", e))?;
        if matches {
            return Ok(true);
        }
        tracing::warn!(file = %file.display(), "the downloaded file changed on disk; downloading it again");
        crate::atomic::remove_file_if_exists(&file).map_err(state_failure)?;
        self.enter(Phase::Downloading { bytes: 0 }, None)?;
        Ok(false)
    }

    fn handler(&self, product: &ProductName, kind: ReleaseKind) -> Result<&Handler, Failure> {
        self.config.handler_for(product, kind).ok_or_else(|| {
            Failure::new(
                Exit::InstallFailed,
                format!("no [[handler]] installs {} releases of {product}", kind.as_str()),
            )
        })
    }

    fn dir_handler(&self, product: &ProductName, kind: ReleaseKind) -> Option<DirHandler> {
        let handler = self.config.handler_for(product, kind)?;
        handler.dir_root(product).map(DirHandler::new)
    }

    fn invocation(&self, job: &Job, step: Step, attempt: u32) -> Result<Invocation, Failure> {
        let t = job.target();
        let (version, previous) = match step {
            Step::Rollback => (
                job.previous.as_ref().map_or_else(|| job.version().clone(), |k| k.version.clone()),
                Some(job.version().clone()),
            ),
            Step::Install | Step::HealthCheck => {
                (job.version().clone(), job.previous.as_ref().map(|k| k.version.clone()))
            }
        };
        let file = match (step, t) {
            (Step::Install, Some(t)) => Some(self.dirs.download(t)?),
            _ => None,
        };
        Ok(Invocation {
            step,
            file,
            artifact: t.map(|t| t.artifact.clone()),
            media_type: t.map(|t| t.media_type.clone()),
            sha256: t.map(|t| t.sha256.clone()),
            product: job.product().clone(),
            version: version.clone(),
            previous_version: previous,
            kind: job.kind(),
            release: job.release().unwrap_or(ReleaseId(0)),
            attempt,
            install_dir: self.dir_handler(job.product(), job.kind()).map(|d| d.version_dir(&version)),
            state_dir: self.dirs.state.clone(),
            work_dir: self.dirs.work(job),
        })
    }

    fn log_file(&self, job: &Job, step: Step) -> PathBuf {
        self.dirs.logs().join(format!("{}-{}.log", job_name(job), step.as_str()))
    }

    async fn install(&mut self, attempt: u32) -> Result<(), Failure> {
        let job = self.state.job.clone().expect("installing a job");
        let t = update_target(&job)?;
        let handler = match self.handler(&t.product, t.kind) {
            Ok(h) => h.clone(),
            Err(f) => return self.enter(Phase::Reporting { outcome: Outcome::failed("no_handler", f.message) }, None),
        };
        match &handler.handler_type {
            HandlerType::Dir { .. } => {
                let dir = self.dir_handler(&t.product, t.kind).expect("a dir handler");
                let file = self.dirs.download(t)?;
                let package = Package {
                    file: &file,
                    product: &t.product,
                    version: &t.version,
                    artifact: &t.artifact,
                    media_type: &t.media_type,
                    sha256: &t.sha256,
                };
                match dir.prepare(&package) {
                    Ok(_) => {
                        self.enter(Phase::Switching, None)?;
                        self.switch(&job)
                    }
                    Err(e) => {
                        self.enter(Phase::Reporting { outcome: Outcome::failed("install_failed", e.to_string()) }, None)
                    }
                }
            }
            HandlerType::Command(spec) => {
                let invocation = self.invocation(&job, Step::Install, attempt)?;
                std::fs::create_dir_all(self.dirs.logs()).map_err(|e| io_failure(&self.dirs.logs(), e))?;
                let report = match self.runner.run(spec, &invocation, &self.log_file(&job, Step::Install)).await {
                    Ok(report) => report,
                    Err(e) => {
                        return self
                            .enter(Phase::Reporting { outcome: Outcome::failed("handler_error", e.to_string()) }, None)
                    }
                };
                match install_result(report.termination) {
                    InstallResult::Installed => self.installed(t.reboot == RebootBehaviour::Required),
                    InstallResult::RebootRequired => self.installed(true),
                    InstallResult::RetryLater => {
                        let not_before = self.now + RETRY_LATER.as_secs() as i64;
                        let wait = Deferral::RetryLater { not_before };
                        self.enter(Phase::Downloaded { deferred: Some(wait) }, Some(deferral_message(wait)))
                    }
                    InstallResult::Failed { code } => {
                        let message = format!("the install command {}: {}", report.termination, report.excerpt);
                        self.enter(Phase::Reporting { outcome: Outcome::failed(code, message) }, None)
                    }
                }
            }
        }
    }

    /// The `dir` handler's switch of `current` (idempotent), then `Installed`.
    fn switch(&mut self, job: &Job) -> Result<(), Failure> {
        let t = update_target(job)?;
        let Some(dir) = self.dir_handler(&t.product, t.kind) else {
            return self.installed(t.reboot == RebootBehaviour::Required);
        };
        match dir.activate(&t.version) {
            Ok(_) => self.installed(t.reboot == RebootBehaviour::Required),
            Err(e) => {
                // Nothing was switched (activate changes `current` last, atomically).
                self.enter(Phase::Reporting { outcome: Outcome::failed("install_failed", e.to_string()) }, None)
            }
        }
    }

    fn installed(&mut self, reboot_pending: bool) -> Result<(), Failure> {
        let phase = Phase::Installed { reboot_pending, boot_id: self.boot_id.clone(), health_checks: 0 };
        self.enter(phase, reboot_pending.then(|| "installed; waiting for a reboot".to_owned()))
    }

    /// The version probe and the health check, then `Committing` or `RollingBack`.
    async fn check(&mut self, job: &Job, attempt: u32) -> Result<(), Failure> {
        let t = update_target(job)?;
        if let Some(dir) = self.dir_handler(&t.product, t.kind) {
            let running = dir.current().map_err(state_failure)?;
            if running.as_ref() != Some(&t.version) {
                let detail = format!(
                    "{} is at {}, not {}",
                    dir.root().join("current").display(),
                    running.as_ref().map_or("nothing", Version::as_str),
                    t.version
                );
                return self.unhealthy(job, detail);
            }
        }
        let health_check = self.handler(&t.product, t.kind).ok().and_then(|h| h.health_check.clone());
        if let Some(spec) = health_check {
            let invocation = self.invocation(job, Step::HealthCheck, attempt)?;
            std::fs::create_dir_all(self.dirs.logs()).map_err(|e| io_failure(&self.dirs.logs(), e))?;
            let healthy_now = match self.runner.run(&spec, &invocation, &self.log_file(job, Step::HealthCheck)).await {
                Ok(report) if healthy(report.termination) => Ok(()),
                Ok(report) => Err(format!("the health check {}: {}", report.termination, report.excerpt.trim_end())),
                Err(e) => Err(e.to_string()),
            };
            if let Err(detail) = healthy_now {
                return self.unhealthy(job, detail);
            }
        }
        self.enter(Phase::Committing, None)?;
        self.commit(job)
    }

    fn unhealthy(&mut self, job: &Job, detail: String) -> Result<(), Failure> {
        tracing::warn!(%detail, "the new version is unhealthy");
        if job.previous.is_none() {
            let message = format!("{detail}; no earlier version is kept to go back to");
            return self.enter(Phase::Reporting { outcome: Outcome::failed("health_check_failed", message) }, None);
        }
        self.enter(Phase::RollingBack { cause: RollbackCause::HealthCheckFailed { detail }, attempts: 0 }, None)
    }

    /// Records the version as installed and prunes older ones (idempotent), then `Reporting`.
    fn commit(&mut self, job: &Job) -> Result<(), Failure> {
        let t = update_target(job)?;
        let record = Installed {
            version: t.version.clone(),
            release: Some(t.release),
            release_counter: Some(t.release_counter),
            kept: job.previous.clone(),
            committed_at: self.now,
        };
        let line = if t.kind.is_config() { &mut self.state.configs } else { &mut self.state.installed };
        line.insert(t.product.clone(), record);
        if let Some(dir) = self.dir_handler(&t.product, t.kind) {
            if let Err(e) = dir.prune() {
                tracing::warn!("could not prune old versions: {e}");
            }
        }
        tracing::info!(product = %t.product, version = %t.version, "committed");
        self.enter(Phase::Reporting { outcome: Outcome::Committed }, None)
    }

    /// The handler's rollback to the kept version (idempotent), then `Reporting`. A rollback
    /// job records the kept version as installed in the same save, so the state file and the
    /// handler agree after a crash at any point: before that save a restart rolls back again.
    async fn roll_back(&mut self, job: &Job, cause: &RollbackCause, attempt: u32) -> Result<(), Failure> {
        let (product, kind) = (job.product().clone(), job.kind());
        let Some(previous) = job.previous.clone() else {
            let message = format!("{}; no earlier version is kept", cause.message());
            return self.enter(Phase::Reporting { outcome: Outcome::failed(cause.code(), message) }, None);
        };
        let result = match self.handler(&product, kind).map(|h| h.handler_type.clone()) {
            Ok(HandlerType::Dir { .. }) => self
                .dir_handler(&product, kind)
                .expect("a dir handler")
                .rollback_to(&previous.version)
                .map_err(|e| e.to_string()),
            Ok(HandlerType::Command(spec)) => {
                let invocation = self.invocation(job, Step::Rollback, attempt)?;
                std::fs::create_dir_all(self.dirs.logs()).map_err(|e| io_failure(&self.dirs.logs(), e))?;
                match self.runner.run(&spec, &invocation, &self.log_file(job, Step::Rollback)).await {
                    Ok(report) => match install_result(report.termination) {
                        InstallResult::Installed | InstallResult::RebootRequired => Ok(()),
                        _ => Err(format!("the rollback command {}: {}", report.termination, report.excerpt)),
                    },
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(f) => Err(f.message),
        };
        let outcome = match result {
            Ok(()) => {
                tracing::warn!(product = %product, version = %previous.version, "rolled back");
                match &job.work {
                    Work::Update { .. } => {
                        Outcome::RolledBack { code: cause.code().to_owned(), message: cause.message() }
                    }
                    Work::Rollback { rollback } => {
                        self.record_rolled_back(rollback, &previous);
                        let message = format!(
                            "rolled back from {} to {}: {}",
                            rollback.from.version,
                            previous.version,
                            cause.message()
                        );
                        Outcome::RolledBack { code: cause.code().to_owned(), message }
                    }
                }
            }
            Err(e) => Outcome::failed("rollback_failed", format!("{}; then the rollback failed: {e}", cause.message())),
        };
        self.enter(Phase::Reporting { outcome }, None)
    }

    /// Records the version a rollback job went back to as installed, with its release and
    /// counter. The counter floor never drops below what is known: when the kept record has
    /// no counter (written by an older agent), the left release's stays.
    fn record_rolled_back(&mut self, rollback: &RollbackOf, to: &Kept) {
        let record = Installed {
            version: to.version.clone(),
            release: to.release,
            release_counter: to.release_counter.or(rollback.from.release_counter),
            kept: None,
            committed_at: self.now,
        };
        let line = if rollback.kind.is_config() { &mut self.state.configs } else { &mut self.state.installed };
        line.insert(rollback.product.clone(), record);
    }

    /// Queues the outcome's event, removes the job's files and goes idle, holding the release
    /// back when the outcome says so ([`Outcome::holds_back`]; for a rollback job, when it
    /// rolled back) in the same save.
    fn report(&mut self, job: &Job, outcome: &Outcome) -> Result<(), Failure> {
        self.push_event(job, &job.phase, None)?;
        if let Some(file) = job.target().and_then(|t| self.dirs.download(t).ok()) {
            let _ = crate::atomic::remove_file_if_exists(&file);
        }
        let _ = crate::atomic::remove_dir_all_if_exists(&self.dirs.work(job));
        let what = if job.is_rollback() { "rollback" } else { "update" };
        let release = job.release().map_or_else(|| "none".to_owned(), |r| r.to_string());
        match outcome {
            Outcome::Committed => tracing::info!(release, "update committed"),
            Outcome::Failed { code, message } => tracing::error!(release, code, "{what} failed: {message}"),
            Outcome::RolledBack { code, message } => tracing::warn!(release, code, "{what} rolled back: {message}"),
        }
        let holds = match &job.work {
            Work::Update { .. } => outcome.holds_back(),
            Work::Rollback { .. } => matches!(outcome, Outcome::RolledBack { .. }),
        };
        if let (true, Some(release)) = (holds, job.release()) {
            tracing::warn!(%release, "not installing release {release} again unless asked: `ferry-agent install {release}` retries it");
            self.state.hold_back(HeldBack {
                release,
                product: job.product().clone(),
                kind: job.kind(),
                version: job.version().clone(),
                outcome: outcome.clone(),
                at: self.now,
            });
        }
        self.state.job = None;
        self.store.save(self.state).map_err(state_failure)
    }

    /// Moves the job to `phase`: its event first (a repeat is dropped), then the state file.
    fn enter(&mut self, phase: Phase, message: Option<String>) -> Result<(), Failure> {
        let job = self.state.job.as_mut().expect("a job");
        job.phase = phase;
        self.announce_and_save(message)
    }

    fn announce_and_save(&mut self, message: Option<String>) -> Result<(), Failure> {
        let job = self.state.job.clone().expect("a job");
        if !matches!(job.phase, Phase::Reporting { .. }) {
            self.push_event(&job, &job.phase, message)?;
        }
        self.store.save(self.state).map_err(state_failure)?;
        pause_point(job.phase.name());
        Ok(())
    }

    fn push_event(&mut self, job: &Job, phase: &Phase, message: Option<String>) -> Result<(), Failure> {
        let Some(state) = phase.device_state() else { return Ok(()) };
        // A version found installed rather than installed from a release has nothing to report.
        let Some(release) = job.release() else { return Ok(()) };
        let (error_code, message) = match phase {
            Phase::Reporting { outcome: Outcome::Failed { code, message } } => {
                (Some(code.clone()), Some(message.clone()))
            }
            Phase::Reporting { outcome: Outcome::RolledBack { code, message } } => {
                (Some(code.clone()), Some(message.clone()))
            }
            _ => (None, message),
        };
        let progress = match phase {
            Phase::Downloading { bytes } => Some(*bytes as i64),
            _ => None,
        };
        let draft = EventDraft { release, state, progress, error_code, message, at: self.now };
        let key = event_key(release, job.started_at, state);
        self.events.push(draft, Some(&key)).map_err(state_failure)?;
        Ok(())
    }
}

/// The environment variable naming a phase after whose state write the agent stops and waits
/// to be killed: how the crash tests SIGKILL it at an exact point of every phase. Unset in
/// service (the systemd unit clears the environment); nothing else reads it.
pub const PAUSE_AFTER_ENV: &str = "FERRY_AGENT_PAUSE_AFTER";

fn pause_point(phase: &str) {
    if std::env::var(PAUSE_AFTER_ENV).is_ok_and(|p| p == phase) {
        eprintln!("{PAUSE_AFTER_ENV}: paused after entering {phase}; waiting to be killed");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

fn deferral_message(wait: Deferral) -> String {
    match wait {
        Deferral::Window => "waiting for the maintenance window".to_owned(),
        Deferral::RetryLater { not_before } => {
            format!("the handler asked to retry later; not before {}", ferry_core::time::format_unix(not_before))
        }
    }
}

/// Why a verified download must wait at `now`, if it must: a handler's "retry later" until its
/// time; a required release outside the maintenance window until the window opens or its
/// deadline passes.
fn deferral(target: &Target, current: Option<Deferral>, window_open: bool, now: i64) -> Option<Deferral> {
    if let Some(Deferral::RetryLater { not_before }) = current {
        if now < not_before {
            return current;
        }
    }
    let past_deadline = target.deadline.is_some_and(|d| d <= now);
    // An optional release only became a job with consent or past its deadline.
    let consented = !target.required;
    (!window_open && !past_deadline && !consented).then_some(Deferral::Window)
}

/// The update's target: the phases before `RollingBack` belong to update jobs only.
fn update_target(job: &Job) -> Result<&Target, Failure> {
    job.target().ok_or_else(|| {
        Failure::new(Exit::State, format!("the state file has a rollback job in the {} phase", job.phase.name()))
    })
}

/// What names a job's files: its release, or for a rollback of a version found installed, its
/// product (the rollback's log is then `PRODUCT-rollback.log`).
fn job_name(job: &Job) -> String {
    job.release().map_or_else(|| job.product().to_string(), |r| r.to_string())
}

fn state_failure(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::State, e)
}

fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::new(Exit::State, format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use ferry_core::{ArtifactName, Sha256};

    use super::*;

    fn target(required: bool, deadline: Option<i64>) -> Target {
        Target {
            release: ReleaseId(1),
            product: ProductName::new("app").unwrap(),
            kind: ReleaseKind::Full,
            version: Version::new("1.0").unwrap(),
            release_counter: 1,
            target_path: "app/1.0/app.tar.gz".into(),
            artifact: ArtifactName::new("app.tar.gz").unwrap(),
            length: 10,
            sha256: Sha256::from_bytes([1; 32]),
            media_type: "application/gzip".into(),
            required,
            reboot: RebootBehaviour::None,
            deadline,
        }
    }

    #[test]
    fn a_required_release_outside_the_window_downloads_and_waits() {
        let required = target(true, None);
        assert_eq!(deferral(&required, None, false, 0), Some(Deferral::Window));
        assert_eq!(deferral(&required, Some(Deferral::Window), true, 0), None, "the window opened");
        assert_eq!(deferral(&target(true, Some(100)), None, false, 100), None, "past its deadline");
    }

    #[test]
    fn a_consented_optional_release_installs_now_even_outside_the_window() {
        // An optional release becomes a job only with consent (or past its deadline).
        assert_eq!(deferral(&target(false, None), None, false, 0), None);
    }

    #[test]
    fn retry_later_waits_for_its_time() {
        let wait = Some(Deferral::RetryLater { not_before: 50 });
        assert_eq!(deferral(&target(true, None), wait, true, 49), wait);
        assert_eq!(deferral(&target(true, None), wait, true, 50), None);
    }
}
