//! Staged rollouts on the server: what a rollout gives a device at check-in (granting it in
//! the database when its wave is open and the limits allow), the tick that tallies each active
//! rollout and applies the automatic step, and administrators' actions. The rules are
//! `ferry_core::rollout`; this module reads what they need and stores what they decide.

use std::collections::{BTreeMap, HashMap};

use ferry_core::applicability::{self, Approval, DeviceFacts, Need, Staged};
use ferry_core::rollout::{
    self, policy, Action, GrantState, Load, Outcome, Rollout, RolloutId, RolloutState, Tally, TimelineEntry, Transition,
};
use ferry_core::{Approval as StoredApproval, ApprovalAction, Device, DeviceId, DeviceStatus, GroupName, Release};
use ferry_store::{DeviceFilter, GrantOutcome};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How often active rollouts are tallied and stepped: a rollout pauses itself within this long
/// of the failure that crosses its threshold. Each tick reads the target's devices, which is
/// the rollout's main cost on a busy server (BENCHMARKS.md, "Staged rollouts").
pub const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Grant attempts a server skips after a refusal for a limit: at most one refused write per
/// rollout per this many seconds, so a rate-limited rollout does not turn every check-in of
/// its target into a write transaction. The database still decides every grant.
const RETRY_AFTER_LIMIT_SECS: i64 = 1;

/// Per rollout, the time before which this server does not try to grant again.
#[derive(Default)]
pub struct GrantHints(std::sync::Mutex<HashMap<RolloutId, i64>>);

impl GrantHints {
    fn blocked(&self, id: RolloutId, now: i64) -> bool {
        self.0.lock().expect("hints lock").get(&id).is_some_and(|&until| now < until)
    }

    fn block(&self, id: RolloutId, until: i64) {
        self.0.lock().expect("hints lock").insert(id, until);
    }
}

fn facts(device: &Device) -> DeviceFacts<'_> {
    DeviceFacts { platform: device.platform.as_ref(), installed: &device.installed, configs: &device.configs }
}

fn place_wave(rollout: &Rollout, device: &DeviceId, groups: &[GroupName]) -> u32 {
    rollout.wave_of(rollout::place(rollout.id.0 as u64, device), groups)
}

/// What the rollouts targeting `device` (one of its effective `groups`) give it: per release, an install approval (granted)
/// or the reason it waits ([`Approval::Staged`]). With `grant_at`, a device whose wave is open
/// and that has no grant is granted now if the limits allow (check-in); without it nothing
/// is written (downloads, the "why" report, event checks).
///
/// Two rollouts of one product line targeting one device: the newer release wins. Only the
/// rollout of the newest release the device needs (or runs) considers it; older ones skip it,
/// even when the newer one has not reached the device's wave yet.
pub async fn approvals_for(
    st: &AppState,
    device: &Device,
    groups: &[GroupName],
    grant_at: Option<i64>,
) -> ApiResult<RolloutOffers> {
    let mut offers = RolloutOffers::default();
    if device.status != DeviceStatus::Accepted || groups.is_empty() {
        return Ok(offers);
    }
    let rollouts = st.catalogue.rollouts(st.store.as_ref()).await?;
    let facts = facts(device);
    let mut relevant: Vec<(&Rollout, &Release, Need)> = rollouts
        .iter()
        .filter(|(r, _)| r.targets.iter().any(|g| groups.contains(g)))
        .map(|(r, release)| (r, release, applicability::need(&facts, release)))
        .filter(|(_, _, need)| *need != Need::NotApplicable)
        .collect();
    offers.emergency = relevant.iter().any(|(r, _, need)| r.emergency && r.state.is_active() && *need == Need::Needs);
    if relevant.is_empty() {
        return Ok(offers);
    }
    // Newest release first on each line; the first rollout that speaks for a line wins it.
    relevant.sort_by(|a, b| b.1.version.cmp_rank(&a.1.version).then(b.0.id.cmp(&a.0.id)));
    // The device's grants as stored, read only when this server's own knowledge does not
    // settle a question (a cancelled rollout, or a read that may not grant).
    let mut stored: Option<Vec<ferry_core::rollout::Grant>> = None;
    let mut lines_taken: Vec<(&ferry_core::ProductName, bool)> = Vec::new();
    let out = &mut offers.approvals;
    for (rollout, release, need) in relevant {
        let line = (&release.product, release.kind.is_config());
        if lines_taken.contains(&line) {
            continue;
        }
        let approval = if rollout.state == RolloutState::Cancelled {
            // Cancelled: only devices that have started go on.
            if stored.is_none() {
                stored = Some(st.store.device_grants(&device.id).await?);
            }
            let started = stored.iter().flatten().any(|g| g.rollout == rollout.id && g.state != GrantState::Granted);
            if !started {
                continue;
            }
            Approval::Install { deadline: None }
        } else if st.granted.holds(st, rollout.id, &device.id).await? {
            Approval::Install { deadline: None }
        } else if need == Need::Has {
            // Runs it already, without a grant: nothing to give.
            continue;
        } else {
            match decide_grant(st, rollout, &device.id, groups, grant_at).await? {
                // Not granted by this server, and this request may not grant: another replica
                // may have granted it.
                Approval::Staged(Staged { refusal: None, .. }) if grant_at.is_none() => {
                    if stored.is_none() {
                        stored = Some(st.store.device_grants(&device.id).await?);
                    }
                    if stored.iter().flatten().any(|g| g.rollout == rollout.id) {
                        st.granted.add(rollout.id, &device.id);
                        Approval::Install { deadline: None }
                    } else {
                        Approval::Staged(Staged {
                            rollout: rollout.id,
                            wave: place_wave(rollout, &device.id, groups),
                            refusal: None,
                        })
                    }
                }
                decided => decided,
            }
        };
        lines_taken.push(line);
        // At check-in a wait changes no offer; only a closed window is reported back (the
        // device is told when to come back). Reads keep every wait for the "why" report.
        let reported = match approval {
            Approval::Staged(Staged { refusal, .. }) => {
                grant_at.is_none() || matches!(refusal, Some(rollout::Refusal::OutsideWindow { .. }))
            }
            _ => true,
        };
        if reported {
            out.push((release.clone(), approval));
        }
    }
    Ok(offers)
}

/// What the rollouts targeting a device give it.
#[derive(Default)]
pub struct RolloutOffers {
    /// Per release, an install approval (granted) or why it waits.
    pub approvals: Vec<(Release, Approval)>,
    /// An active emergency rollout targets the device with a release it does not run yet: its
    /// check-ins then come at least every [`EMERGENCY_CHECKIN_SECS`].
    pub emergency: bool,
}

/// Per rollout, the devices this server knows hold a grant. A grant is never withdrawn, so a
/// device found here holds one, and the check-in of a granted device needs no query; a device
/// not found may still have been granted by another server sharing the database, which a
/// grant attempt (answered `Existing`) or a read of its grants tells. Each rollout's set is
/// loaded from the database on first use.
#[derive(Default)]
pub struct GrantedSets(std::sync::Mutex<HashMap<RolloutId, std::collections::HashSet<DeviceId>>>);

impl GrantedSets {
    async fn holds(&self, st: &AppState, rollout: RolloutId, device: &DeviceId) -> ApiResult<bool> {
        if let Some(set) = self.0.lock().expect("granted lock").get(&rollout) {
            return Ok(set.contains(device));
        }
        let loaded: std::collections::HashSet<DeviceId> =
            st.store.rollout_grants(rollout).await?.into_iter().map(|g| g.device).collect();
        let mut sets = self.0.lock().expect("granted lock");
        // Another request may have loaded it (and added to it) meanwhile: keep the union.
        let set = sets.entry(rollout).or_default();
        set.extend(loaded);
        Ok(set.contains(device))
    }

    fn add(&self, rollout: RolloutId, device: &DeviceId) {
        if let Some(set) = self.0.lock().expect("granted lock").get_mut(&rollout) {
            set.insert(device.clone());
        }
    }
}

async fn decide_grant(
    st: &AppState,
    rollout: &Rollout,
    device: &DeviceId,
    groups: &[GroupName],
    grant_at: Option<i64>,
) -> ApiResult<Approval> {
    let wave = place_wave(rollout, device, groups);
    let staged = |refusal| Approval::Staged(Staged { rollout: rollout.id, wave, refusal });
    // Decided locally first with no load: a later wave or a paused rollout needs no query.
    if let Err(refusal) = policy::may_grant(rollout, wave, Load::default()) {
        return Ok(staged(Some(refusal)));
    }
    if !rollout.emergency {
        let now = st.clock.now();
        let index = st.catalogue.group_index(st.store.as_ref()).await?;
        if let Some(opens_at) = index.window_opens(groups, now).filter(|&at| at > now) {
            return Ok(staged(Some(rollout::Refusal::OutsideWindow { opens_at })));
        }
    }
    let Some(now) = grant_at else { return Ok(staged(None)) };
    if st.grant_hints.blocked(rollout.id, now) {
        return Ok(staged(None));
    }
    match st.store.grant(rollout.id, device, wave, now).await? {
        GrantOutcome::Granted(_) | GrantOutcome::Existing(_) => {
            st.granted.add(rollout.id, device);
            Ok(Approval::Install { deadline: None })
        }
        GrantOutcome::Refused(refusal) => {
            if matches!(refusal, rollout::Refusal::RateLimited | rollout::Refusal::TooManyInProgress) {
                st.grant_hints.block(rollout.id, now + RETRY_AFTER_LIMIT_SECS);
            }
            Ok(staged(Some(refusal)))
        }
    }
}

/// The longest check-in interval of a device an emergency rollout has yet to reach.
pub const EMERGENCY_CHECKIN_SECS: u64 = 300;

/// The devices in the rollout's target now (for waking them when an emergency starts).
pub async fn target_devices(st: &AppState, rollout: &Rollout) -> ApiResult<Vec<DeviceId>> {
    Ok(population(st, rollout).await?.into_keys().collect())
}

/// Every accepted device whose effective groups include one of the rollout's targets: the
/// static members of the targets and of the groups below them, and, when a dynamic group is
/// among those, every device its filter matches (which takes a pass over the fleet).
/// Each with its effective groups.
async fn population(st: &AppState, rollout: &Rollout) -> ApiResult<BTreeMap<DeviceId, (Device, Vec<GroupName>)>> {
    let index = st.catalogue.group_index(st.store.as_ref()).await?;
    let now = st.clock.now();
    // The groups whose devices the targets reach: each group with a target among itself and
    // its ancestors.
    let reached: Vec<&ferry_core::Group> = index
        .groups()
        .values()
        .filter(|g| index.closure(&g.name).iter().any(|a| rollout.targets.contains(a)))
        .collect();
    let any_dynamic = reached.iter().any(|g| g.filter.is_some());
    let scans: Vec<Option<GroupName>> =
        if any_dynamic { vec![None] } else { reached.iter().map(|g| Some(g.name.clone())).collect() };
    let mut devices = BTreeMap::new();
    for group in scans {
        let mut after = None;
        loop {
            let filter = DeviceFilter {
                status: Some(DeviceStatus::Accepted),
                group: group.clone(),
                after: after.clone(),
                limit: 1000,
                ..DeviceFilter::default()
            };
            let page = st.store.list_devices(&filter).await?;
            let full = page.len() == 1000;
            after = page.last().map(|d| d.id.clone());
            for device in page {
                let effective = index.effective(&device, now);
                if group.is_some() || effective.iter().any(|g| rollout.targets.contains(g)) {
                    devices.insert(device.id.clone(), (device, effective));
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok(devices)
}

/// A rollout's tally per wave at `now`, and, for the open-grant recount, how many grants
/// were under way among how many read.
pub struct Progress {
    /// One tally per wave (the wave's own devices).
    pub waves: Vec<Tally>,
    open: u64,
    seen: u64,
}

/// Tallies a rollout: every device of its target that needs the release or runs it, in its
/// wave, counted by its grant's outcome at `now`.
pub async fn progress(st: &AppState, rollout: &Rollout, release: &Release, now: i64) -> ApiResult<Progress> {
    let grants: HashMap<DeviceId, ferry_core::rollout::Grant> =
        st.store.rollout_grants(rollout.id).await?.into_iter().map(|g| (g.device.clone(), g)).collect();
    let seen = grants.len() as u64;
    let open = grants
        .values()
        .filter(|g| policy::outcome(g.state, g.updated_at, rollout.commit_timeout_secs, now) == Outcome::Open)
        .count() as u64;
    let mut waves = vec![Tally::default(); rollout.waves.len()];
    for (id, (device, groups)) in population(st, rollout).await? {
        let need = applicability::need(&facts(&device), release);
        let grant = grants.get(&id);
        if need == Need::NotApplicable && grant.is_none() {
            continue;
        }
        let wave = grant.map_or_else(|| place_wave(rollout, &id, &groups), |g| g.wave) as usize;
        let outcome = grant.map(|g| policy::outcome(g.state, g.updated_at, rollout.commit_timeout_secs, now));
        if let Some(tally) = waves.get_mut(wave) {
            tally.count(outcome, need == Need::Has);
        }
    }
    Ok(Progress { waves, open, seen })
}

/// Tallies and steps every running rollout (and those at a gate, which failures can still
/// pause). Several servers may tick the same rollout: state changes are compare-and-set, so
/// each step happens once.
pub async fn tick(st: &AppState) -> ApiResult<()> {
    let now = st.clock.now();
    for rollout in st.store.list_rollouts(None, true).await? {
        if !matches!(rollout.state, RolloutState::Running | RolloutState::AtGate) {
            continue;
        }
        let Some(release) = st.store.get_release(rollout.release).await? else { continue };
        let progress = progress(st, &rollout, &release, now).await?;
        st.store.recount_open_grants(rollout.id, progress.open, progress.seen).await?;
        if let Some(t) = policy::step(&rollout, &progress.waves, now) {
            apply(st, &rollout, t, None, now).await?;
        }
    }
    Ok(())
}

/// Applies a transition decided on `rollout` (compare-and-set on its revision). On completion
/// the release is approved for install for the target groups that have no approval of it
/// yet, so devices that join later get it as from any approval. Returns the rollout after,
/// or None when another server or administrator changed it first.
pub async fn apply(
    st: &AppState,
    rollout: &Rollout,
    t: Transition,
    by: Option<String>,
    now: i64,
) -> ApiResult<Option<Rollout>> {
    let entry = TimelineEntry { at: now, state: t.state, wave: t.wave, cause: t.cause, by };
    let Some(after) = st.store.transition_rollout(rollout.id, rollout.revision, &entry, t.wave_opened).await? else {
        return Ok(None);
    };
    tracing::info!(rollout = %rollout.id, state = after.state.as_str(), wave = after.wave + 1, cause = %entry.cause,
        "rollout changed state");
    if after.state == RolloutState::Completed {
        for group in &after.targets {
            if st.store.list_approvals(Some(after.release), Some(group)).await?.is_empty() {
                st.store
                    .set_approval(&StoredApproval {
                        release: after.release,
                        group: group.clone(),
                        action: ApprovalAction::Install,
                        deadline: None,
                        approved_by: format!("rollout {}", after.id),
                        approved_at: now,
                    })
                    .await?;
            }
        }
    }
    st.catalogue.invalidate();
    Ok(Some(after))
}

/// An administrator's action, applied now; a refusal says why.
pub async fn act(st: &AppState, id: RolloutId, action: Action, note: &str, by: &str) -> ApiResult<Rollout> {
    let now = st.clock.now();
    // A concurrent change (a tick, another administrator) moves the revision: read again and
    // decide again, a bounded number of times.
    for _ in 0..5 {
        let rollout = load(st, id).await?;
        let t = policy::apply(&rollout, action, note).map_err(|e| ApiError::conflict(e.to_string()))?;
        if let Some(after) = apply(st, &rollout, t, Some(by.to_owned()), now).await? {
            return Ok(after);
        }
    }
    Err(ApiError::conflict(format!("rollout {id} kept changing while {} was applied; try again", action.as_str())))
}

/// Cancels `rollout` because its release was marked bad (retrying if it changes meanwhile);
/// a rollout that has finished in between is left as it is.
pub async fn stop_for_bad_release(st: &AppState, mut rollout: Rollout) -> ApiResult<()> {
    let now = st.clock.now();
    for _ in 0..5 {
        if !rollout.state.is_active() {
            return Ok(());
        }
        let t = Transition {
            state: RolloutState::Cancelled,
            wave: rollout.wave,
            wave_opened: false,
            cause: ferry_core::rollout::Cause::ReleaseMarkedBad,
        };
        if apply(st, &rollout, t, None, now).await?.is_some() {
            return Ok(());
        }
        rollout = load(st, rollout.id).await?;
    }
    Err(ApiError::conflict(format!(
        "rollout {} kept changing while it was being cancelled; mark the release bad again",
        rollout.id
    )))
}

/// The rollout, or a not-found error that says how to list them.
pub async fn load(st: &AppState, id: RolloutId) -> ApiResult<Rollout> {
    st.store
        .get_rollout(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("rollout {id} does not exist; `ferry rollout list` shows them")))
}
