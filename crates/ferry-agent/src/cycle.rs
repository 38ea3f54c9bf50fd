//! One check: what `ferry-agent check` does once and `ferry-agent run` does on its schedule.
//!
//! 1. Take the state directory's lock ([`crate::lock`]); load the state and the event queue.
//! 2. Enroll when no credential is stored (the credential is kept, mode 0600).
//! 3. Check in: platform, installed versions, boot id, agent version and the director version
//!    the device trusts. The answer's offers are kept in `offers.json` for `notify`.
//! 4. Deliver queued status events, oldest first.
//! 5. When there is work (offers, or a download to resume): refresh the director and image
//!    repositories from the pinned roots, take the director's cross-checked assignment, choose
//!    an offer ([`crate::plan`]) and run the job ([`crate::engine`]). A kept download that no
//!    longer matches its digest when it is hashed again before its install is downloaded anew
//!    in the same check, with the metadata refreshed then. Without work, refresh only the
//!    director repository, and only when the server has a newer chain for this device (or the
//!    trusted one holds an instruction still waiting).
//! 6. Whenever the director's metadata was refreshed: a signed rollback instruction for the
//!    release this device runs ([`crate::instructed`]) starts a rollback job to the kept
//!    version, before any offer.
//! 7. Deliver the events the job queued; after a commit or a rollback, check in again so that
//!    the server sees the new inventory at once.
//!
//! An idle check (no offers, no job, no new director chain) costs one check-in request and no
//! metadata traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_api::{CheckinRequest, CheckinResponse, EnrollRequest, ErrorCode, Offer};
use ferry_client::{ClientError, DeviceClient};
use ferry_core::{DeviceState, DeviceStatus, ReleaseId, Version};
use ferry_tuf::uptane::CrossCheckError;
use ferry_tuf::{DirectorInstructions, RollbackInstruction};
use ferry_updater::{Director, Updater, UpdaterConfig};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Serialize};

use crate::config::{Config, SecretSource};
use crate::engine::{Dirs, Engine, Rest};
use crate::events::{EventDraft, EventQueue, DEFAULT_MAX_BYTES};
use crate::exit::{Exit, Failure};
use crate::instructed;
use crate::lock::StateLock;
use crate::net::{self, failure, updater_failure, Deadline};
use crate::plan::{plan, Circumstances, Plan};
use crate::state::{RollbackCause, State, StateStore};

/// Offers of the last check-in, for `ferry-agent notify`.
pub const OFFERS_FILE: &str = "offers.json";
/// Releases the user consented to with `ferry-agent install`.
pub const CONSENT_FILE: &str = "consent.json";
/// Where the boot id is read from.
pub const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";

/// What one check did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The exit code for a one-shot command.
    pub exit: Exit,
    /// What happened, for people.
    pub summary: String,
    /// When the server wants the next check-in.
    pub next_checkin: Option<Duration>,
    /// The plan made from the offers, when offers were considered.
    pub plan: Option<Plan>,
}

/// `offers.json`: what the server offered at the last check-in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedOffers {
    /// Unix seconds of the check-in.
    pub at: i64,
    /// The offers, in the server's order.
    pub offers: Vec<Offer>,
    /// Releases waiting for consent among them.
    #[serde(default)]
    pub awaiting_consent: Vec<ReleaseId>,
    /// Releases whose wait for consent or refusal the server was told of (once each).
    #[serde(default)]
    pub reported: BTreeSet<ReleaseId>,
}

/// `consent.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Consent {
    /// Releases the user asked to install.
    #[serde(default)]
    pub releases: BTreeSet<ReleaseId>,
    /// Releases rolled back by `ferry-agent rollback` before it held them back in the state
    /// file like any rolled-back release; a check moves an offered one there
    /// ([`adopt_declined`]). Nothing adds to it any more.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub declined: BTreeSet<ReleaseId>,
}

/// The agent: its configuration and HTTP client.
pub struct Agent {
    config: Config,
    http: reqwest::Client,
    dirs: Dirs,
}

impl Agent {
    /// An agent for `config`.
    pub fn new(config: Config) -> Result<Self, Failure> {
        let http = net::http_client(&config)?;
        let dirs = Dirs { state: config.state_dir.clone() };
        Ok(Self { config, http, dirs })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One check (see the module documentation).
    pub async fn check(&self) -> Result<Report, Failure> {
        let _lock = StateLock::try_acquire(&self.config.state_dir)?;
        let mut store = StateStore::new(&self.config.state_dir);
        let (mut state, source) = store.load().map_err(|e| Failure::new(Exit::State, e))?;
        if let crate::state::Source::Backup { reason } | crate::state::Source::Reset { reason } = &source {
            tracing::warn!("{reason}; continuing from {source:?}");
        }
        let mut events = EventQueue::open(&self.config.events_file(), DEFAULT_MAX_BYTES)
            .map_err(|e| Failure::new(Exit::State, e))?;
        // Every exchange of answers and metadata before the job shares one deadline; the
        // download inside the job is bounded only between reads (see `net::Deadline`).
        let deadline = Deadline::start(self.config.deadline);
        let (device, credential) = deadline.run("enrolling", self.device_client()).await?;
        let boot_id = read_boot_id();
        let response = deadline.run("checking in", self.checkin(&device, &state, boot_id.as_deref())).await?;
        self.deliver(&device, &mut events, &deadline).await;
        if response.status != DeviceStatus::Accepted {
            return Err(Failure::new(
                Exit::Unauthorized,
                format!(
                    "the server has device {} as {}; an administrator must accept it (ferry device accept {})",
                    response.device_id,
                    response.status.as_str(),
                    response.device_id
                ),
            ));
        }
        let next_checkin = Some(Duration::from_secs(response.next_checkin_secs));
        let consent = read_json::<Consent>(&self.dirs.state.join(CONSENT_FILE)).unwrap_or_default();
        let needs_download =
            state.job.as_ref().is_some_and(|j| matches!(j.phase, crate::state::Phase::Downloading { .. }));
        let considers_offers = state.job.is_none() && !response.offers.is_empty();
        let reads_instructions = self.instructions_due(&response, &state);
        let mut director = None;
        let mut made = None;
        let mut instructions = Vec::new();
        if !(needs_download || considers_offers) && reads_instructions {
            // Only the director's metadata: an instruction needs nothing from the image repository.
            let refresh = self.director(&device, &credential, &response, false);
            let mut d = deadline.run("refreshing the director metadata", refresh).await?;
            instructions =
                deadline.run("reading the director's instructions", self.instructions(&mut d, &response)).await?;
        }
        if needs_download || considers_offers {
            let refresh = self.director(&device, &credential, &response, true);
            let mut d = deadline.run("refreshing the signed metadata", refresh).await?;
            instructions =
                deadline.run("reading the director's instructions", self.instructions(&mut d, &response)).await?;
            if considers_offers {
                let device_id = response.device_id.as_str();
                // The release-counter floor is applied per version line (software and
                // configuration bundles have their own) by `plan`, not per product here.
                let assigned = deadline
                    .run("checking the director's assignment", async {
                        d.assigned(device_id, self.config.platform.as_str(), &BTreeMap::new().into_iter().collect())
                            .await
                            .map_err(|e| updater_failure("checking the director's assignment", e))
                    })
                    .await?;
                if !consent.declined.is_empty() {
                    adopt_declined(&mut store, &mut state, &self.dirs.state, consent.clone(), &response.offers)?;
                }
                let circumstances = Circumstances { now: now(), consent: &consent.releases };
                let p = plan(&response.offers, &assigned, &state, &self.config, circumstances);
                for refusal in &p.refused {
                    tracing::warn!(release = %refusal.release, code = refusal.code, "{}", refusal.message);
                }
                made = Some(p);
            }
            director = Some(d);
        }
        let previous = read_json::<SavedOffers>(&self.dirs.state.join(OFFERS_FILE)).unwrap_or_default();
        let mut saved = SavedOffers {
            at: now(),
            offers: response.offers.clone(),
            awaiting_consent: made.as_ref().map(|p| p.awaiting_consent.clone()).unwrap_or_default(),
            reported: BTreeSet::new(),
        };
        if let Some(p) = &made {
            saved.reported = report_waiting(&mut events, p, &previous.reported)?;
        } else {
            saved.reported = previous.reported;
        }
        write_json(&self.dirs.state.join(OFFERS_FILE), &saved)?;

        // A job found in progress (an update or a rollback resumed after a restart) ends here too.
        let resumed = state.job.as_ref().and_then(crate::state::Job::release);
        let (obey, others) = instructed::choose(&instructions, &state);
        for (instruction, verdict) in &others {
            match verdict {
                instructed::Verdict::Busy(why) => {
                    tracing::info!(release = %instruction.release, "not rolling back yet as the server instructs: {why}")
                }
                instructed::Verdict::Ignore(why) => {
                    tracing::warn!(release = %instruction.release, "ignoring the server's rollback instruction: {why}")
                }
                instructed::Verdict::Obey => {}
            }
        }
        let mut engine = Engine::new(&self.config, &mut store, &mut state, &mut events, now());
        let started = if let Some(instruction) = obey {
            // Before any offer: a release marked bad is left first, and one job runs at a time.
            tracing::warn!(
                release = %instruction.release,
                product = %instruction.product,
                version = %instruction.version,
                "the server marked the installed release bad; rolling back to the kept version"
            );
            engine.begin_rollback(&instruction.product, instruction.kind.kind(), RollbackCause::Instructed)?;
            Some(instruction.release)
        } else if let Some(target) = made.as_ref().and_then(|p| p.start.clone()) {
            let release = target.release;
            engine.begin(target)?;
            Some(release)
        } else {
            None
        };
        let mut driven = engine.drive(director.as_ref().map(Director::image)).await;
        // The exchanges after the job get a deadline of their own: the job may have taken long.
        let deadline = Deadline::start(self.config.deadline);
        if driven == Ok(Rest::NeedsImage) {
            // A kept download no longer matched its digest (found when it was hashed again before
            // its install): fetch the metadata now and download it anew in this same check.
            let refresh = self.director(&device, &credential, &response, true);
            driven = match deadline.run("refreshing the signed metadata", refresh).await {
                Ok(d) => engine.drive(Some(director.insert(d).image())).await,
                Err(f) => Err(f),
            };
        }
        self.deliver(&device, &mut events, &deadline).await;
        let rest = driven?;
        if let Rest::Idle(Some(_)) = rest {
            // The inventory changed (or stayed, after a rollback): tell the server now.
            let boot_id = read_boot_id();
            if let Err(e) = deadline.run("checking in", self.checkin(&device, &state, boot_id.as_deref())).await {
                tracing::warn!("{e}");
            }
        }
        if let Some(release) = ended_release(&rest, started, resumed) {
            forget_consent(&self.dirs.state, release);
        }
        let mut exit = rest.exit();
        if exit == Exit::NothingToDo && made.as_ref().is_some_and(|p| !p.awaiting_consent.is_empty()) {
            exit = Exit::Deferred;
        }
        Ok(Report { exit, summary: summary(&rest, made.as_ref()), next_checkin, plan: made })
    }

    /// A device API client with the stored credential, and the credential, enrolling first
    /// when there is none.
    async fn device_client(&self) -> Result<(DeviceClient, String), Failure> {
        let stored = net::load_credential(&self.config.credential_file)?;
        let mut client = DeviceClient::with_client(&self.config.server_url, stored.clone(), self.http.clone())
            .map_err(|e| Failure::new(Exit::Config, e))?;
        if let Some(credential) = stored {
            return Ok((client, credential));
        }
        let device_id = self.config.read_device_id().map_err(|e| Failure::new(Exit::Config, e))?;
        let enrollment_key = match &self.config.enrollment_key {
            None => None,
            Some(SecretSource::Inline(secret)) => Some(secret.expose().to_owned()),
            Some(SecretSource::File(path)) => Some(
                net::read_secret(path).map_err(|e| Failure::new(Exit::Config, format!("enrollment_key_file: {e}")))?,
            ),
        };
        let answer = client
            .enroll(&EnrollRequest { device_id: device_id.clone(), enrollment_key })
            .await
            .map_err(|e| failure(&format!("enrolling as {device_id}"), e))?;
        net::save_credential(&self.config.credential_file, &answer.credential)
            .map_err(|e| Failure::new(Exit::State, e))?;
        tracing::info!(device = %answer.device_id, status = answer.status.as_str(), "enrolled");
        client.set_credential(&answer.credential).map_err(|e| Failure::new(Exit::Internal, e))?;
        Ok((client, answer.credential))
    }

    async fn checkin(
        &self,
        device: &DeviceClient,
        state: &State,
        boot_id: Option<&str>,
    ) -> Result<CheckinResponse, Failure> {
        let versions = |line: &BTreeMap<ferry_core::ProductName, crate::state::Installed>| -> BTreeMap<_, Version> {
            line.iter().map(|(p, i)| (p.clone(), i.version.clone())).collect()
        };
        let request = CheckinRequest {
            platform: Some(self.config.platform.clone()),
            installed: versions(&state.installed),
            configs: versions(&state.configs),
            attributes: BTreeMap::new(),
            agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            boot_id: boot_id.map(str::to_owned),
            director_version: trusted_version(&self.dirs.state.join("tuf/director/timestamp.json")),
        };
        device.checkin(&request).await.map_err(|e| match e {
            ClientError::Api { status: 401, .. } => Failure::new(
                Exit::Unauthorized,
                format!(
                    "the server does not accept this device's credential ({e}); if the device was removed, delete {} to enroll again",
                    self.config.credential_file.display()
                ),
            ),
            e => failure("checking in", e),
        })
    }

    /// Sends queued events, oldest first; what cannot be sent now (or before `deadline`) stays
    /// queued.
    async fn deliver(&self, device: &DeviceClient, events: &mut EventQueue, deadline: &Deadline) {
        while !events.is_empty() {
            let batch = events.batch();
            let Some(last) = batch.events.last().map(|e| e.seq) else { break };
            let Some(sent) = deadline.within(device.send_events(&batch)).await else {
                tracing::warn!("status events stay queued: the check's deadline (checkin.deadline_secs) passed");
                return;
            };
            match sent {
                Ok(_) => {}
                Err(ClientError::Api { status: 409, message, .. })
                | Err(ClientError::Api { code: ErrorCode::NotEntitled, message, .. }) => {
                    // The server has later events than these, or they concern a release this
                    // device has no part in (any more): they can never be stored.
                    tracing::warn!(
                        count = batch.events.len(),
                        "the server refused stale events, dropping them: {message}"
                    );
                }
                Err(e) => {
                    tracing::warn!("status events stay queued: {e}");
                    return;
                }
            }
            if let Err(e) = events.ack(last) {
                tracing::error!("cannot remove delivered events from the queue: {e}");
                return;
            }
        }
    }

    /// Whether this check reads the director's instructions: when the server has a newer
    /// director chain for this device than the one it trusts (it may carry new instructions),
    /// or when the trusted one carries an instruction that waits for this device (a job was in
    /// progress). An idle device whose chain has not changed fetches no metadata.
    fn instructions_due(&self, response: &CheckinResponse, state: &State) -> bool {
        let Some(pointer) = &response.director else { return false };
        let director = self.dirs.state.join("tuf/director");
        if trusted_version(&director.join("timestamp.json")).is_none_or(|trusted| pointer.version > trusted) {
            return true;
        }
        // The trusted chain was verified when it was stored; it is only read here to decide
        // whether to refresh, and the instruction is obeyed only from the refreshed one.
        let stored = crate::atomic::read_private(&director.join("targets.json")).ok().and_then(|bytes| {
            let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            serde_json::from_value::<DirectorInstructions>(value.pointer("/signed/custom")?.clone()).ok()
        });
        stored.is_some_and(|s| s.device == response.device_id.as_str() && instructed::pending(&s.rollback, state))
    }

    /// The rollback instructions of the verified director metadata. A `custom` this agent cannot
    /// read (a newer server's shape) is logged and read as no instruction, so that it never
    /// stops updates; metadata for another device is refused.
    async fn instructions(
        &self,
        director: &mut Director,
        response: &CheckinResponse,
    ) -> Result<Vec<RollbackInstruction>, Failure> {
        match director.instructions(response.device_id.as_str()).await {
            Ok(instructions) => Ok(instructions.rollback),
            Err(ferry_updater::Error::CrossCheck(CrossCheckError::Malformed { reason, .. })) => {
                tracing::warn!("ignoring the director's instructions, which this agent cannot read: {reason}");
                Ok(Vec::new())
            }
            Err(e) => Err(updater_failure("reading the director's instructions", e)),
        }
    }

    /// The two repositories' verifying clients, from the pinned roots, refreshed (the image
    /// repository only when `image`).
    async fn director(
        &self,
        device: &DeviceClient,
        credential: &str,
        response: &CheckinResponse,
        image: bool,
    ) -> Result<Director, Failure> {
        let pointer = response.director.as_ref().ok_or_else(|| {
            Failure::new(
                Exit::BadAnswer,
                "the server's check-in answer names no director repository; check that server_url is a Ferry server",
            )
        })?;
        // Under server_url's path, so an agent behind a reverse proxy's prefix finds them.
        let join = |path: &str| device.resolve(path).map_err(|e| failure("the check-in answer", e));
        let mut authorization = HeaderValue::from_str(&format!("Bearer {credential}"))
            .map_err(|e| Failure::new(Exit::State, format!("the stored credential: {e}")))?;
        authorization.set_sensitive(true);
        let tuf = self.dirs.state.join("tuf");
        pin_root(&tuf.join("director"), &self.config.trust.director_root).await?;
        pin_root(&tuf.join("image"), &self.config.trust.image_root).await?;
        let updater = |dir: &str, url: &str, targets: Option<&str>| -> Result<Updater, Failure> {
            let mut config = UpdaterConfig::new(tuf.join(dir), join(url)?);
            config.target_base_url = targets.map(join).transpose()?;
            config.headers.insert(AUTHORIZATION, authorization.clone());
            config.client = Some(self.http.clone());
            config.bandwidth_limit = self.config.bandwidth_limit;
            Updater::new(config).map_err(|e| updater_failure(&format!("the {dir} repository"), e))
        };
        let director = updater("director", &pointer.metadata_url, None)?;
        let image_updater = updater("image", &pointer.image_metadata_url, Some(&pointer.image_targets_url))?;
        let mut both = Director::new(director, image_updater);
        if image {
            both.refresh_both().await.map_err(|e| updater_failure("refreshing the signed metadata", e))?;
        } else {
            both.refresh_director().await.map_err(|e| updater_failure("refreshing the director metadata", e))?;
        }
        Ok(both)
    }
}

/// Whether a maintenance window is open at Unix time `at` (always, without one).
pub fn window_open(config: &Config, at: i64) -> bool {
    config.maintenance.as_ref().is_none_or(|m| m.is_open(at, crate::maintenance::local_offset(at)))
}

/// Holds back, like any rolled-back release, each offered release that an older agent's
/// `ferry-agent rollback` recorded as declined in `consent.json` (it knew only the release id;
/// the offer tells its product and version), then forgets it there: one mechanism from then on.
fn adopt_declined(
    store: &mut StateStore,
    state: &mut State,
    state_dir: &Path,
    mut consent: Consent,
    offers: &[Offer],
) -> Result<(), Failure> {
    let mut changed = false;
    for offer in offers {
        if !consent.declined.remove(&offer.release) {
            continue;
        }
        if state.held_back(&offer.product, offer.kind).map(|h| h.release) != Some(offer.release) {
            state.hold_back(crate::state::HeldBack {
                release: offer.release,
                product: offer.product.clone(),
                kind: offer.kind,
                version: offer.version.clone(),
                outcome: crate::state::Outcome::RolledBack {
                    code: crate::state::RollbackCause::Requested.code().to_owned(),
                    message: crate::state::RollbackCause::Requested.message(),
                },
                at: now(),
            });
            changed = true;
        }
    }
    if changed {
        store.save(state).map_err(|e| Failure::new(Exit::State, e))?;
    }
    write_json(&state_dir.join(CONSENT_FILE), &consent)
}

/// Tells the server, once per release, that an offer waits for consent (`deferred`) or that
/// the agent refuses it (`failed`, with the refusal's code). Returns the releases reported so
/// far that are still waiting or refused.
fn report_waiting(
    events: &mut EventQueue,
    plan: &Plan,
    reported: &BTreeSet<ReleaseId>,
) -> Result<BTreeSet<ReleaseId>, Failure> {
    let mut still = BTreeSet::new();
    let waiting = plan
        .awaiting_consent
        .iter()
        .map(|r| (*r, DeviceState::Deferred, None, "waiting for consent (ferry-agent install)".to_owned()));
    let refused =
        plan.refused.iter().map(|r| (r.release, DeviceState::Failed, Some(r.code.to_owned()), r.message.clone()));
    for (release, state, error_code, message) in waiting.chain(refused) {
        still.insert(release);
        if reported.contains(&release) {
            continue;
        }
        let draft = EventDraft { release, state, progress: None, error_code, message: Some(message), at: now() };
        events.push(draft, None).map_err(|e| Failure::new(Exit::State, e))?;
    }
    Ok(still)
}

/// Installs a pinned root into a metadata directory the first time ([`ferry_updater::init`];
/// a newer root the device rotated to is kept).
async fn pin_root(metadata_dir: &Path, root: &Path) -> Result<(), Failure> {
    let bytes = crate::atomic::read_limited(root, ferry_tuf::trusted::DEFAULT_ROOT_MAX)
        .map_err(|e| Failure::new(Exit::Config, format!("cannot read the pinned root {}: {e}", root.display())))?;
    ferry_updater::init(metadata_dir, &bytes).await.map_err(|e| match e {
        ferry_updater::Error::Tuf { .. } => {
            Failure::new(Exit::Config, format!("the pinned root {} is not valid: {e}", root.display()))
        }
        e => updater_failure(&format!("installing the pinned root {}", root.display()), e),
    })?;
    Ok(())
}

/// The version of a persisted, verified timestamp, if any.
fn trusted_version(path: &Path) -> Option<u64> {
    let bytes = crate::atomic::read_private(path).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.pointer("/signed/version")?.as_u64()
}

/// The release whose job ended in this check: the one started (from an instruction or the
/// plan), or the one resumed.
fn ended_release(rest: &Rest, started: Option<ReleaseId>, resumed: Option<ReleaseId>) -> Option<ReleaseId> {
    match rest {
        Rest::Idle(Some(_)) => started.or(resumed),
        _ => None,
    }
}

/// Forgets the consent to `release` once its job ended: a later hold of it is not bypassed by
/// an old consent.
pub fn forget_consent(state_dir: &Path, release: ReleaseId) {
    let path = state_dir.join(CONSENT_FILE);
    if let Some(mut consent) = read_json::<Consent>(&path) {
        if consent.releases.remove(&release) {
            let _ = write_json(&path, &consent);
        }
    }
}

fn summary(rest: &Rest, plan: Option<&Plan>) -> String {
    use crate::state::Outcome;
    let waiting = plan.map_or(0, |p| p.awaiting_consent.len());
    let mut text = match rest {
        Rest::Idle(None) => "nothing to install".to_owned(),
        Rest::Idle(Some(Outcome::Committed)) => "update installed and committed".to_owned(),
        Rest::Idle(Some(Outcome::RolledBack { message, .. })) => format!("update rolled back: {message}"),
        Rest::Idle(Some(Outcome::Failed { code, message })) => format!("update failed ({code}): {message}"),
        Rest::Deferred(d) => format!("update downloaded and waiting: {d:?}"),
        Rest::AwaitingReboot => "update installed; reboot the device to complete it".to_owned(),
        Rest::NeedsImage => "the download could not start: no image repository".to_owned(),
    };
    if waiting > 0 {
        text.push_str(&format!(
            "; {waiting} optional update(s) wait for `ferry-agent install` (see `ferry-agent notify`)"
        ));
    }
    for release in plan.map(|p| p.held_back.as_slice()).unwrap_or_default() {
        text.push_str(&format!(
            "; release {release} is held back: it failed or was rolled back here, and `ferry-agent install {release}` tries it again"
        ));
    }
    text
}

/// Reads a JSON file the agent wrote; `None` when missing, unreadable or a symlink.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&crate::atomic::read_private(path).ok()?).ok()
}

/// Writes a JSON file atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Failure> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("serialisable");
    bytes.push(b'\n');
    crate::atomic::write_file(path, &bytes).map_err(|e| Failure::new(Exit::State, e))
}

/// The boot id, when the system has one. `FERRY_AGENT_BOOT_ID_FILE` names another file (for
/// containers without `/proc/sys/kernel/random`).
pub fn read_boot_id() -> Option<String> {
    let path = std::env::var_os("FERRY_AGENT_BOOT_ID_FILE").map_or_else(|| PathBuf::from(BOOT_ID_FILE), PathBuf::from);
    let text = std::fs::read_to_string(path).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

pub use ferry_core::time::now;

#[cfg(test)]
mod tests {
    use ferry_core::{Classification, ProductName, RebootBehaviour, ReleaseKind};

    use super::*;

    fn offer(id: i64, version: &str) -> Offer {
        Offer {
            release: ReleaseId(id),
            product: ProductName::new("app").unwrap(),
            version: Version::new(version).unwrap(),
            kind: ReleaseKind::Full,
            required: true,
            deadline: None,
            reboot: RebootBehaviour::None,
            classification: Classification::default(),
            notes: String::new(),
            artifacts: vec![],
        }
    }

    /// A release an older agent's `ferry-agent rollback` declined stays out of reach once it is
    /// offered: it becomes a held-back release, and consent.json forgets it.
    #[test]
    fn a_release_declined_by_an_older_agent_is_held_back_when_offered() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::new(dir.path());
        let (mut state, _) = store.load().unwrap();
        let consent = Consent { releases: BTreeSet::new(), declined: BTreeSet::from([ReleaseId(7), ReleaseId(9)]) };
        adopt_declined(&mut store, &mut state, dir.path(), consent, &[offer(7, "1.1"), offer(8, "1.2")]).unwrap();

        let (saved, _) = StateStore::new(dir.path()).load().unwrap();
        let held = saved.held_back(&ProductName::new("app").unwrap(), ReleaseKind::Full).expect("held back");
        assert_eq!((held.release, held.version.as_str()), (ReleaseId(7), "1.1"));
        assert_eq!(held.outcome.device_state(), DeviceState::RolledBack);
        let consent: Consent = read_json(&dir.path().join(CONSENT_FILE)).unwrap();
        assert_eq!(consent.declined, BTreeSet::from([ReleaseId(9)]), "one not offered yet stays");
    }
}
