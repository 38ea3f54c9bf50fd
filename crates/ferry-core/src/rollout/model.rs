//! The records of a staged rollout: its plan (waves, thresholds, limits), its state, the
//! grants it made and the timeline of its state changes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalogue::ReleaseId;
use crate::device::DeviceState;
use crate::names::{DeviceId, GroupName};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A rollout's server-assigned identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RolloutId(pub i64);

impl fmt::Display for RolloutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl RolloutId {
    /// Parses a rollout id as people type it: a positive whole number.
    pub fn parse(s: &str) -> Option<Self> {
        s.trim().parse::<i64>().ok().filter(|&id| id > 0).map(Self)
    }
}

/// One wave of a rollout: the members of a group (a pilot ring), or a cumulative share of
/// the target. Group waves come first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Wave {
    /// A group wave: the target's devices in this group (static, dynamic or inherited
    /// membership). Its `share` is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupName>,
    /// For a share wave, the cumulative share of the target it reaches, in basis points
    /// (10,000 = all).
    pub share: u32,
    /// Seconds the wave must run before the rollout may move on.
    pub soak_secs: u64,
    /// Share of the wave's devices (basis points) that must have committed the release before
    /// the rollout moves on.
    pub success: u32,
    /// Share of the admitted devices (basis points) whose failure pauses the rollout ...
    pub failure: u32,
    /// ... once at least this many have failed.
    pub failure_min: u32,
    /// The wave opens only when an administrator advances the rollout to it.
    pub manual_gate: bool,
}

/// How fast a rollout may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Limits {
    /// At most `count` devices granted per `period_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// At most this many devices with the update under way (granted, not yet committed or
    /// failed) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_progress: Option<u32>,
}

/// `count` grants per `period_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Rate {
    /// Grants per period.
    pub count: u32,
    /// The period, in seconds.
    pub period_secs: u64,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum RolloutState {
    /// Granting to the devices of the current wave and the waves before it.
    Running,
    /// The current wave met its thresholds; the next wave has a manual gate. Devices already
    /// admitted are still granted.
    AtGate,
    /// No new grants until an administrator resumes it.
    Paused,
    /// Every wave is open: the release goes to the whole target.
    Completed,
    /// Stopped for good: devices that have not started skip the release.
    Cancelled,
}

impl RolloutState {
    /// The snake-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::AtGate => "at_gate",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::AtGate, Self::Paused, Self::Completed, Self::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    /// Running, at a gate or paused: it may still change.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::AtGate | Self::Paused)
    }
}

/// A staged rollout of one release to a set of groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Rollout {
    /// Its id.
    pub id: RolloutId,
    /// The release it rolls out.
    pub release: ReleaseId,
    /// The groups whose devices it targets.
    pub targets: Vec<GroupName>,
    /// The waves, in order; the last reaches the whole target.
    pub waves: Vec<Wave>,
    /// Grant limits.
    pub limits: Limits,
    /// An update that has not committed this many seconds after its grant (or its last
    /// progress report) counts as failed. Time waiting for a maintenance window or a reboot
    /// does not count.
    pub commit_timeout_secs: u64,
    /// Ignores rate limits and shortens check-in intervals.
    pub emergency: bool,
    /// Where it stands.
    pub state: RolloutState,
    /// The current wave (0-based).
    pub wave: u32,
    /// Unix seconds at which the current wave opened.
    pub wave_started_at: i64,
    /// Name of the admin token that created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Bumped by every state change; state changes are compare-and-set on it.
    pub revision: i64,
}

impl Rollout {
    /// The wave (0-based) of a device at `place` whose effective groups are `groups`: the
    /// first group wave of one of its groups, else the first share wave that its place falls
    /// under. Group waves come first, so a device's wave never depends on its place when a
    /// group wave takes it, and admission stays monotonic.
    pub fn wave_of(&self, place: u32, groups: &[GroupName]) -> u32 {
        self.waves
            .iter()
            .position(|w| match &w.group {
                Some(g) => groups.contains(g),
                None => place < w.share,
            })
            .unwrap_or(self.waves.len().saturating_sub(1)) as u32
    }
}

/// Why a rollout changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Cause {
    /// An administrator created it.
    Created,
    /// The wave soaked and enough of its devices committed.
    Succeeded {
        /// Devices of the wave that committed.
        committed: u64,
        /// Devices of the wave that need the release.
        eligible: u64,
    },
    /// Enough admitted devices failed (or did not commit in time).
    FailureThreshold {
        /// Admitted devices that failed, rolled back or timed out.
        failed: u64,
        /// Admitted devices that need the release.
        admitted: u64,
    },
    /// An administrator acted: `pause`, `resume`, `advance` or `cancel`.
    Admin {
        /// The action.
        action: String,
        /// Free text given with it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
    /// The release was marked bad.
    ReleaseMarkedBad,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created => write!(f, "created"),
            Self::Succeeded { committed, eligible } => {
                write!(f, "{committed} of {eligible} devices of the wave committed and the soak time passed")
            }
            Self::FailureThreshold { failed, admitted } => {
                write!(f, "{failed} of {admitted} admitted devices failed, reaching the failure threshold")
            }
            Self::Admin { action, note } if note.is_empty() => write!(f, "{action} by an administrator"),
            Self::Admin { action, note } => write!(f, "{action} by an administrator: {note}"),
            Self::ReleaseMarkedBad => write!(f, "the release was marked bad"),
        }
    }
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TimelineEntry {
    /// Unix seconds.
    pub at: i64,
    /// The state it entered.
    pub state: RolloutState,
    /// The wave (0-based) it was at afterwards.
    pub wave: u32,
    /// Why.
    pub cause: Cause,
    /// The admin token's name, for administrators' actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// How far one granted device has got, as far as the rollout is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum GrantState {
    /// Granted; the device has not reported on the release yet.
    Granted,
    /// Downloading or installing.
    InProgress,
    /// Waiting for a maintenance window, consent or a reboot: the commit timeout is suspended.
    Waiting,
    /// Committed: the only success.
    Committed,
    /// Failed or rolled back.
    Failed,
}

impl GrantState {
    /// The snake-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::InProgress => "in_progress",
            Self::Waiting => "waiting",
            Self::Committed => "committed",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Granted, Self::InProgress, Self::Waiting, Self::Committed, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    /// What a device's status event means for its grant. Installed but not committed is
    /// still in progress: it may yet fail its health check and roll back.
    pub fn from_event(state: DeviceState) -> Self {
        match state {
            DeviceState::Downloading | DeviceState::Downloaded | DeviceState::Installing | DeviceState::Installed => {
                Self::InProgress
            }
            DeviceState::RebootPending | DeviceState::Deferred => Self::Waiting,
            DeviceState::Committed => Self::Committed,
            DeviceState::Failed | DeviceState::RolledBack => Self::Failed,
        }
    }
}

/// A device's grant in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Grant {
    /// The rollout.
    pub rollout: RolloutId,
    /// The device.
    pub device: DeviceId,
    /// The device's wave (0-based).
    pub wave: u32,
    /// How far it has got.
    pub state: GrantState,
    /// Unix seconds (server clock) of the grant.
    pub granted_at: i64,
    /// Unix seconds (server clock) of the latest report on the release, or the grant.
    pub updated_at: i64,
}
