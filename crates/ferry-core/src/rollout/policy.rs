//! The rules of a staged rollout as pure functions: how a grant ends up counted, when a wave
//! moves on or the rollout pauses itself, what an administrator's action does, and whether one
//! more device may be granted now. The server feeds them what it read from the database and
//! stores what they decide; nothing here knows about either.

use serde::{Deserialize, Serialize};

use super::model::{Cause, GrantState, Rollout, RolloutState};
use super::ALL;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// How a grant counts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still under way.
    Open,
    /// Committed.
    Committed,
    /// Failed or rolled back.
    Failed,
    /// Granted or in progress for longer than the rollout's commit timeout without a report:
    /// counted as failed, so that silent or hung devices trip the failure threshold.
    TimedOut,
}

/// How a grant in `state`, last updated at `updated_at`, counts at `now`. A device waiting for
/// a window, consent or a reboot is not timed out: that wait is expected.
pub fn outcome(state: GrantState, updated_at: i64, timeout_secs: u64, now: i64) -> Outcome {
    match state {
        GrantState::Committed => Outcome::Committed,
        GrantState::Failed => Outcome::Failed,
        GrantState::Waiting => Outcome::Open,
        GrantState::Granted | GrantState::InProgress => {
            if now.saturating_sub(updated_at) >= timeout_secs.min(i64::MAX as u64) as i64 {
                Outcome::TimedOut
            } else {
                Outcome::Open
            }
        }
    }
}

/// The devices of one wave and how they stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Tally {
    /// Target devices of the wave that need the release or already run it.
    pub eligible: u64,
    /// Granted so far.
    pub granted: u64,
    /// Under way.
    pub in_progress: u64,
    /// Committed, or running the release already.
    pub committed: u64,
    /// Failed or rolled back.
    pub failed: u64,
    /// Did not commit within the timeout (also counted in `failed`).
    pub timed_out: u64,
}

impl Tally {
    /// Counts one eligible device of the wave: its grant's outcome, or `None` when it has no
    /// grant (`already` if it runs the release anyway, which counts as committed).
    pub fn count(&mut self, grant: Option<Outcome>, already: bool) {
        self.eligible += 1;
        match grant {
            None if already => self.committed += 1,
            None => {}
            Some(o) => {
                self.granted += 1;
                match o {
                    Outcome::Open => self.in_progress += 1,
                    Outcome::Committed => self.committed += 1,
                    Outcome::Failed => self.failed += 1,
                    Outcome::TimedOut => {
                        self.failed += 1;
                        self.timed_out += 1;
                    }
                }
            }
        }
    }

    fn add(&mut self, other: &Tally) {
        self.eligible += other.eligible;
        self.granted += other.granted;
        self.in_progress += other.in_progress;
        self.committed += other.committed;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
    }
}

/// `part / whole >= share / ALL`, exactly (no floating point at the boundary). An empty whole
/// meets any share.
fn reaches(part: u64, whole: u64, share: u32) -> bool {
    u128::from(part) * u128::from(ALL) >= u128::from(whole) * u128::from(share)
}

/// A state change a rollout makes by itself, or an administrator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub state: RolloutState,
    /// The new current wave.
    pub wave: u32,
    /// Whether a new wave opened (its soak time starts now).
    pub wave_opened: bool,
    /// Why.
    pub cause: Cause,
}

/// What a rollout does by itself given `tallies` (one per wave) at `now`, if anything:
///
/// 1. While it is running or at a gate, it pauses when the failures among admitted devices
///    (those of the current wave and the waves before it) reach the current wave's failure
///    threshold: at least `failure_min` devices *and* at least the `failure` share.
/// 2. While it is running, once the current wave has soaked and its committed share reaches
///    the wave's success threshold, it completes (last wave), stops at the next wave's manual
///    gate, or opens the next wave.
pub fn step(rollout: &Rollout, tallies: &[Tally], now: i64) -> Option<Transition> {
    if !matches!(rollout.state, RolloutState::Running | RolloutState::AtGate) {
        return None;
    }
    let current = rollout.wave as usize;
    let wave = rollout.waves.get(current)?;
    let mut admitted = Tally::default();
    for t in tallies.iter().take(current + 1) {
        admitted.add(t);
    }
    if admitted.failed >= u64::from(wave.failure_min.max(1))
        && reaches(admitted.failed, admitted.eligible, wave.failure)
    {
        return Some(Transition {
            state: RolloutState::Paused,
            wave: rollout.wave,
            wave_opened: false,
            cause: Cause::FailureThreshold { failed: admitted.failed, admitted: admitted.eligible },
        });
    }
    if rollout.state == RolloutState::AtGate {
        return None;
    }
    let this = tallies.get(current).copied().unwrap_or_default();
    let soaked = now.saturating_sub(rollout.wave_started_at) >= wave.soak_secs.min(i64::MAX as u64) as i64;
    if !soaked || !reaches(this.committed, this.eligible, wave.success) {
        return None;
    }
    let cause = Cause::Succeeded { committed: this.committed, eligible: this.eligible };
    Some(match rollout.waves.get(current + 1) {
        None => Transition { state: RolloutState::Completed, wave: rollout.wave, wave_opened: false, cause },
        Some(next) if next.manual_gate => {
            Transition { state: RolloutState::AtGate, wave: rollout.wave, wave_opened: false, cause }
        }
        Some(_) => Transition { state: RolloutState::Running, wave: rollout.wave + 1, wave_opened: true, cause },
    })
}

/// What an administrator can do to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Action {
    /// Stop new grants, in the current wave too.
    Pause,
    /// Grant again after a pause.
    Resume,
    /// Open the next wave now (or complete from the last), whatever the thresholds say.
    Advance,
    /// Stop for good.
    Cancel,
}

impl Action {
    /// The lower-case name used on the wire and in the timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Advance => "advance",
            Self::Cancel => "cancel",
        }
    }
}

/// Why an administrator's action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The rollout has finished.
    #[error("the rollout is {}; it can no longer {}", state.as_str(), action.as_str())]
    Finished { state: RolloutState, action: Action },
    /// The action does not apply in this state.
    #[error("the rollout is {}, so there is nothing to {}{hint}", state.as_str(), action.as_str())]
    NotApplicable { state: RolloutState, action: Action, hint: &'static str },
}

/// The transition an administrator's `action` makes, or why it does not apply.
pub fn apply(rollout: &Rollout, action: Action, note: &str) -> Result<Transition, ActionError> {
    use RolloutState::*;
    let state = rollout.state;
    if !state.is_active() {
        return Err(ActionError::Finished { state, action });
    }
    let cause = Cause::Admin { action: action.as_str().to_owned(), note: note.to_owned() };
    let stay = |to| Transition { state: to, wave: rollout.wave, wave_opened: false, cause: cause.clone() };
    match (action, state) {
        (Action::Pause, Running | AtGate) => Ok(stay(Paused)),
        (Action::Resume, Paused) => Ok(stay(Running)),
        (Action::Advance, Running | AtGate) => {
            let next = rollout.wave + 1;
            Ok(if next as usize >= rollout.waves.len() {
                stay(Completed)
            } else {
                Transition { state: Running, wave: next, wave_opened: true, cause: cause.clone() }
            })
        }
        (Action::Cancel, _) => Ok(stay(Cancelled)),
        (Action::Pause, Paused) => Err(ActionError::NotApplicable { state, action, hint: "; it is already paused" }),
        (Action::Resume, _) => {
            Err(ActionError::NotApplicable { state, action, hint: "; only a paused rollout resumes" })
        }
        (Action::Advance, Paused) => {
            Err(ActionError::NotApplicable { state, action, hint: "; resume it first, then advance" })
        }
        (_, Completed | Cancelled) => unreachable!("finished states are refused above"),
    }
}

/// The grants a rollout has made, as the database counts them when deciding one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Grants made in the last rate period.
    pub granted_in_period: u64,
    /// Grants still under way and not timed out.
    pub open: u64,
}

/// Why a device was not granted the release now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Refusal {
    /// The rollout is paused or cancelled.
    NotGranting {
        /// Its state.
        state: RolloutState,
    },
    /// The device belongs to a wave that has not opened.
    LaterWave {
        /// The device's wave (0-based).
        wave: u32,
    },
    /// The rate limit is used up for this period.
    RateLimited,
    /// Too many devices have the update under way.
    TooManyInProgress,
    /// The device's maintenance window is closed (the server decides this before
    /// [`may_grant`], from the windows of the device's groups).
    OutsideWindow {
        /// Unix seconds at which the next window opens.
        opens_at: i64,
    },
}

/// Whether a device of wave `device_wave` may be granted now, given the `load` the database
/// counted. Paused and cancelled rollouts grant nothing; emergencies ignore the limits.
pub fn may_grant(rollout: &Rollout, device_wave: u32, load: Load) -> Result<(), Refusal> {
    match rollout.state {
        RolloutState::Running | RolloutState::AtGate => {
            if device_wave > rollout.wave {
                return Err(Refusal::LaterWave { wave: device_wave });
            }
        }
        RolloutState::Completed => {}
        state @ (RolloutState::Paused | RolloutState::Cancelled) => return Err(Refusal::NotGranting { state }),
    }
    if rollout.emergency {
        return Ok(());
    }
    if rollout.limits.rate.is_some_and(|r| load.granted_in_period >= u64::from(r.count)) {
        return Err(Refusal::RateLimited);
    }
    if rollout.limits.max_in_progress.is_some_and(|m| load.open >= u64::from(m)) {
        return Err(Refusal::TooManyInProgress);
    }
    Ok(())
}

/// Longest soak time, commit timeout or rate period: 30 days.
pub const MAX_PERIOD_SECS: u64 = 30 * 86_400;
/// Shortest commit timeout: a minute.
pub const MIN_COMMIT_TIMEOUT_SECS: u64 = 60;
/// Most target groups of one rollout.
pub const MAX_TARGETS: usize = 64;

/// Why a rollout's plan was refused; each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Something in the plan is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a rollout's plan: 1 to 20 waves whose shares grow strictly up to the whole target,
/// thresholds within 0 to 100 %, no gate before the first wave (it opens at creation), soak
/// times and periods up to 30 days, a commit timeout of a minute to 30 days, limits of at
/// least one, and 1 to 64 target groups.
pub fn check_plan(rollout: &Rollout) -> Result<(), PlanError> {
    let bad = |m: String| Err(PlanError::Invalid(m));
    if rollout.targets.is_empty() || rollout.targets.len() > MAX_TARGETS {
        return bad(format!("give 1 to {MAX_TARGETS} target groups, not {}", rollout.targets.len()));
    }
    if rollout.waves.is_empty() || rollout.waves.len() > super::MAX_WAVES {
        return bad(format!("give 1 to {} waves, not {}", super::MAX_WAVES, rollout.waves.len()));
    }
    let mut before = 0;
    let mut shares_began = false;
    for (i, w) in rollout.waves.iter().enumerate() {
        let n = i + 1;
        if w.group.is_some() {
            if shares_began || w.share != 0 {
                return bad(format!("wave {n}: group waves come first, before the share waves, and have share 0"));
            }
        } else if w.share <= before || w.share > ALL {
            return bad(format!(
                "wave {n}: share {} must be more than the wave before ({before}) and at most {ALL} basis points; \
                 shares are cumulative",
                w.share
            ));
        }
        if w.group.is_none() {
            shares_began = true;
            before = w.share;
        }
        if w.success > ALL || w.failure > ALL {
            return bad(format!("wave {n}: thresholds are basis points from 0 to {ALL} (100 %)"));
        }
        if w.soak_secs > MAX_PERIOD_SECS {
            return bad(format!("wave {n}: a soak time of {} s is more than 30 days", w.soak_secs));
        }
        if i == 0 && w.manual_gate {
            return bad("wave 1 opens when the rollout is created; gate a later wave".to_owned());
        }
    }
    if before != ALL {
        return bad(format!("the last wave must reach the whole target ({ALL} basis points), not {before}"));
    }
    if !(MIN_COMMIT_TIMEOUT_SECS..=MAX_PERIOD_SECS).contains(&rollout.commit_timeout_secs) {
        return bad(format!(
            "a commit timeout of {} s is out of range: give a minute to 30 days",
            rollout.commit_timeout_secs
        ));
    }
    if let Some(rate) = rollout.limits.rate {
        if rate.count == 0 || rate.period_secs == 0 || rate.period_secs > MAX_PERIOD_SECS {
            return bad("a rate limit needs at least one grant per period of 1 s to 30 days".to_owned());
        }
    }
    if rollout.limits.max_in_progress == Some(0) {
        return bad("max_in_progress must be at least 1 (omit it for no cap)".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rollout::model::{Limits, Rate, RolloutId, Wave};
    use crate::ReleaseId;

    fn wave(share: u32, gate: bool) -> Wave {
        Wave { group: None, share, soak_secs: 60, success: 9000, failure: 1000, failure_min: 3, manual_gate: gate }
    }

    fn rollout(state: RolloutState, wave_index: u32) -> Rollout {
        Rollout {
            id: RolloutId(1),
            release: ReleaseId(1),
            targets: vec!["all".parse().unwrap()],
            waves: vec![wave(100, false), wave(1000, false), wave(5000, true), wave(ALL, false)],
            limits: Limits::default(),
            commit_timeout_secs: 3600,
            emergency: false,
            state,
            wave: wave_index,
            wave_started_at: 1000,
            created_by: "admin".into(),
            created_at: 0,
            revision: 1,
        }
    }

    fn tally(eligible: u64, committed: u64, failed: u64) -> Tally {
        Tally { eligible, granted: committed + failed, committed, failed, ..Tally::default() }
    }

    #[test]
    fn plans_are_checked_with_a_reason() {
        assert_eq!(check_plan(&rollout(RolloutState::Running, 0)), Ok(()));
        let refused = |change: fn(&mut Rollout), needle: &str| {
            let mut r = rollout(RolloutState::Running, 0);
            change(&mut r);
            let message = check_plan(&r).unwrap_err().to_string();
            assert!(message.contains(needle), "{message}");
        };
        refused(|r| r.targets.clear(), "target groups");
        refused(|r| r.waves.clear(), "waves");
        refused(|r| r.waves[1].share = 100, "wave 2");
        refused(|r| r.waves[3].share = 9000, "whole target");
        refused(|r| r.waves[0].manual_gate = true, "gate a later wave");
        refused(|r| r.waves[2].failure = ALL + 1, "wave 3");
        refused(|r| r.waves[0].soak_secs = MAX_PERIOD_SECS + 1, "30 days");
        refused(|r| r.commit_timeout_secs = 59, "commit timeout");
        refused(|r| r.limits.rate = Some(Rate { count: 0, period_secs: 60 }), "rate limit");
        refused(|r| r.limits.max_in_progress = Some(0), "max_in_progress");
        refused(|r| r.waves[1].group = Some("pilot".parse().unwrap()), "group waves come first");
        refused(
            |r| {
                r.waves = vec![wave(0, false)]
                    .into_iter()
                    .map(|w| Wave { group: Some("pilot".parse().unwrap()), ..w })
                    .collect()
            },
            "whole target",
        );
    }

    #[test]
    fn group_waves_come_first_and_take_their_members() {
        let mut r = rollout(RolloutState::Running, 0);
        r.waves.insert(0, Wave { group: Some("pilot".parse().unwrap()), ..wave(0, false) });
        r.waves[3].manual_gate = false;
        assert_eq!(check_plan(&r), Ok(()));
        let pilot: Vec<crate::GroupName> = vec!["pilot".parse().unwrap()];
        assert_eq!(r.wave_of(9_999, &pilot), 0, "a pilot member is in the pilot wave whatever its place");
        assert_eq!(r.wave_of(50, &[]), 1);
        assert_eq!(r.wave_of(9_999, &[]), 4);
    }

    #[test]
    fn a_grant_times_out_unless_it_is_waiting() {
        assert_eq!(outcome(GrantState::Granted, 100, 50, 149), Outcome::Open);
        assert_eq!(outcome(GrantState::Granted, 100, 50, 150), Outcome::TimedOut);
        assert_eq!(outcome(GrantState::InProgress, 100, 50, 10_000), Outcome::TimedOut);
        assert_eq!(outcome(GrantState::Waiting, 100, 50, 10_000), Outcome::Open);
        assert_eq!(outcome(GrantState::Committed, 100, 50, 10_000), Outcome::Committed);
        assert_eq!(outcome(GrantState::Failed, 100, 50, 101), Outcome::Failed);
    }

    #[test]
    fn a_wave_moves_on_after_soaking_with_enough_commits() {
        let r = rollout(RolloutState::Running, 0);
        let tallies = [tally(10, 9, 0), tally(90, 0, 0)];
        assert_eq!(step(&r, &tallies, 1059), None, "not soaked yet");
        let t = step(&r, &tallies, 1060).unwrap();
        assert_eq!((t.state, t.wave, t.wave_opened), (RolloutState::Running, 1, true));
        assert_eq!(t.cause, Cause::Succeeded { committed: 9, eligible: 10 });
        assert_eq!(step(&r, &[tally(10, 8, 0)], 5000), None, "80 % is below the 90 % success threshold");
        // Into a gated wave: stop at the gate; at the gate nothing moves by itself.
        let r = rollout(RolloutState::Running, 1);
        let t = step(&r, &[tally(10, 10, 0), tally(90, 90, 0)], 2000).unwrap();
        assert_eq!((t.state, t.wave), (RolloutState::AtGate, 1));
        assert_eq!(step(&rollout(RolloutState::AtGate, 1), &[tally(10, 10, 0), tally(90, 90, 0)], 9999), None);
        // The last wave completes.
        let t = step(&rollout(RolloutState::Running, 3), &[tally(1, 1, 0); 4], 2000).unwrap();
        assert_eq!(t.state, RolloutState::Completed);
    }

    #[test]
    fn an_empty_wave_moves_on_after_its_soak() {
        let t = step(&rollout(RolloutState::Running, 0), &[Tally::default()], 1060).unwrap();
        assert_eq!(t.wave, 1);
    }

    #[test]
    fn the_failure_threshold_needs_the_share_and_the_count() {
        let r = rollout(RolloutState::Running, 1);
        // 10 % of 30 admitted is 3: both met at exactly the boundary.
        let t = step(&r, &[tally(10, 0, 1), tally(20, 0, 2)], 1001).unwrap();
        assert_eq!(t.state, RolloutState::Paused);
        assert_eq!(t.cause, Cause::FailureThreshold { failed: 3, admitted: 30 });
        // One below the share: 3 of 31 is under 10 %.
        assert_eq!(step(&r, &[tally(10, 0, 1), tally(21, 0, 2)], 1001), None);
        // The share but not the count: 2 of 2.
        assert_eq!(step(&r, &[tally(1, 0, 1), tally(1, 0, 1)], 1001), None);
        // Failures pause a rollout waiting at a gate too, but not a paused one again.
        assert_eq!(
            step(&rollout(RolloutState::AtGate, 1), &[tally(3, 0, 3)], 1001).unwrap().state,
            RolloutState::Paused
        );
        assert_eq!(step(&rollout(RolloutState::Paused, 1), &[tally(3, 0, 3)], 1001), None);
    }

    #[test]
    fn administrators_actions_apply_only_where_they_mean_something() {
        let paused = apply(&rollout(RolloutState::Running, 1), Action::Pause, "").unwrap();
        assert_eq!((paused.state, paused.wave), (RolloutState::Paused, 1));
        assert!(apply(&rollout(RolloutState::Paused, 1), Action::Pause, "").is_err());
        assert_eq!(apply(&rollout(RolloutState::Paused, 1), Action::Resume, "").unwrap().state, RolloutState::Running);
        let message = apply(&rollout(RolloutState::Paused, 1), Action::Advance, "").unwrap_err().to_string();
        assert!(message.contains("resume it first"), "{message}");
        let advanced = apply(&rollout(RolloutState::AtGate, 1), Action::Advance, "go").unwrap();
        assert_eq!((advanced.state, advanced.wave, advanced.wave_opened), (RolloutState::Running, 2, true));
        assert_eq!(
            apply(&rollout(RolloutState::Running, 3), Action::Advance, "").unwrap().state,
            RolloutState::Completed
        );
        for finished in [RolloutState::Completed, RolloutState::Cancelled] {
            for action in [Action::Pause, Action::Resume, Action::Advance, Action::Cancel] {
                assert!(matches!(apply(&rollout(finished, 0), action, ""), Err(ActionError::Finished { .. })));
            }
        }
    }

    fn states() -> impl Strategy<Value = RolloutState> {
        prop_oneof![
            Just(RolloutState::Running),
            Just(RolloutState::AtGate),
            Just(RolloutState::Paused),
            Just(RolloutState::Completed),
            Just(RolloutState::Cancelled),
        ]
    }

    proptest! {
        /// A paused or cancelled rollout grants nothing, whatever the load and the wave.
        #[test]
        fn paused_or_cancelled_grants_nothing(wave in 0u32..4, device_wave in 0u32..4, period in 0u64..10, open in 0u64..10, emergency: bool) {
            for state in [RolloutState::Paused, RolloutState::Cancelled] {
                let mut r = rollout(state, wave);
                r.emergency = emergency;
                let load = Load { granted_in_period: period, open };
                prop_assert!(may_grant(&r, device_wave, load).is_err());
            }
        }

        /// Granting one device at a time, each grant counted before the next decision, never
        /// exceeds the rate limit or the in-progress cap, and no device of an unopened wave is
        /// granted while the rollout is staged.
        #[test]
        fn grants_never_exceed_a_limit(
            state in states(), wave in 0u32..4, count in 1u32..20, cap in 1u32..20,
            attempts in proptest::collection::vec((0u32..4, any::<bool>()), 0..100),
        ) {
            let mut r = rollout(state, wave);
            r.limits = Limits { rate: Some(Rate { count, period_secs: 60 }), max_in_progress: Some(cap) };
            let mut load = Load::default();
            for (device_wave, finishes) in attempts {
                if may_grant(&r, device_wave, load).is_ok() {
                    prop_assert!(state.is_active() || state == RolloutState::Completed);
                    prop_assert!(state == RolloutState::Completed || device_wave <= wave);
                    load.granted_in_period += 1;
                    load.open += 1;
                    prop_assert!(load.granted_in_period <= u64::from(count));
                    prop_assert!(load.open <= u64::from(cap));
                }
                if finishes && load.open > 0 {
                    load.open -= 1;
                }
            }
        }

        /// The failure threshold holds exactly at its boundary: it pauses iff the failures
        /// reach both the count and the share.
        #[test]
        fn failure_threshold_boundary(eligible in 0u64..500, failed in 0u64..500, share in 0u32..=ALL, min in 0u32..20) {
            let failed = failed.min(eligible);
            let mut r = rollout(RolloutState::Running, 0);
            r.waves[0].failure = share;
            r.waves[0].failure_min = min;
            r.waves[0].soak_secs = u64::MAX;
            let paused = step(&r, &[tally(eligible, 0, failed)], 2000).is_some_and(|t| t.state == RolloutState::Paused);
            let by_share = (failed as f64) * f64::from(ALL) >= (eligible as f64) * f64::from(share);
            prop_assert_eq!(paused, failed >= u64::from(min.max(1)) && by_share);
        }

        /// Likewise the success threshold, once soaked.
        #[test]
        fn success_threshold_boundary(eligible in 0u64..500, committed in 0u64..500, share in 0u32..=ALL) {
            let committed = committed.min(eligible);
            let mut r = rollout(RolloutState::Running, 0);
            r.waves[0].success = share;
            let moved = step(&r, &[tally(eligible, committed, 0)], 1060).is_some();
            prop_assert_eq!(moved, (committed as f64) * f64::from(ALL) >= (eligible as f64) * f64::from(share));
        }
    }
}
